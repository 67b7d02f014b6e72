package celerytest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/celerytest"
)

// AddArgs are the arguments of the example task math.add.
type AddArgs struct {
	X int `celery:"x"`
	Y int `celery:"y"`
}

// ExampleNewWorker tests a typed task through a real worker. In a test, t is the *testing.T.
func ExampleNewWorker() {
	t := newExampleT()
	defer t.finish()

	reg := celery.NewRegistry()
	celery.Register(reg, "math.add", func(_ context.Context, task *celery.Task[AddArgs]) (int, error) {
		return task.Args.X + task.Args.Y, nil
	})
	w := celerytest.NewWorker(t, reg)

	res := w.Send(t, "math.add", []any{2, 3}, nil)
	w.RequireSuccess(t, res, 5)

	// Or read the value, typed, and send with the same struct the task takes.
	typed, err := celery.Send(context.Background(), w.Client, "math.add", AddArgs{X: 40, Y: 2})
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	fmt.Println(celerytest.Success[int](t, w, typed))
	// Output: 42
}

// ExampleWorker_RequireRetried tests a task that retries until its third run.
func ExampleWorker_RequireRetried() {
	t := newExampleT()
	defer t.finish()

	reg := celery.NewRegistry()
	celery.Register(reg, "feeds.fetch", func(_ context.Context, task *celery.Task[struct{}]) (string, error) {
		if task.Request.Retries < 2 {
			return "", task.Retry(errors.New("feed server busy"), celery.Countdown(time.Millisecond))
		}
		return "fetched", nil
	})
	w := celerytest.NewWorker(t, reg)

	res := w.Send(t, "feeds.fetch", nil, nil)
	w.RequireRetried(t, res, 2)
	w.RequireSuccess(t, res, "fetched")
	fmt.Println("retried", w.Worker.Stats().Retried.Load(), "times")
	// Output: retried 2 times
}

// ExampleWorker_RequireSent tests a task that sends another task, without running the second:
// it goes to a queue the worker does not consume.
func ExampleWorker_RequireSent() {
	t := newExampleT()
	defer t.finish()

	reg := celery.NewRegistry()
	var w *celerytest.Worker
	celery.Register(reg, "users.signup", func(ctx context.Context, task *celery.Task[struct {
		Email string `celery:"email"`
	}]) (bool, error) {
		_, err := w.Client.SendTask(ctx, "mail.welcome", []any{task.Args.Email}, nil,
			celery.WithQueue("mail"), celery.WithParent(&task.Request))
		return err == nil, err
	})
	w = celerytest.NewWorker(t, reg)

	w.RequireSuccess(t, w.Send(t, "users.signup", []any{"ann@example.org"}, nil), true)
	for _, s := range w.RequireSent(t, "mail", "mail.welcome") {
		fmt.Println(s.Message.Task, string(s.Message.Args[0]), "on", s.Queue)
	}
	// Output: mail.welcome "ann@example.org" on mail
}

// exampleT stands in for a test's *testing.T in the examples: it prints failures and runs the
// cleanups at finish. (Methods it does not override panic: the embedded TB is nil.)
type exampleT struct {
	testing.TB
	cleanups []func()
}

func newExampleT() *exampleT { return &exampleT{} }

func (t *exampleT) Helper()          {}
func (t *exampleT) Log(...any)       {}
func (t *exampleT) Cleanup(f func()) { t.cleanups = append(t.cleanups, f) }
func (t *exampleT) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stdout, "FAIL: "+format+"\n", args...)
}
func (t *exampleT) Fatalf(format string, args ...any) { t.Errorf(format, args...); panic("fatal") }
func (t *exampleT) finish() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}
