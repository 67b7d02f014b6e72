package workertest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend/memorybackend"
	"github.com/forumads/forumads/celery/broker/memorybroker"
	"github.com/forumads/forumads/celery/internal/workertest"
)

type addArgs struct {
	X int `celery:"x"`
	Y int `celery:"y"`
}

// rig is a registry with t.add, a memory broker and backend, and a client on them.
func rig(t *testing.T) (celery.WorkerOptions, *celery.Client) {
	t.Helper()
	reg := celery.NewRegistry()
	celery.Register(reg, "t.add", func(_ context.Context, t *celery.Task[addArgs]) (int, error) { return t.Args.X + t.Args.Y, nil })
	br, be := memorybroker.New(), memorybackend.New(memorybackend.Options{Expires: time.Hour})
	t.Cleanup(func() { _ = br.Close() })
	cfg := celery.Config{BrokerURL: "memory://", ResultBackend: "memory://", WorkerConcurrency: 1}
	cl, err := celery.NewClient(celery.ClientOptions{Config: cfg, Broker: br, Backend: be, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	return celery.WorkerOptions{Config: cfg, Registry: reg, Broker: br, Backend: be, Hostname: "celery@workertest"}, cl
}

// TestRunRunsTasksAndStopsWarmly: the worker Run starts takes tasks; Stop shuts it down warmly, and
// Run's result is ErrWorkerClosed; a second Stop does nothing.
func TestRunRunsTasksAndStopsWarmly(t *testing.T) {
	t.Parallel()
	o, cl := rig(t)
	r := workertest.Run(t, o, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cl.SendTask(ctx, "t.add", []any{2, 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := res.Get(ctx); err != nil || string(v) != "5" {
		t.Fatalf("t.add = %s, %v; want 5", v, err)
	}
	select {
	case <-r.Done():
		t.Fatal("Run returned before Stop")
	default:
	}
	r.Stop(t)
	select {
	case <-r.Done():
	default:
		t.Fatal("Stop returned while Run still runs")
	}
	if !errors.Is(r.Err(), celery.ErrWorkerClosed) {
		t.Errorf("Run returned %v, want ErrWorkerClosed", r.Err())
	}
	r.Stop(t) // once only: no second shutdown, no failure
}

// TestWaitReturnsRunsResult: a worker started on a context that ends shuts down warmly and Run
// returns nil, which Wait hands back.
func TestWaitReturnsRunsResult(t *testing.T) {
	t.Parallel()
	o, _ := rig(t)
	ctx, cancel := context.WithCancel(context.Background())
	r := workertest.Start(t, ctx, workertest.New(t, o), 10*time.Second)
	cancel()
	if err := r.Wait(t, 10*time.Second); err != nil {
		t.Errorf("Run after its context ended = %v, want nil", err)
	}
}
