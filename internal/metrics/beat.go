package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// MaxEntryLabels is how many distinct entry (and task) names the beat labels take before new
// names are counted as [LabelOther]; beat_schedule is far smaller.
const MaxEntryLabels = 500

// LatenessBuckets are the buckets of beat_publish_lateness_seconds: 1ms to 10s, fine-grained.
var LatenessBuckets = []float64{0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10}

// Beat holds celery beat's metrics. Its methods are safe for concurrent use.
type Beat struct {
	entries, tasks *limiter

	published *prometheus.CounterVec
	failed    *prometheus.CounterVec
	lateness  prometheus.Histogram
	count     prometheus.Gauge
}

// NewBeat creates the beat metrics and registers them with reg (nil: not registered). It panics
// if they are already registered there.
func NewBeat(reg prometheus.Registerer) *Beat {
	m := &Beat{
		entries: newLimiter(MaxEntryLabels),
		tasks:   newLimiter(MaxEntryLabels),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beat_publishes_total",
			Help: "Schedule slots published by this beat, by entry and task.",
		}, []string{"entry", "task"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beat_publish_failures_total",
			Help: "Schedule slots this beat failed to publish, by entry and task.",
		}, []string{"entry", "task"}),
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "beat_publish_lateness_seconds",
			Help:    "How long after its due time a slot was published.",
			Buckets: LatenessBuckets,
		}),
		count: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "beat_entries",
			Help: "Entries in the beat schedule.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.published, m.failed, m.lateness, m.count)
	}
	return m
}

// Published counts a published slot (beat_publishes_total) and observes how late it was
// (beat_publish_lateness_seconds; a negative lateness is observed as 0).
func (m *Beat) Published(entry, task string, lateness time.Duration) {
	m.published.WithLabelValues(m.entries.value(entry), m.tasks.value(task)).Inc()
	m.lateness.Observe(seconds(lateness))
}

// PublishFailed counts a slot that could not be published (beat_publish_failures_total).
func (m *Beat) PublishFailed(entry, task string) {
	m.failed.WithLabelValues(m.entries.value(entry), m.tasks.value(task)).Inc()
}

// SetEntries sets the number of schedule entries (beat_entries).
func (m *Beat) SetEntries(n int) { m.count.Set(float64(n)) }
