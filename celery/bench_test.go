package celery_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend/memorybackend"
	"github.com/forumads/forumads/celery/backend/redisbackend"
	"github.com/forumads/forumads/celery/broker/amqpbroker"
	"github.com/forumads/forumads/celery/broker/memorybroker"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/testenv"
)

// These benchmarks run against the real RabbitMQ and Redis (AMQP_URL, REDIS_URL); they fail, never
// skip, without them. For comparable numbers fix the count:
//
//	go test -run '^$' -bench . -benchtime 2000x ./celery/
//
// bench/drain.sh compares the worker binary with Python Celery and a bare consumer.

// benchWait bounds every wait of a benchmark, so a lost message fails it instead of hanging.
const benchWait = 2 * time.Minute

type benchAddArgs struct {
	X int `celery:"x"`
	Y int `celery:"y"`
}

// benchCountingBackend counts the SUCCESS results stored through it and closes done at want.
type benchCountingBackend struct {
	celery.ResultBackend
	want   int64
	stored atomic.Int64
	done   chan struct{}
}

func (c *benchCountingBackend) Store(ctx context.Context, m protocol.ResultMeta) error {
	err := c.ResultBackend.Store(ctx, m)
	if err == nil && m.Status == protocol.StateSuccess && c.stored.Add(1) == c.want {
		close(c.done)
	}
	return err
}

// benchBrokerLog is the worker's and client's logger: warnings only, as `worker -l warning`.
func benchBrokerLog() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// benchDeleteKeysAtCleanup deletes every Redis key under prefix when the benchmark ends.
func benchDeleteKeysAtCleanup(b *testing.B, rc *redis.Client, prefix string) {
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		iter := rc.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
			if len(keys) == 1000 {
				rc.Unlink(ctx, keys...)
				keys = keys[:0]
			}
		}
		if len(keys) > 0 {
			rc.Unlink(ctx, keys...)
		}
		if err := iter.Err(); err != nil {
			b.Errorf("cleanup: scanning %s*: %v", prefix, err)
		}
	})
}

// benchAddRegistry registers bench.add (x + y); it counts the runs, and the channel closes when
// it has run n times.
func benchAddRegistry(n int) (*celery.Registry, *atomic.Int64, <-chan struct{}) {
	ran := new(atomic.Int64)
	allRan := make(chan struct{})
	reg := celery.NewRegistry()
	celery.Register(reg, "bench.add", func(_ context.Context, t *celery.Task[benchAddArgs]) (int, error) {
		if ran.Add(1) == int64(n) {
			close(allRan)
		}
		return t.Args.X + t.Args.Y, nil
	})
	return reg, ran, allRan
}

// benchClientOn returns a client of cfg on a broker connection of its own (named name), closed at
// cleanup.
func benchClientOn(b *testing.B, cfg celery.Config, log *slog.Logger, name string) *celery.Client {
	b.Helper()
	br, err := amqpbroker.New(cfg.BrokerURL, amqpbroker.Options{Logger: log, ConnectionName: name})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = br.Close() })
	client, err := celery.NewClient(celery.ClientOptions{Config: cfg, Broker: br})
	if err != nil {
		b.Fatal(err)
	}
	return client
}

// benchSendAll publishes n bench.add(1, 2) messages to queue, from 16 goroutines.
func benchSendAll(b *testing.B, client *celery.Client, queue string, n int, opts ...celery.SendOption) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), benchWait)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for int(next.Add(1)) <= n {
				o := append([]celery.SendOption{celery.WithQueue(queue)}, opts...)
				if _, err := client.SendTask(ctx, "bench.add", []any{1, 2}, nil, o...); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatalf("publishing: %v", err)
	}
}

// BenchmarkWorkerEndToEnd measures an in-process worker (concurrency 25, prefetch 100, as
// bench/drain.sh runs the binary) draining b.N bench.add messages from RabbitMQ: with ignore_result
// until the last task body has run, with Redis results until the last SUCCESS is stored. Publishing
// the messages is not timed; the worker's start (connect, declare, consume) is, as it is part of
// draining a queue.
func BenchmarkWorkerEndToEnd(b *testing.B) {
	for _, tc := range []struct {
		name   string
		ignore bool
	}{
		{"ignore_result", true},
		{"redis_results", false},
	} {
		b.Run(tc.name, func(b *testing.B) { benchWorkerEndToEnd(b, tc.ignore) })
	}
}

func benchWorkerEndToEnd(b *testing.B, ignore bool) {
	b.StopTimer()
	b.ReportAllocs()
	rc := testenv.Redis(b)
	queue := testenv.Name(b, "bench")
	testenv.DeleteQueuesAtCleanup(b, queue, queue+".dlq")
	prefix := "bench:" + testenv.Suffix() + ":"
	benchDeleteKeysAtCleanup(b, rc, prefix)
	multiplier := 4
	cfg := celery.Config{BrokerURL: testenv.AMQPURL(), TaskDefaultQueue: queue, WorkerConcurrency: 25,
		WorkerPrefetchMultiplier: &multiplier, WorkerDeadLetterQueue: queue + ".dlq"}
	log := benchBrokerLog()

	backend := &benchCountingBackend{
		ResultBackend: redisbackend.New(rc, redisbackend.Options{Expires: time.Hour, KeyPrefix: prefix}),
		want:          int64(b.N), done: make(chan struct{}),
	}
	reg, ran, allRan := benchAddRegistry(b.N)
	client := benchClientOn(b, cfg, log, "bench-client")
	var opts []celery.SendOption
	if ignore {
		opts = append(opts, celery.WithIgnoreResult())
	}
	benchSendAll(b, client, queue, b.N, opts...)

	wbr, err := amqpbroker.New(cfg.BrokerURL, amqpbroker.Options{Logger: log, ConnectionName: "bench-worker"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = wbr.Close() }) // after the worker stops: Run does not close it
	w, err := celery.NewWorker(celery.WorkerOptions{Config: cfg, Registry: reg, Broker: wbr, Backend: backend,
		Hostname: "celery@bench", Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan error, 1)
	finished := allRan
	if !ignore {
		finished = backend.done
	}

	b.StartTimer()
	go func() { stopped <- w.Run(ctx) }()
	var stopOnce sync.Once
	var stopErr error
	stop := func() error {
		stopOnce.Do(func() {
			cancel()
			select {
			case stopErr = <-stopped:
			case <-time.After(benchWait):
				stopErr = fmt.Errorf("the worker did not stop within %s", benchWait)
			}
		})
		return stopErr
	}
	b.Cleanup(func() { _ = stop() })
	select {
	case <-finished:
	case err := <-stopped:
		stopErr = err
		stopOnce.Do(func() {})
		b.Fatalf("worker stopped early: %v", err)
	case <-time.After(benchWait):
		b.Fatalf("only %d of %d tasks ran (%d results stored) within %s", ran.Load(), b.N, backend.stored.Load(), benchWait)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")

	if err := stop(); err != nil {
		b.Fatalf("worker.Run: %v", err)
	}
	if got := w.Stats().Succeeded.Load(); got != int64(b.N) {
		b.Fatalf("the worker counted %d successes, want %d", got, b.N)
	}
	if ignore {
		if n := backend.stored.Load(); n != 0 {
			b.Fatalf("%d results stored for ignore_result messages", n)
		}
	}
}

// BenchmarkSendTask measures Client.SendTask to RabbitMQ, each call returning after the broker's
// publisher confirm: one caller at a time (the latency of a send), and GOMAXPROCS callers sharing
// one client (its throughput).
func BenchmarkSendTask(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		client, queue := benchClient(b)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := client.SendTask(ctx, "bench.add", []any{1, 2}, nil, celery.WithQueue(queue)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		client, queue := benchClient(b)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := client.SendTask(ctx, "bench.add", []any{1, 2}, nil, celery.WithQueue(queue)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// benchClient returns a client whose connection, channel and queue (deleted at cleanup) are
// already set up by one send.
func benchClient(b *testing.B) (*celery.Client, string) {
	b.Helper()
	queue := testenv.Name(b, "bench")
	testenv.DeleteQueuesAtCleanup(b, queue)
	client := benchClientOn(b, celery.Config{BrokerURL: testenv.AMQPURL()}, benchBrokerLog(), "bench-send")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.SendTask(ctx, "bench.add", []any{1, 2}, nil, celery.WithQueue(queue)); err != nil {
		b.Fatalf("RabbitMQ is required at %s (run scripts/services.sh): %v", testenv.AMQPURL(), err)
	}
	return client, queue
}

// BenchmarkWorkerMemory is the worker's own cost per task, without a network: b.N bench.add(1, 2)
// protocol-2 messages, published beforehand (not timed) to the in-process memory broker, are
// decoded, run and acknowledged (acks_late, so each ack follows its task) by a worker of
// concurrency 25 and prefetch 100; the clock stops when Run has returned after a warm shutdown,
// so every message is settled. ignore_result stores nothing; memory_results stores each SUCCESS
// in the memory backend before its ack. allocs/op is the allocations per task:
//
//	go test -run '^$' -bench WorkerMemory -benchtime 20000x -count 3 ./celery/
func BenchmarkWorkerMemory(b *testing.B) {
	for _, tc := range []struct {
		name   string
		ignore bool
	}{
		{"ignore_result", true},
		{"memory_results", false},
	} {
		b.Run(tc.name, func(b *testing.B) { benchWorkerMemory(b, tc.ignore) })
	}
}

func benchWorkerMemory(b *testing.B, ignore bool) {
	b.StopTimer()
	b.ReportAllocs()
	mb := memorybroker.New()
	defer mb.Close()
	multiplier := 4
	cfg := celery.Config{BrokerURL: "memory://", TaskDefaultQueue: "bench", WorkerConcurrency: 25,
		WorkerPrefetchMultiplier: &multiplier, TaskAcksLate: true}
	log := benchBrokerLog()
	be := memorybackend.New(memorybackend.Options{})
	reg, ran, allRan := benchAddRegistry(b.N)
	client, err := celery.NewClient(celery.ClientOptions{Config: cfg, Broker: mb.Connect()})
	if err != nil {
		b.Fatal(err)
	}
	var opts []celery.SendOption
	if ignore {
		opts = append(opts, celery.WithIgnoreResult())
	}
	benchSendAll(b, client, "bench", b.N, opts...)
	wc := mb.Connect()
	w, err := celery.NewWorker(celery.WorkerOptions{Config: cfg, Registry: reg, Broker: wc, Backend: be,
		Hostname: "celery@bench", Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan error, 1)
	runtime.GC()
	b.StartTimer()
	go func() { stopped <- w.Run(ctx) }()
	select {
	case <-allRan:
	case err := <-stopped:
		b.Fatalf("worker stopped early: %v", err)
	case <-time.After(benchWait):
		cancel()
		<-stopped
		b.Fatalf("only %d of %d tasks ran within %s", ran.Load(), b.N, benchWait)
	}
	cancel()
	if err := <-stopped; err != nil {
		b.Fatalf("worker.Run: %v", err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
	if got := w.Stats().Succeeded.Load(); got != int64(b.N) {
		b.Fatalf("the worker counted %d successes, want %d", got, b.N)
	}
	// What the worker left unacknowledged returns to the queue when its connection closes.
	if err := wc.Close(); err != nil {
		b.Fatal(err)
	}
	if n, err := mb.Ready("bench"); err != nil || n != 0 {
		b.Fatalf("after the drain the queue holds %d messages (%v), want none: each was acknowledged", n, err)
	}
}
