package celery_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/internal/testenv"
)

func TestWorkerParksFarETAAndRunsItWhenDue(t *testing.T) {
	t.Parallel()
	park := 1.0
	b := setup(t, registerBasics, func(c *celery.Config) { c.WorkerETAParkAfter = &park })
	parkQueue := b.queue + ".eta-park-1s"
	testenv.DeleteQueuesAtCleanup(t, parkQueue)
	ctx := ctxT(t, 30*time.Second)
	sent := time.Now()
	r, err := b.client.SendTask(ctx, "t.add", []any{3, 4}, nil, celery.WithCountdown(2500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var sum int
	if err := r.GetInto(ctx, &sum); err != nil || sum != 7 {
		t.Fatalf("parked task = %d, %v", sum, err)
	}
	if time.Since(sent) < 2500*time.Millisecond-time.Millisecond {
		t.Fatal("parked task ran before its eta")
	}
	if n := b.worker.Stats().Parked.Load(); n < 1 {
		t.Fatalf("the task was never parked (parked=%d)", n)
	}
}

func TestWorkerRateLimit(t *testing.T) {
	t.Parallel()
	var starts []time.Time
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	b := setup(t, func(reg *celery.Registry) {
		celery.Register(reg, "t.limited", func(_ context.Context, _ *celery.Task[struct{}]) (int, error) {
			<-mu
			starts = append(starts, time.Now())
			mu <- struct{}{}
			return 1, nil
		}, celery.RateLimit("10/s"))
	}, func(c *celery.Config) { c.WorkerConcurrency = 4 })
	ctx := ctxT(t, 30*time.Second)
	var rs []*celery.AsyncResult
	for i := 0; i < 5; i++ {
		r, err := b.client.SendTask(ctx, "t.limited", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	for _, r := range rs {
		if _, err := r.Get(ctx); err != nil {
			t.Fatal(err)
		}
	}
	<-mu
	defer func() { mu <- struct{}{} }()
	// A token bucket of capacity 1 at 10/s: five starts span at least four intervals.
	if span := starts[len(starts)-1].Sub(starts[0]); span < 400*time.Millisecond-5*time.Millisecond {
		t.Fatalf("5 starts of a 10/s task within %v", span)
	}
}

func TestWorkerIgnoreResultAndExtended(t *testing.T) {
	t.Parallel()
	b := setup(t, registerBasics, func(c *celery.Config) { c.ResultExtended = true })
	ctx := ctxT(t, 30*time.Second)
	ignored, err := b.client.SendTask(ctx, "t.add", []any{1, 1}, nil, celery.WithIgnoreResult())
	if err != nil {
		t.Fatal(err)
	}
	failing, err := b.client.SendTask(ctx, "t.fail", []any{"still stored"}, nil, celery.WithIgnoreResult())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := failing.Get(ctx); err == nil {
		t.Fatal("a failure must be stored even with ignore_result")
	}
	ext, err := b.client.SendTask(ctx, "t.add", []any{2, 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ext.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := ignored.State(ctx); s != "PENDING" {
		t.Fatalf("ignore_result task has state %s, want nothing stored (PENDING)", s)
	}
	m, err := ext.Info(ctx)
	if err != nil || m.Extended == nil || m.Extended.Name != "t.add" || strings.ReplaceAll(string(m.Extended.Args), " ", "") != "[2,2]" ||
		m.Extended.Worker != "celery@test" || m.Extended.Queue != b.queue {
		t.Fatalf("result_extended meta = %+v (%v)", m.Extended, err)
	}
}

func TestWorkerPanicAndAutoRetry(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	errTransient := errors.New("transient")
	b := setup(t, func(reg *celery.Registry) {
		celery.Register(reg, "t.panic", func(_ context.Context, _ *celery.Task[struct{}]) (int, error) {
			panic(fmt.Sprintf("task bug %d", 42))
		})
		celery.Register(reg, "t.auto", func(_ context.Context, _ *celery.Task[struct{}]) (int, error) {
			if calls.Add(1) < 3 {
				return 0, fmt.Errorf("call: %w", errTransient)
			}
			return 3, nil
		}, celery.AutoRetry(func(err error) bool { return errors.Is(err, errTransient) }, 10*time.Millisecond))
	}, nil)
	ctx := ctxT(t, 30*time.Second)
	p, err := b.client.SendTask(ctx, "t.panic", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := b.client.SendTask(ctx, "t.auto", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var te *celery.TaskError
	if _, err := p.Get(ctx); !errors.As(err, &te) || te.Exception.Type != "PanicError" || !strings.Contains(te.Traceback, "goroutine") {
		t.Fatalf("panic: %v", err)
	}
	var n int
	if err := a.GetInto(ctx, &n); err != nil || n != 3 {
		t.Fatalf("autoretry: %d, %v", n, err)
	}
}

func TestWorkerRejectRequeueWithAcksLate(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	b := setup(t, func(reg *celery.Registry) {
		celery.Register(reg, "t.reject", func(_ context.Context, t *celery.Task[struct{}]) (bool, error) {
			if calls.Add(1) == 1 {
				return false, celery.Reject(errors.New("not now"), true)
			}
			return t.DeliveryInfo.Redelivered, nil
		}, celery.AcksLate(true))
		celery.Register(reg, "t.drop", func(_ context.Context, _ *celery.Task[struct{}]) (bool, error) {
			return false, celery.Reject(errors.New("poison"), false)
		}, celery.AcksLate(true))
	}, nil)
	ctx := ctxT(t, 30*time.Second)
	r, err := b.client.SendTask(ctx, "t.reject", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var redelivered bool
	if err := r.GetInto(ctx, &redelivered); err != nil || !redelivered {
		t.Fatalf("requeued task: redelivered=%v, %v", redelivered, err)
	}
	if _, err := b.client.SendTask(ctx, "t.drop", nil, nil); err != nil {
		t.Fatal(err)
	}
	d := getDead(t, b.dlq)
	if reason, _ := d.Headers["x-dead-letter-reason"].(string); !strings.Contains(reason, "poison") {
		t.Fatalf("rejected message's dead letter: %v", d.Headers)
	}
}
