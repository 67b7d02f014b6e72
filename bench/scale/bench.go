package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/bench/internal/procstat"
	"github.com/forumads/forumads/bench/internal/services"
	"github.com/forumads/forumads/bench/internal/workerproc"
	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/broker/amqpbroker"
	"github.com/forumads/forumads/celery/control"
)

// Timing parameters; see the package documentation.
const (
	startPoll   = time.Millisecond
	endPoll     = 2 * time.Millisecond
	etaPoll     = 10 * time.Millisecond
	rssEvery    = 20 * time.Millisecond
	etaStep     = 10000
	etaSettle   = time.Second
	etaStall    = 15 * time.Second // the ETA intake counts as stopped when the queue does not move this long
	parkSuffix  = ".eta-park-600s" // the worker's parking queue of a queue (worker_eta_park_after 600)
	startWithin = 60 * time.Second
	pingEvery   = time.Second // how long one ping waits for the mailboxes not yet answering
	addWithin   = 10 * time.Second
	drainWithin = 180 * time.Second
	stopWithin  = 60 * time.Second
	publishers  = 256
	etaCountdwn = 550 * time.Second // below worker_eta_park_after (600 s): held, not parked
)

// bench holds the connections and what to delete at the end.
type bench struct {
	o   options
	out io.Writer
	log *slog.Logger
	tmp string
	sfx string

	conn   *amqp.Connection
	mu     sync.Mutex
	ch     *amqp.Channel // passive declares (queue depths)
	rc     *redis.Client
	br     *amqpbroker.Broker
	client *celery.Client
	ctl    *control.Client // add_consumer broadcasts, on br's connection
	host   string          // the worker's %h

	queues []string
	ids    []string
	procs  workerproc.Set // worker processes to kill if the bench stops early
	runs   int
}

func newBench(ctx context.Context, o options, out io.Writer, log *slog.Logger) (*bench, error) {
	b := &bench{o: o, out: out, log: log, sfx: celery.NewID()[:8]}
	var err error
	if b.tmp, err = os.MkdirTemp("", "scale-"); err != nil {
		return nil, err
	}
	if b.conn, err = services.DialRabbitMQ(o.amqpURL); err != nil {
		_ = b.close()
		return nil, err
	}
	if b.ch, err = b.conn.Channel(); err != nil {
		_ = b.close()
		return nil, err
	}
	if b.rc, err = services.Redis(ctx, o.redisURL); err != nil {
		_ = b.close()
		return nil, err
	}
	if b.br, err = amqpbroker.New(o.amqpURL, amqpbroker.Options{Logger: log, ConnectionName: "bench-scale-publisher"}); err != nil {
		_ = b.close()
		return nil, err
	}
	if b.client, err = celery.NewClient(celery.ClientOptions{Config: celery.Config{BrokerURL: o.amqpURL}, Broker: b.br}); err != nil {
		_ = b.close()
		return nil, err
	}
	if b.ctl, err = control.NewClient(b.br.Fanout(), control.Options{Logger: log}); err != nil {
		_ = b.close()
		return nil, err
	}
	if b.host, err = os.Hostname(); err != nil {
		_ = b.close()
		return nil, err
	}
	return b, nil
}

// ready is the number of ready messages in all of qs.
func (b *bench) ready(qs []string) (int, error) {
	r, _, err := b.depth(qs)
	return r, err
}

// depth is the number of ready messages in all of qs and the fewest consumers any of them has.
func (b *bench) depth(qs []string) (ready, consumers int, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	total, fewest := 0, -1
	for _, q := range qs {
		if b.ch.IsClosed() {
			ch, err := b.conn.Channel()
			if err != nil {
				return 0, 0, err
			}
			b.ch = ch
		}
		st, err := b.ch.QueueDeclarePassive(q, true, false, false, false, nil)
		if err != nil {
			return 0, 0, fmt.Errorf("reading the depth of %s: %w", q, err)
		}
		total += st.Messages
		if fewest < 0 || st.Consumers < fewest {
			fewest = st.Consumers
		}
	}
	return total, fewest, nil
}

// waitReady polls the ready count of qs every `every` until ok accepts it.
func (b *bench) waitReady(ctx context.Context, qs []string, every time.Duration, procs []*process, ok func(int) bool) (time.Time, error) {
	return poll(ctx, every, procs, func() (bool, error) {
		r, err := b.ready(qs)
		return err == nil && ok(r), err
	})
}

// poll calls done every `every` until it reports true or an error, and returns when that was
// seen; it stops early when one of procs has exited or ctx ends.
func poll(ctx context.Context, every time.Duration, procs []*process, done func() (bool, error)) (time.Time, error) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ok, err := done()
		now := time.Now()
		if err != nil || ok {
			return now, err
		}
		if err := exited(procs); err != nil {
			return now, err
		}
		select {
		case <-ctx.Done():
			return now, context.Cause(ctx)
		case <-t.C:
		}
	}
}

// fill creates q fresh queues and sends n diag.add(1, 2) round-robin over them, confirmed.
func (b *bench) fill(ctx context.Context, label string, n, q int, opts []celery.SendOption) ([]string, []string, time.Duration, error) {
	b.runs++
	qs := make([]string, q)
	for i := range qs {
		qs[i] = fmt.Sprintf("bench.scale.%s.%d.%d.%s", label, b.runs, i, b.sfx)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = celery.NewID()
	}
	b.mu.Lock()
	b.queues = append(b.queues, qs...)
	b.ids = append(b.ids, ids...)
	b.mu.Unlock()
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	began := time.Now()
	for range min(publishers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || pctx.Err() != nil {
					return
				}
				so := append([]celery.SendOption{celery.WithQueue(qs[i%q]), celery.WithTaskID(ids[i])}, opts...)
				if _, err := b.client.SendTask(pctx, "diag.add", []any{1, 2}, nil, so...); err != nil {
					cancel(fmt.Errorf("publishing to %s: %w", qs[i%q], err))
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(pctx); err != nil {
		return nil, nil, 0, err
	}
	took := time.Since(began)
	if r, err := b.ready(qs); err != nil || r != n {
		return nil, nil, 0, fmt.Errorf("the queues hold %d messages after publishing %d (%v)", r, n, err)
	}
	return qs, ids, took, nil
}

// drainResult is one measured drain.
type drainResult struct {
	n, procs, queues int
	took, published  time.Duration
	rate             float64
	seen             time.Duration       // from the add_consumer broadcasts to every consumer seen
	before           int                 // tasks done by the time every consumer was seen (counted)
	rss              workerproc.RSSTrace // sampled over the run (sum over processes)
	workerCPU        time.Duration
}

func (r drainResult) line() string {
	return fmt.Sprintf("%-14s %d proc x %d queue(s) %6d tasks: %d in %.3fs = %.0f/s (clock from the add_consumer broadcasts; every consumer seen after %.0f ms, %d done by then; worker CPU %.0fµs/task; RSS start %s, peak %s, end %s; published in %.3fs)",
		"redis_results", r.procs, r.queues, r.n, r.n, r.took.Seconds(), r.rate, float64(r.seen.Microseconds())/1000, r.before,
		float64(r.workerCPU.Microseconds())/float64(r.n), mib(r.rss.Start), mib(r.rss.Peak), mib(r.rss.End), r.published.Seconds())
}

// drainRun fills q queues with n tasks and drains them with p worker processes.
func (b *bench) drainRun(ctx context.Context, n, p, q int) (drainResult, error) {
	res := drainResult{n: n, procs: p, queues: q}
	qs, ids, took, err := b.fill(ctx, fmt.Sprintf("p%dq%d", p, q), n, q, nil)
	if err != nil {
		return res, err
	}
	res.published = took
	// The processes start on an idle queue of this run only; once all consume it, add_consumer
	// gives them the task queues at once (see the package documentation).
	idle := fmt.Sprintf("bench.scale.idle.%d.%s", b.runs, b.sfx)
	b.mu.Lock()
	b.queues = append(b.queues, idle)
	b.mu.Unlock()
	if err := b.declare(ctx, idle); err != nil {
		return res, err
	}
	procs := make([]*process, 0, p)
	nodes := make([]string, 0, p)
	for i := range p {
		pr, node, err := b.startWorker([]string{idle}, fmt.Sprintf("p%dq%d-%d", p, q, i))
		if err != nil {
			b.stopAll(procs)
			return res, err
		}
		procs = append(procs, pr)
		nodes = append(nodes, node)
	}
	measureErr := func() error {
		// The clock starts right before the add_consumer broadcasts open the task queues to the
		// processes: no task can be taken before. How long until every process is seen consuming
		// every queue, and how many tasks were done by then, is reported beside the rate.
		cpu0 := groupCPU(procs)
		sampler := workerproc.SampleRSS(procs, rssEvery)
		sctx, cancel := context.WithTimeoutCause(ctx, startWithin, fmt.Errorf("the workers did not all begin consuming within %s", startWithin))
		start, seen, err := b.addConsumers(sctx, idle, qs, nodes, procs)
		cancel()
		if err != nil {
			sampler.Stop()
			return err
		}
		res.seen = seen.Sub(start)
		if res.before, err = services.CountResults(ctx, b.rc, ids); err != nil {
			sampler.Stop()
			return err
		}
		dctx, cancel := context.WithTimeoutCause(ctx, drainWithin, fmt.Errorf("the queues were not drained within %s", drainWithin))
		defer cancel()
		end, failed, err := services.WaitResults(dctx, b.rc, ids, endPoll, func() error { return exited(procs) })
		res.rss = sampler.Stop()
		res.workerCPU = groupCPU(procs) - cpu0
		if err != nil {
			return err
		}
		if failed > 0 {
			return fmt.Errorf("%d of %d results are not SUCCESS", failed, n)
		}
		res.took = end.Sub(start)
		res.rate = float64(n) / res.took.Seconds()
		return nil
	}()
	stopErr := b.stopAll(procs)
	if err := errors.Join(measureErr, stopErr); err != nil {
		return res, fmt.Errorf("%d process(es) x %d queue(s): %w\n%s", p, q, err, tails(procs))
	}
	if r, err := b.ready(qs); err != nil || r != 0 {
		return res, fmt.Errorf("%d messages left in the queues after the warm shutdown (%v)", r, err)
	}
	return res, services.DeleteResults(ctx, b.rc, ids)
}

// declare declares the queue name as Celery (and the worker, for -Q) declares it, so that it can
// be polled before the workers are up.
func (b *bench) declare(ctx context.Context, name string) error {
	q, ok := celery.Config{BrokerURL: b.o.amqpURL}.WithDefaults().QueueByName(name)
	if !ok {
		return fmt.Errorf("no declaration for queue %s", name)
	}
	if err := b.br.Declare(ctx, q); err != nil {
		return fmt.Errorf("declaring %s: %w", name, err)
	}
	return nil
}

// addConsumers waits until the p processes (nodes) all consume idle and all answer a ping, then
// broadcasts add_consumer for each of qs to them (the broadcasts concurrently, as
// `celery control add_consumer` would send each), and returns the time right before the
// broadcasts and that of the first poll that sees every process consuming every one of qs.
func (b *bench) addConsumers(ctx context.Context, idle string, qs, nodes []string, procs []*process) (opened, seen time.Time, err error) {
	if _, err := b.waitConsumers(ctx, []string{idle}, len(nodes), procs); err != nil {
		return time.Time{}, time.Time{}, err
	}
	// A worker may consume before its mailbox listens; a broadcast it does not hear is lost.
	for waiting := nodes; len(waiting) > 0; {
		replies, err := b.ctl.Broadcast(ctx, "ping", nil, waiting, pingEvery)
		if err != nil {
			return time.Time{}, time.Time{}, err
		}
		var still []string
		for _, n := range waiting {
			if _, ok := replies[n]; !ok {
				still = append(still, n)
			}
		}
		if err := exited(procs); err != nil {
			return time.Time{}, time.Time{}, err
		}
		waiting = still
	}
	opened = time.Now()
	errs := make([]error, len(qs))
	var wg sync.WaitGroup
	for i, q := range qs {
		wg.Go(func() {
			replies, err := b.ctl.Broadcast(ctx, "add_consumer", map[string]string{"queue": q}, nodes, addWithin)
			if err != nil {
				errs[i] = fmt.Errorf("add_consumer %s: %w", q, err)
				return
			}
			for _, n := range nodes {
				var r struct {
					OK    string `json:"ok"`
					Error string `json:"error"`
				}
				raw, ok := replies[n]
				switch {
				case !ok:
					errs[i] = errors.Join(errs[i], fmt.Errorf("add_consumer %s: no reply from %s within %s", q, n, addWithin))
				case json.Unmarshal(raw, &r) != nil || r.OK == "":
					errs[i] = errors.Join(errs[i], fmt.Errorf("add_consumer %s: %s answered %s", q, n, raw))
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return opened, time.Time{}, err
	}
	seen, err = b.waitConsumers(ctx, qs, len(nodes), procs)
	return opened, seen, err
}

// waitConsumers polls every startPoll until each of qs has at least p consumers.
func (b *bench) waitConsumers(ctx context.Context, qs []string, p int, procs []*process) (time.Time, error) {
	return poll(ctx, startPoll, procs, func() (bool, error) {
		_, c, err := b.depth(qs)
		return c >= p, err
	})
}

// etaRun has one worker take in n ETA tasks and reads its RSS at every etaStep taken.
func (b *bench) etaRun(ctx context.Context, n int) error {
	opts := []celery.SendOption{celery.WithCountdown(etaCountdwn), celery.WithIgnoreResult()}
	qs, _, took, err := b.fill(ctx, "eta", n, 1, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "eta_hold: %d tasks with countdown %s published in %.3fs; one worker takes them in (held unacknowledged in its timer):\n", n, etaCountdwn, took.Seconds())
	p, _, err := b.startWorker(qs, "eta")
	if err != nil {
		return err
	}
	procs := []*process{p}
	var lines []string
	runErr := func() error {
		// The baseline is the RSS at the first poll that sees the queue below n: the worker is
		// up and subscribed, and holds at most a few hundred of the n.
		var base int64
		next := etaStep
		dctx, cancel := context.WithTimeoutCause(ctx, drainWithin, fmt.Errorf("the ETA tasks were not all taken within %s", drainWithin))
		defer cancel()
		began := time.Now()
		// The intake can stop short of n: the worker holds a bounded number and parks the rest,
		// slowly. Once the ready count falls by less than etaStep/10 in etaStall the hold is
		// measured as it stands.
		lastReady, lastMove := n+1, time.Now()
		_, err := b.waitReady(dctx, qs, etaPoll, procs, func(r int) bool {
			if lastReady-r >= etaStep/10 || r == 0 {
				lastReady, lastMove = r, time.Now()
			}
			if base == 0 && r < n {
				if m, err := p.Memory(); err == nil {
					base = m.RSS
				}
			}
			for held := n - r; held >= next && next <= n; next += etaStep {
				m, err := p.Memory()
				if err != nil {
					continue
				}
				rss := m.RSS
				lines = append(lines, fmt.Sprintf("  %6d taken: RSS %s (+%s per 10,000 over the %s at the first delivery) at %.2fs",
					next, mib(rss), mib((rss-base)*etaStep/int64(next)), mib(base), time.Since(began).Seconds()))
			}
			return r == 0 || time.Since(lastMove) >= etaStall
		})
		if err != nil {
			return err
		}
		r, err := b.ready(qs)
		if err != nil {
			return err
		}
		parked, _ := b.ready([]string{qs[0] + parkSuffix})
		held := n - r - parked
		if r > 0 {
			lines = append(lines, fmt.Sprintf("  intake stopped at %d of %d held (%d parked in %s, %d still ready): the ready count fell by less than %d in %s",
				held, n, parked, qs[0]+parkSuffix, r, etaStep/10, etaStall))
		}
		select {
		case <-time.After(etaSettle):
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		m, err := p.Memory()
		if err != nil {
			return err
		}
		rss, hwm := m.RSS, m.HWM
		lines = append(lines, fmt.Sprintf("  %d of %d held, %s later: RSS %s, peak (VmHWM) %s: %s per 10,000 held above the %s at the first delivery",
			held, n, etaSettle, mib(rss), mib(hwm), mib((hwm-base)*etaStep/int64(max(held, 1))), mib(base)))
		return nil
	}()
	stopBegan := time.Now()
	stopErr := b.stopAll(procs)
	for _, l := range lines {
		fmt.Fprintln(b.out, l)
	}
	if err := errors.Join(runErr, stopErr); err != nil {
		return fmt.Errorf("ETA hold: %w\n%s", err, tails(procs))
	}
	fmt.Fprintf(b.out, "  warm shutdown of the holding worker took %.3fs\n", time.Since(stopBegan).Seconds())
	return nil
}

// close stops what still runs and deletes every queue and key the bench created.
func (b *bench) close() error {
	var errs []error
	b.mu.Lock()
	queues := append([]string(nil), b.queues...)
	ids := append([]string(nil), b.ids...)
	b.mu.Unlock()
	b.procs.KillAll()
	if b.ctl != nil {
		_ = b.ctl.Close()
	}
	if b.br != nil {
		_ = b.br.Close()
	}
	if b.rc != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := services.DeleteResults(ctx, b.rc, ids); err != nil {
			errs = append(errs, err)
		}
		cancel()
		_ = b.rc.Close()
	}
	if len(queues) > 0 {
		for _, q := range queues {
			queues = append(queues, q+parkSuffix) // created by the worker when it parks ETA tasks
		}
		queues = append(queues, "bench.scale.deadletter."+b.sfx)
		errs = append(errs, services.DeleteQueuesAt(b.o.amqpURL, queues))
	}
	if b.conn != nil {
		_ = b.conn.Close()
	}
	errs = append(errs, os.RemoveAll(b.tmp))
	return errors.Join(errs...)
}

// process is a worker the bench started (bench/internal/workerproc: a process group of its own,
// with its output in a log file).
type process = workerproc.Process

// startWorker starts one Go worker consuming qs; it returns the worker's node name too.
func (b *bench) startWorker(qs []string, label string) (*process, string, error) {
	cfg := filepath.Join(b.tmp, "celeryconfig.yaml")
	body := fmt.Sprintf("broker_url: %s\nresult_backend: %s\naccept_content: [json]\nworker_concurrency: %d\nworker_prefetch_multiplier: %d\nworker_dead_letter_queue: %s\n",
		strconv.Quote(b.o.amqpURL), strconv.Quote(b.o.redisURL), b.o.conc, b.o.multiplier, strconv.Quote("bench.scale.deadletter."+b.sfx))
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		return nil, "", err
	}
	node := fmt.Sprintf("bench-scale-%s-%s@", label, b.sfx)
	p, err := workerproc.Start(workerproc.Spec{
		Name: "worker",
		Argv: []string{b.o.worker, "--config", cfg, "-Q", strings.Join(qs, ","), "-c", strconv.Itoa(b.o.conc),
			"-n", node + "%h", "-l", "warning"},
		Env: procstat.WithEnv(os.Environ(), map[string]string{"CELERY_BROKER_URL": b.o.amqpURL, "CELERY_RESULT_BACKEND": b.o.redisURL}),
		Dir: b.tmp,
		Log: filepath.Join(b.tmp, label+".log"),
	})
	if err != nil {
		return nil, "", err
	}
	b.procs.Add(p)
	return p, node + b.host, nil
}

// stopAll asks every process for a warm shutdown and waits; past stopWithin it kills them.
func (b *bench) stopAll(procs []*process) error {
	defer b.procs.Remove(procs...)
	return workerproc.Stop(procs, stopWithin)
}

// exited reports a process that is gone.
func exited(procs []*process) error {
	for _, p := range procs {
		if err := p.Exited(); err != nil {
			return err
		}
	}
	return nil
}

// tails is the end of each worker's log.
func tails(procs []*process) string {
	var sb strings.Builder
	for _, p := range procs {
		sb.WriteString(p.Tail(10, "  worker log| "))
	}
	return sb.String()
}

// groupCPU is the CPU time used so far by the processes' groups.
func groupCPU(procs []*process) time.Duration {
	var d time.Duration
	for _, p := range procs {
		d += procstat.GroupCPU(p.PID(), procstat.Servers{}).Group
	}
	return d
}

// mib formats KiB as MiB with one decimal.
func mib(kb int64) string {
	return strconv.FormatFloat(float64(kb)/1024, 'f', 1, 64) + " MiB"
}
