package celery_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/memorybroker"
	"github.com/forumads/forumads/celery/internal/workertest"
	"github.com/forumads/forumads/internal/testenv"
)

// These tests run the worker on the in-memory broker: they show that the engine asks the broker
// for dead-lettering and parking (broker.DeadLetterer, broker.Parker) and falls back as documented
// when a broker declares neither. No RabbitMQ is needed.

// plainBroker hides every optional interface of the broker it wraps and declares no capabilities;
// it reports how each delivery was settled.
type plainBroker struct {
	broker.Broker
	settled chan string // "ack <body>", "reject <requeue> <body>"
}

func (p *plainBroker) Capabilities() broker.Capabilities { return broker.Capabilities{} }

func (p *plainBroker) Consume(ctx context.Context, qs []broker.Queue, prefetch int) (<-chan *broker.Delivery, error) {
	in, err := p.Broker.Consume(ctx, qs, prefetch)
	if err != nil {
		return nil, err
	}
	out := make(chan *broker.Delivery)
	go func() {
		defer close(out)
		for d := range in {
			d.Acker = recordingAcker{a: d.Acker, body: string(d.Body), to: p.settled}
			out <- d
		}
	}()
	return out, nil
}

type recordingAcker struct {
	a    broker.Acknowledger
	body string
	to   chan string
}

func (r recordingAcker) Ack() error {
	err := r.a.Ack()
	r.to <- "ack"
	return err
}

func (r recordingAcker) Reject(requeue bool) error {
	err := r.a.Reject(requeue)
	if requeue {
		r.to <- "reject requeue"
	} else {
		r.to <- "reject"
	}
	return err
}

// memWorker runs a worker and a client on br (a memorybroker, or a wrapper of one) until the test ends.
func memWorker(t *testing.T, br broker.Broker, reg *celery.Registry, mutate func(*celery.Config)) (*celery.Worker, *celery.Client, celery.Config) {
	t.Helper()
	one := 1
	cfg := celery.Config{BrokerURL: "memory://", TaskDefaultQueue: "mem." + strings.ReplaceAll(t.Name(), "/", "."),
		WorkerConcurrency: 2, WorkerPrefetchMultiplier: &one, WorkerDeadLetterQueue: "mem.dlq"}
	if mutate != nil {
		mutate(&cfg)
	}
	w := workertest.New(t, celery.WorkerOptions{Config: cfg, Registry: reg, Broker: br, Hostname: "celery@mem"})
	client, err := celery.NewClient(celery.ClientOptions{Config: cfg, Broker: br})
	if err != nil {
		t.Fatal(err)
	}
	workertest.Start(t, context.Background(), w, 30*time.Second)
	return w, client, cfg
}

func TestWorkerDeadLettersThroughTheBroker(t *testing.T) {
	t.Parallel()
	mb := memorybroker.New()
	t.Cleanup(func() { _ = mb.Close() })
	w, client, cfg := memWorker(t, mb, celery.NewRegistry(), nil)
	ctx := ctxT(t, 30*time.Second)
	if _, err := client.SendTask(ctx, "t.nobody_has_this", []any{1}, nil); err != nil {
		t.Fatal(err)
	}
	dead, err := mb.Consume(ctx, []broker.Queue{{Name: cfg.WorkerDeadLetterQueue}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	d := <-dead
	if d == nil {
		t.Fatal("the dead-letter queue's consumer ended")
	}
	reason, _ := d.Headers[celery.HeaderDeadLetterReason].(string)
	if !strings.Contains(reason, "NotRegistered") || d.Headers["task"] != "t.nobody_has_this" ||
		d.Headers[celery.HeaderOriginalQueue] != cfg.TaskDefaultQueue || d.Headers[celery.HeaderDeadLetteredBy] != "celery@mem" {
		t.Fatalf("dead letter headers %v", d.Headers)
	}
	// The worker counts the dead letter after the broker confirmed the copy, which the consumer
	// above may see first.
	testenv.Eventually(t, 10*time.Second, func() bool { return w.Stats().DeadLettered.Load() == 1 }, "DeadLettered to be 1")
	if n, err := mb.Ready(cfg.TaskDefaultQueue); err != nil || n != 0 {
		t.Fatalf("the original is still in its queue (%d, %v)", n, err)
	}
}

func TestWorkerWithoutDeadLettererRejectsTheMessage(t *testing.T) {
	t.Parallel()
	mb := memorybroker.New()
	t.Cleanup(func() { _ = mb.Close() })
	pb := &plainBroker{Broker: mb, settled: make(chan string, 16)}
	w, client, cfg := memWorker(t, pb, celery.NewRegistry(), nil)
	ctx := ctxT(t, 30*time.Second)
	if _, err := client.SendTask(ctx, "t.nobody_has_this", nil, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case how := <-pb.settled:
		if how != "reject" {
			t.Fatalf("the message was settled with %q, want a reject without requeue", how)
		}
	case <-ctx.Done():
		t.Fatal("the message was never settled")
	}
	if n := w.Stats().DeadLettered.Load(); n != 0 {
		t.Fatalf("DeadLettered = %d on a broker without dead letters", n)
	}
	if _, err := mb.Ready(cfg.WorkerDeadLetterQueue); err == nil {
		t.Fatal("a dead-letter queue was declared on a broker that declares no dead letters")
	}
}

func TestWorkerParksFarETAOnTheBroker(t *testing.T) {
	t.Parallel()
	mb := memorybroker.New()
	t.Cleanup(func() { _ = mb.Close() })
	w := runFarETA(t, mb, "parked", 3, 4, 400*time.Millisecond)
	if n := w.Stats().Parked.Load(); n < 1 {
		t.Fatalf("the task was never parked (parked=%d)", n)
	}
}

func TestWorkerWithoutParkerHoldsFarETA(t *testing.T) {
	t.Parallel()
	mb := memorybroker.New()
	t.Cleanup(func() { _ = mb.Close() })
	pb := &plainBroker{Broker: mb, settled: make(chan string, 16)}
	w := runFarETA(t, pb, "held", 1, 2, 300*time.Millisecond)
	if n := w.Stats().Parked.Load(); n != 0 {
		t.Fatalf("parked=%d on a broker without delayed delivery", n)
	}
	if how := <-pb.settled; how != "ack" {
		t.Fatalf("the held message was settled with %q, want ack", how)
	}
}

// runFarETA runs t.add(x, y) with an eta `after` from now on a memory worker over br that parks
// tasks due in more than 50 ms (worker_eta_park_after), and checks that it ran, not before its
// eta, with the right sum; how is what the worker does with it ("parked", "held"), for messages.
// It returns the worker, for its stats.
func runFarETA(t *testing.T, br broker.Broker, how string, x, y int, after time.Duration) *celery.Worker {
	t.Helper()
	ran := make(chan int, 1)
	reg := celery.NewRegistry()
	celery.Register(reg, "t.add", func(_ context.Context, t *celery.Task[xy]) (int, error) {
		ran <- t.Args.X + t.Args.Y
		return t.Args.X + t.Args.Y, nil
	})
	park := 0.05
	w, client, _ := memWorker(t, br, reg, func(c *celery.Config) { c.WorkerETAParkAfter = &park })
	ctx := ctxT(t, 30*time.Second)
	eta := time.Now().Add(after)
	if _, err := client.SendTask(ctx, "t.add", []any{x, y}, nil, celery.WithETA(eta)); err != nil {
		t.Fatal(err)
	}
	select {
	case sum := <-ran:
		if sum != x+y {
			t.Fatalf("sum %d", sum)
		}
	case <-ctx.Done():
		t.Fatalf("the %s task never ran", how)
	}
	if time.Now().Before(eta) {
		t.Fatalf("the %s task ran before its eta", how)
	}
	return w
}

// A warm shutdown waits for a running acks_late task and then acknowledges its message on the
// consuming channel: the message is gone from the queue, not given back to run a second time (the
// memory and Redis brokers return a consumer's unsettled messages when its context ends).
func TestWorkerWarmShutdownAcksRunningAcksLateTask(t *testing.T) {
	t.Parallel()
	mb := memorybroker.New()
	t.Cleanup(func() { _ = mb.Close() })
	started, release := make(chan struct{}), make(chan struct{})
	var runs atomic.Int64
	reg := celery.NewRegistry()
	celery.Register(reg, "t.slow", func(_ context.Context, _ *celery.Task[struct{}]) (int, error) {
		if runs.Add(1) == 1 {
			close(started)
		}
		<-release
		return 1, nil
	})
	one := 1
	cfg := celery.Config{BrokerURL: "memory://", TaskDefaultQueue: "mem.warm", WorkerConcurrency: 1,
		WorkerPrefetchMultiplier: &one, TaskAcksLate: true}
	wc := mb.Connect()
	br := &stopSignalBroker{Broker: wc, stopped: make(chan struct{})}
	w, err := celery.NewWorker(celery.WorkerOptions{Config: cfg, Registry: reg, Broker: br, Hostname: "celery@mem",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	client, err := celery.NewClient(celery.ClientOptions{Config: cfg, Broker: mb.Connect()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 30*time.Second)
	if _, err := client.SendTask(ctx, "t.slow", nil, nil); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("the worker stopped before the task started: %v", err)
	case <-ctx.Done():
		t.Fatal("the task did not start")
	}
	stop() // warm shutdown while the task runs
	select {
	case <-br.stopped: // the consumers are cancelled; the task still runs
	case <-ctx.Done():
		t.Fatal("the warm shutdown did not stop consuming")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := wc.Close(); err != nil { // what is still unacknowledged goes back to the queue
		t.Fatal(err)
	}
	if n, err := mb.Ready(cfg.TaskDefaultQueue); err != nil || n != 0 {
		t.Fatalf("the queue holds %d messages (%v) after the task ran and the worker stopped: its ack was lost", n, err)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("the task ran %d times, want 1", n)
	}
}

// stopSignalBroker closes stopped once StopConsuming has returned.
type stopSignalBroker struct {
	broker.Broker
	stopped chan struct{}
	once    sync.Once
}

func (s *stopSignalBroker) StopConsuming(ctx context.Context) error {
	err := s.Broker.StopConsuming(ctx)
	s.once.Do(func() { close(s.stopped) })
	return err
}
