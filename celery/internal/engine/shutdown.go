// This file holds the shutdown sequence: warm (Shutdown's first call, the shutdown command), cold
// (a second call, ctx ending, Terminate) with the soft shutdown before the running tasks' contexts
// are cancelled, and what Run returns after it.

package engine

import (
	"context"
	"fmt"
	"time"
)

// Shutdown is the root's Worker.Shutdown (see its documentation): the first call begins a warm
// shutdown, a second one or ctx ending a cold one; it returns once Run has returned (at once when
// Run was never called), or ctx.Err().
func (w *Engine) Shutdown(ctx context.Context) error {
	if w.shutCalls.Add(1) > 1 {
		w.goCold()
	} else {
		w.BeginShutdown()
	}
	if !w.ran.Load() {
		return nil
	}
	select {
	case <-w.runDone:
		return nil
	case <-ctx.Done():
		w.goCold()
		return ctx.Err()
	}
}

// Terminate begins a cold shutdown without waiting, as a second Shutdown does.
func (w *Engine) Terminate() { w.goCold() }

// BeginShutdown begins a warm shutdown without waiting (Shutdown's first call, the shutdown
// control command).
func (w *Engine) BeginShutdown() {
	w.closedBy.Store(true)
	// No task starts from here on, before Run has even woken up: a cold shutdown's cancelled
	// acks_late task is requeued at once, and RabbitMQ may deliver it again to this worker's consumer
	// before its basic.cancel; such a delivery must go back, not run (and be cancelled) again.
	w.stopping.Store(true)
	w.shutOnce.Do(func() { close(w.shutdown) })
}

// goCold begins a cold shutdown (and the warm one before it, if not begun yet).
func (w *Engine) goCold() {
	w.BeginShutdown()
	w.coldOnce.Do(func() { close(w.cold) })
}

// watchCold runs beside Run until no task runs: when a cold shutdown begins, it gives the running
// tasks the soft shutdown timeout, then cancels their contexts.
func (w *Engine) watchCold() {
	select {
	case <-w.tasksDone:
		return
	case <-w.cold:
	}
	running := w.activeCount()
	if soft := w.cfg.SoftShutdownTimeout; soft > 0 && (running > 0 || w.cfg.SoftShutdownOnIdle) {
		w.log.Warn(fmt.Sprintf("Initiating Soft Shutdown, terminating in %g seconds", soft.Seconds()), "running", running)
		t := time.NewTimer(soft)
		defer t.Stop()
		select {
		case <-w.tasksDone:
			return
		case <-t.C:
		}
		running = w.activeCount()
	}
	w.log.Warn("worker: Cold shutdown: cancelling running tasks", "running", running)
	w.terminated.Store(true)
	w.killTasks(w.errs.Shutdown)
}

// runResult is what Run returns after it stopped.
func (w *Engine) runResult() error {
	select {
	case <-w.cold:
		return w.errs.ColdClosed
	default:
	}
	if w.closedBy.Load() {
		return w.errs.Closed
	}
	return nil
}
