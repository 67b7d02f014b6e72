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
	"github.com/forumads/forumads/celery/celerytest"
	"github.com/forumads/forumads/celery/protocol"
)

// These are the engine's behaviours of integration_test.go and integration_more_test.go on the
// in-memory broker and backend (through celerytest): result shapes, retries, expiry,
// ignore_result and result_extended, panics and autoretry, reject with acks_late. They need no
// service and run in well under a second; the RabbitMQ versions stay, as the proof of the AMQP
// path.

type memXY struct {
	X int `celery:"x"`
	Y int `celery:"y"`
}

type memFailErr struct{ msg string }

func (e *memFailErr) Error() string { return e.msg }

func memBasics() *celery.Registry {
	reg := celery.NewRegistry()
	celery.Register(reg, "t.add", func(_ context.Context, t *celery.Task[memXY]) (int, error) { return t.Args.X + t.Args.Y, nil })
	celery.Register(reg, "t.fail", func(_ context.Context, t *celery.Task[struct {
		Msg string `celery:"msg"`
	}]) (any, error) {
		return nil, &memFailErr{t.Args.Msg}
	})
	return reg
}

func TestMemWorkerSuccessAndFailure(t *testing.T) {
	t.Parallel()
	w := celerytest.NewWorker(t, memBasics())
	w.RequireSuccess(t, w.Send(t, "t.add", []any{2, 3}, nil), 5)
	w.RequireSuccess(t, w.Send(t, "t.add", nil, map[string]any{"x": 40, "y": 2}), 42)
	w.RequireFailure(t, w.Send(t, "t.fail", []any{"boom"}, nil), "memFailErr", "boom")
	w.RequireFailure(t, w.Send(t, "t.add", []any{"two", 3}, nil), "TypeError", "")
	// An unknown keyword fails like Python's TypeError, naming the argument.
	w.RequireFailure(t, w.Send(t, "t.add", nil, map[string]any{"x": 1, "y": 2, "z": 3}), "TypeError", "'z'")
	// What a Python client's AsyncResult.get() reads: the Go error as a FAILURE, traceback set.
	m := w.WaitForResult(t, w.Send(t, "t.fail", []any{"again"}, nil).ID)
	if m.Traceback == nil || m.DateDone == nil {
		t.Fatalf("FAILURE meta without traceback or date_done: %+v", m)
	}
}

func TestMemWorkerRetryThenSuccess(t *testing.T) {
	t.Parallel()
	reg := celery.NewRegistry()
	var w *celerytest.Worker
	retryMeta := make(chan protocol.ResultMeta, 1)
	celery.Register(reg, "t.flaky", func(ctx context.Context, t *celery.Task[struct{}]) (int, error) {
		if t.Request.Retries == 1 {
			// The first run's RETRY is stored before the retry runs.
			m, err := w.Backend.Get(ctx, t.Request.ID)
			if err != nil {
				return 0, err
			}
			retryMeta <- m
		}
		if t.Request.Retries < 2 {
			return 0, t.Retry(fmt.Errorf("attempt %d failed", t.Request.Retries), celery.Countdown(time.Millisecond))
		}
		return t.Request.Retries + 1, nil
	})
	celery.Register(reg, "t.always", func(context.Context, *celery.Task[struct{}]) (int, error) {
		return 0, celery.Retry(errors.New("never works"), celery.Countdown(time.Millisecond), celery.WithMaxRetries(2))
	})
	w = celerytest.NewWorker(t, reg)
	r := w.Send(t, "t.flaky", nil, nil)
	w.RequireSuccess(t, r, 3)
	w.RequireRetried(t, r, 2)
	m := <-retryMeta
	if m.Status != protocol.StateRetry {
		t.Fatalf("state between the runs = %s, want RETRY", m.Status)
	}
	// As Celery stores it, the RETRY names the re-sent message (same id) in `children`.
	if got, want := string(m.Children), `[[["`+r.ID+`", null], null]]`; got != want {
		t.Errorf("RETRY children = %s, want %s", got, want)
	}
	always := w.Send(t, "t.always", nil, nil)
	w.RequireFailure(t, always, "", "never works")
	w.RequireRetried(t, always, 2)
	if n := w.Worker.Stats().Retried.Load(); n != 4 {
		t.Errorf("Stats().Retried = %d, want 4 (2 + 2)", n)
	}
}

func TestMemWorkerExpiredTaskIsRevoked(t *testing.T) {
	t.Parallel()
	ran := make(chan struct{}, 1)
	reg := memBasics()
	celery.Register(reg, "t.mark", func(context.Context, *celery.Task[struct{}]) (int, error) {
		ran <- struct{}{}
		return 1, nil
	})
	w := celerytest.NewWorker(t, reg)
	// Due after it expires: the worker holds it for its ETA, then finds it expired.
	r := w.Send(t, "t.mark", nil, nil, celery.WithCountdown(50*time.Millisecond), celery.WithExpiresIn(10*time.Millisecond))
	exc := w.RequireRevoked(t, r, "expired")
	if exc.Type != "TaskRevokedError" {
		t.Fatalf("expired task's exception %s, want TaskRevokedError", exc.Type)
	}
	// Expired on arrival, as a fixed clock far in the future decides.
	late := celerytest.NewWorker(t, reg, celerytest.WithClock(func() time.Time { return time.Now().Add(time.Hour) }))
	late.RequireRevoked(t, late.Send(t, "t.mark", nil, nil, celery.WithExpiresIn(time.Minute)), "expired")
	select {
	case <-ran:
		t.Fatal("an expired task ran")
	default:
	}
	if n := w.Worker.Stats().Revoked.Load() + late.Worker.Stats().Revoked.Load(); n != 2 {
		t.Errorf("Stats().Revoked = %d, want 2", n)
	}
}

func TestMemWorkerIgnoreResultAndExtended(t *testing.T) {
	t.Parallel()
	// One task at a time, in order: once the last result is stored, the ignored task is done.
	w := celerytest.NewWorker(t, memBasics(), celerytest.WithQueues("mem.q"), celerytest.WithConcurrency(1),
		celerytest.WithConfig(func(c *celery.Config) { c.TaskDefaultQueue = "mem.q" }))
	ignored := w.Send(t, "t.add", []any{1, 1}, nil, celery.WithIgnoreResult())
	w.RequireFailure(t, w.Send(t, "t.fail", []any{"still stored"}, nil, celery.WithIgnoreResult()), "memFailErr", "still stored")
	ext := w.Send(t, "t.add", []any{2, 2}, nil)
	m := w.RequireSuccess(t, ext, 4)
	if n := w.Worker.Stats().Succeeded.Load(); n != 2 {
		t.Fatalf("Stats().Succeeded = %d, want 2 (the ignored task and the last)", n)
	}
	if s, _ := ignored.State(context.Background()); s != protocol.StatePending {
		t.Fatalf("ignore_result task has state %s, want nothing stored (PENDING)", s)
	}
	if m.Extended == nil || m.Extended.Name != "t.add" || strings.ReplaceAll(string(m.Extended.Args), " ", "") != "[2,2]" ||
		m.Extended.Worker != celerytest.Hostname || m.Extended.Queue != "mem.q" {
		t.Fatalf("result_extended meta = %+v", m.Extended)
	}
}

func TestMemWorkerPanicAndAutoRetry(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	errTransient := errors.New("transient")
	reg := celery.NewRegistry()
	celery.Register(reg, "t.panic", func(context.Context, *celery.Task[struct{}]) (int, error) {
		panic(fmt.Sprintf("task bug %d", 42))
	})
	celery.Register(reg, "t.auto", func(context.Context, *celery.Task[struct{}]) (int, error) {
		if calls.Add(1) < 3 {
			return 0, fmt.Errorf("call: %w", errTransient)
		}
		return 3, nil
	}, celery.AutoRetry(func(err error) bool { return errors.Is(err, errTransient) }, time.Millisecond))
	w := celerytest.NewWorker(t, reg)
	p := w.Send(t, "t.panic", nil, nil)
	w.RequireFailure(t, p, "PanicError", "task bug 42")
	if m := w.WaitForResult(t, p.ID); m.Traceback == nil || !strings.Contains(*m.Traceback, "goroutine") {
		t.Fatalf("a panic's traceback must hold the goroutine's stack: %v", m.Traceback)
	}
	a := w.Send(t, "t.auto", nil, nil)
	w.RequireSuccess(t, a, 3)
	w.RequireRetried(t, a, 2)
}

func TestMemWorkerRejectRequeueWithAcksLate(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	reg := celery.NewRegistry()
	celery.Register(reg, "t.reject", func(_ context.Context, t *celery.Task[struct{}]) (bool, error) {
		if calls.Add(1) == 1 {
			return false, celery.Reject(errors.New("not now"), true)
		}
		return t.DeliveryInfo.Redelivered, nil
	}, celery.AcksLate(true))
	celery.Register(reg, "t.drop", func(context.Context, *celery.Task[struct{}]) (bool, error) {
		return false, celery.Reject(errors.New("poison"), false)
	}, celery.AcksLate(true))
	w := celerytest.NewWorker(t, reg)
	// Requeued, it comes back marked redelivered and runs again.
	w.RequireSuccess(t, w.Send(t, "t.reject", nil, nil), true)
	drop := w.Send(t, "t.drop", nil, nil)
	dead := w.RequireSent(t, celery.DefaultDeadLetterQueue, "t.drop")
	if len(dead) != 1 || dead[0].Message.ID != drop.ID {
		t.Fatalf("dead letters %+v, want the one t.drop", dead)
	}
	if reason, _ := dead[0].Message.ExtraHeaders[celery.HeaderDeadLetterReason].(string); !strings.Contains(reason, "poison") {
		t.Fatalf("rejected message's dead letter headers: %v", dead[0].Message.ExtraHeaders)
	}
}

func TestMemWorkerRevokedTaskIsNotRun(t *testing.T) {
	t.Parallel()
	ran := make(chan string, 4)
	reg := celery.NewRegistry()
	celery.Register(reg, "t.mark", func(_ context.Context, t *celery.Task[struct{}]) (int, error) {
		ran <- t.Request.ID
		return 1, nil
	})
	w := celerytest.NewWorker(t, reg)
	// Held for an ETA far away, then revoked: the notice settles it without waiting for the ETA.
	held := w.Send(t, "t.mark", nil, nil, celery.WithCountdown(time.Hour))
	w.Revoke(t, held.ID, false)
	w.RequireRevoked(t, held, "revoked")
	// Revoked before it arrives: discarded on arrival.
	id := celery.NewID()
	w.Revoke(t, id, false)
	w.RequireRevoked(t, w.Send(t, "t.mark", nil, nil, celery.WithTaskID(id)), "revoked")
	w.RequireSuccess(t, w.Send(t, "t.mark", nil, nil), 1)
	if got := <-ran; got == held.ID || got == id {
		t.Fatalf("revoked task %s ran", got)
	}
	if n := w.Worker.Stats().Revoked.Load(); n != 2 {
		t.Errorf("Stats().Revoked = %d, want 2", n)
	}
}
