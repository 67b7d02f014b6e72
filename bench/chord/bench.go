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
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/bench/internal/procstat"
	"github.com/forumads/forumads/bench/internal/services"
	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend/redisbackend"
	"github.com/forumads/forumads/celery/broker/amqpbroker"
	"github.com/forumads/forumads/celery/canvas"
)

// Waits and polls; see the package documentation.
const (
	readyWithin  = 60 * time.Second      // a worker must be consuming within this of its start
	readyPoll    = 20 * time.Millisecond // consumer-count poll while a worker starts
	resultPoll   = 2 * time.Millisecond  // GET of the body's result while the chord runs
	warmupWithin = 60 * time.Second      // deadline of the warm-up chord
	checkChunk   = 1000                  // keys per MGET / UNLINK
)

// bench holds the connections of a run and everything it created, for the cleanup.
type bench struct {
	o   options
	out io.Writer
	tmp string // worker config and logs
	sfx string // random suffix of every queue and node name of the run

	conn    *amqp.Connection // declares, polls and deletes queues
	pollMu  sync.Mutex
	pollCh  *amqp.Channel // passive declares; reopened after a channel error
	rc      *redis.Client
	br      *amqpbroker.Broker // the sender's publisher
	backend *redisbackend.Backend

	mu      sync.Mutex
	queues  []string // queues and exchanges of the same name to delete
	keys    []string // Redis keys to delete
	running []*worker
}

func newBench(ctx context.Context, o options, out io.Writer) (*bench, error) {
	b := &bench{o: o, out: out, sfx: celery.NewID()[:8]}
	var err error
	if b.tmp, err = os.MkdirTemp("", "chord-bench-"); err != nil {
		return nil, err
	}
	if b.conn, err = services.DialRabbitMQ(o.amqpURL); err != nil {
		_ = b.close()
		return nil, err
	}
	if b.rc, err = services.Redis(ctx, o.redisURL); err != nil {
		_ = b.close()
		return nil, err
	}
	// Celery's default result_expires: the chord size key lives a day, as a Python client's would.
	b.backend = redisbackend.New(b.rc, redisbackend.Options{Expires: celery.DefaultResultExpires})
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if b.br, err = amqpbroker.New(o.amqpURL, amqpbroker.Options{Logger: log, ConnectionName: "bench-chord-sender"}); err != nil {
		_ = b.close()
		return nil, err
	}
	return b, nil
}

// all runs the sides in order and prints a line for each and the ratio.
func (b *bench) all(ctx context.Context) error {
	o := b.o
	fmt.Fprintf(b.out, "chord: chord(group(diag.add(i, 0) for i < %d), diag.sum) per side, each side on a fresh queue; %d CPUs; order: %s\n",
		o.n, runtime.NumCPU(), strings.Join(o.order, " then "))
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(load)); len(f) >= 3 {
			fmt.Fprintf(b.out, "chord: load average before the runs: %s (other work on this machine skews the times)\n", strings.Join(f[:3], " "))
		}
	}
	fmt.Fprintf(b.out, "chord: go worker -c %d, prefetch multiplier 4; python worker prefork -c %d, Celery's defaults; warm-up chord of %d first (untimed)\n",
		o.goConc, o.pyConc, o.warmup)
	fmt.Fprintf(b.out, "chord: clock from right before canvas.Sender.Send until GET celery-task-meta-<body id> (every %s) finds the result; it must be SUCCESS = %d\n",
		resultPoll, expectedSum(o.n))
	times := map[string]time.Duration{}
	for _, side := range o.order {
		r, err := b.side(ctx, side)
		if err != nil {
			return fmt.Errorf("%s side: %w", side, err)
		}
		times[side] = r.elapsed
		fmt.Fprintln(b.out, r.line())
	}
	_, err := fmt.Fprintln(b.out, ratioLine(times[sideGo], times[sidePython]))
	return err
}

// side starts a side's worker on a fresh queue, runs the warm-up and the timed chord, checks the
// results, stops the worker warmly and deletes what the chords stored.
func (b *bench) side(ctx context.Context, side string) (sideResult, error) {
	q := fmt.Sprintf("bench.chord.%s.%s", side, b.sfx)
	dlq := q + ".dlq"
	b.track(&b.queues, q, dlq)
	if err := b.declare(q); err != nil {
		return sideResult{}, err
	}
	cfgPath := filepath.Join(b.tmp, side+"-celeryconfig.yaml")
	if side == sideGo {
		if err := os.WriteFile(cfgPath, []byte(goWorkerConfig(b.o, dlq)), 0o600); err != nil {
			return sideResult{}, err
		}
	}
	node := fmt.Sprintf("bench-chord-%s-%s@%%h", side, b.sfx)
	argv, env, err := workerCommand(b.o, side, q, node, cfgPath)
	if err != nil {
		return sideResult{}, err
	}
	w, err := startWorker(side, argv, env, b.tmp, filepath.Join(b.tmp, side+"-worker.log"))
	if err != nil {
		return sideResult{}, err
	}
	b.mu.Lock()
	b.running = append(b.running, w)
	b.mu.Unlock()

	r, runErr := b.measure(ctx, side, q, w)
	stopErr := b.stopWorker(w)
	if err := errors.Join(runErr, stopErr); err != nil {
		return r, fmt.Errorf("%w\n%s", err, w.logTail(25))
	}
	if err := b.deleteKeys(ctx); err != nil {
		return r, err
	}
	return r, nil
}

// measure waits for the worker to consume, runs the warm-up chord and then the timed one.
func (b *bench) measure(ctx context.Context, side, q string, w *worker) (sideResult, error) {
	r := sideResult{side: side, n: b.o.n}
	if err := b.waitConsumer(ctx, q, w); err != nil {
		return r, err
	}
	sender, err := canvas.NewSender(celery.Config{BrokerURL: b.o.amqpURL, TaskDefaultQueue: q}, b.br, b.backend)
	if err != nil {
		return r, err
	}
	if b.o.warmup > 0 {
		wctx, cancel := context.WithTimeoutCause(ctx, warmupWithin,
			fmt.Errorf("the warm-up chord of %d did not complete within %s", b.o.warmup, warmupWithin))
		_, err := b.runChord(wctx, sender, q, b.o.warmup, w)
		cancel()
		if err != nil {
			return r, fmt.Errorf("warm-up chord: %w", err)
		}
	}
	cctx, cancel := context.WithTimeoutCause(ctx, b.o.chordTimeout,
		fmt.Errorf("the chord of %d did not complete within -chord-timeout %s", b.o.n, b.o.chordTimeout))
	defer cancel()
	t, err := b.runChord(cctx, sender, q, b.o.n, w)
	if err != nil {
		return r, err
	}
	r.elapsed, r.send, r.cpu = t.elapsed, t.send, t.cpu
	r.peakKB, r.procs = groupPeakRSS(w.pid())
	return r, nil
}

// timedChord is what runChord measured.
type timedChord struct {
	elapsed, send time.Duration
	cpu           procstat.CPU
}

// runChord sends chord(group(diag.add(i, 0) for i < n), diag.sum) to q, waits for the body's
// result and checks it and every header result. Only Send and the wait are timed.
func (b *bench) runChord(ctx context.Context, sender *canvas.Sender, q string, n int, w *worker) (timedChord, error) {
	var t timedChord
	headerIDs := make([]string, n)
	header := make([]canvas.Signature, n)
	for i := range header {
		headerIDs[i] = celery.NewID()
		header[i] = canvas.S("diag.add", i, 0).Queue(q).TaskID(headerIDs[i])
	}
	gid, bodyID := celery.NewID(), celery.NewID()
	keys := make([]string, 0, n+5)
	for _, id := range headerIDs {
		keys = append(keys, redisbackend.TaskKey("", id))
	}
	gkey := redisbackend.GroupKey("", gid)
	keys = append(keys, redisbackend.TaskKey("", bodyID), gkey, gkey+".j", gkey+".t", gkey+".s")
	b.track(&b.keys, keys...)
	sig := canvas.Chord(canvas.Group(header...).TaskID(gid), canvas.S("diag.sum").Queue(q).TaskID(bodyID))
	if err := sig.Err(); err != nil {
		return t, err
	}
	want := expectedSum(n)

	cpu0 := procstat.GroupCPU(w.pid(), procstat.ServersOf(b.o.amqpURL, b.o.redisURL))
	start := time.Now()
	res, err := sender.Send(ctx, sig)
	t.send = time.Since(start)
	if err != nil {
		return t, fmt.Errorf("sending the chord: %w", err)
	}
	err = b.waitResult(ctx, redisbackend.TaskKey("", bodyID), want, w)
	t.elapsed = time.Since(start)
	t.cpu = procstat.GroupCPU(w.pid(), procstat.ServersOf(b.o.amqpURL, b.o.redisURL)).Sub(cpu0)
	if err != nil {
		return t, fmt.Errorf("the chord body %s: %w", bodyID, err)
	}
	if res.ID != bodyID || res.Parent == nil || res.Parent.ID != gid {
		return t, fmt.Errorf("canvas.Sender.Send returned result %s (parent %v), want body %s with header group %s", res.ID, res.Parent, bodyID, gid)
	}
	if err := b.checkHeader(ctx, headerIDs); err != nil {
		return t, err
	}
	return t, nil
}

// waitResult polls key until it holds a final result, checked against want. The worker exiting,
// a FAILURE, a wrong value or ctx ending is an error.
func (b *bench) waitResult(ctx context.Context, key string, want int64, w *worker) error {
	tick := time.NewTicker(resultPoll)
	defer tick.Stop()
	for {
		val, err := b.rc.Get(ctx, key).Bytes()
		switch {
		case err == nil:
			switch cerr := checkResult(val, want); {
			case cerr == nil:
				return nil
			case !errors.Is(cerr, errNotReady):
				return cerr
			}
		case !errors.Is(err, redis.Nil):
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return fmt.Errorf("reading %s: %w", key, err)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-w.exited:
			return fmt.Errorf("the %s worker exited (%v) before the result was stored", w.side, w.waitErr)
		case <-tick.C:
		}
	}
}

// checkHeader checks, untimed, that header task i stored SUCCESS with the value i, for every i.
func (b *bench) checkHeader(ctx context.Context, ids []string) error {
	bad, missing := 0, 0
	var first error
	for lo := 0; lo < len(ids); lo += checkChunk {
		hi := min(lo+checkChunk, len(ids))
		keys := make([]string, 0, hi-lo)
		for _, id := range ids[lo:hi] {
			keys = append(keys, redisbackend.TaskKey("", id))
		}
		vals, err := b.rc.MGet(ctx, keys...).Result()
		if err != nil {
			return fmt.Errorf("reading the header results: %w", err)
		}
		for j, v := range vals {
			s, ok := v.(string)
			if !ok {
				missing++
				continue
			}
			if err := checkResult([]byte(s), int64(lo+j)); err != nil {
				bad++
				if first == nil {
					first = fmt.Errorf("header task %d (%s): %w", lo+j, ids[lo+j], err)
				}
			}
		}
	}
	if bad+missing > 0 {
		return fmt.Errorf("%d of %d header results missing and %d wrong (first: %v)", missing, len(ids), bad, first)
	}
	return nil
}

// declare declares queue q as Celery and the Go worker do for a queue named on the command line:
// durable, bound to a durable direct exchange of the same name with routing key q.
func (b *bench) declare(q string) error {
	ch, err := b.conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.ExchangeDeclare(q, "direct", true, false, false, false, nil); err != nil {
		return fmt.Errorf("declaring exchange %s: %w", q, err)
	}
	if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declaring queue %s: %w", q, err)
	}
	if err := ch.QueueBind(q, q, q, false, nil); err != nil {
		return fmt.Errorf("binding queue %s: %w", q, err)
	}
	return nil
}

// consumers returns the number of consumers on q (passive queue.declare).
func (b *bench) consumers(q string) (int, error) {
	b.pollMu.Lock()
	defer b.pollMu.Unlock()
	if b.pollCh == nil || b.pollCh.IsClosed() {
		ch, err := b.conn.Channel()
		if err != nil {
			return 0, err
		}
		b.pollCh = ch
	}
	st, err := b.pollCh.QueueDeclarePassive(q, true, false, false, false, nil)
	if err != nil {
		return 0, fmt.Errorf("reading the consumers of %s: %w", q, err)
	}
	return st.Consumers, nil
}

// waitConsumer waits until q has a consumer: the worker has started and subscribed.
func (b *bench) waitConsumer(ctx context.Context, q string, w *worker) error {
	ctx, cancel := context.WithTimeoutCause(ctx, readyWithin, fmt.Errorf("the %s worker was not consuming within %s", w.side, readyWithin))
	defer cancel()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		n, err := b.consumers(q)
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-w.exited:
			return fmt.Errorf("the %s worker exited (%v) before consuming", w.side, w.waitErr)
		case <-tick.C:
		}
	}
}

// stopWorker stops w warmly and forgets it.
func (b *bench) stopWorker(w *worker) error {
	err := w.stop()
	b.mu.Lock()
	for i, r := range b.running {
		if r == w {
			b.running = append(b.running[:i], b.running[i+1:]...)
			break
		}
	}
	b.mu.Unlock()
	return err
}

// track appends names to one of the cleanup lists.
func (b *bench) track(list *[]string, names ...string) {
	b.mu.Lock()
	*list = append(*list, names...)
	b.mu.Unlock()
}

// deleteKeys deletes every Redis key tracked so far.
func (b *bench) deleteKeys(ctx context.Context) error {
	b.mu.Lock()
	keys := b.keys
	b.keys = nil
	b.mu.Unlock()
	for lo := 0; lo < len(keys); lo += checkChunk {
		if err := b.rc.Unlink(ctx, keys[lo:min(lo+checkChunk, len(keys))]...).Err(); err != nil {
			b.track(&b.keys, keys[lo:]...)
			return fmt.Errorf("deleting Redis keys: %w", err)
		}
	}
	return nil
}

// close stops the workers still running (warm shutdown first), deletes the Redis keys, the queues
// and exchanges, and the temp dir, and closes the connections. It is safe on a partial bench.
func (b *bench) close() error {
	var errs []error
	b.mu.Lock()
	running := append([]*worker(nil), b.running...)
	queues := append([]string(nil), b.queues...)
	b.mu.Unlock()
	for _, w := range running {
		if err := b.stopWorker(w); err != nil {
			errs = append(errs, err)
		}
	}
	if b.br != nil {
		_ = b.br.Close()
	}
	if b.rc != nil {
		// Its own budget: the run's context may be what ended.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := b.deleteKeys(ctx); err != nil {
			errs = append(errs, err)
		}
		cancel()
		_ = b.rc.Close()
	}
	if b.conn != nil {
		if err := procstat.DeleteQueues(b.conn, queues); err != nil {
			errs = append(errs, err)
		}
		_ = b.conn.Close()
	}
	if b.tmp != "" {
		if err := os.RemoveAll(b.tmp); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
