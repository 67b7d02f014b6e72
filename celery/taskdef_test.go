package celery_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/internal/testenv"
)

type sumArgs struct {
	X int `celery:"x"`
	Y int `celery:"y"`
}

type sumResult struct {
	Sum   int    `json:"sum"`
	Queue string `json:"queue"`
}

// TestTaskDefSendGetThroughRabbitMQAndRedis: one declaration registers the task on a worker and
// sends it; Get decodes the stored result into the declared type; the declaration's Queue option
// routes the message to that queue; a failure is a *TaskError with the exception's type and
// message; a result of another shape than declared is ErrResultType.
func TestTaskDefSendGetThroughRabbitMQAndRedis(t *testing.T) {
	t.Parallel()
	var typedQueue string
	sum := celery.NewTaskDef[sumArgs, sumResult]("test.typed.sum")
	var routed *celery.TaskDef[sumArgs, sumResult] // declared with the queue's name, once setup has made it
	fail := celery.NewTaskDef[sumArgs, int]("test.typed.fail")
	asText := celery.NewTaskDef[sumArgs, string]("test.typed.shape")
	b := setup(t, func(reg *celery.Registry) {
		run := func(_ context.Context, task *celery.Task[sumArgs]) (sumResult, error) {
			return sumResult{Sum: task.Args.X + task.Args.Y, Queue: task.DeliveryInfo.Queue}, nil
		}
		sum.Register(reg, run)
		fail.Register(reg, func(context.Context, *celery.Task[sumArgs]) (int, error) {
			return 0, fmt.Errorf("cannot add %d", 7)
		})
		asText.Register(reg, func(_ context.Context, task *celery.Task[sumArgs]) (string, error) {
			return fmt.Sprint(task.Args.X), nil
		})
		// The routed task is declared with the second queue the worker consumes (mutate, which
		// names it, runs before register).
		routed = celery.NewTaskDef[sumArgs, sumResult]("test.typed.routed", celery.Queue(typedQueue))
		routed.Register(reg, run)
	}, func(cfg *celery.Config) {
		typedQueue = cfg.TaskDefaultQueue + ".typed"
		cfg.TaskQueues = []celery.QueueConfig{{Name: cfg.TaskDefaultQueue}, {Name: typedQueue}}
	})
	testenv.DeleteQueuesAtCleanup(t, typedQueue)
	ctx := ctxT(t, time.Minute)

	res, err := sum.Send(ctx, b.client, sumArgs{X: 2, Y: 3})
	if err != nil {
		t.Fatal(err)
	}
	got, err := res.Get(ctx)
	if err != nil || got != (sumResult{Sum: 5, Queue: b.queue}) {
		t.Fatalf("sum.Get = %+v, %v; want {5 %s}", got, err, b.queue)
	}

	res, err = routed.Send(ctx, b.client, sumArgs{X: 1, Y: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := res.Get(ctx); err != nil || got != (sumResult{Sum: 2, Queue: typedQueue}) {
		t.Fatalf("routed.Get = %+v, %v; want it run from %s (the declaration's queue)", got, err, typedQueue)
	}
	// The call's own queue still wins over the declaration's.
	res, err = routed.Send(ctx, b.client, sumArgs{X: 1, Y: 2}, celery.WithQueue(b.queue))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := res.Get(ctx); err != nil || got.Queue != b.queue {
		t.Fatalf("routed.Get with WithQueue = %+v, %v; want it run from %s", got, err, b.queue)
	}

	fres, err := fail.Send(ctx, b.client, sumArgs{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := fres.Get(ctx)
	var te *celery.TaskError
	if !errors.As(err, &te) || te.State != "FAILURE" || te.Exception.Type != "Exception" ||
		len(te.Exception.Message) != 1 || te.Exception.Message[0] != "cannot add 7" || n != 0 {
		t.Fatalf("fail.Get = %d, %v (%+v); want a FAILURE TaskError Exception('cannot add 7')", n, err, te)
	}

	// A client whose declaration disagrees with the worker's (int instead of string).
	wrong := celery.NewTaskDef[sumArgs, int](asText.Name())
	wres, err := wrong.Send(ctx, b.client, sumArgs{X: 4})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := wres.Get(ctx); !errors.Is(err, celery.ErrResultType) {
		t.Fatalf("Get of a string result into int = %d, %v; want ErrResultType", v, err)
	}
	// The same result read through a handle made from its id, with the right type.
	if s, err := asText.Result(wres.ID, b.backend).Get(ctx); err != nil || s != "4" {
		t.Fatalf("asText.Result(id).Get = %q, %v; want \"4\"", s, err)
	}
}
