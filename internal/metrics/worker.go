package metrics

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// MaxTaskLabels is how many distinct task names the task label takes before new names are
// counted as [LabelOther] (unless [Worker.SetKnownTasks] restricts it to the registry).
const MaxTaskLabels = 500

// Buckets of the worker histograms, in seconds.
var (
	// RuntimeBuckets are the buckets of celery_task_runtime_seconds: 1ms to one hour.
	RuntimeBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}
	// QueueWaitBuckets are the buckets of celery_task_queue_wait_seconds: 1ms to one hour.
	QueueWaitBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}
)

// WorkerState is what the worker's gauges show, read once per scrape from the function given to
// [Worker.SetStateFunc].
type WorkerState struct {
	// Active is the number of tasks running now (celery_worker_active_tasks).
	Active int
	// Reserved is the number of messages received but not yet running (celery_worker_reserved_tasks).
	Reserved int
	// HeldETA is the number of messages held until their ETA (celery_worker_eta_held_tasks).
	HeldETA int
	// Prefetch is the current prefetch count (QoS) of the consumer (celery_worker_prefetch_count).
	Prefetch int
	// Reconnects counts broker reconnections since start (celery_worker_broker_reconnects_total).
	Reconnects int64
	// Processed counts tasks finished since start, whatever their outcome
	// (celery_worker_processed_tasks_total).
	Processed int64
}

// Worker holds the Celery worker's metrics. Its methods are safe for concurrent use.
type Worker struct {
	tasks *limiter

	received  *prometheus.CounterVec
	finished  *prometheus.CounterVec
	runtime   *prometheus.HistogramVec
	queueWait *prometheus.HistogramVec
	dead      *prometheus.CounterVec
	state     *stateCollector
}

// NewWorker creates the worker metrics and registers them with reg (nil: not registered). It
// panics if they are already registered there, as registering twice is a programming error.
func NewWorker(reg prometheus.Registerer) *Worker {
	m := &Worker{
		tasks: newLimiter(MaxTaskLabels),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "celery_tasks_received_total",
			Help: "Task messages received by the worker, by task name.",
		}, []string{"task"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "celery_tasks_total",
			Help: "Tasks finished by the worker, by task name and outcome (success, failure, retry, revoked, rejected, ignored, expired).",
		}, []string{"task", "outcome"}),
		runtime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "celery_task_runtime_seconds",
			Help:    "How long tasks ran, by task name.",
			Buckets: RuntimeBuckets,
		}, []string{"task"}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "celery_task_queue_wait_seconds",
			Help:    "Time from when a task was due (sent, or its ETA) to when it started, by task name.",
			Buckets: QueueWaitBuckets,
		}, []string{"task"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "celery_worker_dead_lettered_total",
			Help: "Messages moved to the dead-letter queue, by reason kind.",
		}, []string{"reason"}),
		state: newStateCollector(),
	}
	if reg != nil {
		reg.MustRegister(m.received, m.finished, m.runtime, m.queueWait, m.dead, m.state)
	}
	return m
}

// SetKnownTasks restricts the task label to names (normally the worker's registered tasks): any
// other name is counted as [LabelUnknown]. Without it the first [MaxTaskLabels] names seen are kept.
func (m *Worker) SetKnownTasks(names []string) { m.tasks.setKnown(names) }

// TaskReceived counts a task message received (celery_tasks_received_total).
func (m *Worker) TaskReceived(task string) {
	m.received.WithLabelValues(m.tasks.value(task)).Inc()
}

// TaskStarted observes how long a task waited between being due and starting
// (celery_task_queue_wait_seconds). A negative wait (clock skew) is observed as 0.
func (m *Worker) TaskStarted(task string, queueWait time.Duration) {
	m.queueWait.WithLabelValues(m.tasks.value(task)).Observe(seconds(queueWait))
}

// TaskFinished counts a finished task by outcome (celery_tasks_total) and observes its runtime
// (celery_task_runtime_seconds). outcome is one of [Outcomes]; anything else is counted as
// [LabelUnknown]. The runtime of a task that never ran (revoked, expired: runtime 0) is not observed.
func (m *Worker) TaskFinished(task, outcome string, runtime time.Duration) {
	t := m.tasks.value(task)
	m.finished.WithLabelValues(t, oneOf(outcome, Outcomes)).Inc()
	if runtime > 0 {
		m.runtime.WithLabelValues(t).Observe(runtime.Seconds())
	}
}

// DeadLettered counts a message moved to the dead-letter queue (celery_worker_dead_lettered_total).
// reason may be the full x-dead-letter-reason text; it is reduced to its kind (see
// [DeadLetterReasons]).
func (m *Worker) DeadLettered(reason string) {
	m.dead.WithLabelValues(reasonKind(reason)).Inc()
}

// SetStateFunc sets the function the worker gauges are read from at scrape time. It is called
// once per scrape, from the scraping goroutine, so it must be safe for concurrent use. Until it
// is set (or with nil) the gauges read 0.
func (m *Worker) SetStateFunc(f func() WorkerState) { m.state.f.Store(&f) }

func seconds(d time.Duration) float64 {
	if d < 0 {
		return 0
	}
	return d.Seconds()
}

// stateCollector exposes a WorkerState snapshot, taken once per scrape.
type stateCollector struct {
	f                                           atomic.Pointer[func() WorkerState]
	active, reserved, held, prefetch, reconnect *prometheus.Desc
	processed                                   *prometheus.Desc
}

func newStateCollector() *stateCollector {
	return &stateCollector{
		active:    prometheus.NewDesc("celery_worker_active_tasks", "Tasks running now.", nil, nil),
		reserved:  prometheus.NewDesc("celery_worker_reserved_tasks", "Messages received and waiting to run (not held for an ETA).", nil, nil),
		held:      prometheus.NewDesc("celery_worker_eta_held_tasks", "Messages held in memory until their ETA.", nil, nil),
		prefetch:  prometheus.NewDesc("celery_worker_prefetch_count", "The consumer's current prefetch count (QoS).", nil, nil),
		reconnect: prometheus.NewDesc("celery_worker_broker_reconnects_total", "Broker reconnections since the worker started.", nil, nil),
		processed: prometheus.NewDesc("celery_worker_processed_tasks_total", "Tasks finished since the worker started, whatever their outcome.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.active, c.reserved, c.held, c.prefetch, c.reconnect, c.processed} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. A panicking state function is reported as an invalid
// metric (the scrape fails with that error) instead of crashing the program.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s, err := c.snapshot()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.active, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(s.Active))
	ch <- prometheus.MustNewConstMetric(c.reserved, prometheus.GaugeValue, float64(s.Reserved))
	ch <- prometheus.MustNewConstMetric(c.held, prometheus.GaugeValue, float64(s.HeldETA))
	ch <- prometheus.MustNewConstMetric(c.prefetch, prometheus.GaugeValue, float64(s.Prefetch))
	ch <- prometheus.MustNewConstMetric(c.reconnect, prometheus.CounterValue, float64(s.Reconnects))
	ch <- prometheus.MustNewConstMetric(c.processed, prometheus.CounterValue, float64(s.Processed))
}

func (c *stateCollector) snapshot() (s WorkerState, err error) {
	p := c.f.Load()
	if p == nil || *p == nil {
		return s, nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("metrics: worker state function panicked: %v", r)
		}
	}()
	return (*p)(), nil
}
