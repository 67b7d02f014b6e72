package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/forumads/forumads/celery/broker"
)

// poolError is a refused pool_grow or pool_shrink; it wraps Errors.Pool.
type poolError struct {
	msg  string
	pool error
}

func (e *poolError) Error() string   { return e.msg }
func (e *poolError) Unwrap() error   { return e.pool }
func (e *poolError) ExcType() string { return "ValueError" }

// Grow adds n goroutines to the pool (the pool_grow control command) and raises the prefetch to
// the new concurrency × worker_prefetch_multiplier, as Celery does.
func (w *Engine) Grow(n int) error {
	if n < 1 {
		return &poolError{fmt.Sprintf("pool_grow: n must be at least 1, got %d", n), w.errs.Pool}
	}
	w.poolMu.Lock()
	w.size.Add(int64(n))
	w.spawnLocked(n)
	w.poolMu.Unlock()
	w.resetPrefetch()
	w.log.Info("pool grown", "by", n, "concurrency", w.Concurrency())
	return nil
}

// Shrink removes n goroutines from the pool (pool_shrink): idle ones leave at once, busy ones
// when their task ends. The pool keeps at least one.
func (w *Engine) Shrink(n int) error {
	if n < 1 {
		return &poolError{fmt.Sprintf("pool_shrink: n must be at least 1, got %d", n), w.errs.Pool}
	}
	w.poolMu.Lock()
	cur := w.size.Load()
	if cur-int64(n) < 1 {
		w.poolMu.Unlock()
		return &poolError{fmt.Sprintf("Can't shrink pool: it has %d goroutines and keeps at least one", cur), w.errs.Pool}
	}
	w.size.Add(-int64(n))
	if w.poolStarted && !w.poolClosed {
		for i := 0; i < n; i++ {
			w.shrink <- struct{}{}
		}
	}
	w.poolMu.Unlock()
	w.resetPrefetch()
	w.log.Info("pool shrunk", "by", n, "concurrency", w.Concurrency())
	return nil
}

// resetPrefetch sets the base prefetch from the concurrency, as Celery's _update_prefetch_count.
func (w *Engine) resetPrefetch() {
	base := int64(w.cfg.prefetchFor(w.Concurrency()))
	if w.prefetch.Swap(base) == base || base == 0 {
		return
	}
	held := w.held.Load()
	const step = 64
	want := min(base+(held+step-1)/step*step, 65535)
	w.curPrefetch.Store(want)
	if err := w.br.SetPrefetch(int(want)); err != nil {
		w.log.Warn("changing prefetch", "prefetch", want, "error", err)
	}
}

// timeLimits are a task's limits set by the time_limit control command; nil means the configured one.
type timeLimits struct{ hard, soft *time.Duration }

// SetTimeLimit changes a task's hard and soft time limits at run time (the time_limit control
// command); nil means the configured default, 0 no limit. A message's own timelimit header still
// wins, as in Celery.
func (w *Engine) SetTimeLimit(task string, soft, hard *time.Duration) error {
	if _, ok := w.reg.Lookup(task); !ok {
		return &NotRegisteredError{Name: task}
	}
	for _, d := range []*time.Duration{soft, hard} {
		if d != nil && *d < 0 {
			return fmt.Errorf("time_limit %s: negative limit %s", task, *d)
		}
	}
	w.limits.Store(task, timeLimits{hard: hard, soft: soft})
	w.log.Info(fmt.Sprintf("New time limits for tasks of type %s: soft=%s hard=%s", task, limitText(soft), limitText(hard)))
	return nil
}

func limitText(d *time.Duration) string {
	if d == nil {
		return "None"
	}
	return fmt.Sprint(d.Seconds())
}

// queueConsumer is a broker that can change the queues it consumes (amqpbroker.Broker).
type queueConsumer interface {
	AddConsumer(ctx context.Context, q broker.Queue) error
	CancelConsumer(ctx context.Context, name string) (bool, error)
}

// AddConsumer starts consuming q (the add_consumer control command); consuming a queue already
// consumed does nothing. The broker must support it (amqpbroker does).
func (w *Engine) AddConsumer(ctx context.Context, q broker.Queue) error {
	qc, ok := w.br.(queueConsumer)
	if !ok {
		return fmt.Errorf("add_consumer %q: the broker (%T) cannot change its consumers", q.Name, w.br)
	}
	w.qmu.Lock()
	for _, have := range w.queues {
		if have.Name == q.Name {
			w.qmu.Unlock()
			return nil
		}
	}
	w.qmu.Unlock()
	if err := qc.AddConsumer(ctx, q); err != nil {
		return err
	}
	w.qmu.Lock()
	w.queues = append(w.queues, q)
	w.qmu.Unlock()
	w.log.Info("Started consuming from "+q.Name, "queue", q.Name, "exchange", q.Exchange, "routing_key", q.RoutingKey)
	return nil
}

// CancelConsumer stops consuming the queue (cancel_consumer); it reports whether it was consumed.
// Messages already received are still run.
func (w *Engine) CancelConsumer(ctx context.Context, name string) (bool, error) {
	qc, ok := w.br.(queueConsumer)
	if !ok {
		return false, fmt.Errorf("cancel_consumer %q: the broker (%T) cannot change its consumers", name, w.br)
	}
	found, err := qc.CancelConsumer(ctx, name)
	w.qmu.Lock()
	kept := w.queues[:0]
	for _, q := range w.queues {
		if q.Name == name {
			found = true
			continue
		}
		kept = append(kept, q)
	}
	w.queues = kept
	w.qmu.Unlock()
	if found {
		w.log.Info("Canceling queue "+name, "queue", name)
	}
	return found, err
}

// Snapshot is what a worker holds now, for metrics and monitoring.
type Snapshot struct {
	Active      int   // tasks running
	Reserved    int   // messages received, not running, not waiting for their ETA
	HeldETA     int   // messages held until their ETA
	Prefetch    int   // the consumer's prefetch count now (0 = unlimited)
	Concurrency int   // pool size
	Started     int64 // tasks started since start
	Finished    int64 // task messages done with since start, whatever the outcome
}

// Snapshot returns the worker's counts now.
func (w *Engine) Snapshot() Snapshot {
	held := w.heldETA.Load()
	return Snapshot{
		Active: w.activeCount(), Reserved: int(max(w.nReserved.Load()-held, 0)), HeldETA: int(held),
		Prefetch: int(w.curPrefetch.Load()), Concurrency: w.Concurrency(),
		Started: w.stats.Started.Load(), Finished: w.done.Load(),
	}
}

// HeartbeatStatus is what worker heartbeats report: the tasks running now and those started
// since start (events.HeartbeatOptions.Status).
func (w *Engine) HeartbeatStatus() (active, processed int) {
	return w.activeCount(), int(w.stats.Started.Load())
}

// Alive reports, for a health check, whether Run is consuming: nil from the moment it consumes
// until it begins to shut down.
func (w *Engine) Alive() error {
	if !w.alive.Load() {
		if w.stopping.Load() {
			return errors.New("worker: shutting down")
		}
		return errors.New("worker: not consuming yet")
	}
	return nil
}
