package celery_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend/redisbackend"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/amqpbroker"
	"github.com/forumads/forumads/celery/internal/workertest"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/testenv"
)

// lifecycle is a worker whose Run, Shutdown and broker the test drives itself.
type lifecycle struct {
	t       *testing.T
	cfg     celery.Config
	queue   string
	worker  *celery.Worker
	wbr     *amqpbroker.Broker // the worker's broker, created (and closed) here, not by Run
	client  *celery.Client
	backend *redisbackend.Backend
	logs    *logWatch
	running *workertest.Running
}

// newLifecycle makes a worker (acks_late, concurrency 4) on a queue of its own without running
// it; register adds the tasks, mutate edits the config.
func newLifecycle(t *testing.T, register func(*celery.Registry), mutate func(*celery.Config)) *lifecycle {
	t.Helper()
	l := &lifecycle{t: t, queue: testenv.Name(t, "life"), logs: &logWatch{}}
	testenv.DeleteQueuesAtCleanup(t, l.queue, l.queue+".dlq")
	rc := testenv.Redis(t)
	prefix := "test:" + testenv.Suffix() + ":"
	testenv.DeletePrefixAtCleanup(t, rc, prefix)
	one, late := 1, true
	l.cfg = celery.Config{BrokerURL: testenv.AMQPURL(), TaskDefaultQueue: l.queue, WorkerConcurrency: 4,
		WorkerPrefetchMultiplier: &one, WorkerDeadLetterQueue: l.queue + ".dlq", TaskAcksLate: late}
	if mutate != nil {
		mutate(&l.cfg)
	}
	l.backend = redisbackend.New(rc, redisbackend.Options{KeyPrefix: prefix, Expires: time.Hour})
	reg := celery.NewRegistry()
	register(reg)
	var out io.Writer = l.logs
	if testing.Verbose() {
		out = io.MultiWriter(l.logs, workertest.Writer{T: t})
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l.wbr = newBroker(t, log, "test-lifecycle-worker")
	l.worker = workertest.New(t, celery.WorkerOptions{Config: l.cfg, Registry: reg, Broker: l.wbr,
		Backend: l.backend, Hostname: "celery@lifecycle", Logger: log})
	var err error
	if l.client, err = celery.NewClient(celery.ClientOptions{Config: l.cfg, Broker: newBroker(t, log, "test-lifecycle-client"), Backend: l.backend}); err != nil {
		t.Fatal(err)
	}
	return l
}

// run starts Run with ctx (l.stopped waits for its result). At cleanup the worker is shut down
// cold, so a stuck test cannot hang, and Run awaited.
func (l *lifecycle) run(ctx context.Context) {
	l.running = workertest.Start(l.t, ctx, l.worker, 30*time.Second)
	l.t.Cleanup(l.worker.Terminate) // before the harness's shutdown, which then only waits
	testenv.Eventually(l.t, 20*time.Second, func() bool { return l.worker.Alive() == nil }, "the worker to consume")
}

// stopped waits for Run's error.
func (l *lifecycle) stopped() error {
	l.t.Helper()
	return l.running.Wait(l.t, 60*time.Second)
}

// send sends task and returns its id.
func (l *lifecycle) send(task string, opts ...celery.SendOption) *celery.AsyncResult {
	l.t.Helper()
	r, err := l.client.SendTask(ctxT(l.t, 20*time.Second), task, nil, nil, opts...)
	if err != nil {
		l.t.Fatal(err)
	}
	return r
}

// redelivered takes the next message of the queue (waiting for it) on a connection of its own and
// returns its task id and redelivered flag; the message is acknowledged.
func (l *lifecycle) redelivered() (id string, again bool) {
	l.t.Helper()
	ch, err := testenv.AMQP(l.t).Channel()
	if err != nil {
		l.t.Fatal(err)
	}
	defer func() { _ = ch.Close() }()
	testenv.Eventually(l.t, 20*time.Second, func() bool {
		m, ok, err := ch.Get(l.queue, false)
		if err != nil {
			l.t.Fatal(err)
		}
		if ok {
			_ = m.Ack(false)
			id, _ = m.Headers["id"].(string)
			again = m.Redelivered
		}
		return ok
	}, "a message to come back to %s", l.queue)
	return id, again
}

// wantRedelivered checks that the message back in the queue is id's, marked redelivered.
func (l *lifecycle) wantRedelivered(id string) {
	l.t.Helper()
	if got, again := l.redelivered(); got != id || !again {
		l.t.Errorf("message back in the queue: id %q redelivered %v; want %q redelivered", got, again, id)
	}
}

// queueEmpty reports whether the queue holds no message, ready or unacknowledged, once the
// worker's connection is closed (RabbitMQ requeues what a closed connection left unacknowledged).
func (l *lifecycle) queueEmptyAfterClose() bool {
	l.t.Helper()
	_ = l.wbr.Close()
	ch, err := testenv.AMQP(l.t).Channel()
	if err != nil {
		l.t.Fatal(err)
	}
	defer func() { _ = ch.Close() }()
	m, ok, err := ch.Get(l.queue, false)
	if err != nil {
		l.t.Fatal(err)
	}
	if ok {
		_ = m.Nack(false, true)
	}
	return !ok
}

// logWatch keeps the log and tells when a line containing a text was written.
type logWatch struct {
	mu    sync.Mutex
	buf   strings.Builder
	waits []logWait
}

type logWait struct {
	text string
	ch   chan struct{}
}

func (l *logWatch) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	kept := l.waits[:0]
	for _, w := range l.waits {
		if strings.Contains(l.buf.String(), w.text) {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	l.waits = kept
	return len(p), nil
}

// logged returns a channel closed once text was logged.
func (l *logWatch) logged(text string) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch := make(chan struct{})
	if strings.Contains(l.buf.String(), text) {
		close(ch)
	} else {
		l.waits = append(l.waits, logWait{text, ch})
	}
	return ch
}

func (l *logWatch) has(text string) bool { return strings.Contains(l.String(), text) }

func (l *logWatch) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// order records events in the order they happen.
type order struct {
	mu  sync.Mutex
	seq []string
}

func (o *order) add(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seq = append(o.seq, s)
}

func (o *order) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.seq, " ")
}

// blocking registers t.block: it says it started, then returns "done" when released, or the
// cause of its context when that is cancelled (recorded in causes).
type blocking struct {
	started chan string
	release chan struct{}
	seq     *order
	causes  chan error
}

func newBlocking() *blocking {
	return &blocking{started: make(chan string, 8), release: make(chan struct{}), seq: &order{}, causes: make(chan error, 8)}
}

func (b *blocking) register(reg *celery.Registry) {
	celery.Register(reg, "t.block", func(ctx context.Context, t *celery.Task[struct{}]) (string, error) {
		b.started <- t.Request.ID
		select {
		case <-b.release:
			b.seq.add("task returned")
			return "done", nil
		case <-ctx.Done():
			b.seq.add("task cancelled")
			b.causes <- context.Cause(ctx)
			return "", context.Cause(ctx)
		}
	})
	// t.stuck ignores release: only its context ends it.
	celery.Register(reg, "t.stuck", func(ctx context.Context, t *celery.Task[struct{}]) (string, error) {
		b.started <- t.Request.ID
		<-ctx.Done()
		b.seq.add("stuck cancelled")
		b.causes <- context.Cause(ctx)
		return "", context.Cause(ctx)
	})
}

func (b *blocking) waitStarted(t *testing.T) string {
	t.Helper()
	return recv(t, b.started)
}

// startBlocked runs a lifecycle worker with the blocking tasks (mutate edits its config) and
// sends it task ("t.block" or "t.stuck"), returning once the task has started.
func startBlocked(t *testing.T, mutate func(*celery.Config), task string) (*blocking, *lifecycle, *celery.AsyncResult) {
	t.Helper()
	b := newBlocking()
	l := newLifecycle(t, b.register, mutate)
	l.run(context.Background())
	r := l.send(task)
	b.waitStarted(t)
	return b, l, r
}

// wantCause checks that the next cancelled task's context ended with want.
func (b *blocking) wantCause(t *testing.T, want error) {
	t.Helper()
	if cause := recv(t, b.causes); !errors.Is(cause, want) {
		t.Errorf("the task's context cause = %v, want %v", cause, want)
	}
}

// recv waits for a value on ch (a wait, not an assertion about speed).
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(60 * time.Second):
		t.Fatal("gave up waiting after 60s")
		var zero T
		return zero
	}
}

// TestShutdownWarmWaitsForRunningTaskAndAcksIt: the first Shutdown returns only after the running
// task returned; its result is stored, its acks_late message acknowledged, and Run returns
// ErrWorkerClosed (not a cold shutdown's error).
func TestShutdownWarmWaitsForRunningTaskAndAcksIt(t *testing.T) {
	t.Parallel()
	b, l, r := startBlocked(t, nil, "t.block")

	shut := make(chan error, 1)
	go func() {
		err := l.worker.Shutdown(context.Background())
		b.seq.add("shutdown returned")
		shut <- err
	}()
	testenv.Eventually(t, 20*time.Second, func() bool { return l.worker.Alive() != nil }, "the warm shutdown to begin")
	b.seq.add("released")
	close(b.release)
	if err := recv(t, shut); err != nil {
		t.Fatalf("Shutdown = %v, want nil", err)
	}
	if got, want := b.seq.String(), "released task returned shutdown returned"; got != want {
		t.Errorf("order %q, want %q", got, want)
	}
	if err := l.stopped(); !errors.Is(err, celery.ErrWorkerClosed) || errors.Is(err, celery.ErrWorkerShutdown) {
		t.Errorf("Run = %v, want ErrWorkerClosed after a warm shutdown", err)
	}
	var s string
	if err := r.GetInto(ctxT(t, 20*time.Second), &s); err != nil || s != "done" {
		t.Errorf("result %q, %v; want done", s, err)
	}
	if !l.queueEmptyAfterClose() {
		t.Error("the task's message is back in the queue: it was not acknowledged")
	}
}

// TestShutdownExpiredCtxGoesCold: a Shutdown whose ctx ends while a task runs returns ctx.Err(),
// goes cold (the task's context is cancelled with ErrWorkerShutdown), and the acks_late message
// is redelivered.
func TestShutdownExpiredCtxGoesCold(t *testing.T) {
	t.Parallel()
	b, l, r := startBlocked(t, nil, "t.block")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.worker.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown with an ended ctx = %v, want context.Canceled", err)
	}
	b.wantCause(t, celery.ErrWorkerShutdown)
	if err := l.stopped(); !errors.Is(err, celery.ErrWorkerClosed) || !errors.Is(err, celery.ErrWorkerShutdown) {
		t.Errorf("Run = %v, want an error matching ErrWorkerClosed and ErrWorkerShutdown", err)
	}
	l.wantRedelivered(r.ID)
	if st, _ := r.State(ctxT(t, 10*time.Second)); st == protocol.StateSuccess {
		t.Errorf("the cancelled task is stored %s", st)
	}
}

// TestShutdownSecondCallIsCold: while a warm Shutdown waits for a task that does not finish, a
// second Shutdown cancels it (cause ErrWorkerShutdown); both calls then return nil once Run has
// returned, and the message is redelivered.
func TestShutdownSecondCallIsCold(t *testing.T) {
	t.Parallel()
	b, l, r := startBlocked(t, nil, "t.stuck")

	first := make(chan error, 1)
	go func() { first <- l.worker.Shutdown(context.Background()) }()
	testenv.Eventually(t, 20*time.Second, func() bool { return l.worker.Alive() != nil }, "the warm shutdown to begin")
	if got := b.seq.String(); got != "" {
		t.Fatalf("the warm shutdown stopped the task: %q", got)
	}
	if err := l.worker.Shutdown(ctxT(t, 30*time.Second)); err != nil {
		t.Fatalf("second Shutdown = %v, want nil", err)
	}
	if err := recv(t, first); err != nil {
		t.Errorf("first Shutdown = %v, want nil", err)
	}
	b.wantCause(t, celery.ErrWorkerShutdown)
	if err := l.stopped(); !errors.Is(err, celery.ErrWorkerShutdown) {
		t.Errorf("Run = %v, want a cold shutdown (ErrWorkerShutdown)", err)
	}
	l.wantRedelivered(r.ID)
}

// TestSoftShutdownTimeoutGivesRunningTasksThatLong: with worker_soft_shutdown_timeout, a cold
// shutdown first lets the running tasks go on: one that finishes in that time is stored and
// acknowledged, one that does not is cancelled when it ends and its message is requeued.
func TestSoftShutdownTimeoutGivesRunningTasksThatLong(t *testing.T) {
	t.Parallel()
	soft := 5.0
	b, l, quick := startBlocked(t, func(c *celery.Config) { c.WorkerSoftShutdownTimeout = &soft }, "t.block")
	stuck := l.send("t.stuck")
	b.waitStarted(t)

	soon := l.logs.logged("Initiating Soft Shutdown")
	l.worker.Terminate()
	recv(t, soon)
	close(b.release) // within the soft period: the quick task finishes
	if err := l.worker.Shutdown(ctxT(t, 60*time.Second)); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if got, want := b.seq.String(), "task returned stuck cancelled"; got != want {
		t.Errorf("order %q, want %q (the soft period let the quick task finish before cancelling the other)", got, want)
	}
	b.wantCause(t, celery.ErrWorkerShutdown)
	var s string
	if err := quick.GetInto(ctxT(t, 20*time.Second), &s); err != nil || s != "done" {
		t.Errorf("quick task result %q, %v; want done", s, err)
	}
	l.wantRedelivered(stuck.ID)
	if !l.queueEmptyAfterClose() {
		t.Error("a second message is in the queue: the quick task's was not acknowledged")
	}
}

// TestColdShutdownWithoutSoftTimeoutCancelsAtOnce: without worker_soft_shutdown_timeout the cold
// shutdown does not enter a soft period: the running task is cancelled before any is released.
func TestColdShutdownWithoutSoftTimeoutCancelsAtOnce(t *testing.T) {
	t.Parallel()
	b, l, _ := startBlocked(t, nil, "t.block")
	l.worker.Terminate()
	b.wantCause(t, celery.ErrWorkerShutdown)
	close(b.release)
	if err := l.stopped(); !errors.Is(err, celery.ErrWorkerShutdown) {
		t.Errorf("Run = %v", err)
	}
	if l.logs.has("Soft Shutdown") {
		t.Error("a soft shutdown without worker_soft_shutdown_timeout")
	}
	if got := b.seq.String(); got != "task cancelled" {
		t.Errorf("order %q, want the task cancelled", got)
	}
}

// TestSoftShutdownOnIdleGivesHeldETAMessagesBack: with worker_enable_soft_shutdown_on_idle the soft
// period starts even with no task running (Celery 5.5 does so that held ETA messages get back to
// the broker); the held message is back in its queue after Run returns, the broker still open.
func TestSoftShutdownOnIdleGivesHeldETAMessagesBack(t *testing.T) {
	t.Parallel()
	b := newBlocking()
	soft := 30.0
	l := newLifecycle(t, b.register, func(c *celery.Config) {
		c.WorkerSoftShutdownTimeout = &soft
		c.WorkerEnableSoftShutdownOnIdle = true
	})
	l.run(context.Background())
	r := l.send("t.block", celery.WithCountdown(5*time.Minute))
	testenv.Eventually(t, 20*time.Second, func() bool { return l.worker.Snapshot().HeldETA == 1 }, "the ETA message to be held")
	l.worker.Terminate()
	if err := l.stopped(); !errors.Is(err, celery.ErrWorkerShutdown) {
		t.Errorf("Run = %v", err)
	}
	if !l.logs.has("Initiating Soft Shutdown") {
		t.Error("no soft shutdown on an idle worker with worker_enable_soft_shutdown_on_idle")
	}
	if id, _ := l.redelivered(); id != r.ID {
		t.Errorf("message back in the queue %q, want the held one %q", id, r.ID)
	}
}

// TestRunReturnsErrWorkerClosed: Run returns ErrWorkerClosed after Shutdown, at once when
// Shutdown came first, nil after its ctx ended, and refuses a second call.
func TestRunReturnsErrWorkerClosed(t *testing.T) {
	t.Parallel()
	b := newBlocking()
	t.Run("after Shutdown", func(t *testing.T) {
		l := newLifecycle(t, b.register, nil)
		l.run(context.Background())
		if err := l.worker.Shutdown(ctxT(t, 30*time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := l.stopped(); err != celery.ErrWorkerClosed {
			t.Errorf("Run = %v, want ErrWorkerClosed", err)
		}
		if err := l.worker.Run(context.Background()); err == nil || errors.Is(err, celery.ErrWorkerClosed) {
			t.Errorf("second Run = %v, want a refusal", err)
		}
	})
	t.Run("Shutdown before Run", func(t *testing.T) {
		l := newLifecycle(t, b.register, nil)
		if err := l.worker.Shutdown(ctxT(t, 30*time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := l.worker.Run(context.Background()); err != celery.ErrWorkerClosed {
			t.Errorf("Run after Shutdown = %v, want ErrWorkerClosed", err)
		}
	})
	t.Run("ctx ends", func(t *testing.T) {
		l := newLifecycle(t, b.register, nil)
		ctx, cancel := context.WithCancel(context.Background())
		l.run(ctx)
		cancel()
		if err := l.stopped(); err != nil {
			t.Errorf("Run after its ctx ended = %v, want nil", err)
		}
	})
}

// TestRunDoesNotCloseTheBrokerItWasGiven: after Run returns (warm and cold), the broker it was
// given still publishes, with the confirm.
func TestRunDoesNotCloseTheBrokerItWasGiven(t *testing.T) {
	t.Parallel()
	b := newBlocking()
	for _, cold := range []bool{false, true} {
		l := newLifecycle(t, b.register, nil)
		l.run(context.Background())
		if cold {
			l.worker.Terminate()
		}
		if err := l.worker.Shutdown(ctxT(t, 30*time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := l.stopped(); !errors.Is(err, celery.ErrWorkerClosed) {
			t.Fatalf("Run = %v", err)
		}
		env, err := protocol.EncodeV2(&protocol.TaskMessage{Task: "t.block", ID: "after-run-" + testenv.Suffix()}, protocol.EncodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ctx := ctxT(t, 20*time.Second)
		if err := l.wbr.Publish(ctx, broker.Publishing{RoutingKey: l.queue, Envelope: env, Timestamp: time.Now()}); err != nil {
			t.Errorf("cold=%v: publishing on the worker's broker after Run returned: %v", cold, err)
		}
		if id, _ := l.redelivered(); !strings.HasPrefix(id, "after-run-") {
			t.Errorf("cold=%v: the queue holds %q, want the message published after Run", cold, id)
		}
	}
}
