package celerytest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend/memorybackend"
	"github.com/forumads/forumads/celery/broker/memorybroker"
	"github.com/forumads/forumads/celery/internal/workertest"
	"github.com/forumads/forumads/celery/revoke"
)

// DefaultTimeout bounds every wait of a Worker's helpers (and its shutdown at the end of the
// test) unless WithTimeout or Worker.Timeout says otherwise.
const DefaultTimeout = 10 * time.Second

// Hostname is the node name of the workers NewWorker starts (result_extended's worker field).
const Hostname = "celery@celerytest"

// Worker is a running celery.Worker on an in-memory broker and backend of its own, with a Client
// bound to both. NewWorker makes one; the test's cleanup shuts it down.
type Worker struct {
	// Worker is the running worker (Stats, Shutdown; the cleanup shuts it down in any case).
	Worker *celery.Worker
	// Client publishes to Broker and reads results from Backend.
	Client *celery.Client
	// Broker is the worker's broker, private to this Worker; the cleanup closes it.
	Broker *memorybroker.Broker
	// Backend is the worker's result backend, private to this Worker.
	Backend *memorybackend.Backend
	// Revokes is the worker's revoke store, private to this Worker (see Revoke).
	Revokes *revoke.MemoryStore
	// Config is the configuration the worker and client were given (before celery's defaults).
	Config celery.Config
	// Timeout bounds each wait of the helpers and the shutdown at cleanup; a test may change it
	// before calling a helper.
	Timeout time.Duration

	run *workertest.Running
}

// Option changes how NewWorker configures the worker.
type Option func(*options)

type options struct {
	cfg     celery.Config
	mutate  []func(*celery.Config)
	queues  []string
	now     func() time.Time
	timeout time.Duration
	logger  *slog.Logger
}

// WithAcksLate sets task_acks_late: task messages are acknowledged after the task ran instead of
// before.
func WithAcksLate(v bool) Option { return func(o *options) { o.cfg.TaskAcksLate = v } }

// WithQueues makes the worker consume these queues (-Q) instead of the default queue "celery".
// A queue the worker does not consume keeps what is sent to it, for RequireSent.
func WithQueues(queues ...string) Option {
	return func(o *options) { o.queues = append(o.queues, queues...) }
}

// WithConcurrency sets worker_concurrency, the number of tasks run at once (default 2).
func WithConcurrency(n int) Option { return func(o *options) { o.cfg.WorkerConcurrency = n } }

// WithConfig lets the test change any Celery setting; it runs after celerytest's defaults and
// the other options, in the order given.
func WithConfig(mutate func(*celery.Config)) Option {
	return func(o *options) { o.mutate = append(o.mutate, mutate) }
}

// WithClock gives the worker a clock (celery.WorkerOptions.Now), e.g. to test expiry against a
// fixed time.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithTimeout bounds each wait of the helpers, and the shutdown at cleanup, by d instead of
// DefaultTimeout.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithLogger gives the worker a logger. Without it the worker logs to the test's log when go test
// runs with -v, and nowhere otherwise.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// NewWorker starts a worker running reg's tasks on a fresh in-memory broker and result backend,
// and returns it with a client bound to both. It registers a cleanup that shuts the worker down
// warmly (running tasks finish) and fails the test if the shutdown takes longer than the Timeout
// or if Run returned an error other than celery.ErrWorkerClosed; the broker is closed after.
//
// Defaults: queue "celery", worker_concurrency 2, worker_prefetch_multiplier 1,
// result_extended on (so that RequireRetried can read the retries). A configuration the worker refuses fails the test at once.
func NewWorker(t testing.TB, reg *celery.Registry, opts ...Option) *Worker {
	t.Helper()
	if reg == nil {
		t.Fatalf("celerytest.NewWorker: nil *celery.Registry")
		return nil
	}
	one := 1
	o := options{cfg: celery.Config{BrokerURL: "memory://", ResultBackend: "memory://",
		WorkerConcurrency: 2, WorkerPrefetchMultiplier: &one, ResultExtended: true},
		timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	for _, m := range o.mutate {
		m(&o.cfg)
	}
	if o.cfg.WorkerConcurrency < 0 {
		t.Fatalf("celerytest.NewWorker: concurrency %d must be at least 1 (0: one per CPU)", o.cfg.WorkerConcurrency)
		return nil
	}
	if o.timeout <= 0 {
		t.Fatalf("celerytest.NewWorker: timeout %v must be positive", o.timeout)
		return nil
	}
	log := o.logger
	if log == nil {
		log = workertest.Logger(t)
	}
	w := &Worker{Broker: memorybroker.New(), Backend: memorybackend.New(memorybackend.Options{Expires: time.Hour}),
		Revokes: revoke.NewMemoryStore(revoke.DefaultTTL), Config: o.cfg, Timeout: o.timeout}
	worker, err := celery.NewWorker(celery.WorkerOptions{Config: o.cfg, Registry: reg, Broker: w.Broker,
		Backend: w.Backend, Revokes: w.Revokes, Queues: o.queues, Hostname: Hostname, Logger: log, Now: o.now})
	if err != nil {
		_ = w.Broker.Close()
		t.Fatalf("celerytest.NewWorker: %v", err)
		return nil
	}
	w.Client, err = celery.NewClient(celery.ClientOptions{Config: o.cfg, Broker: w.Broker, Backend: w.Backend, Registry: reg})
	if err != nil {
		_ = w.Broker.Close()
		t.Fatalf("celerytest.NewWorker: client: %v", err)
		return nil
	}
	t.Cleanup(func() { _ = w.Broker.Close() }) // after the worker's shutdown: Run never closes it
	w.Worker = worker
	w.run = workertest.Start(t, context.Background(), worker, w.Timeout)
	w.run.Prefix = "celerytest"
	// Registered after Start's own, so it runs first: the shutdown is bounded by the Timeout as
	// the test left it.
	t.Cleanup(func() {
		w.run.Timeout = w.Timeout
		w.run.Stop(t)
	})
	return w
}

// Send publishes task name with positional and keyword arguments (as celery.Client.SendTask) and
// fails the test if it cannot be published.
func (w *Worker) Send(t testing.TB, name string, args []any, kwargs map[string]any, opts ...celery.SendOption) *celery.AsyncResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), w.Timeout)
	defer cancel()
	res, err := w.Client.SendTask(ctx, name, args, kwargs, opts...)
	if err != nil {
		t.Fatalf("celerytest: sending %s: %v", name, err)
		return nil
	}
	return res
}

// Revoke revokes task id as Celery's revoke does: the worker does not run it and stores REVOKED
// for it (when it arrives, or at once if the worker holds it for an ETA); with terminate, a run in progress
// has its context cancelled (a *celery.TerminatedError, SIGTERM). It fails the test if the store
// refuses the id.
func (w *Worker) Revoke(t testing.TB, id string, terminate bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), w.Timeout)
	defer cancel()
	// Through the worker, as the revoke control command does: its memory knows the id before
	// Revoke returns (a revoke written to the store alone reaches it with the store's notice,
	// which a message sent right after could overtake), and the store has it for the others.
	if _, err := w.Worker.Revoke(ctx, []string{id}, terminate, ""); err != nil {
		t.Fatalf("celerytest: revoking %q: %v", id, err)
	}
}
