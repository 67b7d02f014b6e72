// This file holds what the worker does with messages it cannot run yet: the ETA hold and release,
// prefetch adjustment while messages are held, and rate-limit waits.

package engine

import (
	"fmt"
	"time"

	"github.com/forumads/forumads/celery/events"
	"github.com/forumads/forumads/celery/internal/ratelimit"
)

// hold keeps an unacknowledged message until t, raising the prefetch by one so that the channel keeps
// delivering (as Celery does for ETA tasks).
func (w *Engine) hold(j *job, t time.Time) {
	n := w.held.Add(1)
	w.adjustPrefetch(n)
	w.timers.Add(t, j)
}

// release is called by the timer when a held job is due.
func (w *Engine) release(j *job) {
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
func (w *Engine) adjustPrefetch(held int64) {
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
func (w *Engine) newGeneration(g uint64) {
	old := w.gen.Swap(g)
	if old == 0 {
		return
	}
	dropped := w.timers.RemoveIf(func(j *job) bool { return j.d.Generation < g })
	for _, j := range dropped {
		w.unreserve(j)
	}
	if n := len(dropped); n > 0 {
		w.held.Add(int64(-n))
		w.adjustPrefetch(w.held.Load())
		w.log.Info("dropped held messages of the lost connection; the broker delivers them again", "count", n)
	}
}

func (w *Engine) parkAfter() time.Duration {
	return w.cfg.ETAParkAfter
}

func (w *Engine) rateWait(def *Task) time.Duration {
	if w.cfg.DisableRateLimits {
		return 0
	}
	b, ok := w.buckets.Load(def.Name)
	if !ok {
		rate := def.Options.RateLimit
		if rate == "" {
			rate = w.cfg.DefaultRateLimit
		}
		interval, _ := ratelimit.Parse(rate)
		b, _ = w.buckets.LoadOrStore(def.Name, ratelimit.NewBucket(interval))
	}
	return b.(*ratelimit.Bucket).Reserve(w.now())
}

// SetRateLimit changes a task's rate limit at run time (the rate_limit control command).
func (w *Engine) SetRateLimit(task, rate string) error {
	if _, ok := w.reg.Lookup(task); !ok {
		return &NotRegisteredError{Name: task}
	}
	interval, err := ratelimit.Parse(rate)
	if err != nil {
		return err
	}
	b, _ := w.buckets.LoadOrStore(task, &ratelimit.Bucket{})
	b.(*ratelimit.Bucket).SetInterval(interval)
	if interval > 0 {
		w.rates.Store(task, rate)
	} else {
		w.rates.Delete(task)
	}
	return nil
}

// expired acks and revokes a job whose expires time has passed; it reports whether it did.
func (w *Engine) expired(j *job) bool {
	if j.msg.Expires == nil || !w.now().After(*j.msg.Expires) {
		return false
	}
	w.stats.Revoked.Add(1)
	w.unreserve(j)
	w.log.Warn(fmt.Sprintf("Discarding revoked task: %s[%s] (expired)", j.msg.Task, j.msg.ID), "task_id", j.msg.ID)
	// Celery remembers an expired id as revoked (Request.maybe_expire), in memory.
	w.revoked.Add(j.msg.ID, w.now().Add(w.revokeTTL()))
	w.sendTaskEvent(func() events.Event { return events.NewTaskRevoked(j.msg.ID, false, 0, true) })
	w.storeRevoked(j, "expired")
	w.settle(j, func() error { return j.d.Ack() })
	if w.metrics != nil {
		w.metrics.TaskFinished(j.msg.Task, "expired", 0)
	}
	return true
}
