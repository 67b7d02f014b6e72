package celery_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/forumads/forumads/celery"
)

// AddArgs are the arguments of tasks.add: add(x, y) in Python.
type AddArgs struct {
	X int `celery:"x"`
	Y int `celery:"y"`
}

// Add is declared once, shared by the worker that runs it and the programs that send it.
var Add = celery.NewTaskDef[AddArgs, int]("tasks.add", celery.Queue("math"))

// A TaskDef registers the Go function on the worker's registry and sends with the same argument
// type; Get decodes the result into the declared type. (It needs a broker and a result backend;
// see the package tests for one against RabbitMQ and Redis.)
func ExampleTaskDef() {
	reg := celery.NewRegistry()
	Add.Register(reg, func(_ context.Context, t *celery.Task[AddArgs]) (int, error) {
		return t.Args.X + t.Args.Y, nil
	})

	send := func(ctx context.Context, client *celery.Client) {
		res, err := Add.Send(ctx, client, AddArgs{X: 2, Y: 3})
		if err != nil {
			fmt.Println("send:", err)
			return
		}
		sum, err := res.Get(ctx) // an int
		var failed *celery.TaskError
		switch {
		case errors.As(err, &failed):
			fmt.Println("the task raised", failed.Exception.Type)
		case err != nil:
			fmt.Println("get:", err)
		default:
			fmt.Println(sum)
		}
	}
	_ = send
}
