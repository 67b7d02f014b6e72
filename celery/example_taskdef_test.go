package celery_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend/memorybackend"
	"github.com/forumads/forumads/celery/broker/memorybroker"
)

// AddArgs are the arguments of tasks.add: add(x, y) in Python.
type AddArgs struct {
	X int `celery:"x"`
	Y int `celery:"y"`
}

// Add is declared once, shared by the worker that runs it and the programs that send it.
var Add = celery.NewTaskDef[AddArgs, int]("tasks.add", celery.Queue("math"))

// A TaskDef registers the Go function on the worker's registry and sends with the same argument
// type; Get decodes the result into the declared type. Here the worker and the client share the
// in-memory broker and backend; a program gets RabbitMQ and Redis the same way from broker_url and
// result_backend (internal/wiring).
func ExampleTaskDef() {
	reg := celery.NewRegistry()
	Add.Register(reg, func(_ context.Context, t *celery.Task[AddArgs]) (int, error) {
		return t.Args.X + t.Args.Y, nil
	})
	br, results := memorybroker.New(), memorybackend.New(memorybackend.Options{})
	defer func() { _ = br.Close() }()
	cfg := celery.Config{WorkerConcurrency: 1}
	w, err := celery.NewWorker(celery.WorkerOptions{Config: cfg, Registry: reg, Broker: br, Backend: results,
		Queues: []string{"math"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- w.Run(context.Background()) }()
	client, err := celery.NewClient(celery.ClientOptions{Config: cfg, Broker: br, Backend: results})
	if err != nil {
		log.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := Add.Send(ctx, client, AddArgs{X: 2, Y: 3})
	if err != nil {
		log.Fatal(err)
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

	if err := w.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(errors.Is(<-stopped, celery.ErrWorkerClosed))
	// Output:
	// 5
	// true
}
