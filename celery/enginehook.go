// This file holds the root's side of the engine seam (celery/internal/engine): the errors the
// engine reports with, the registry as the engine's Tasks, a task's run turned into an Outcome,
// and Request.UpdateState through the engine.

package celery

import (
	"context"
	"encoding/json"
	"errors"
	"runtime/debug"

	"github.com/forumads/forumads/celery/internal/engine"
)

// engineErrors are this package's errors, as the engine reports with them.
var engineErrors = engine.Errors{
	Closed:        ErrWorkerClosed,
	ColdClosed:    errColdShutdown,
	Shutdown:      ErrWorkerShutdown,
	SoftTimeLimit: ErrSoftTimeLimit,
	HardTimeLimit: ErrHardTimeLimit,
	Pool:          ErrPool,
	Terminated:    func(signal string) error { return &TerminatedError{Signal: signal} },
	MaxRetriesExceeded: func(task, id, args, kwargs string) error {
		return &MaxRetriesExceededError{Task: task, ID: id, Args: args, Kwargs: kwargs}
	},
	Exception: func(err error) (typ, module, message, stack string) {
		typ, module, message = ExceptionOf(err)
		var p *PanicError
		if errors.As(err, &p) {
			stack = p.Stack
		}
		return typ, module, message, stack
	},
}

// signalOf reads what a task's error asks the worker to do: ErrIgnore, then a Reject, then a
// Retry, else a failure.
func signalOf(err error) engine.Signal {
	if err == nil {
		return engine.Signal{}
	}
	var rj *RejectError
	var r *RetryError
	switch {
	case errors.Is(err, ErrIgnore):
		return engine.Signal{Kind: engine.Ignore}
	case errors.As(err, &rj):
		return engine.Signal{Kind: engine.Reject, Err: rj.Err, Requeue: rj.Requeue}
	case errors.As(err, &r):
		return engine.Signal{Kind: engine.Retry, Err: r.Err, Countdown: r.Countdown, ETA: r.ETA, MaxRetries: r.MaxRetries}
	}
	return engine.Signal{Kind: engine.Fail}
}

// engineTasks is the Registry as the engine's Tasks.
type engineTasks Registry

func (t *engineTasks) Lookup(name string) (*engine.Task, bool) {
	def, ok := (*Registry)(t).lookup(name)
	if !ok {
		return nil, false
	}
	return &def.eng, true
}

func (t *engineTasks) Names() []string { return (*Registry)(t).Names() }

// runCall runs def for the engine: the Request the task sees from the call's message and delivery,
// its panic recovered as a *PanicError, its error read into a Signal.
func (def *taskDef) runCall(ctx context.Context, c engine.Call) (out engine.Outcome) {
	defer func() {
		if p := recover(); p != nil {
			out = engine.Outcome{Err: &PanicError{Value: p, Stack: string(debug.Stack())}}
		}
	}()
	m, d := c.Msg, c.Delivery
	req := &Request{
		ID: m.ID, Task: m.Task, Shadow: m.Shadow, Retries: m.Retries, ETA: m.ETA, Expires: m.Expires,
		RootID: m.RootID, ParentID: m.ParentID, GroupID: m.GroupID, GroupIndex: m.GroupIndex,
		Origin: m.Origin, Hostname: c.Engine.Hostname(), Headers: m.ExtraHeaders,
		DeliveryInfo: DeliveryInfo{Exchange: d.Exchange, RoutingKey: d.RoutingKey, Queue: d.Queue,
			Priority: d.Priority, Redelivered: d.Redelivered},
		state: (*workerState)(c.Engine),
	}
	req.props, req.Embed, req.ReplacedTaskNesting = &d.Envelope, m.Embed, replacedNesting(m)
	res, err := def.run(ctx, req, m.Args, m.Kwargs)
	return engine.Outcome{Result: res, Err: err, Signal: signalOf(err)}
}

// workerState is the engine as the stateWriter of the Requests it runs (a pointer conversion:
// nothing is allocated per task).
type workerState engine.Engine

func (s *workerState) updateState(ctx context.Context, req *Request, state string, meta any) error {
	e := (*engine.Engine)(s)
	if !e.HasBackend() {
		return errors.New("update_state: no result backend configured")
	}
	raw, err := marshalResult(meta)
	if err != nil {
		return err
	}
	return e.UpdateState(ctx, req.ID, req.GroupID, req.ParentID, state, json.RawMessage(raw))
}
