package celery

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrWorkerClosed is returned by Worker.Run after a stop begun by Shutdown (or Terminate, or the
// shutdown control command), as http.ErrServerClosed is by http.Server.Serve: it says the worker
// stopped because it was asked to, not because something failed.
var ErrWorkerClosed = errors.New("celery: worker closed")

// errColdShutdown is what Run returns after a cold shutdown: both ErrWorkerClosed and
// ErrWorkerShutdown (the cause the running tasks' contexts were cancelled with).
var errColdShutdown = fmt.Errorf("%w: cold shutdown (%w)", ErrWorkerClosed, ErrWorkerShutdown)

// Shutdown stops the worker, as http.Server.Shutdown stops a server. The first call is a warm
// shutdown: Run stops consuming, gives the messages it holds but has not started (prefetched, held
// for an ETA or a rate limit) back to the broker, and waits for the running tasks to finish, which
// are acknowledged and stored as usual. Shutdown returns nil once Run has returned, or ctx.Err()
// when ctx ends first: the shutdown then goes cold, and Run returns a little later.
//
// A second call of Shutdown (while the first waits, or after) is a cold shutdown at once. Cold:
// with worker_soft_shutdown_timeout > 0 and a task running (or worker_enable_soft_shutdown_on_idle
// set), the running tasks first get that long to finish (Celery 5.5's soft shutdown; it ends as
// soon as none runs). Then their contexts are cancelled with cause ErrWorkerShutdown: with
// acks_late their messages are given back to the queue (rejected with requeue) and nothing is
// stored; otherwise their messages were acknowledged already and FAILURE (WorkerLostError) is
// stored. A task that ignores its context keeps Run waiting: bound the wait with ctx.
//
// Held messages (ETA, rate limit) are given back to the broker on both paths before Run returns,
// so worker_enable_soft_shutdown_on_idle, which Celery recommends so that held ETA messages get
// back in time, only makes the soft period start on an idle worker too; it ends once they are back.
//
// Shutdown before Run makes Run return ErrWorkerClosed at once. It is safe to call from any
// goroutine; the shutdown control command begins the same warm shutdown.
func (w *Worker) Shutdown(ctx context.Context) error {
	if w.shutCalls.Add(1) > 1 {
		w.goCold()
	} else {
		w.beginShutdown()
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

// Terminate begins a cold shutdown without waiting, as a second Shutdown does (see Shutdown); Run
// then returns an error matching both ErrWorkerClosed and ErrWorkerShutdown. It never closes the
// broker.
func (w *Worker) Terminate() { w.goCold() }

// beginShutdown begins a warm shutdown without waiting (Shutdown's first call, the shutdown
// control command).
func (w *Worker) beginShutdown() {
	w.closedBy.Store(true)
	// No task starts from here on, before Run has even woken up: a cold shutdown's cancelled
	// acks_late task is requeued at once, and RabbitMQ may deliver it again to this worker's consumer
	// before its basic.cancel; such a delivery must go back, not run (and be cancelled) again.
	w.stopping.Store(true)
	w.shutOnce.Do(func() { close(w.shutdown) })
}

// goCold begins a cold shutdown (and the warm one before it, if not begun yet).
func (w *Worker) goCold() {
	w.beginShutdown()
	w.coldOnce.Do(func() { close(w.cold) })
}

// softShutdownTimeout is worker_soft_shutdown_timeout (0: no soft shutdown).
func (w *Worker) softShutdownTimeout() time.Duration {
	if t := w.cfg.WorkerSoftShutdownTimeout; t != nil && *t > 0 {
		return time.Duration(*t * float64(time.Second))
	}
	return 0
}

// watchCold runs beside Run until no task runs: when a cold shutdown begins, it gives the running
// tasks the soft shutdown timeout, then cancels their contexts.
func (w *Worker) watchCold() {
	select {
	case <-w.tasksDone:
		return
	case <-w.cold:
	}
	running := w.activeCount()
	if soft := w.softShutdownTimeout(); soft > 0 && (running > 0 || w.cfg.WorkerEnableSoftShutdownOnIdle) {
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
	w.killTasks(ErrWorkerShutdown)
}

// runResult is what Run returns after it stopped.
func (w *Worker) runResult() error {
	select {
	case <-w.cold:
		return errColdShutdown
	default:
	}
	if w.closedBy.Load() {
		return ErrWorkerClosed
	}
	return nil
}
