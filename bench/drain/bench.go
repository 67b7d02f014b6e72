package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
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
)

// Timing parameters; see the package documentation.
const (
	startPoll     = time.Millisecond      // ready-count poll until the consumer begins
	endPoll       = 2 * time.Millisecond  // result polls while draining
	etaPoll       = 10 * time.Millisecond // ready-count poll while the ETA tasks are taken in
	etaSettle     = time.Second           // after the last ETA delivery, before reading VmHWM
	startWithin   = 60 * time.Second      // a consumer must begin within this
	drainWithin   = 150 * time.Second     // and finish within this
	stopWithin    = 30 * time.Second      // warm shutdown, then SIGKILL
	settle        = time.Second           // after a worker exits, its queue must stay empty this long
	requeueWithin = 90 * time.Second      // for held ETA messages to be back in their queue
	publishers    = 256                   // goroutines filling a queue (confirms of persistent messages wait for fsync batches)
	bareMulti     = 50                    // the multiple-ack bare run acks every 50th message
	etaCountdwn   = 300 * time.Second     // the ETA tasks' countdown (below worker_eta_park_after)
)

// The two drain modes.
const (
	modeIgnore = "ignore_result"
	modeRedis  = "redis_results"
)

// bench holds the connections and the names to delete of one run of the program.
type bench struct {
	o   options
	out io.Writer
	log *slog.Logger
	tmp string // temp dir: worker config and logs
	sfx string // random suffix of every name the bench creates

	servers procstat.Servers // the RabbitMQ and Redis whose CPU time is read

	conn   *amqp.Connection // the observer's and cleanup's own connection
	watch  *watcher
	rc     *redis.Client
	br     *amqpbroker.Broker
	client *celery.Client

	mu     sync.Mutex
	queues []string       // queues (and exchanges of the same name) to delete
	ids    []string       // task ids whose result keys to delete
	procs  workerproc.Set // worker processes to kill if the bench stops early

	res summary
}

func newBench(ctx context.Context, o options, out io.Writer, log *slog.Logger) (*bench, error) {
	b := &bench{o: o, out: out, log: log, sfx: celery.NewID()[:8], servers: procstat.ServersOf(o.amqpURL, o.redisURL)}
	var err error
	if b.tmp, err = os.MkdirTemp("", "drain-"); err != nil {
		return nil, err
	}
	if b.conn, err = services.DialRabbitMQ(o.amqpURL); err != nil {
		_ = os.RemoveAll(b.tmp)
		return nil, err
	}
	if b.watch, err = newWatcher(b.conn); err != nil {
		_ = b.close()
		return nil, err
	}
	if b.rc, err = services.Redis(ctx, o.redisURL); err != nil {
		_ = b.close()
		return nil, err
	}
	cfg := celery.Config{BrokerURL: o.amqpURL}
	if b.br, err = amqpbroker.New(cfg.BrokerURL, amqpbroker.Options{Logger: log, ConnectionName: "bench-drain-publisher"}); err != nil {
		_ = b.close()
		return nil, err
	}
	if b.client, err = celery.NewClient(celery.ClientOptions{Config: cfg, Broker: b.br}); err != nil {
		_ = b.close()
		return nil, err
	}
	return b, nil
}

// all runs every measurement in order and prints the summary.
func (b *bench) all(ctx context.Context) error {
	o := b.o
	fmt.Fprintf(b.out, "drain: %d no-op tasks (diag.add(1, 2)) per run (%d per Python run), each run on a fresh queue; %d CPUs\n",
		o.n, o.pyN, runtime.NumCPU())
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(load)); len(f) >= 3 {
			fmt.Fprintf(b.out, "drain: load average before the runs: %s (other work on this machine skews every rate)\n", strings.Join(f[:3], " "))
		}
	}
	fmt.Fprintf(b.out, "drain: prefetch: go %d (-c %d x %d), python %d (-c %d x %d, prefork), bare %d\n",
		o.goConc*o.multiplier, o.goConc, o.multiplier, o.pyConc*o.multiplier, o.pyConc, o.multiplier, o.goConc*o.multiplier)
	fmt.Fprintf(b.out, "drain: clock from the first poll that sees the queue's ready count drop below N (consumer subscribed, broker delivering)\n")
	fmt.Fprintf(b.out, "drain: until the last message's result is in Redis (%s: only it stores one) or all N results are (%s); bare: its last ack\n\n", modeIgnore, modeRedis)

	runs := []struct {
		name string
		rate *float64
		run  func() (float64, error)
	}{
		{"go-ignore", &b.res.ignoreGo, func() (float64, error) { return b.workerRun(ctx, "go", modeIgnore, o.acksLate) }},
		{"go-ignore-late", &b.res.ignoreGoLate, func() (float64, error) { return b.workerRun(ctx, "go", modeIgnore, true) }},
		{"python-ignore", &b.res.ignorePy, func() (float64, error) { return b.workerRun(ctx, "python", modeIgnore, false) }},
		{"bare", &b.res.ignoreBare, func() (float64, error) { return b.bareRun(ctx, 1) }},
		{"bare-multi", &b.res.ignoreBareMulti, func() (float64, error) { return b.bareRun(ctx, bareMulti) }},
		{"go-redis", &b.res.redisGo, func() (float64, error) { return b.workerRun(ctx, "go", modeRedis, o.acksLate) }},
		{"python-redis", &b.res.redisPy, func() (float64, error) { return b.workerRun(ctx, "python", modeRedis, false) }},
	}
	rates := map[string][]float64{}
	for round := 1; round <= o.rounds; round++ {
		if o.rounds > 1 {
			fmt.Fprintf(b.out, "round %d of %d\n", round, o.rounds)
		}
		for _, r := range runs {
			if !o.runs[r.name] {
				continue
			}
			rate, err := r.run()
			if err != nil {
				return err
			}
			rates[r.name] = append(rates[r.name], rate)
		}
	}
	for _, r := range runs {
		*r.rate = median(rates[r.name])
	}
	if o.rounds > 1 {
		fmt.Fprintf(b.out, "the summary shows the median of %d rounds\n", o.rounds)
	}
	if o.eta > 0 && o.runs["eta"] {
		if err := b.etaRun(ctx); err != nil {
			return err
		}
	}
	fmt.Fprintln(b.out)
	_, err := io.WriteString(b.out, b.res.table())
	return err
}

// fill creates a fresh queue and publishes n diag.add(1, 2) messages to it with opts, each
// confirmed by the broker: the first n-1 concurrently, then the last one alone with lastOpts, so that
// it is last in the queue. It returns once the queue holds exactly n ready messages.
func (b *bench) fill(ctx context.Context, label string, n int, opts, lastOpts []celery.SendOption) (filled, error) {
	q := "bench." + label + "." + b.sfx
	ids := make([]string, n)
	for i := range ids {
		ids[i] = celery.NewID()
	}
	b.mu.Lock()
	b.queues = append(b.queues, q)
	b.ids = append(b.ids, ids...)
	b.mu.Unlock()

	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	send := func(id string, opts []celery.SendOption) error {
		o := append([]celery.SendOption{celery.WithQueue(q), celery.WithTaskID(id)}, opts...)
		if _, err := b.client.SendTask(pctx, "diag.add", []any{1, 2}, nil, o...); err != nil {
			return fmt.Errorf("publishing to %s: %w", q, err)
		}
		return nil
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	began := time.Now()
	for range min(publishers, n-1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n-1 || pctx.Err() != nil {
					return
				}
				if err := send(ids[i], opts); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(pctx); err != nil {
		return filled{}, err
	}
	if err := send(ids[n-1], lastOpts); err != nil {
		return filled{}, err
	}
	ready, err := b.watch.ready(q)
	if err != nil {
		return filled{}, err
	}
	if ready != n {
		return filled{}, fmt.Errorf("queue %s holds %d messages after publishing %d", q, ready, n)
	}
	return filled{q: q, ids: ids, took: time.Since(began)}, nil
}

// filled is a queue fill made ready for a run.
type filled struct {
	q    string
	ids  []string      // task ids in send order; the last one was sent last
	took time.Duration // publishing time (not part of any measurement)
}

// consumerRun is one measured drain.
type consumerRun struct {
	start, end time.Time
	peakKB     int64        // the Go worker's VmHWM at the end, 0 for others
	cpu        procstat.CPU // CPU time of the consumer and of RabbitMQ between start and end
}

// cpuNote describes where the CPU time of a run went: per task, and as CPUs busy over the run.
func (r consumerRun) cpuNote(who string, n int) string {
	window := r.end.Sub(r.start).Seconds()
	part := func(name string, d time.Duration) string {
		return fmt.Sprintf("%s %.0fµs/task (%.2f CPUs)", name, float64(d.Microseconds())/float64(n), d.Seconds()/window)
	}
	server := func(name string, d time.Duration, ok bool) string {
		if !ok {
			return name + " n/a (not found on its port, or another process in the two readings)"
		}
		return part(name, d)
	}
	return "cpu: " + part(who, r.cpu.Group) + ", " + server("rabbitmq", r.cpu.RabbitMQ, r.cpu.RabbitMQOK()) + ", " + server("redis", r.cpu.Redis, r.cpu.RedisOK())
}

func (r consumerRun) rate(n int) float64 { return rateOf(n, r.end.Sub(r.start)) }

// workerRun drains a fresh queue with the Go or the Python worker (the Go worker with
// task_acks_late or not) and returns the rate. A Go run with acks_late prints "go-late" as its
// kind.
func (b *bench) workerRun(ctx context.Context, kind, mode string, acksLate bool) (float64, error) {
	label := kind
	if kind == "go" && acksLate {
		label = "go-late"
	}
	n := b.o.n
	if kind == "python" {
		n = b.o.pyN
	}
	var opts []celery.SendOption
	if mode == modeIgnore {
		opts = append(opts, celery.WithIgnoreResult())
	}
	// In ignore_result mode the last message, alone, stores its result: the end signal.
	f, err := b.fill(ctx, label+"-"+mode, n, opts, nil)
	if err != nil {
		return 0, err
	}
	p, err := b.startWorker(kind, f.q, label+"-"+mode, acksLate)
	if err != nil {
		return 0, err
	}
	r, runErr := b.measure(ctx, p, f, mode)
	stopErr := b.stopWorker(p)
	if runErr != nil {
		return 0, fmt.Errorf("%s worker, %s: %w\n%s", label, mode, runErr, p.tail(20))
	}
	if stopErr != nil {
		return 0, fmt.Errorf("%s worker, %s: %w\n%s", label, mode, stopErr, p.tail(20))
	}
	if err := b.verify(ctx, f, mode); err != nil {
		return 0, fmt.Errorf("%s worker, %s: %w\n%s", label, mode, err, p.tail(20))
	}
	if err := services.DeleteResults(ctx, b.rc, f.ids); err != nil {
		return 0, err
	}
	prefetch := b.o.multiplier * b.o.goConc
	if kind == "python" {
		prefetch = b.o.multiplier * b.o.pyConc
	}
	extra := ""
	if r.peakKB > 0 {
		extra = fmt.Sprintf(", peak RSS %s", mib(r.peakKB))
	}
	if lines := p.ErrorLines(); lines > 0 {
		extra += fmt.Sprintf(", %d ERROR/CRITICAL log lines (below)", lines)
		defer fmt.Fprint(b.out, p.tail(20))
	}
	rate := r.rate(n)
	fmt.Fprintf(b.out, "%-14s %-10s %d tasks in %s = %s (prefetch %d%s; %s; published in %s)\n",
		mode, label, n, seconds(r.end.Sub(r.start)), perSecond(rate), prefetch, extra, r.cpuNote("worker", n), seconds(f.took))
	return rate, nil
}

// measure times one worker draining the queue of ids: from the first delivery until the result of
// the last message (ignore_result) or of every message (redis_results) is in Redis.
func (b *bench) measure(ctx context.Context, p *process, f filled, mode string) (consumerRun, error) {
	var r consumerRun
	var err error
	q, ids := f.q, f.ids
	sctx, cancel := context.WithTimeoutCause(ctx, startWithin, fmt.Errorf("the worker did not begin consuming within %s", startWithin))
	r.start, err = b.watch.waitBelow(sctx, q, len(ids), startPoll, p.Done())
	cancel()
	if err != nil {
		return r, err
	}
	pid := p.PID()
	cpu0 := procstat.GroupCPU(pid, b.servers)
	dctx, cancel := context.WithTimeoutCause(ctx, drainWithin, fmt.Errorf("the queue was not drained within %s", drainWithin))
	defer cancel()
	wait := ids
	if mode == modeIgnore {
		wait = ids[len(ids)-1:]
	}
	var failed int
	r.end, failed, err = services.WaitResults(dctx, b.rc, wait, endPoll, exitedOf(p))
	if err != nil {
		return r, err
	}
	r.cpu = procstat.GroupCPU(pid, b.servers).Sub(cpu0)
	if failed > 0 {
		return r, fmt.Errorf("%d of %d results are not SUCCESS", failed, len(wait))
	}
	if p.kind == "go" {
		if m, err := p.Memory(); err == nil {
			r.peakKB = m.HWM
		}
	}
	return r, nil
}

// verify checks, after the worker stopped warmly, that every message was run (a warm shutdown gives
// back what was delivered but not started) and that results were stored or not as the mode asks.
func (b *bench) verify(ctx context.Context, f filled, mode string) error {
	sctx, cancel := context.WithTimeout(ctx, settle)
	defer cancel()
	ready := 0
	_, err := b.watch.waitFor(sctx, f.q, etaPoll, nil, func(r int) bool { ready = r; return r > 0 })
	switch {
	case err == nil:
		return fmt.Errorf("%d messages were not run: they went back to the queue at the warm shutdown", ready)
	case !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return err
	}
	if mode == modeIgnore {
		n, err := services.CountResults(ctx, b.rc, f.ids[:len(f.ids)-1])
		if err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("%d result keys exist although their messages had ignore_result=True", n)
		}
	}
	return nil
}

// bareRun drains a fresh queue with an in-process amqp091-go consumer at the Go worker's prefetch,
// acknowledging each message (every 1) or every `every`-th with multiple=true.
func (b *bench) bareRun(ctx context.Context, every int) (float64, error) {
	n := b.o.n
	label := "bare"
	how := "ack each"
	if every > 1 {
		label = "bare-multi"
		how = fmt.Sprintf("multiple-ack every %d", every)
	}
	ignore := []celery.SendOption{celery.WithIgnoreResult()}
	f, err := b.fill(ctx, label, n, ignore, ignore)
	if err != nil {
		return 0, err
	}
	prefetch := b.o.goConc * b.o.multiplier
	failed := make(chan struct{})
	var own bareResult
	done := make(chan struct{})
	bctx, cancel := context.WithTimeoutCause(ctx, startWithin+drainWithin, errors.New("the bare consumer did not finish in time"))
	defer cancel()
	go func() {
		defer close(done)
		own = bareConsume(bctx, b.o.amqpURL, f.q, n, prefetch, every)
		if own.err != nil {
			close(failed)
		}
	}()
	var r consumerRun
	sctx, scancel := context.WithTimeoutCause(bctx, startWithin, fmt.Errorf("the bare consumer did not begin within %s", startWithin))
	r.start, err = b.watch.waitBelow(sctx, f.q, n, startPoll, failed)
	scancel()
	cpu0 := procstat.ProcessCPU(os.Getpid(), b.servers)
	if err != nil {
		cancel()
	}
	<-done
	r.cpu = procstat.ProcessCPU(os.Getpid(), b.servers).Sub(cpu0)
	if own.err != nil {
		return 0, fmt.Errorf("bare consumer: %w", own.err)
	}
	if err != nil {
		return 0, fmt.Errorf("bare consumer: %w", err)
	}
	r.end = own.last
	if ready, err := b.watch.ready(f.q); err != nil || ready != 0 {
		return 0, fmt.Errorf("bare consumer: %d messages left in the queue (%v)", ready, err)
	}
	rate := r.rate(n)
	fmt.Fprintf(b.out, "%-14s %-10s %d msgs  in %s = %s (prefetch %d, %s; from its own first delivery: %s; %s)\n",
		modeIgnore, label, n, seconds(r.end.Sub(r.start)), perSecond(rate), prefetch, how,
		perSecond(rateOf(n, own.last.Sub(own.first))), r.cpuNote("bench process", n))
	return rate, nil
}

// etaRun has the Go worker take in o.eta tasks due in 5 minutes and reads its peak RSS.
func (b *bench) etaRun(ctx context.Context) error {
	n := b.o.eta
	opts := []celery.SendOption{celery.WithCountdown(etaCountdwn), celery.WithIgnoreResult()}
	f, err := b.fill(ctx, "eta", n, opts, opts)
	if err != nil {
		return err
	}
	p, err := b.startWorker("go", f.q, "eta", b.o.acksLate)
	if err != nil {
		return err
	}
	held, runErr := b.holdETA(ctx, p, f.q, n)
	held.sigterm = time.Now()
	stopErr := b.stopWorker(p)
	held.stopped = time.Now()
	if runErr != nil {
		return fmt.Errorf("go worker, ETA hold: %w\n%s", runErr, p.tail(20))
	}
	if stopErr != nil {
		return fmt.Errorf("go worker, ETA hold: %w\n%s", stopErr, p.tail(20))
	}
	// The held messages go back to the queue as the worker gives them back (or its connection
	// closes); the broker may take a while to requeue them. How long is reported, not judged.
	vctx, cancel := context.WithTimeout(ctx, requeueWithin)
	defer cancel()
	last := -1
	back, err := b.watch.waitFor(vctx, f.q, etaPoll, nil, func(r int) bool { last = r; return r == n })
	requeued := fmt.Sprintf("all %d back in the queue %s after SIGTERM", n, seconds(back.Sub(held.sigterm)))
	switch {
	case err != nil && ctx.Err() != nil:
		return err
	case err != nil && errors.Is(err, context.DeadlineExceeded):
		requeued = fmt.Sprintf("only %d of %d back in the queue %s after SIGTERM (the broker is still requeueing)", last, n, seconds(requeueWithin))
	case err != nil:
		return fmt.Errorf("go worker, ETA hold: %w", err)
	}
	b.res.etaN, b.res.etaPeakKB = n, held.HWM
	fmt.Fprintf(b.out, "%-14s %-10s %d tasks (countdown %s) held unacknowledged %s after the first delivery; peak RSS (VmHWM) %s, RSS %s\n",
		"eta_hold", "go", n, etaCountdwn, seconds(held.at), mib(held.HWM), mib(held.RSS))
	fmt.Fprintf(b.out, "%-14s %-10s warm shutdown took %s; %s\n",
		"eta_hold", "go", seconds(held.stopped.Sub(held.sigterm)), requeued)
	return nil
}

type heldETA struct {
	workerproc.Memory
	at               time.Duration // from the first delivery to ready == 0
	sigterm, stopped time.Time     // the warm shutdown: asked, and the process gone
}

func (b *bench) holdETA(ctx context.Context, p *process, q string, n int) (heldETA, error) {
	var h heldETA
	sctx, cancel := context.WithTimeoutCause(ctx, startWithin, fmt.Errorf("the worker did not begin consuming within %s", startWithin))
	start, err := b.watch.waitBelow(sctx, q, n, startPoll, p.Done())
	cancel()
	if err != nil {
		return h, err
	}
	dctx, cancel := context.WithTimeoutCause(ctx, drainWithin, fmt.Errorf("the ETA tasks were not all taken within %s", drainWithin))
	defer cancel()
	end, err := b.watch.waitZero(dctx, q, etaPoll, p.Done())
	if err != nil {
		return h, err
	}
	h.at = end.Sub(start)
	// The last deliveries may still be on their way into the worker's timer; VmHWM only grows, so
	// reading it a moment later can only make it more complete.
	select {
	case <-time.After(etaSettle):
	case <-p.Done():
		return h, errors.New("the worker exited while holding the ETA tasks")
	case <-ctx.Done():
		return h, context.Cause(ctx)
	}
	h.Memory, err = p.Memory()
	return h, err
}

// close stops what is still running and deletes every queue, exchange and key the bench created.
func (b *bench) close() error {
	var errs []error
	b.mu.Lock()
	queues := append([]string(nil), b.queues...)
	ids := append([]string(nil), b.ids...)
	b.mu.Unlock()
	b.procs.KillAll()
	if b.br != nil {
		_ = b.br.Close()
	}
	if b.rc != nil {
		// Results live a day: delete them first, with a budget of their own.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := services.DeleteResults(ctx, b.rc, ids); err != nil {
			errs = append(errs, err)
		}
		cancel()
		_ = b.rc.Close()
	}
	if len(queues) > 0 {
		queues = append(queues, "bench.deadletter."+b.sfx)
		if err := services.DeleteQueuesAt(b.o.amqpURL, queues); err != nil {
			errs = append(errs, err)
		}
	}
	if b.conn != nil {
		_ = b.conn.Close()
	}
	if err := os.RemoveAll(b.tmp); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// configFile writes a Go worker's configuration into the temp dir, with task_acks_late or not.
func (b *bench) configFile(label string, acksLate bool) (string, error) {
	path := filepath.Join(b.tmp, "celeryconfig-"+label+".yaml")
	body := fmt.Sprintf("broker_url: %s\nresult_backend: %s\naccept_content: [json]\nworker_concurrency: %d\nworker_prefetch_multiplier: %d\nworker_dead_letter_queue: %s\n",
		strconv.Quote(b.o.amqpURL), strconv.Quote(b.o.redisURL), b.o.goConc, b.o.multiplier, strconv.Quote("bench.deadletter."+b.sfx))
	if acksLate {
		body += "task_acks_late: true\n"
	}
	return path, os.WriteFile(path, []byte(body), 0o600)
}
