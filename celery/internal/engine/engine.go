// Package engine is the worker engine behind celery.Worker: the consume loop and intake
// (run.go, intake.go, hold.go), execution (exec.go), finishing, acks and result storing
// (finish.go), dead letters and parking (deadletter.go), revokes (revoke.go), canvas hooks
// (canvas.go), task events (events.go), the pool and run-time changes (runtime.go) and the
// shutdown sequence (shutdown.go).
//
// The seam (seam.go): the engine never imports the root package. The root hands it resolved
// Settings, its registered Tasks (each with a Run that decodes the arguments, calls the Go
// function and reports an Outcome with the Signal its error asks for), and the Errors it reports
// with (ErrWorkerClosed, the cancel causes, how an error reads in Python). Every type a user
// writes against stays in the root, or in a public package both import (the Canvas seam is
// package canvashook, which the root re-exports); the root's exported Worker methods call the
// Engine's. Remote control and inspect (package workerctl) read the engine through its exported
// methods.
//
// It is one package because these stages share one state (the jobs held, reserved and running,
// the pool, the prefetch); each file is one stage.
package engine

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/forumads/forumads/celery/backend"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/canvashook"
	"github.com/forumads/forumads/celery/events"
	"github.com/forumads/forumads/celery/internal/idset"
	"github.com/forumads/forumads/celery/internal/timerq"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/celery/revoke"
)

// Engine consumes Celery task messages and runs the registered tasks: the root's Worker is a thin
// type over it.
type Engine struct {
	cfg      Settings
	reg      Tasks
	errs     Errors
	br       broker.Broker
	backend  backend.ResultBackend
	hostname string
	log      *slog.Logger
	now      func() time.Time
	accept   protocol.Accept
	pid      int
	events   *events.Dispatcher
	revokes  revoke.Store
	metrics  Metrics
	canvas   canvashook.Canvas
	began    time.Time // when NewWorker made it (stats: uptime)

	qmu    sync.Mutex
	queues []broker.Queue // consumed now (add_consumer and cancel_consumer change it)

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

	revoked    *idset.Expiring           // revoked ids known here (from the store, notices, broadcasts)
	breakUntil atomic.Int64              // unix ns until which the revoke store is not asked (it failed)
	reserved   lockedMap[*job, struct{}] // received, neither started nor given back
	nReserved  atomic.Int64
	heldETA    atomic.Int64
	limits     sync.Map     // task name -> timeLimits set by the time_limit command
	rates      sync.Map     // task name -> the rate limit string (registered shows it)
	totals     sync.Map     // task name -> *atomic.Int64: tasks started (stats "total")
	done       atomic.Int64 // task messages finished with, whatever the outcome
	shutdown   chan struct{}
	shutOnce   sync.Once

	// synced is set while revoked holds every id of the revoke store (see revokesSynced);
	// syncEvicted is revoked.Evicted() when it was set; onSync (tests) is told of each change.
	synced      atomic.Bool
	syncEvicted atomic.Uint64
	onSync      func(synced bool)

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
	started    *idset.Recent[uint64] // (id, retries) of tasks started lately (startKey), to discard their redeliveries
	startSeed  maphash.Seed

	taskCtx     context.Context // parent of every task context; cancelled by a cold shutdown
	killTasks   context.CancelCauseFunc
	running     sync.WaitGroup
	active      lockedMap[string, *job] // task id -> running job
	held        atomic.Int64
	curPrefetch atomic.Int64

	stats Counters
}

// Counters are where the engine counts what it did since it started: the fields of the root's
// Stats, which the root hands over (Options.Counters) so that Worker.Stats reads them in place.
type Counters struct {
	Received, Started, Succeeded, Failed, Retried, Revoked, DeadLettered, Parked *atomic.Int64
}

// filled returns c with a counter of its own for each one c lacks.
func (c Counters) filled() Counters {
	for _, p := range []**atomic.Int64{&c.Received, &c.Started, &c.Succeeded, &c.Failed, &c.Retried,
		&c.Revoked, &c.DeadLettered, &c.Parked} {
		if *p == nil {
			*p = new(atomic.Int64)
		}
	}
	return c
}

// job is one task message on its way through the worker.
type job struct {
	d        *broker.Delivery
	msg      *protocol.TaskMessage
	def      *Task
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
	cause      error // the cause its context is cancelled with (Errors.Terminated)
}

// setCancel records the running task's cancel function, and uses it at once if the task was
// terminated before it got there.
func (j *job) setCancel(cancel context.CancelCauseFunc) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.cancel = cancel
	if j.terminated {
		cancel(j.cause)
	}
}

// terminate marks the job revoked with terminate and cancels its context with cause; it reports
// whether this call did it (false when it was terminated already).
func (j *job) terminate(signal string, cause error) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.terminated {
		return false
	}
	j.terminated, j.signal, j.cause = true, signal, cause
	if j.cancel != nil {
		j.cancel(cause)
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

// New checks the options and returns an engine ready to Run.
func New(o Options) (*Engine, error) {
	if o.Tasks == nil || o.Broker == nil {
		return nil, errors.New("celery: worker needs a Registry and a Broker")
	}
	cfg := o.Settings
	w := &Engine{
		cfg: cfg, reg: o.Tasks, errs: o.Errors, br: o.Broker, backend: o.Backend, queues: o.Queues,
		hostname: o.Hostname, log: o.Logger, now: o.Now, accept: o.Accept, pid: os.Getpid(),
		events: o.Events, revokes: o.Revokes, metrics: o.Metrics, canvas: o.Canvas,
		shrink: make(chan struct{}, 1<<16), shutdown: make(chan struct{}), began: time.Now(),
		cold: make(chan struct{}), runDone: make(chan struct{}), tasksDone: make(chan struct{}),
		stats: o.Counters.filled(),
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
	w.prefetch.Store(int64(cfg.prefetchFor(cfg.Concurrency)))
	w.size.Store(int64(cfg.Concurrency))
	w.started = idset.NewRecent[uint64](1 << 16)
	w.startSeed = maphash.MakeSeed()
	w.revoked = idset.NewExpiring(w.revokeMax())
	for _, name := range w.reg.Names() {
		def, _ := w.reg.Lookup(name)
		if r := def.Options.RateLimit; r != "" {
			w.rates.Store(name, r)
		} else if r := cfg.DefaultRateLimit; r != "" {
			w.rates.Store(name, r)
		}
	}
	return w, nil
}

// infoOn reports whether per-task INFO lines are logged, so that they cost nothing when not.
func (w *Engine) infoOn() bool { return w.log.Enabled(context.Background(), slog.LevelInfo) }

// Hostname is the worker's node name.
func (w *Engine) Hostname() string { return w.hostname }

// Queues are the queues the worker consumes.
func (w *Engine) Queues() []broker.Queue {
	w.qmu.Lock()
	defer w.qmu.Unlock()
	return append([]broker.Queue(nil), w.queues...)
}

// Concurrency is how many tasks the worker runs at once (-c, then pool_grow and pool_shrink).
func (w *Engine) Concurrency() int { return int(w.size.Load()) }

func (w *Engine) basePrefetch() int { return int(w.prefetch.Load()) }

func (w *Engine) activeCount() int {
	return w.active.Len()
}
