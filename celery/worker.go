package celery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/events"
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

	revoked    *revokedSet  // revoked ids known here (from the store, notices, broadcasts)
	breakUntil atomic.Int64 // unix ns until which the revoke store is not asked (it failed)
	reserved   sync.Map     // *job -> struct{}: received, neither started nor given back
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
	timers     *timerQueue[*job]
	buckets    sync.Map // task name -> *tokenBucket
	stopping   atomic.Bool
	terminated atomic.Bool
	alive      atomic.Bool // Run consumes and has not begun to shut down
	gen        atomic.Uint64
	started    *recentSet // (id, retries) of tasks started lately, to discard their redeliveries

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
	w.started = newRecentSet(1 << 16)
	w.revoked = newRevokedSet(w.revokeMax())
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
func (w *Worker) Run(ctx context.Context) error {
	if w.ran.Swap(true) {
		return errors.New("celery: Worker.Run called twice")
	}
	defer close(w.runDone)
	if w.closedBy.Load() {
		return ErrWorkerClosed
	}
	w.taskCtx, w.killTasks = context.WithCancelCause(context.WithoutCancel(ctx))
	consumeCtx, stopConsume := context.WithCancel(context.WithoutCancel(ctx))
	defer stopConsume()
	deliveries, err := w.br.Consume(consumeCtx, w.Queues(), w.basePrefetch())
	if err != nil {
		return fmt.Errorf("starting to consume: %w", err)
	}
	w.alive.Store(true)
	w.curPrefetch.Store(int64(w.basePrefetch()))
	w.timers = newTimerQueue(w.now, w.release)
	w.poolMu.Lock()
	w.ready = make(chan *job, 4096)
	w.poolStarted = true
	w.poolMu.Unlock()
	w.grow(int(w.size.Load()))
	var watchers sync.WaitGroup
	if w.revokes != nil {
		watchers.Add(1)
		go func() {
			defer watchers.Done()
			w.watchRevokes(consumeCtx)
		}()
	}
	coldDone := make(chan struct{})
	go func() {
		defer close(coldDone)
		w.watchCold()
	}()
	w.log.Info("worker ready", "hostname", w.hostname, "concurrency", w.Concurrency(), "prefetch", w.basePrefetch())

	intakeDone := make(chan struct{})
	go func() {
		defer close(intakeDone)
		batch := make([]*broker.Delivery, 0, intakeBatch)
		for d := range deliveries {
			batch = append(batch[:0], d)
		fill:
			for len(batch) < cap(batch) {
				select {
				case d, ok := <-deliveries:
					if !ok {
						break fill
					}
					batch = append(batch, d)
				default:
					break fill
				}
			}
			w.intake(batch)
			clear(batch)
		}
	}()
	select {
	case <-ctx.Done():
	case <-w.shutdown:
	case <-intakeDone:
		// The consumer gave up (broker closed); shut down as if asked.
	}
	w.log.Warn("worker: Warm shutdown: no new tasks are taken; waiting for running tasks", "running", w.activeCount())
	w.stopping.Store(true)
	w.alive.Store(false)
	if err := w.br.StopConsuming(context.Background()); err != nil {
		w.log.Warn("cancelling consumers", "error", err)
	}
	stopConsume()
	<-intakeDone
	watchers.Wait()
	// Held messages (ETA, rate limit) go back to their queue. A few are rejected one by one, so other
	// workers get them at once; many are left to the connection's close by the broker's owner
	// after Run returns (RabbitMQ requeues a channel's unacknowledged messages in one go, where
	// 10,000 single rejects take a minute).
	if held := w.timers.close(); len(held) <= maxSingleGiveBacks {
		for _, j := range held {
			w.giveBack(j)
		}
	} else {
		w.log.Info("held messages return to their queue when the connection closes", "count", len(held))
	}
	w.poolMu.Lock()
	w.poolClosed = true
	w.poolMu.Unlock()
	close(w.ready)
	w.pool.Wait()
	w.running.Wait()
	close(w.tasksDone)
	<-coldDone
	w.log.Info("worker stopped", "hostname", w.hostname)
	return w.runResult()
}

// intakeBatch is the most deliveries taken in one go: their revoked ids are checked in one round trip.
const intakeBatch = 64

// grow starts the first n pool goroutines.
func (w *Worker) grow(n int) {
	w.poolMu.Lock()
	defer w.poolMu.Unlock()
	w.spawnLocked(n)
}

// spawnLocked starts n pool goroutines, unless the pool is not started or closed; w.poolMu is held.
func (w *Worker) spawnLocked(n int) {
	if !w.poolStarted || w.poolClosed {
		return
	}
	for i := 0; i < n; i++ {
		w.pool.Add(1)
		go func() {
			defer w.pool.Done()
			for {
				select {
				case j, ok := <-w.ready:
					if !ok {
						return
					}
					w.process(j)
				case <-w.shrink:
					return
				}
			}
		}()
	}
}

// Concurrency is how many tasks the worker runs at once (-c, then pool_grow and pool_shrink).
func (w *Worker) Concurrency() int { return int(w.size.Load()) }

func (w *Worker) basePrefetch() int { return int(w.prefetch.Load()) }

func (w *Worker) activeCount() int {
	n := 0
	w.active.Range(func(any, any) bool { n++; return true })
	return n
}

// maxSingleGiveBacks is how many held messages a warm shutdown rejects one by one.
const maxSingleGiveBacks = 256

// giveBack returns a message the worker holds but will not run to the broker.
func (w *Worker) giveBack(j *job) {
	w.unreserve(j)
	if err := j.d.Reject(true); err != nil && !errors.Is(err, broker.ErrStaleDelivery) {
		w.log.Warn("returning a message to the queue", "task_id", j.msg.ID, "error", err)
	}
}

// intake decides what to do with a batch of deliveries, in order: dead-letter, revoke, hold or run.
// The revoked ids of the batch are checked in one round trip to the revoke store.
func (w *Worker) intake(batch []*broker.Delivery) {
	jobs := make([]*job, 0, len(batch))
	for _, d := range batch {
		if j := w.decode(d); j != nil {
			jobs = append(jobs, j)
		}
	}
	if len(jobs) == 0 {
		return
	}
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.msg.ID
	}
	revoked := w.areRevoked(ids)
	for i, j := range jobs {
		w.accept1(j, revoked[i])
	}
}

// decode turns a delivery into a job, or handles it (a message that cannot run, an unknown task)
// and returns nil.
func (w *Worker) decode(d *broker.Delivery) *job {
	if w.stopping.Load() {
		_ = d.Reject(true)
		return nil
	}
	if g := d.Generation; g > w.gen.Load() {
		w.newGeneration(g)
	}
	if d.HeaderError != "" {
		w.badMessage(d, nil, fmt.Errorf("the message's AMQP headers could not be read: %s", d.HeaderError))
		return nil
	}
	msg, err := protocol.Decode(d.Envelope, w.accept)
	if err != nil {
		w.badMessage(d, msg, err)
		return nil
	}
	w.stats.Received.Add(1)
	if w.metrics != nil {
		w.metrics.TaskReceived(msg.Task)
	}
	def, ok := w.reg.lookup(msg.Task)
	if !ok {
		w.unknownTask(d, msg)
		w.sendTaskEvent(func() events.Event {
			return events.NewTaskFailed(msg.ID, "NotRegistered("+pyRepr(msg.Task)+")", "")
		})
		if w.metrics != nil {
			w.metrics.TaskFinished(msg.Task, "failure", 0)
		}
		return nil
	}
	return &job{d: d, msg: msg, def: def, received: w.now()}
}

// countDeadLetter tells the metrics about a message sent to the dead-letter queue.
func (w *Worker) countDeadLetter(reason string) {
	if w.metrics != nil {
		w.metrics.DeadLettered(reason)
	}
}

// accept1 takes a decoded job: revoked and expired ones are discarded (as Celery's strategy does,
// before task-received), due ones go to the pool, others are held or parked until their ETA.
func (w *Worker) accept1(j *job, revoked bool) {
	msg := j.msg
	if revoked {
		w.discardRevoked(j)
		return
	}
	if w.expired(j) {
		return
	}
	w.sendTaskEvent(func() events.Event { return events.NewTaskReceived(taskInfo(msg)) })
	if w.infoOn() {
		w.log.Info(fmt.Sprintf("Task %s[%s] received", msg.Task, msg.ID), "task", msg.Task, "task_id", msg.ID)
	}
	now := w.now()
	if msg.ETA != nil && msg.ETA.After(now) {
		if msg.ETA.Sub(now) > w.parkAfter() || w.held.Load() >= 60000 {
			w.park(j)
			return
		}
		w.reserve(j)
		j.eta.Store(true)
		w.heldETA.Add(1)
		w.hold(j, *msg.ETA)
		return
	}
	w.reserve(j)
	w.admit(j)
}

// reserve records a job the worker holds but has not started (inspect reserved, scheduled).
func (w *Worker) reserve(j *job) {
	w.reserved.Store(j, struct{}{})
	w.nReserved.Add(1)
}

// unreserve forgets a reserved job: it started, or went back to the broker.
func (w *Worker) unreserve(j *job) {
	if _, ok := w.reserved.LoadAndDelete(j); ok {
		w.nReserved.Add(-1)
	}
	if j.eta.Swap(false) {
		w.heldETA.Add(-1)
	}
}

// admit passes a due job through its task's rate limit to the pool.
func (w *Worker) admit(j *job) {
	if !j.rated {
		j.rated = true
		if wait := w.rateWait(j.def); wait > 0 {
			w.hold(j, w.now().Add(wait))
			return
		}
	}
	w.ready <- j
}

// hold keeps an unacknowledged message until t, raising the prefetch by one so that the channel keeps
// delivering (as Celery does for ETA tasks).
func (w *Worker) hold(j *job, t time.Time) {
	n := w.held.Add(1)
	w.adjustPrefetch(n)
	w.timers.add(t, j)
}

// release is called by the timer when a held job is due.
func (w *Worker) release(j *job) {
	n := w.held.Add(-1)
	w.adjustPrefetch(n)
	if j.eta.Swap(false) {
		w.heldETA.Add(-1)
	}
	j.waited = true
	if j.d.Generation < w.gen.Load() {
		w.unreserve(j)
		return // its connection is gone; the broker delivers it again
	}
	if w.stopping.Load() {
		w.giveBack(j)
		return
	}
	w.admit(j)
}

// adjustPrefetch keeps the channel's prefetch at base + held, changing it in steps so that holding
// thousands of ETA messages costs few basic.qos calls.
func (w *Worker) adjustPrefetch(held int64) {
	base := w.prefetch.Load()
	if base == 0 {
		return // unlimited already
	}
	const step = 64
	want := base + (held+step-1)/step*step
	if want > 65535 {
		want = 65535
	}
	cur := w.curPrefetch.Load()
	if want == cur || (want < cur && cur-want < step) {
		return
	}
	if w.curPrefetch.CompareAndSwap(cur, want) {
		if err := w.br.SetPrefetch(int(want)); err != nil {
			w.log.Warn("changing prefetch", "prefetch", want, "error", err)
		}
	}
}

// newGeneration drops what the worker still holds from a lost connection: the broker redelivers it.
func (w *Worker) newGeneration(g uint64) {
	old := w.gen.Swap(g)
	if old == 0 {
		return
	}
	dropped := w.timers.removeIf(func(j *job) bool { return j.d.Generation < g })
	for _, j := range dropped {
		w.unreserve(j)
	}
	if n := len(dropped); n > 0 {
		w.held.Add(int64(-n))
		w.adjustPrefetch(w.held.Load())
		w.log.Info("dropped held messages of the lost connection; the broker delivers them again", "count", n)
	}
}

func (w *Worker) parkAfter() time.Duration {
	return seconds(w.cfg.WorkerETAParkAfter, DefaultETAParkAfter)
}

func (w *Worker) rateWait(def *taskDef) time.Duration {
	if w.cfg.WorkerDisableRateLimits {
		return 0
	}
	b, ok := w.buckets.Load(def.name)
	if !ok {
		rate := def.opts.RateLimit
		if rate == "" {
			rate = w.cfg.TaskDefaultRateLimit
		}
		interval, _ := ParseRateLimit(rate)
		b, _ = w.buckets.LoadOrStore(def.name, &tokenBucket{interval: interval})
	}
	return b.(*tokenBucket).reserve(w.now())
}

// SetRateLimit changes a task's rate limit at run time (the rate_limit control command).
func (w *Worker) SetRateLimit(task, rate string) error {
	if _, ok := w.reg.lookup(task); !ok {
		return &NotRegisteredError{Name: task}
	}
	interval, err := ParseRateLimit(rate)
	if err != nil {
		return err
	}
	b, _ := w.buckets.LoadOrStore(task, &tokenBucket{})
	b.(*tokenBucket).setInterval(interval)
	if interval > 0 {
		w.rates.Store(task, rate)
	} else {
		w.rates.Delete(task)
	}
	return nil
}

// expired acks and revokes a job whose expires time has passed; it reports whether it did.
func (w *Worker) expired(j *job) bool {
	if j.msg.Expires == nil || !w.now().After(*j.msg.Expires) {
		return false
	}
	w.stats.Revoked.Add(1)
	w.unreserve(j)
	w.log.Warn(fmt.Sprintf("Discarding revoked task: %s[%s] (expired)", j.msg.Task, j.msg.ID), "task_id", j.msg.ID)
	// Celery remembers an expired id as revoked (Request.maybe_expire), in memory.
	w.revoked.add(j.msg.ID, w.now().Add(w.revokeTTL()))
	w.sendTaskEvent(func() events.Event { return events.NewTaskRevoked(j.msg.ID, false, 0, true) })
	w.storeRevoked(j, "expired")
	w.settle(j, func() error { return j.d.Ack() })
	if w.metrics != nil {
		w.metrics.TaskFinished(j.msg.Task, "expired", 0)
	}
	return true
}

// process runs one job on a pool goroutine.
func (w *Worker) process(j *job) {
	w.unreserve(j)
	if w.stopping.Load() || j.d.Generation < w.gen.Load() {
		if !w.stopping.Load() {
			return // stale: redelivered by the broker
		}
		w.giveBack(j)
		return
	}
	if w.expired(j) {
		return
	}
	if w.revokedBeforeStart(j) {
		w.discardRevoked(j)
		return
	}
	o := w.taskOpts(j)
	if o.acksLate && j.d.Redelivered && w.cfg.WorkerDeduplicateSuccess && w.alreadySucceeded(j) {
		w.log.Info(fmt.Sprintf("Task %s[%s] was already successfully executed: discarding the redelivered message", j.msg.Task, j.msg.ID), "task_id", j.msg.ID)
		w.settle(j, j.d.Ack)
		return
	}
	if !o.acksLate && j.d.Redelivered && w.ranBefore(j) {
		w.log.Warn(fmt.Sprintf("Task %s[%s] already ran: discarding its redelivered message (its ack was lost with the connection)", j.msg.Task, j.msg.ID), "task_id", j.msg.ID)
		w.settle(j, j.d.Ack)
		return
	}
	if !o.acksLate {
		if err := j.d.Ack(); err != nil {
			// The connection was lost: the broker will deliver the message again. Running it now
			// would run it twice.
			w.log.Info("not running a task whose message could not be acknowledged", "task_id", j.msg.ID, "error", err)
			return
		}
		j.acked.Store(true)
	}
	w.started.add(startKey(j.msg))
	w.running.Add(1)
	defer w.running.Done()
	w.active.Store(j.msg.ID, j)
	defer w.active.Delete(j.msg.ID)
	// A revoke that arrived since the check above found the job neither here nor in the set in
	// time: the revoke marks the set before it looks for active tasks, so one of the two sees it.
	if w.revoked.has(j.msg.ID, w.now()) {
		w.discardRevoked(j)
		return
	}
	now := w.now()
	j.startedAt.Store(now.UnixNano())
	j.started = now
	w.stats.Started.Add(1)
	w.countStart(j.msg.Task)
	if w.metrics != nil {
		w.metrics.TaskStarted(j.msg.Task, now.Sub(j.due()))
	}
	w.sendTaskEvent(func() events.Event { return events.NewTaskStarted(j.msg.ID) })
	if o.trackStarted {
		res, _ := json.Marshal(map[string]any{"pid": w.pid, "hostname": w.hostname})
		w.store(j, protocol.ResultMeta{Status: protocol.StateStarted, Result: res})
	}
	result, err, abandoned := w.run(j, o)
	w.finish(j, o, result, err, abandoned)
}

// countStart counts a started task by name (stats "total").
func (w *Worker) countStart(task string) {
	c, ok := w.totals.Load(task)
	if !ok {
		c, _ = w.totals.LoadOrStore(task, new(atomic.Int64))
	}
	c.(*atomic.Int64).Add(1)
}

// ranBefore reports whether a redelivered message's task already ran: this worker started it
// (same id and retry count) or its result is final in the backend. Without acks_late the message
// was acknowledged before the task ran, so a redelivery only means the ack was lost in flight.
func (w *Worker) ranBefore(j *job) bool {
	if w.started.has(startKey(j.msg)) {
		return true
	}
	if w.backend == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := w.backend.Get(ctx, j.msg.ID)
	return err == nil && protocol.IsReady(m.Status)
}

func startKey(m *protocol.TaskMessage) string { return m.ID + "/" + strconv.Itoa(m.Retries) }

// alreadySucceeded reports whether the backend holds a SUCCESS for the job's id
// (worker_deduplicate_successful_tasks).
func (w *Worker) alreadySucceeded(j *job) bool {
	if w.backend == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := w.backend.Get(ctx, j.msg.ID)
	return err == nil && m.Status == protocol.StateSuccess
}

// taskSettings are a job's effective options.
type taskSettings struct {
	acksLate, acksOnFailure, rejectOnLost, trackStarted, ignoreResult bool
	hard, soft                                                        time.Duration
}

func (w *Worker) taskOpts(j *job) taskSettings {
	t := j.def.opts
	s := taskSettings{
		acksLate:      pick(t.AcksLate, w.cfg.TaskAcksLate),
		acksOnFailure: pick(t.AcksOnFailureOrTimeout, *w.cfg.TaskAcksOnFailure),
		rejectOnLost:  pick(t.RejectOnWorkerLost, w.cfg.TaskRejectOnLost),
		trackStarted:  pick(t.TrackStarted, w.cfg.TaskTrackStarted),
		ignoreResult:  pick(t.IgnoreResult, w.cfg.TaskIgnoreResult) || j.msg.IgnoreResult,
		hard:          seconds(w.cfg.TaskTimeLimit, 0),
		soft:          seconds(w.cfg.TaskSoftTimeLimit, 0),
	}
	if t.TimeLimit != nil {
		s.hard = *t.TimeLimit
	}
	if t.SoftTimeLimit != nil {
		s.soft = *t.SoftTimeLimit
	}
	if v, ok := w.limits.Load(j.def.name); ok {
		// Set by the time_limit control command: like Celery's task attributes, a limit it left
		// unset falls back to the configured one.
		l := v.(timeLimits)
		s.hard, s.soft = seconds(w.cfg.TaskTimeLimit, 0), seconds(w.cfg.TaskSoftTimeLimit, 0)
		if l.hard != nil {
			s.hard = *l.hard
		}
		if l.soft != nil {
			s.soft = *l.soft
		}
	}
	if h := j.msg.TimeLimit.Hard; h != nil && *h > 0 {
		s.hard = time.Duration(*h * float64(time.Second))
	}
	if sl := j.msg.TimeLimit.Soft; sl != nil && *sl > 0 {
		s.soft = time.Duration(*sl * float64(time.Second))
	}
	return s
}

func pick(v *bool, def bool) bool {
	if v != nil {
		return *v
	}
	return def
}

// run executes the task body with its time limits. abandoned is true when the hard time limit
// expired and the worker stopped waiting for the task's goroutine.
func (w *Worker) run(j *job, o taskSettings) (result json.RawMessage, err error, abandoned bool) {
	ctx, cancel := context.WithCancelCause(w.taskCtx)
	defer cancel(nil)
	j.setCancel(cancel)
	if o.soft > 0 {
		t := time.AfterFunc(o.soft, func() { cancel(ErrSoftTimeLimit) })
		defer t.Stop()
	}
	req := w.request(j)
	call := func() (res json.RawMessage, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = &PanicError{Value: p, Stack: string(debug.Stack())}
			}
		}()
		return j.def.run(ctx, req, j.msg.Args, j.msg.Kwargs)
	}
	if o.hard <= 0 {
		result, err = call()
	} else {
		type outcome struct {
			res json.RawMessage
			err error
		}
		done := make(chan outcome, 1)
		go func() {
			r, e := call()
			done <- outcome{r, e}
		}()
		t := time.NewTimer(o.hard)
		defer t.Stop()
		select {
		case out := <-done:
			result, err = out.res, out.err
		case <-t.C:
			cancel(ErrHardTimeLimit)
			w.log.Error(fmt.Sprintf("Hard time limit (%gs) exceeded for %s[%s]; its goroutine is abandoned (its context is cancelled)",
				o.hard.Seconds(), j.msg.Task, j.msg.ID), "task_id", j.msg.ID)
			return nil, &timeLimitError{hard: true, limit: o.hard}, true
		}
	}
	if err != nil && errors.Is(context.Cause(ctx), ErrSoftTimeLimit) && !isSignal(err) {
		err = &timeLimitError{limit: o.soft, cause: err}
	}
	return result, err, false
}

func isSignal(err error) bool {
	var r *RetryError
	var rj *RejectError
	return errors.As(err, &r) || errors.As(err, &rj) || errors.Is(err, ErrIgnore)
}

// timeLimitError is a task stopped by a time limit; Python sees billiard's exceptions.
type timeLimitError struct {
	hard  bool
	limit time.Duration
	cause error
}

func (e *timeLimitError) Error() string {
	if e.hard {
		return fmt.Sprintf("TimeLimitExceeded(%g)", e.limit.Seconds())
	}
	return fmt.Sprintf("SoftTimeLimitExceeded(%g): %v", e.limit.Seconds(), e.cause)
}
func (e *timeLimitError) Unwrap() error { return e.cause }

func (w *Worker) request(j *job) *Request {
	m := j.msg
	r := &Request{
		ID: m.ID, Task: m.Task, Shadow: m.Shadow, Retries: m.Retries, ETA: m.ETA, Expires: m.Expires,
		RootID: m.RootID, ParentID: m.ParentID, GroupID: m.GroupID, GroupIndex: m.GroupIndex,
		Origin: m.Origin, Hostname: w.hostname, Headers: m.ExtraHeaders,
		DeliveryInfo: DeliveryInfo{Exchange: j.d.Exchange, RoutingKey: j.d.RoutingKey, Queue: j.d.Queue,
			Priority: j.d.Priority, Redelivered: j.d.Redelivered},
		state: w,
	}
	return r
}

// updateState implements Request.UpdateState.
func (w *Worker) updateState(ctx context.Context, req *Request, state string, meta any) error {
	if w.backend == nil {
		return errors.New("update_state: no result backend configured")
	}
	raw, err := marshalResult(meta)
	if err != nil {
		return err
	}
	j, _ := w.active.Load(req.ID)
	m := protocol.ResultMeta{Status: state, Result: raw, TaskID: req.ID, GroupID: req.GroupID, ParentID: req.ParentID}
	if jj, ok := j.(*job); ok {
		w.extend(jj, &m)
	}
	return w.backend.Store(ctx, m)
}

// finish records the outcome of a run and settles the message.
func (w *Worker) finish(j *job, o taskSettings, result json.RawMessage, err error, abandoned bool) {
	runtime := w.now().Sub(j.started)
	m := j.msg
	if err != nil && w.terminated.Load() {
		w.lost(j, o, err)
		return
	}
	if sig, ok := j.terminatedBy(); ok {
		w.revokedWhileRunning(j, o, sig, runtime)
		return
	}
	if err != nil {
		if def := j.def; def.opts.AutoRetryFor != nil && !isSignal(err) && !abandoned && def.opts.AutoRetryFor(err) {
			err = Retry(err, Countdown(w.backoff(j)))
		}
	}
	var rerr *RetryError
	var rj *RejectError
	switch {
	case err == nil:
		w.stats.Succeeded.Add(1)
		if w.infoOn() {
			w.log.Info(fmt.Sprintf("Task %s[%s] succeeded in %.6fs: %s", m.Task, m.ID, runtime.Seconds(), protocol.SafeRepr(result, protocol.ReprMaxSize)),
				"task", m.Task, "task_id", m.ID, "runtime", runtime.Seconds())
		}
		children := w.canvasSucceeded(j, result)
		meta := protocol.ResultMeta{Status: protocol.StateSuccess, Result: result, Children: children}
		if w.isChordMember(m) && !o.ignoreResult && w.backend != nil {
			full := w.resultMeta(j, meta) // stored with its chord part, in one round trip
			w.chordPartStoring(m, protocol.StateSuccess, result, &full)
		} else {
			if !o.ignoreResult {
				w.store(j, meta)
			}
			w.chordPart(m, protocol.StateSuccess, result)
		}
		if o.acksLate {
			w.settle(j, j.d.Ack)
		}
		w.sendTaskEvent(func() events.Event { return events.NewTaskSucceeded(m.ID, result, runtime) })
		w.finished(j, "success", runtime)
	case errors.Is(err, ErrIgnore):
		w.log.Info(fmt.Sprintf("Task %s[%s] ignored", m.Task, m.ID), "task_id", m.ID)
		if o.acksLate {
			w.settle(j, j.d.Ack)
		}
		w.finished(j, "ignored", runtime)
	case errors.As(err, &rj):
		w.reject(j, o, rj)
	case errors.As(err, &rerr):
		w.retry(j, o, rerr)
	default:
		w.fail(j, o, err, runtime, abandoned)
	}
}

// lost handles a task stopped by a cold shutdown: with acks_late its message goes back to the
// queue and nothing is stored (it will run again); otherwise its message is gone, and the failure
// is stored as Celery's WorkerLostError so that callers are not left waiting.
func (w *Worker) lost(j *job, o taskSettings, err error) {
	m := j.msg
	if o.acksLate {
		w.log.Warn(fmt.Sprintf("Task %s[%s] stopped by cold shutdown; its message returns to the queue", m.Task, m.ID), "task_id", m.ID, "error", err)
		w.settle(j, func() error { return j.d.Reject(true) })
		return
	}
	w.stats.Failed.Add(1)
	w.finished(j, "failure", w.now().Sub(j.started))
	w.log.Error(fmt.Sprintf("Task %s[%s] stopped by cold shutdown after its message was acknowledged", m.Task, m.ID), "task_id", m.ID, "error", err)
	tb := fmt.Sprintf("WorkerLostError: cold shutdown of %s while the task ran: %v\n", w.hostname, err)
	w.sendTaskEvent(func() events.Event {
		return events.NewTaskFailed(m.ID, "WorkerLostError('Worker exited prematurely: cold shutdown')", tb)
	})
	w.store(j, protocol.ResultMeta{Status: protocol.StateFailure, Traceback: &tb,
		Result: exceptionJSON("WorkerLostError", "billiard.exceptions", "Worker exited prematurely: cold shutdown")})
}

func (w *Worker) fail(j *job, o taskSettings, err error, runtime time.Duration, abandoned bool) {
	m := j.msg
	w.stats.Failed.Add(1)
	info, tb := exceptionInfo(err)
	w.log.Error(fmt.Sprintf("Task %s[%s] raised unexpected: %s", m.Task, m.ID, excRepr(info)),
		"task", m.Task, "task_id", m.ID, "runtime", runtime.Seconds(), "error", err)
	w.sendTaskEvent(func() events.Event { return events.NewTaskFailed(m.ID, excRepr(info), tb) })
	w.finished(j, "failure", runtime)
	failure := protocol.ResultMeta{Status: protocol.StateFailure, Result: protocol.ExceptionResult(info), Traceback: &tb}
	if !(pick(j.def.opts.IgnoreResult, false) && !j.def.opts.StoreErrorsEvenIfIgnored) {
		w.store(j, failure)
	}
	if w.canvas != nil {
		t := w.now().UTC()
		failure.DateDone = &t
		w.canvasFailed(j, failure)
		w.chordPart(m, protocol.StateFailure, failure.Result)
	}
	if !o.acksLate {
		return
	}
	switch {
	case abandoned && o.rejectOnLost:
		w.settle(j, func() error { return j.d.Reject(true) })
	case o.acksOnFailure:
		w.settle(j, j.d.Ack)
	default:
		w.deadLetter(j.d, fmt.Sprintf("task failed and acks_on_failure_or_timeout is off: %s: %v", info.Type, err))
	}
}

func (w *Worker) reject(j *job, o taskSettings, rj *RejectError) {
	m := j.msg
	w.log.Warn(fmt.Sprintf("Task %s[%s] rejected (requeue=%v): %v", m.Task, m.ID, rj.Requeue, rj.Err), "task_id", m.ID)
	w.sendTaskEvent(func() events.Event { return events.NewTaskRejected(m.ID, rj.Requeue) })
	w.finished(j, "rejected", w.now().Sub(j.started))
	if !o.acksLate {
		// Already acknowledged before it ran (early ack); nothing can be requeued.
		if rj.Requeue {
			w.log.Warn("Reject(requeue=true) has no effect without acks_late: the message was acknowledged before the task ran", "task_id", m.ID)
		}
		return
	}
	if rj.Requeue {
		w.settle(j, func() error { return j.d.Reject(true) })
		return
	}
	reason := "rejected by the task"
	if rj.Err != nil {
		reason += ": " + rj.Err.Error()
	}
	w.deadLetter(j.d, reason)
}

// retry republishes the task with retries+1 and an eta, as Task.retry does, and stores RETRY.
func (w *Worker) retry(j *job, o taskSettings, rerr *RetryError) {
	m := j.msg
	maxRetries := DefaultMaxRetries
	if j.def.opts.MaxRetries != nil {
		maxRetries = *j.def.opts.MaxRetries
	}
	if rerr.MaxRetries != nil {
		maxRetries = *rerr.MaxRetries
	}
	if maxRetries >= 0 && m.Retries >= maxRetries {
		var err error = &MaxRetriesExceededError{Task: m.Task, ID: m.ID, Args: protocol.ReprArgs(m.Args), Kwargs: protocol.ReprKwargs(m.KwargsOrder, m.Kwargs)}
		if rerr.Err != nil {
			err = rerr.Err
		}
		w.fail(j, o, err, w.now().Sub(j.started), false)
		return
	}
	delay := DefaultRetryCountdown
	if j.def.opts.DefaultRetryDelay != nil {
		delay = *j.def.opts.DefaultRetryDelay
	}
	if rerr.Countdown != nil {
		delay = *rerr.Countdown
	}
	eta := w.now().Add(delay)
	if rerr.ETA != nil {
		eta = *rerr.ETA
	}
	next := *m
	next.Retries = m.Retries + 1
	next.ETA = &eta
	next.ParentID = m.ID
	next.ExtraHeaders = republishHeaders(m.ExtraHeaders)
	if p := j.d.Priority; p > 0 || m.Priority != nil {
		next.Priority = &p
	}
	env, err := protocol.EncodeV2(&next, protocol.EncodeOptions{Serializer: w.cfg.TaskSerializer})
	if err == nil {
		env.ReplyTo = m.ReplyTo
		pub := broker.Publishing{Exchange: j.d.Exchange, RoutingKey: j.d.RoutingKey, Envelope: env, Timestamp: w.now()}
		if j.d.Exchange == "" {
			pub.RoutingKey = j.d.Queue
			if j.d.RoutingKey != "" {
				pub.RoutingKey = j.d.RoutingKey
			}
		}
		err = w.publish(pub)
	}
	if err != nil {
		w.log.Error(fmt.Sprintf("Task %s[%s] could not be retried: %v", m.Task, m.ID, err), "task_id", m.ID)
		w.fail(j, o, fmt.Errorf("retry could not be published: %w", err), w.now().Sub(j.started), false)
		return
	}
	w.stats.Retried.Add(1)
	if rerr.ETA != nil {
		delay = eta.Sub(w.now())
	}
	reason := "Retry in " + formatDelay(delay)
	if rerr.Err != nil {
		reason += ": " + rerr.Err.Error()
	}
	w.log.Info(fmt.Sprintf("Task %s[%s] retry: %s", m.Task, m.ID, reason), "task_id", m.ID, "retries", next.Retries)
	var res json.RawMessage
	var tb *string
	if rerr.Err != nil {
		info, t := exceptionInfo(rerr.Err)
		res, tb = protocol.ExceptionResult(info), &t
	} else {
		res = exceptionJSON("Retry", "celery.exceptions", reason)
	}
	// The retried message is the task's child, as in Celery (Task.retry applies it from the task).
	w.store(j, protocol.ResultMeta{Status: protocol.StateRetry, Result: res, Traceback: tb, Children: append(append(json.RawMessage("["), protocol.TaskTuple(m.ID)...), ']')})
	if o.acksLate {
		w.settle(j, j.d.Ack)
	}
	w.sendTaskEvent(func() events.Event {
		exc, trace := "Retry("+pyRepr(reason)+")", ""
		if rerr.Err != nil {
			info, t := exceptionInfo(rerr.Err)
			exc, trace = excRepr(info), t
		}
		return events.NewTaskRetried(m.ID, exc, trace)
	})
	w.finished(j, "retry", w.now().Sub(j.started))
}

func formatDelay(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return fmt.Sprintf("%gs", d.Round(time.Millisecond).Seconds())
}

// backoff is the countdown of an automatic retry: factor·2^retries capped, with full jitter.
func (w *Worker) backoff(j *job) time.Duration {
	o := j.def.opts
	if o.RetryBackoff <= 0 {
		if o.DefaultRetryDelay != nil {
			return *o.DefaultRetryDelay
		}
		return DefaultRetryCountdown
	}
	maxB := o.RetryBackoffMax
	if maxB <= 0 {
		maxB = 600 * time.Second
	}
	d := o.RetryBackoff
	for i := 0; i < j.msg.Retries && d < maxB; i++ {
		d *= 2
	}
	d = min(d, maxB)
	if o.RetryJitter == nil || *o.RetryJitter {
		d = time.Duration(rand.Int64N(int64(d) + 1))
	}
	return d
}

// MaxRetriesExceededError is the failure of a task that asked for more retries than allowed.
type MaxRetriesExceededError struct{ Task, ID, Args, Kwargs string }

func (e *MaxRetriesExceededError) Error() string {
	return fmt.Sprintf("Can't retry %s[%s] args:%s kwargs:%s", e.Task, e.ID, e.Args, e.Kwargs)
}

// ExcType makes it Celery's MaxRetriesExceededError.
func (e *MaxRetriesExceededError) ExcType() string { return "MaxRetriesExceededError" }

// ExcModule is celery.exceptions, so Python raises the real class.
func (e *MaxRetriesExceededError) ExcModule() string { return "celery.exceptions" }

// exceptionInfo describes err for the result backend, with a traceback-like text.
func exceptionInfo(err error) (protocol.ExceptionInfo, string) {
	var tl *timeLimitError
	if errors.As(err, &tl) {
		if tl.hard {
			return protocol.ExceptionInfo{Type: "TimeLimitExceeded", Module: "billiard.exceptions", Message: []any{tl.limit.Seconds()}},
				fmt.Sprintf("Go task stopped: hard time limit (%gs) exceeded\n", tl.limit.Seconds())
		}
		return protocol.ExceptionInfo{Type: "SoftTimeLimitExceeded", Module: "billiard.exceptions",
				Message: []any{fmt.Sprintf("soft time limit (%gs) exceeded", tl.limit.Seconds())}},
			fmt.Sprintf("Go task stopped: soft time limit (%gs) exceeded: %v\n", tl.limit.Seconds(), tl.cause)
	}
	typ, mod, msg := ExceptionOf(err)
	tb := "Traceback (most recent call last):\n  Go task error chain:\n"
	for e := err; e != nil; e = errors.Unwrap(e) {
		tb += fmt.Sprintf("    %T: %s\n", e, e.Error())
	}
	var p *PanicError
	if errors.As(err, &p) {
		tb += p.Stack
	}
	tb += typ + ": " + msg + "\n"
	return protocol.ExceptionInfo{Type: typ, Module: mod, Message: []any{msg}}, tb
}

func exceptionJSON(typ, module, msg string) json.RawMessage {
	return protocol.ExceptionResult(protocol.ExceptionInfo{Type: typ, Module: module, Message: []any{msg}})
}

// pyRepr is Python's repr() of v, for log lines shaped like Celery's.
func pyRepr(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return protocol.Repr(raw)
}

// excRepr is Python's repr() of the exception info describes, e.g. ValueError('boom').
func excRepr(info protocol.ExceptionInfo) string {
	parts := make([]string, len(info.Message))
	for i, m := range info.Message {
		parts[i] = pyRepr(m)
	}
	return info.Type + "(" + strings.Join(parts, ", ") + ")"
}

// extend adds the result_extended fields.
func (w *Worker) extend(j *job, m *protocol.ResultMeta) {
	if !w.cfg.ResultExtended {
		return
	}
	args, _ := json.Marshal(j.msg.Args)
	if j.msg.Args == nil {
		args = []byte("[]")
	}
	kwargs, _ := json.Marshal(j.msg.Kwargs)
	if j.msg.Kwargs == nil {
		kwargs = []byte("{}")
	}
	name := j.msg.Task
	m.Extended = &protocol.ExtendedMeta{Name: name, Args: args, Kwargs: kwargs, Worker: w.hostname,
		Retries: j.msg.Retries, Queue: j.d.RoutingKey}
}

// store writes a state for the job, retrying with backoff while the backend is unreachable: a
// finished task's result is never dropped because Redis blinked. It gives up only on cold shutdown.
func (w *Worker) store(j *job, m protocol.ResultMeta) {
	if w.backend == nil {
		return
	}
	w.storeMeta(w.resultMeta(j, m))
}

// resultMeta completes m for j's message: its ids, date_done for a ready state and, with
// result_extended, the request fields.
func (w *Worker) resultMeta(j *job, m protocol.ResultMeta) protocol.ResultMeta {
	m.TaskID = j.msg.ID
	m.GroupID = j.msg.GroupID
	m.ParentID = j.msg.ParentID
	if protocol.IsReady(m.Status) {
		t := w.now().UTC()
		m.DateDone = &t
	}
	w.extend(j, &m)
	return m
}

func (w *Worker) storeMeta(m protocol.ResultMeta) {
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := w.backend.Store(ctx, m)
		cancel()
		var tmp interface{ Temporary() bool }
		if err != nil && errors.As(err, &tmp) && !tmp.Temporary() {
			// Not a connection problem: storing again cannot help. A SUCCESS already stored (a
			// redelivered task that had finished) is kept, as Celery keeps it.
			w.log.Warn("result not stored", "task_id", m.TaskID, "state", m.Status, "reason", err)
			return
		}
		if err == nil {
			if attempt > 1 {
				w.log.Info("result stored after the backend came back", "task_id", m.TaskID, "attempts", attempt)
			}
			return
		}
		if w.taskCtx != nil && w.taskCtx.Err() != nil {
			w.log.Error("result lost: cold shutdown while the result backend was unreachable", "task_id", m.TaskID, "state", m.Status, "error", err)
			return
		}
		if attempt == 1 || attempt%20 == 0 {
			w.log.Error("storing result failed, retrying", "task_id", m.TaskID, "state", m.Status, "attempt", attempt, "error", err)
		}
		time.Sleep(backoff)
		backoff = min(backoff*2, 5*time.Second)
	}
}

// settle acknowledges or rejects a message, logging (not failing) when its connection is gone.
func (w *Worker) settle(j *job, f func() error) {
	if err := f(); err != nil {
		if errors.Is(err, broker.ErrStaleDelivery) {
			w.log.Warn("could not settle the message: its connection was lost and the broker delivers it again", "task_id", j.msg.ID)
			return
		}
		if errors.Is(err, broker.ErrAlreadySettled) {
			w.log.Error("settling a message twice (a bug: nothing was sent to the broker)", "task_id", j.msg.ID, "task", j.msg.Task,
				"stack", string(debug.Stack()))
			return
		}
		w.log.Error("settling a message", "task_id", j.msg.ID, "error", err)
	}
}

// publish sends a message the worker produces (retry, dead letter, park), waiting for the confirm;
// it keeps trying across reconnects, for at most a minute.
func (w *Worker) publish(p broker.Publishing) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return w.br.Publish(ctx, p)
}

// republishHeaders are the custom headers a retry carries over: everything but what brokers and
// this worker add on the way (x-death from RabbitMQ's dead-lettering, the dead-letter markers).
func republishHeaders(h map[string]any) map[string]any {
	if len(h) == 0 {
		return h
	}
	out := make(map[string]any, len(h))
	for k, v := range h {
		switch k {
		case "x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
			"x-last-death-exchange", "x-last-death-queue", "x-last-death-reason",
			HeaderDeadLetterReason, HeaderOriginalQueue, HeaderOriginalExchange, HeaderOriginalKey,
			HeaderDeadLetteredBy, HeaderDeadLetteredAt:
			continue
		}
		out[k] = v
	}
	return out
}
