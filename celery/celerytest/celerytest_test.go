package celerytest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/celerytest"
	"github.com/forumads/forumads/celery/protocol"
)

type pair struct {
	X int `celery:"x"`
	Y int `celery:"y"`
}

type sum struct {
	Total int    `json:"total"`
	Note  string `json:"note"`
}

type quotaError struct{ msg string }

func (e *quotaError) Error() string { return e.msg }

// basics registers the tasks the helper tests run.
func basics() *celery.Registry {
	reg := celery.NewRegistry()
	celery.Register(reg, "t.add", func(_ context.Context, t *celery.Task[pair]) (int, error) { return t.Args.X + t.Args.Y, nil })
	celery.Register(reg, "t.sum", func(_ context.Context, t *celery.Task[pair]) (sum, error) {
		return sum{Total: t.Args.X + t.Args.Y, Note: "ok"}, nil
	})
	celery.Register(reg, "t.nothing", func(context.Context, *celery.Task[struct{}]) (any, error) { return nil, nil })
	celery.Register(reg, "t.quota", func(context.Context, *celery.Task[struct{}]) (int, error) {
		return 0, &quotaError{"quota exceeded"}
	})
	return reg
}

func TestRequireSuccessPasses(t *testing.T) {
	t.Parallel()
	w := celerytest.NewWorker(t, basics())
	for _, tc := range []struct {
		name string
		task string
		args []any
		want any
	}{
		{"int", "t.add", []any{2, 3}, 5},
		{"struct", "t.sum", []any{4, 5}, sum{Total: 9, Note: "ok"}},
		{"map", "t.sum", []any{1, 1}, map[string]any{"total": 2.0, "note": "ok"}},
		{"null", "t.nothing", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := w.Send(t, tc.task, tc.args, nil)
			requirePassed(t, record(func(tb testing.TB) { w.RequireSuccess(tb, res, tc.want) }))
		})
	}
}

func TestRequireSuccessFails(t *testing.T) {
	t.Parallel()
	w := celerytest.NewWorker(t, basics())
	for _, tc := range []struct {
		name  string
		task  string
		args  []any
		want  any
		fatal bool
		parts []string
	}{
		{"wrong value", "t.add", []any{2, 3}, 6, false, []string{"returned 5, want 6"}},
		{"wrong type", "t.add", []any{2, 3}, "5", false, []string{"does not decode into string"}},
		{"not null", "t.add", []any{1, 1}, nil, false, []string{"returned 2, want null"}},
		{"a failure", "t.quota", nil, 0, false, []string{"ended FAILURE, want SUCCESS", "quotaError", "quota exceeded"}},
		{"bad args", "t.add", []any{"two", 3}, 5, false, []string{"ended FAILURE", "TypeError"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := w.Send(t, tc.task, tc.args, nil)
			requireFailed(t, record(func(tb testing.TB) { w.RequireSuccess(tb, res, tc.want) }), tc.fatal, tc.parts...)
		})
	}
}

func TestSuccessReturnsTheTypedValue(t *testing.T) {
	t.Parallel()
	w := celerytest.NewWorker(t, basics())
	if got := celerytest.Success[sum](t, w, w.Send(t, "t.sum", nil, map[string]any{"x": 40, "y": 2})); got != (sum{Total: 42, Note: "ok"}) {
		t.Fatalf("Success = %+v", got)
	}
	res := w.Send(t, "t.quota", nil, nil)
	requireFailed(t, record(func(tb testing.TB) { celerytest.Success[int](tb, w, res) }), false, "ended FAILURE")
	res = w.Send(t, "t.sum", []any{1, 2}, nil)
	requireFailed(t, record(func(tb testing.TB) { celerytest.Success[int](tb, w, res) }), true, "does not decode into int")
}

func TestRequireFailure(t *testing.T) {
	t.Parallel()
	w := celerytest.NewWorker(t, basics())
	res := w.Send(t, "t.quota", nil, nil)
	var exc protocol.ExceptionInfo
	requirePassed(t, record(func(tb testing.TB) { exc = w.RequireFailure(tb, res, "quotaError", "quota") }))
	if exc.Type != "quotaError" || fmt.Sprint(exc.Message...) != "quota exceeded" {
		t.Errorf("RequireFailure returned %v", exc)
	}
	requirePassed(t, record(func(tb testing.TB) { w.RequireFailure(tb, res, "", "") }))
	for _, tc := range []struct {
		name, excType, msg string
		parts              []string
	}{
		{"wrong type", "ValueError", "", []string{"failed with quotaError(quota exceeded), want exception type ValueError"}},
		{"wrong message", "quotaError", "disk full", []string{`want a message containing "disk full"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireFailed(t, record(func(tb testing.TB) { w.RequireFailure(tb, res, tc.excType, tc.msg) }), false, tc.parts...)
		})
	}
	ok := w.Send(t, "t.add", []any{1, 2}, nil)
	requireFailed(t, record(func(tb testing.TB) { w.RequireFailure(tb, ok, "quotaError", "") }), false, "ended SUCCESS (result 3), want FAILURE")
}

func TestRequireRetried(t *testing.T) {
	t.Parallel()
	reg := celery.NewRegistry()
	celery.Register(reg, "t.flaky", func(_ context.Context, t *celery.Task[struct{}]) (int, error) {
		if t.Request.Retries < 2 {
			return 0, t.Retry(fmt.Errorf("attempt %d", t.Request.Retries), celery.Countdown(time.Millisecond))
		}
		return t.Request.Retries, nil
	})
	celery.Register(reg, "t.hopeless", func(_ context.Context, t *celery.Task[struct{}]) (int, error) {
		return 0, t.Retry(errors.New("never"), celery.Countdown(time.Millisecond), celery.WithMaxRetries(1))
	})
	w := celerytest.NewWorker(t, reg)
	flaky := w.Send(t, "t.flaky", nil, nil)
	requirePassed(t, record(func(tb testing.TB) { w.RequireRetried(tb, flaky, 2) }))
	w.RequireSuccess(t, flaky, 2)
	requireFailed(t, record(func(tb testing.TB) { w.RequireRetried(tb, flaky, 1) }), false, "ended SUCCESS after 2 retries, want 1")

	hopeless := w.Send(t, "t.hopeless", nil, nil)
	requirePassed(t, record(func(tb testing.TB) { w.RequireRetried(tb, hopeless, 1) }))
	w.RequireFailure(t, hopeless, "", "never")

	off := celerytest.NewWorker(t, reg, celerytest.WithConfig(func(c *celery.Config) { c.ResultExtended = false }))
	res := off.Send(t, "t.flaky", nil, nil)
	requireFailed(t, record(func(tb testing.TB) { off.RequireRetried(tb, res, 2) }), false, "result_extended is off")
}

func TestWaitForResultFailsWhenTheTimeoutRunsOut(t *testing.T) {
	t.Parallel()
	w := celerytest.NewWorker(t, basics(), celerytest.WithTimeout(20*time.Millisecond))
	// A countdown far beyond the timeout: the task stays PENDING while the helper waits.
	res := w.Send(t, "t.add", []any{1, 1}, nil, celery.WithCountdown(time.Hour))
	r := record(func(tb testing.TB) { w.WaitForResult(tb, res.ID) })
	requireFailed(t, r, true, "task "+res.ID+" was not ready within 20ms (state PENDING)")
	requireFailed(t, record(func(tb testing.TB) { w.RequireSuccess(tb, res, 2) }), true, "was not ready")
}

func TestRequireSent(t *testing.T) {
	t.Parallel()
	reg := basics()
	var w *celerytest.Worker
	celery.Register(reg, "t.signup", func(ctx context.Context, t *celery.Task[struct {
		Email string `celery:"email"`
	}]) (string, error) {
		_, err := w.Client.SendTask(ctx, "mail.welcome", []any{t.Args.Email}, nil, celery.WithQueue("mail"), celery.WithParent(&t.Request))
		return "sent", err
	})
	w = celerytest.NewWorker(t, reg)
	// Something else in the queue first: RequireSent leaves it there.
	other := w.Send(t, "mail.digest", nil, nil, celery.WithQueue("mail"))
	signup := w.Send(t, "t.signup", []any{"ann@example.org"}, nil)
	w.RequireSuccess(t, signup, "sent")

	sent := w.RequireSent(t, "mail", "mail.welcome")
	if len(sent) != 1 {
		t.Fatalf("RequireSent returned %d messages, want 1", len(sent))
	}
	m := sent[0].Message
	if m.Task != "mail.welcome" || len(m.Args) != 1 || string(m.Args[0]) != `"ann@example.org"` || m.ParentID != signup.ID || sent[0].Queue != "mail" {
		t.Fatalf("sent %+v", sent[0])
	}
	if n, err := w.Broker.Ready("mail"); err != nil || n != 1 {
		t.Fatalf("the other message is not back in the queue: %d, %v", n, err)
	}
	digest := w.RequireSent(t, "mail", "mail.digest")
	if len(digest) != 1 || digest[0].Message.ID != other.ID {
		t.Fatalf("the message left in the queue is %+v, want %s", digest, other.ID)
	}
	if n, _ := w.Broker.Ready("mail"); n != 0 {
		t.Fatalf("%d messages left after both were taken", n)
	}
}

func TestRequireSentFailsWhenNothingWasSent(t *testing.T) {
	t.Parallel()
	w := celerytest.NewWorker(t, basics(), celerytest.WithTimeout(20*time.Millisecond))
	requireFailed(t, record(func(tb testing.TB) { w.RequireSent(tb, "mail", "mail.welcome") }), true,
		`no mail.welcome message was sent to queue "mail" within 20ms (found nothing)`)
	w.Send(t, "mail.digest", nil, nil, celery.WithQueue("mail"))
	requireFailed(t, record(func(tb testing.TB) { w.RequireSent(tb, "mail", "mail.welcome") }), true, "(found only mail.digest)")
	if n, err := w.Broker.Ready("mail"); err != nil || n != 1 {
		t.Fatalf("the digest is not back in the queue: %d, %v", n, err)
	}
}

func TestWithQueuesAndConcurrency(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 2)
	release := make(chan struct{})
	reg := celery.NewRegistry()
	celery.Register(reg, "t.block", func(context.Context, *celery.Task[struct{}]) (int, error) {
		started <- struct{}{}
		<-release
		return 1, nil
	})
	w := celerytest.NewWorker(t, reg, celerytest.WithQueues("work"), celerytest.WithConcurrency(2), celerytest.WithAcksLate(true))
	a := w.Send(t, "t.block", nil, nil, celery.WithQueue("work"))
	b := w.Send(t, "t.block", nil, nil, celery.WithQueue("work"))
	// Both run at once with concurrency 2: the second starts while the first is still blocked.
	<-started
	<-started
	close(release)
	w.RequireSuccess(t, a, 1)
	w.RequireSuccess(t, b, 1)
	// The default queue is not consumed: what is sent there stays.
	w.Send(t, "t.block", nil, nil)
	if got := w.RequireSent(t, celery.DefaultQueue, "t.block"); len(got) != 1 {
		t.Fatalf("RequireSent on the unconsumed default queue: %d messages", len(got))
	}
}

func TestWithClockDecidesExpiry(t *testing.T) {
	t.Parallel()
	later := time.Now().Add(2 * time.Hour)
	w := celerytest.NewWorker(t, basics(), celerytest.WithClock(func() time.Time { return later }))
	res := w.Send(t, "t.add", []any{1, 2}, nil, celery.WithExpiresIn(time.Hour))
	w.RequireRevoked(t, res, "expired")
}

func TestNewWorkerFailsOnBadInput(t *testing.T) {
	t.Parallel()
	requireFailed(t, record(func(tb testing.TB) { celerytest.NewWorker(tb, basics(), celerytest.WithConcurrency(-1)) }), true, "concurrency -1 must be at least 1")
	requireFailed(t, record(func(tb testing.TB) {
		celerytest.NewWorker(tb, basics(), celerytest.WithConfig(func(c *celery.Config) { c.AcceptContent = []string{"pickle"} }))
	}), true, "celerytest.NewWorker: ", "pickle is never accepted")
	requireFailed(t, record(func(tb testing.TB) { celerytest.NewWorker(tb, nil) }), true, "nil *celery.Registry")
	requireFailed(t, record(func(tb testing.TB) { celerytest.NewWorker(tb, basics(), celerytest.WithTimeout(0)) }), true, "must be positive")
}

func TestCleanupFailsWhenTheWorkerDoesNotStop(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	reg := celery.NewRegistry()
	celery.Register(reg, "t.stuck", func(ctx context.Context, _ *celery.Task[struct{}]) (int, error) {
		close(started)
		<-ctx.Done() // only the cold shutdown ends it
		return 0, ctx.Err()
	})
	r := record(func(tb testing.TB) {
		w := celerytest.NewWorker(tb, reg, celerytest.WithTimeout(50*time.Millisecond))
		w.Send(tb, "t.stuck", nil, nil)
		<-started
	})
	requireFailed(t, r, false, "celerytest: the worker did not stop within 50ms")
}

func TestWorkersAreIsolated(t *testing.T) {
	t.Parallel()
	a := celerytest.NewWorker(t, basics(), celerytest.WithQueues("only-a"))
	b := celerytest.NewWorker(t, basics(), celerytest.WithQueues("only-a"))
	if a.Broker == b.Broker || a.Backend == b.Backend {
		t.Fatal("two workers share a broker or a backend")
	}
	a.Send(t, "t.add", []any{1, 2}, nil, celery.WithQueue("elsewhere"))
	if n, err := a.Broker.Ready("elsewhere"); err != nil || n != 1 {
		t.Fatalf("a's queue: %d, %v", n, err)
	}
	if _, err := b.Broker.Ready("elsewhere"); err == nil {
		t.Fatal("a message sent through a reached b's broker")
	}
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	reg := basics()
	celery.Register(reg, "t.long", func(ctx context.Context, _ *celery.Task[struct{}]) (int, error) {
		close(started)
		<-ctx.Done() // ends when terminated
		return 0, context.Cause(ctx)
	})
	w := celerytest.NewWorker(t, reg)
	// Revoked before it is sent: it never runs.
	id := celery.NewID()
	w.Revoke(t, id, false)
	w.RequireRevoked(t, w.Send(t, "t.add", []any{1, 2}, nil, celery.WithTaskID(id)), "revoked")
	// Terminated while it runs.
	long := w.Send(t, "t.long", nil, nil)
	<-started
	w.Revoke(t, long.ID, true)
	w.RequireRevoked(t, long, "")
	requireFailed(t, record(func(tb testing.TB) { w.Revoke(tb, "", false) }), true, `revoking "": `)
}

func TestRequireNotSent(t *testing.T) {
	t.Parallel()
	w := celerytest.NewWorker(t, basics())
	requirePassed(t, record(func(tb testing.TB) { w.RequireNotSent(tb, "never-declared", "mail.welcome") }))
	w.Send(t, "mail.digest", nil, nil, celery.WithQueue("mail"))
	requirePassed(t, record(func(tb testing.TB) { w.RequireNotSent(tb, "mail", "mail.welcome") }))
	welcome := w.Send(t, "mail.welcome", nil, nil, celery.WithQueue("mail"))
	requireFailed(t, record(func(tb testing.TB) { w.RequireNotSent(tb, "mail", "mail.welcome") }), false,
		`1 mail.welcome message(s) were sent to queue "mail", want none (ids `+welcome.ID+")")
	// Both are still there, in their order.
	if n, err := w.Broker.Ready("mail"); err != nil || n != 2 {
		t.Fatalf("queue after RequireNotSent: %d, %v", n, err)
	}
	if got := w.RequireSent(t, "mail", "mail.welcome"); len(got) != 1 || got[0].Message.ID != welcome.ID {
		t.Fatalf("RequireSent after RequireNotSent: %+v", got)
	}
}

func TestWithAcksLate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		acksLate  bool
		wantReady int
	}{
		{"acks late: the message goes back", true, 1},
		{"acks early: the message was acknowledged", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			started := make(chan struct{})
			reg := celery.NewRegistry()
			celery.Register(reg, "t.stuck", func(ctx context.Context, _ *celery.Task[struct{}]) (int, error) {
				close(started)
				<-ctx.Done()
				return 0, context.Cause(ctx)
			})
			w := celerytest.NewWorker(t, reg, celerytest.WithAcksLate(tc.acksLate))
			res := w.Send(t, "t.stuck", nil, nil)
			<-started
			// A cold shutdown cancels the running task: with acks_late its message is given back.
			w.Worker.Terminate()
			ctx, cancel := context.WithTimeout(context.Background(), w.Timeout)
			defer cancel()
			if err := w.Worker.Shutdown(ctx); err != nil {
				t.Fatalf("the worker did not stop: %v", err)
			}
			if n, err := w.Broker.Ready(celery.DefaultQueue); err != nil || n != tc.wantReady {
				t.Fatalf("%d messages back in the queue (%v), want %d", n, err, tc.wantReady)
			}
			if !tc.acksLate {
				w.RequireFailure(t, res, "WorkerLostError", "")
			}
		})
	}
}
