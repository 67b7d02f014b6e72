package celery

import (
	"context"
	"errors"
	"fmt"
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
func (w *Worker) Shutdown(ctx context.Context) error { return w.e.Shutdown(ctx) }

// Terminate begins a cold shutdown without waiting, as a second Shutdown does (see Shutdown); Run
// then returns an error matching both ErrWorkerClosed and ErrWorkerShutdown. It never closes the
// broker.
func (w *Worker) Terminate() { w.e.Terminate() }
