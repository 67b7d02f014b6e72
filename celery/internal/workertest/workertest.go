// Package workertest runs a celery.Worker for a test: the one harness behind celerytest and the
// library's own worker tests (on the memory broker or RabbitMQ alike). Start runs Worker.Run in a
// goroutine and registers a cleanup that shuts the worker down warmly within a bound and fails
// the test when the shutdown does not finish or Run returned an error other than
// celery.ErrWorkerClosed; Logger gives the worker the test's log under go test -v.
package workertest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
)

// Running is a worker whose Run a test started.
type Running struct {
	// Worker is the running worker.
	Worker *celery.Worker
	// Timeout bounds Stop's warm shutdown, then again the wait after it went cold.
	Timeout time.Duration
	// Prefix starts Stop's failure messages (default "workertest"; celerytest sets its own name,
	// which its users see).
	Prefix string

	done     chan struct{}
	err      error
	stopOnce sync.Once
}

// New makes a worker from o, with Logger(t) when o has no logger, and fails the test at once when
// the worker refuses the options.
func New(t testing.TB, o celery.WorkerOptions) *celery.Worker {
	t.Helper()
	if o.Logger == nil {
		o.Logger = Logger(t)
	}
	w, err := celery.NewWorker(o)
	if err != nil {
		t.Fatalf("workertest: NewWorker: %v", err)
		return nil
	}
	return w
}

// Start runs w.Run(ctx) in a goroutine and registers a cleanup that calls Stop. Cleanups run last
// registered first: close the broker in a cleanup registered before Start (Run never closes it).
func Start(t testing.TB, ctx context.Context, w *celery.Worker, timeout time.Duration) *Running {
	t.Helper()
	r := &Running{Worker: w, Timeout: timeout, Prefix: "workertest", done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = w.Run(ctx)
	}()
	t.Cleanup(func() { r.Stop(t) })
	return r
}

// Run is New then Start on context.Background().
func Run(t testing.TB, o celery.WorkerOptions, timeout time.Duration) *Running {
	t.Helper()
	return Start(t, context.Background(), New(t, o), timeout)
}

// Done is closed when Run has returned.
func (r *Running) Done() <-chan struct{} { return r.done }

// Err is what Run returned; call it after Done is closed.
func (r *Running) Err() error { return r.err }

// Wait waits up to d for Run to return and returns what it returned; it fails the test when Run
// is still running after d.
func (r *Running) Wait(t testing.TB, d time.Duration) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(d):
		t.Fatalf("workertest: worker.Run did not return within %v", d)
		return nil
	}
}

// Stop shuts the worker down warmly within the Timeout (cold after it, with another Timeout for
// the cancelled tasks to return) and fails the test if that does not finish or Run returned an
// error other than celery.ErrWorkerClosed. Only the first call does anything.
func (r *Running) Stop(t testing.TB) {
	t.Helper()
	r.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), r.Timeout)
		defer cancel()
		if err := r.Worker.Shutdown(ctx); err != nil {
			t.Errorf("%s: the worker did not stop within %v (a task still running?): %v", r.Prefix, r.Timeout, err)
			select {
			case <-r.done:
			case <-time.After(r.Timeout):
				t.Errorf("%s: the worker did not stop after a cold shutdown either", r.Prefix)
				return
			}
		}
		<-r.done
		if r.err != nil && !errors.Is(r.err, celery.ErrWorkerClosed) {
			t.Errorf("%s: worker.Run returned %v", r.Prefix, r.err)
		}
	})
}

// Logger is a worker's logger for a test: the test's log at DEBUG when go test runs with -v,
// nowhere otherwise.
func Logger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(Writer{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Writer writes each log line to a test's log.
type Writer struct{ T testing.TB }

func (w Writer) Write(p []byte) (int, error) {
	w.T.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
