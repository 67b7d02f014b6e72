// This file holds the Worker type, its options and metrics, the job it tracks per message,
// NewWorker and the accessors.

package celery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/events"
	"github.com/forumads/forumads/celery/internal/idset"
	"github.com/forumads/forumads/celery/internal/timerq"
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
	// only, as Celery does.
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

// Worker consumes Celery task messages and runs the registered Go tasks.
type Worker struct {
	cfg      Config
	reg      *Registry
	br       broker.Broker
	backend  ResultBackend
	hostname string
	log      *slog.Logger
	now      func() time.Time
	accept   protocol.Accept
	pid      int
	events   *events.Dispatcher
	revokes  revoke.Store
	metrics  WorkerMetrics
	canvas   Canvas
	began    time.Time // when NewWorker made it (stats: uptime)

	qmu    sync.Mutex
	queues []QueueConfig // consumed now (add_consumer and cancel_consumer change it)

	// prefetch is the base prefetch count: concurrency × worker_prefetch_multiplier (0 = unlimited).
	prefetch atomic.Int64
	// The pool: size goroutines take jobs from ready; shrink tokens make as many of them leave.
	poolMu     sync.Mutex
	pool       sync.WaitGroup
	poolClosed bool
	// poolStarted is set by Run once ready exists; pool_grow before that only changes size.
	poolStarted bool
	size        atomic.Int64
	shrink      chan struct{}

	revoked    *idset.Expiring // revoked ids known here (from the store, notices, broadcasts)
	breakUntil atomic.Int64    // unix ns until which the revoke store is not asked (it failed)
	reserved   sync.Map        // *job -> struct{}: received, neither started nor given back
	nReserved  atomic.Int64
	heldETA    atomic.Int64
	limits     sync.Map     // task name -> timeLimits set by the time_limit command
	rates      sync.Map     // task name -> the rate limit string (registered shows it)
	totals     sync.Map     // task name -> *atomic.Int64: tasks started (stats "total")
	done       atomic.Int64 // task messages finished with, whatever the outcome
	shutdown   chan struct{}
	shutOnce   sync.Once

	// Lifecycle (lifecycle.go): cold is closed when a cold shutdown begins, runDone when Run
	// returns, tasksDone once no task runs and none will start.
	cold      chan struct{}
	coldOnce  sync.Once
	runDone   chan struct{}
	tasksDone chan struct{}
	ran       atomic.Bool  // Run was called
	closedBy  atomic.Bool  // Shutdown, Terminate or the shutdown command stopped the worker
	shutCalls atomic.Int32 // calls of Shutdown: the second is cold

	ready      chan *job
	timers     *timerq.Queue[*job]
	buckets    sync.Map // task name -> *ratelimit.Bucket
	stopping   atomic.Bool
	terminated atomic.Bool
	alive      atomic.Bool // Run consumes and has not begun to shut down
	gen        atomic.Uint64
	started    *idset.Recent // (id, retries) of tasks started lately, to discard their redeliveries

	taskCtx     context.Context // parent of every task context; cancelled by a cold shutdown
	killTasks   context.CancelCauseFunc
	running     sync.WaitGroup
	active      sync.Map // task id -> *job
	held        atomic.Int64
	curPrefetch atomic.Int64

	stats Stats
}

// Stats counts what a worker did since it started.
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

// job is one task message on its way through the worker.
type job struct {
	d        *broker.Delivery
	msg      *protocol.TaskMessage
	def      *taskDef
	received time.Time // when intake took it
	started  time.Time
	// rated is set once the job holds a rate-limit token, so that it is not charged twice.
	rated bool
	// waited is set when the job was held (ETA, rate limit): it is checked against the revoke
	// store again before it starts.
	waited bool

	eta       atomic.Bool  // held until its ETA now
	acked     atomic.Bool  // its message is acknowledged
	startedAt atomic.Int64 // unix ns when it started, 0 before (read by inspect)

	mu         sync.Mutex
	cancel     context.CancelCauseFunc // the running task's context
	terminated bool                    // revoked with terminate while it ran
	signal     string
}

// setCancel records the running task's cancel function, and uses it at once if the task was
// terminated before it got there.
func (j *job) setCancel(cancel context.CancelCauseFunc) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.cancel = cancel
	if j.terminated {
		cancel(&TerminatedError{Signal: j.signal})
	}
}

// terminate marks the job revoked with terminate and cancels its context; it reports whether
// this call did it (false when it was terminated already).
func (j *job) terminate(signal string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.terminated {
		return false
	}
	j.terminated, j.signal = true, signal
	if j.cancel != nil {
		j.cancel(&TerminatedError{Signal: signal})
	}
	return true
}

// terminatedBy reports whether the job was terminated, and with which signal.
func (j *job) terminatedBy() (string, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.signal, j.terminated
}

// due is when the job could have started: when it was sent (the AMQP timestamp, whole seconds,
// taken at the middle of its second and never after the receipt), else when it was received;
// its ETA when that is later.
func (j *job) due() time.Time {
	due := j.received
	if ts := j.d.Timestamp; !ts.IsZero() {
		if mid := ts.Add(500 * time.Millisecond); mid.Before(due) {
			due = mid
		}
	}
	if eta := j.msg.ETA; eta != nil && eta.After(due) {
		due = *eta
	}
	return due
}

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
	w := &Worker{
		cfg: cfg, reg: o.Registry, br: o.Broker, backend: o.Backend, queues: queues,
		hostname: o.Hostname, log: o.Logger, now: o.Now, accept: accept, pid: os.Getpid(),
		events: o.Events, revokes: o.Revokes, metrics: o.Metrics, canvas: o.Canvas,
		shrink: make(chan struct{}, 1<<16), shutdown: make(chan struct{}), began: time.Now(),
		cold: make(chan struct{}), runDone: make(chan struct{}), tasksDone: make(chan struct{}),
	}
	if w.log == nil {
		w.log = slog.Default()
	}
	if w.now == nil {
		w.now = time.Now
	}
	if w.hostname == "" {
		h, _ := os.Hostname()
		w.hostname = "celery@" + h
	}
	w.prefetch.Store(int64(cfg.Prefetch()))
	w.size.Store(int64(cfg.WorkerConcurrency))
	w.started = idset.NewRecent(1 << 16)
	w.revoked = idset.NewExpiring(w.revokeMax())
	for _, name := range w.reg.Names() {
		def, _ := w.reg.lookup(name)
		if r := def.opts.RateLimit; r != "" {
			w.rates.Store(name, r)
		} else if r := cfg.TaskDefaultRateLimit; r != "" {
			w.rates.Store(name, r)
		}
	}
	return w, nil
}

// infoOn reports whether per-task INFO lines are logged, so that they cost nothing when not.
func (w *Worker) infoOn() bool { return w.log.Enabled(context.Background(), slog.LevelInfo) }

// Hostname is the worker's node name.
func (w *Worker) Hostname() string { return w.hostname }

// Queues are the queues the worker consumes.
func (w *Worker) Queues() []QueueConfig {
	w.qmu.Lock()
	defer w.qmu.Unlock()
	return append([]QueueConfig(nil), w.queues...)
}

// Stats returns the worker's counters.
func (w *Worker) Stats() *Stats { return &w.stats }

// Config is the effective configuration.
func (w *Worker) Config() Config { return w.cfg }

// Concurrency is how many tasks the worker runs at once (-c, then pool_grow and pool_shrink).
func (w *Worker) Concurrency() int { return int(w.size.Load()) }

func (w *Worker) basePrefetch() int { return int(w.prefetch.Load()) }

func (w *Worker) activeCount() int {
	n := 0
	w.active.Range(func(any, any) bool { n++; return true })
	return n
}
