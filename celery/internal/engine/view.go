// This file holds what remote control and inspect (package workerctl) read of the engine: the
// jobs it holds, the limits set at run time, the counters, and the revoked ids it learns.

package engine

import (
	"context"
	"log/slog"
	"sort"
	"sync/atomic"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/events"
	"github.com/forumads/forumads/celery/protocol"
)

// JobView is a read-only picture of a message the engine holds, for inspect.
type JobView struct {
	Msg       *protocol.TaskMessage
	Delivery  *broker.Delivery
	Received  time.Time // when intake took it
	StartedAt int64     // unix ns when it started, 0 before
	Acked     bool      // its message is acknowledged
	ETA       bool      // held until its ETA
}

func (j *job) view() JobView {
	return JobView{Msg: j.msg, Delivery: j.d, Received: j.received, StartedAt: j.startedAt.Load(),
		Acked: j.acked.Load(), ETA: j.eta.Load()}
}

// ActiveJobs are the running jobs, oldest first.
func (w *Engine) ActiveJobs() []JobView {
	var out []*job
	w.active.Range(func(_ string, v *job) bool {
		out = append(out, v)
		return true
	})
	sort.Slice(out, func(a, b int) bool { return out[a].startedAt.Load() < out[b].startedAt.Load() })
	return views(out)
}

// ReservedJobs are the jobs received and not started: waiting for their ETA (eta) or not, in the
// order received.
func (w *Engine) ReservedJobs(eta bool) []JobView {
	var out []*job
	w.reserved.Range(func(j *job, _ struct{}) bool {
		if j.eta.Load() == eta {
			out = append(out, j)
		}
		return true
	})
	sort.Slice(out, func(a, b int) bool { return out[a].received.Before(out[b].received) })
	return views(out)
}

func views(jobs []*job) []JobView {
	out := make([]JobView, len(jobs))
	for i, j := range jobs {
		out[i] = j.view()
	}
	return out
}

// Tasks are the registered tasks.
func (w *Engine) Tasks() Tasks { return w.reg }

// Settings are the settings the engine was made with.
func (w *Engine) Settings() Settings { return w.cfg }

// Logger is the engine's logger.
func (w *Engine) Logger() *slog.Logger { return w.log }

// Events is the task-event dispatcher (nil: none).
func (w *Engine) Events() *events.Dispatcher { return w.events }

// PID is the process id stats and requests report.
func (w *Engine) PID() int { return w.pid }

// Began is when the engine was made (stats: uptime).
func (w *Engine) Began() time.Time { return w.began }

// Totals are the tasks started since start, by name (stats "total").
func (w *Engine) Totals() map[string]int64 {
	total := map[string]int64{}
	w.totals.Range(func(k, v any) bool {
		total[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return total
}

// RateLimitOf is the task's rate limit now (registered, set by rate_limit, or the default), if any.
func (w *Engine) RateLimitOf(task string) (string, bool) {
	v, ok := w.rates.Load(task)
	if !ok {
		return "", false
	}
	return v.(string), true
}

// TimeLimitsOf are the task's limits set by the time_limit command (nil: the configured one); ok is
// false when the command never set them.
func (w *Engine) TimeLimitsOf(task string) (hard, soft *time.Duration, ok bool) {
	v, ok := w.limits.Load(task)
	if !ok {
		return nil, nil, false
	}
	l := v.(timeLimits)
	return l.hard, l.soft, true
}

// LearnRevoked revokes ids another worker knows (mingle, hello) here and in the revoke store; the
// store's error is returned after they were revoked in memory.
func (w *Engine) LearnRevoked(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	exp := w.now().Add(w.revokeTTL())
	for _, id := range ids {
		w.revoked.Add(id, exp)
	}
	if w.revokes == nil {
		return nil
	}
	return w.revokes.Revoke(ctx, ids, false, "")
}
