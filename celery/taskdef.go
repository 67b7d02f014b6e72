package celery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// TaskDef is a task declared once for both of its sides: its Celery name, the Go type A of its
// arguments (a struct with `celery` tags, see [Register]), the Go type R of its result, and its
// options. The worker side registers the task's function with [TaskDef.Register]; the sending side
// calls [TaskDef.Send], which encodes A with the very tags the worker decodes, so a Go caller
// cannot send the wrong argument shape, and gets a [Result] whose Get decodes the result into R.
//
// A TaskDef is immutable and safe for concurrent use; declare it as a package-level variable
// shared by the worker and its clients:
//
//	var Add = celery.NewTaskDef[AddArgs, int]("tasks.add", celery.Queue("math"))
type TaskDef[A, R any] struct {
	name string
	opts []TaskOption
	// queue is the Queue option: where Send publishes when neither the call nor task_routes
	// names a queue, as a registry's Queue option is for its clients.
	queue string
}

// NewTaskDef declares a task. It panics on an empty name or an argument type that cannot carry
// Celery arguments (not a struct, or a bad `celery` tag), as [Register] does: these are
// programming errors.
func NewTaskDef[A, R any](name string, opts ...TaskOption) *TaskDef[A, R] {
	if name == "" {
		panic("celery: task definition: empty task name")
	}
	at := reflect.TypeFor[A]()
	if !reflect.PointerTo(at).Implements(reflect.TypeFor[ArgsUnmarshaler]()) {
		if _, err := planArgs(at); err != nil {
			panic(fmt.Sprintf("celery: task definition %q: %v", name, err))
		}
	}
	var o TaskOptions
	for _, opt := range opts {
		opt(&o)
	}
	return &TaskDef[A, R]{name: name, opts: append([]TaskOption(nil), opts...), queue: o.Queue}
}

// Name is the task's Celery name.
func (d *TaskDef[A, R]) Name() string { return d.name }

// Register adds the task's function to reg under the task's name and options. It panics where
// [Register] does (a duplicate name, a bad rate limit).
func (d *TaskDef[A, R]) Register(reg *Registry, fn TaskFunc[A, R]) {
	Register(reg, d.name, fn, d.opts...)
}

// RegisterE is Register returning the error instead of panicking.
func (d *TaskDef[A, R]) RegisterE(reg *Registry, fn TaskFunc[A, R]) error {
	return RegisterE(reg, d.name, fn, d.opts...)
}

// Send publishes the task with args through c, like [Send] (named parameters as kwargs, the
// `celery` tags of A), routed by c's router with the task's Queue option below the call's options
// and task_routes; it returns a handle whose Get decodes the result into R.
func (d *TaskDef[A, R]) Send(ctx context.Context, c *Client, args A, opts ...SendOption) (*Result[R], error) {
	pos, kw, err := encodeArgs(d.name, args)
	if err != nil {
		return nil, err
	}
	if d.queue != "" {
		opts = append([]SendOption{func(o *SendOptions) { o.taskQueue = d.queue }}, opts...)
	}
	ar, err := c.SendRaw(ctx, d.name, pos, kw, opts...)
	if err != nil {
		return nil, err
	}
	return &Result[R]{AsyncResult: ar}, nil
}

// Result returns a handle on the result of the task run with this id (for instance one sent by
// another program), read from backend.
func (d *TaskDef[A, R]) Result(id string, backend ResultBackend) *Result[R] {
	return &Result[R]{AsyncResult: NewAsyncResult(id, backend)}
}

// Result is an [AsyncResult] whose Get decodes the task's result into R. Info, State and GetInto
// are AsyncResult's.
type Result[R any] struct {
	*AsyncResult
}

// ErrResultType is wrapped by Result.Get when the stored result does not decode into R (the task
// returned another shape than its declaration says).
var ErrResultType = errors.New("celery: the task's result does not decode into its declared type")

// Get waits until the task is ready and returns its result decoded into R. A FAILURE or REVOKED
// task returns a *[TaskError] (the exception's type and message, the traceback); a result that
// does not decode into R an error wrapping [ErrResultType]. Bound the wait with ctx.
func (r *Result[R]) Get(ctx context.Context) (R, error) {
	var v R
	raw, err := r.AsyncResult.Get(ctx)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("%w: task %s returned %.200s: decoding into %T: %w", ErrResultType, r.ID, raw, v, err)
	}
	return v, nil
}
