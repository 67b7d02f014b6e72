// This file holds the Worker type, its options and metrics, NewWorker and the methods an operator
// calls at run time. The engine behind it is celery/internal/engine (see its package doc for the
// seam); every method here is a thin call into it.

package celery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/control"
	"github.com/forumads/forumads/celery/events"
	"github.com/forumads/forumads/celery/internal/engine"
	"github.com/forumads/forumads/celery/internal/workerctl"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/celery/revoke"
)

// WorkerOptions configure a Worker.
type WorkerOptions struct {
	Config   Config // Celery settings; defaults are filled in
	Registry *Registry
	Broker   broker.Broker
	// Backend stores results; nil means results are not stored (like Celery without result_backend).
	Backend ResultBackend
	// Queues to consume (-Q); empty means the configured default queues.
	Queues []string
	// Hostname is the node name (celery@host).
	Hostname string
	Logger   *slog.Logger
	// Now is the clock (tests); nil = time.Now.
	Now func() time.Time
	// Canvas continues canvases (chain steps, link callbacks and errbacks, chords) after a task
	// finishes; nil publishes none (canvas.NewWorkerCanvas makes one).
	Canvas Canvas

	// Events receives the worker's task events, sent while its task events are enabled
	// (Options.Enabled of the dispatcher: -E, worker_send_task_events; then the enable_events and
	// disable_events control commands); nil sends none. The caller runs its heartbeat and closes it
	// after Run returns.
	Events *events.Dispatcher
	// Revokes is the revoked-id store shared by the workers (a revoke.Store: package redisrevoke
	// in Redis, revoke.MemoryStore in one process): a task revoked there is not run, whichever
	// worker gets it and however often they restart. nil keeps revokes in this worker's memory
	// only, as Celery does. The worker asks the store about each batch of deliveries, except while
	// it is synced with a revoke.Follower (both of those are): its subscription confirmed, the set
	// loaded after that, and no gap reported since; then the ids in memory are all of them.
	Revokes revoke.Store
	// Metrics, if set, is told about every task (internal/metrics.Worker implements it).
	Metrics WorkerMetrics
}

// WorkerMetrics receives what a worker does, for monitoring. Its methods must be safe for
// concurrent use and must not block.
type WorkerMetrics interface {
	// TaskReceived is called for every task message decoded.
	TaskReceived(task string)
	// TaskStarted is called when a task starts, with how long it waited since it was due: since
	// it was sent (the AMQP timestamp property, whole seconds, estimated at its middle), or
	// received when the sender set no timestamp, or since its ETA when that is later.
	TaskStarted(task string, queueWait time.Duration)
	// TaskFinished is called once per task message the worker is done with: outcome is success,
	// failure, retry, revoked, rejected, ignored or expired; runtime is 0 for a task that did not run.
	TaskFinished(task, outcome string, runtime time.Duration)
	// DeadLettered is called when a message is sent to the dead-letter queue, with its
	// x-dead-letter-reason.
	DeadLettered(reason string)
}

// Worker consumes Celery task messages and runs the registered Go tasks. It is a thin type over
// the engine (celery/internal/engine): NewWorker resolves the configuration and the registry for
// it, and each method calls it.
type Worker struct {
	e     *engine.Engine
	cfg   Config
	stats Stats
}

// Stats counts what a worker did since it started (the engine counts in these fields in place).
type Stats struct {
	Received     atomic.Int64
	Started      atomic.Int64
	Succeeded    atomic.Int64
	Failed       atomic.Int64
	Retried      atomic.Int64
	Revoked      atomic.Int64
	DeadLettered atomic.Int64
	Parked       atomic.Int64
}

// counters are s's fields as the engine counts in them.
func (s *Stats) counters() engine.Counters {
	return engine.Counters{Received: &s.Received, Started: &s.Started, Succeeded: &s.Succeeded, Failed: &s.Failed,
		Retried: &s.Retried, Revoked: &s.Revoked, DeadLettered: &s.DeadLettered, Parked: &s.Parked}
}

// WorkerSnapshot is what a worker holds now, for metrics and monitoring.
type WorkerSnapshot struct {
	Active      int   // tasks running
	Reserved    int   // messages received, not running, not waiting for their ETA
	HeldETA     int   // messages held until their ETA
	Prefetch    int   // the consumer's prefetch count now (0 = unlimited)
	Concurrency int   // pool size
	Started     int64 // tasks started since start
	Finished    int64 // task messages done with since start, whatever the outcome
}

// ErrPool is wrapped by the errors of Grow and Shrink; Python sees them as ValueError.
var ErrPool = errors.New("pool")

// Headers the worker adds to a dead-lettered message, visible in the RabbitMQ management UI (the
// names of package broker, kept here for the programs that read them).
const (
	HeaderDeadLetterReason = broker.HeaderDeadLetterReason
	HeaderOriginalQueue    = broker.HeaderOriginalQueue
	HeaderOriginalExchange = broker.HeaderOriginalExchange
	HeaderOriginalKey      = broker.HeaderOriginalKey
	HeaderDeadLetteredBy   = broker.HeaderDeadLetteredBy
	HeaderDeadLetteredAt   = broker.HeaderDeadLetteredAt
)

// NewWorker checks the options and returns a worker ready to Run.
func NewWorker(o WorkerOptions) (*Worker, error) {
	cfg := o.Config.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.Registry == nil || o.Broker == nil {
		return nil, errors.New("celery: worker needs a Registry and a Broker")
	}
	accept, err := protocol.NewAccept(cfg.AcceptContent)
	if err != nil {
		return nil, fmt.Errorf("accept_content: %w", err)
	}
	names := o.Queues
	if len(names) == 0 {
		names = cfg.DefaultQueues()
	}
	var queues []QueueConfig
	for _, n := range names {
		q, ok := cfg.QueueByName(n)
		if !ok {
			return nil, fmt.Errorf("queue %q is not in task_queues and task_create_missing_queues is off", n)
		}
		queues = append(queues, q)
	}
	var metrics engine.Metrics
	if o.Metrics != nil {
		metrics = o.Metrics
	}
	w := &Worker{cfg: cfg}
	e, err := engine.New(engine.Options{
		Settings: engineSettings(cfg), Tasks: (*engineTasks)(o.Registry), Errors: engineErrors,
		Broker: o.Broker, Accept: accept, Backend: o.Backend, Queues: queues, Hostname: o.Hostname,
		Logger: o.Logger, Now: o.Now, Canvas: o.Canvas, Events: o.Events, Revokes: o.Revokes, Metrics: metrics,
		Counters: w.stats.counters(),
	})
	if err != nil {
		return nil, err
	}
	w.e = e
	return w, nil
}

// engineSettings resolves what the engine reads of the configuration (defaults filled in).
func engineSettings(cfg Config) engine.Settings {
	var soft time.Duration
	if t := cfg.WorkerSoftShutdownTimeout; t != nil && *t > 0 {
		soft = time.Duration(*t * float64(time.Second))
	}
	return engine.Settings{
		AcksLate: cfg.TaskAcksLate, AcksOnFailure: *cfg.TaskAcksOnFailure, RejectOnLost: cfg.TaskRejectOnLost,
		TrackStarted: cfg.TaskTrackStarted, IgnoreResult: cfg.TaskIgnoreResult,
		TimeLimit: seconds(cfg.TaskTimeLimit, 0), SoftTimeLimit: seconds(cfg.TaskSoftTimeLimit, 0),
		DeduplicateSuccess: cfg.WorkerDeduplicateSuccess, ETAParkAfter: seconds(cfg.WorkerETAParkAfter, DefaultETAParkAfter),
		DisableRateLimits: cfg.WorkerDisableRateLimits, DefaultRateLimit: cfg.TaskDefaultRateLimit,
		RevokeExpires: seconds(cfg.WorkerRevokeExpires, revoke.DefaultTTL), RevokeMax: cfg.WorkerRevokeMax,
		Serializer: cfg.TaskSerializer, ResultExtended: cfg.ResultExtended, DeadLetterQueue: cfg.WorkerDeadLetterQueue,
		SoftShutdownTimeout: soft, SoftShutdownOnIdle: cfg.WorkerEnableSoftShutdownOnIdle,
		Concurrency: cfg.WorkerConcurrency, PrefetchMultiplier: *cfg.WorkerPrefetchMultiplier,
		DefaultMaxRetries: DefaultMaxRetries, DefaultRetryDelay: DefaultRetryCountdown,
	}
}

// Run consumes and runs tasks until ctx ends or Shutdown is called, then shuts down warmly: it
// stops consuming, returns messages it holds but has not started to the broker, waits for running
// tasks to finish and acknowledges them. A cold shutdown (a second Shutdown, Shutdown's ctx ending,
// Terminate) cancels the running tasks' contexts, after worker_soft_shutdown_timeout when that is
// set; see Shutdown.
//
// Like http.Server.Serve, Run returns ErrWorkerClosed after a stop begun by Shutdown (or by the
// shutdown control command), wrapped together with ErrWorkerShutdown when the shutdown went cold;
// it returns nil after a warm shutdown begun by ctx, and ErrWorkerClosed at once when Shutdown was
// called before it. Run may be called once. It never closes the broker it was given: the caller,
// who created it, closes it after Run returns.
func (w *Worker) Run(ctx context.Context) error { return w.e.Run(ctx) }

// Hostname is the worker's node name.
func (w *Worker) Hostname() string { return w.e.Hostname() }

// Queues are the queues the worker consumes.
func (w *Worker) Queues() []QueueConfig { return w.e.Queues() }

// Stats returns the worker's counters.
func (w *Worker) Stats() *Stats { return &w.stats }

// Config is the effective configuration.
func (w *Worker) Config() Config { return w.cfg }

// Concurrency is how many tasks the worker runs at once (-c, then pool_grow and pool_shrink).
func (w *Worker) Concurrency() int { return w.e.Concurrency() }

// Grow adds n goroutines to the pool (the pool_grow control command) and raises the prefetch to
// the new concurrency × worker_prefetch_multiplier, as Celery does. Its error wraps ErrPool.
func (w *Worker) Grow(n int) error { return w.e.Grow(n) }

// Shrink removes n goroutines from the pool (pool_shrink): idle ones leave at once, busy ones
// when their task ends. The pool keeps at least one. Its error wraps ErrPool.
func (w *Worker) Shrink(n int) error { return w.e.Shrink(n) }

// SetRateLimit changes a task's rate limit at run time (the rate_limit control command); an
// unknown task is a *NotRegisteredError.
func (w *Worker) SetRateLimit(task, rate string) error {
	return rootError(w.e.SetRateLimit(task, rate))
}

// SetTimeLimit changes a task's hard and soft time limits at run time (the time_limit control
// command); nil means the configured default, 0 no limit. A message's own timelimit header still
// wins, as in Celery. An unknown task is a *NotRegisteredError.
func (w *Worker) SetTimeLimit(task string, soft, hard *time.Duration) error {
	return rootError(w.e.SetTimeLimit(task, soft, hard))
}

// rootError turns the engine's refusal of an unknown task into a *NotRegisteredError.
func rootError(err error) error {
	var nr *engine.NotRegisteredError
	if errors.As(err, &nr) {
		return &NotRegisteredError{Name: nr.Name}
	}
	return err
}

// AddConsumer starts consuming q (the add_consumer control command); consuming a queue already
// consumed does nothing. The broker must support it (amqpbroker does).
func (w *Worker) AddConsumer(ctx context.Context, q QueueConfig) error {
	return w.e.AddConsumer(ctx, q)
}

// CancelConsumer stops consuming the queue (cancel_consumer); it reports whether it was consumed.
// Messages already received are still run.
func (w *Worker) CancelConsumer(ctx context.Context, name string) (bool, error) {
	return w.e.CancelConsumer(ctx, name)
}

// Snapshot returns the worker's counts now.
func (w *Worker) Snapshot() WorkerSnapshot { return WorkerSnapshot(w.e.Snapshot()) }

// HeartbeatStatus is what worker heartbeats report: the tasks running now and those started
// since start (events.HeartbeatOptions.Status).
func (w *Worker) HeartbeatStatus() (active, processed int) { return w.e.HeartbeatStatus() }

// Alive reports, for a health check, whether Run is consuming: nil from the moment it consumes
// until it begins to shut down.
func (w *Worker) Alive() error { return w.e.Alive() }

// Revoke marks the task ids revoked, as the revoke control command does: a message with one of
// these ids is not run (it is stored as REVOKED and acknowledged). With terminate, the tasks this
// worker is running are stopped too (their context is cancelled with a *TerminatedError) and end
// as REVOKED; signal is a name such as "SIGTERM" or "KILL" ("" = SIGTERM; see revoke.ParseSignal).
// It returns the ids of the tasks it stopped or will not start. The ids are kept in memory and,
// with a revoke store, in it for every worker sharing it; a store error is returned after the ids were
// revoked here.
func (w *Worker) Revoke(ctx context.Context, ids []string, terminate bool, signal string) ([]string, error) {
	return w.e.Revoke(ctx, ids, terminate, signal)
}

// RevokedIDs lists the revoked ids: the store's (when there is one and it answers) and those
// known in memory, without duplicates, sorted.
func (w *Worker) RevokedIDs(ctx context.Context) ([]string, error) { return w.e.RevokedIDs(ctx) }

// RegisterControl registers on mb the remote-control commands of a Celery 5.2 worker, so that
// `celery inspect` and `celery control` (and Flower) work with this worker:
//
//	inspect: ping stats active reserved scheduled registered revoked query_task conf
//	         active_queues clock report hello (mingle), and the dump_* aliases
//	control: revoke terminate rate_limit time_limit add_consumer cancel_consumer pool_grow
//	         pool_shrink enable_events disable_events heartbeat shutdown
//
// pool_restart and autoscale answer as a Python worker without them does. Replies have Celery's
// shapes and texts. mb must answer for the worker's node name.
func (w *Worker) RegisterControl(mb *control.Mailbox) {
	cfg := w.cfg
	workerctl.Register(mb, w.e, workerctl.Options{
		QueueByName: cfg.QueueByName,
		CustomQueue: cfg.withMaxPriority,
		Conf:        func(withDefaults bool) map[string]any { return ConfTable(cfg, withDefaults) },
		BrokerURL:   cfg.BrokerURL, ResultBackend: cfg.ResultBackend,
	})
}

// Mingle does what a Python worker does when it starts (mingle): it broadcasts hello with the
// revoked ids it knows, through cl, and waits a second for the other workers' answers; the ids
// they answer with are revoked here (and in the store), and their clocks move mb's. Workers
// that do not answer hello (without mingle) are skipped. It returns how many nodes answered.
func (w *Worker) Mingle(ctx context.Context, cl *control.Client, mb *control.Mailbox) (int, error) {
	return workerctl.Mingle(ctx, w.e, cl, mb)
}
