// This file holds the worker's consume loop (Run) and its pool of goroutines that run tasks.

package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/internal/timerq"
)

// Run is the root's Worker.Run (see its documentation): it consumes and runs tasks until ctx
// ends or a shutdown begins, then shuts down (shutdown.go) and returns what runResult says.
func (w *Engine) Run(ctx context.Context) error {
	if w.ran.Swap(true) {
		return errors.New("celery: Worker.Run called twice")
	}
	defer close(w.runDone)
	if w.closedBy.Load() {
		return w.errs.Closed
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
	w.timers = timerq.New(w.now, w.release)
	w.poolMu.Lock()
	w.ready = make(chan *job, 4096)
	w.poolStarted = true
	w.poolMu.Unlock()
	w.grow(int(w.size.Load()))
	var watchers sync.WaitGroup
	watchCtx, stopWatching := context.WithCancel(consumeCtx)
	defer stopWatching()
	if w.revokes != nil {
		watchers.Add(1)
		go func() {
			defer watchers.Done()
			w.watchRevokes(watchCtx)
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
	// StopConsuming ends the deliveries and keeps the channel open: running acks_late tasks are
	// acknowledged on it. Consume's context ends only after them (the deferred stopConsume), as
	// some brokers (memory, Redis) give a consumer's unsettled messages back when it ends; only
	// when StopConsuming failed does it end now, so that the intake ends.
	if err := w.br.StopConsuming(context.Background()); err != nil {
		w.log.Warn("cancelling consumers", "error", err)
		stopConsume()
	}
	stopWatching()
	<-intakeDone
	watchers.Wait()
	// Held messages (ETA, rate limit) go back to their queue. A few are rejected one by one, so other
	// workers get them at once; many are left to the connection's close by the broker's owner
	// after Run returns (RabbitMQ requeues a channel's unacknowledged messages in one go, where
	// 10,000 single rejects take a minute).
	if held := w.timers.Close(); len(held) <= maxSingleGiveBacks {
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

// intakeBatch is the most deliveries taken in one go: their revoked ids are checked in one round
// trip when the revoke store must be asked (see revokesSynced).
const intakeBatch = 64

// grow starts the first n pool goroutines.
func (w *Engine) grow(n int) {
	w.poolMu.Lock()
	defer w.poolMu.Unlock()
	w.spawnLocked(n)
}

// spawnLocked starts n pool goroutines, unless the pool is not started or closed; w.poolMu is held.
func (w *Engine) spawnLocked(n int) {
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

// maxSingleGiveBacks is how many held messages a warm shutdown rejects one by one.
const maxSingleGiveBacks = 256

// giveBack returns a message the worker holds but will not run to the broker.
func (w *Engine) giveBack(j *job) {
	w.unreserve(j)
	if err := j.d.Reject(true); err != nil && !errors.Is(err, broker.ErrStaleDelivery) {
		w.log.Warn("returning a message to the queue", "task_id", j.msg.ID, "error", err)
	}
}
