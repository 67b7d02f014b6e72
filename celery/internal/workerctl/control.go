// Package workerctl answers Celery's remote control and inspect commands for a worker engine
// (control.go: the commands that change the worker; inspect.go: the inspect replies; mingle.go:
// hello and the startup sync; args.go: decoding the commands' arguments; conf.go: inspect conf).
// It reads and changes the engine through the engine's exported methods only; what it needs of
// the root's configuration comes in Options, so it imports neither the root nor its types.
package workerctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/control"
	"github.com/forumads/forumads/celery/events"
	"github.com/forumads/forumads/celery/internal/engine"
	"github.com/forumads/forumads/celery/revoke"
)

// Register registers on mb the remote-control commands of a Celery 5.2 worker, so that
// `celery inspect` and `celery control` (and Flower) work with this worker:
//
//	inspect: ping stats active reserved scheduled registered revoked query_task conf
//	         active_queues clock report hello (mingle), and the dump_* aliases
//	control: revoke terminate rate_limit time_limit add_consumer cancel_consumer pool_grow
//	         pool_shrink enable_events disable_events heartbeat shutdown
//
// pool_restart and autoscale answer as a Python worker without them does. Replies have Celery's
// shapes and texts. mb must answer for the worker's node name.
func Register(mb *control.Mailbox, e *engine.Engine, o Options) {
	c := &controller{e: e, mb: mb, o: o}
	handlers := map[string]control.Handler{
		"ping":            func(context.Context, json.RawMessage) (any, error) { return control.OK("pong"), nil },
		"stats":           c.stats,
		"active":          c.active,
		"reserved":        c.reserved,
		"scheduled":       c.scheduled,
		"registered":      c.registered,
		"revoked":         c.revoked,
		"query_task":      c.queryTask,
		"conf":            c.conf,
		"active_queues":   c.activeQueues,
		"clock":           c.clock,
		"report":          c.report,
		"hello":           c.hello,
		"revoke":          c.revoke,
		"terminate":       c.terminate,
		"rate_limit":      c.rateLimit,
		"time_limit":      c.timeLimit,
		"add_consumer":    c.addConsumer,
		"cancel_consumer": c.cancelConsumer,
		"pool_grow":       c.poolGrow,
		"pool_shrink":     c.poolShrink,
		"pool_restart":    refuse("Pool restarts not enabled"),
		"autoscale":       refuse("Autoscale not enabled"),
		"enable_events":   c.enableEvents,
		"disable_events":  c.disableEvents,
		"heartbeat":       c.heartbeat,
		"shutdown":        c.shutdown,
	}
	// Celery's aliases, for older clients.
	for alias, name := range map[string]string{"dump_conf": "conf", "dump_schedule": "scheduled",
		"dump_reserved": "reserved", "dump_active": "active", "dump_revoked": "revoked", "dump_tasks": "registered"} {
		handlers[alias] = handlers[name]
	}
	for name, h := range handlers {
		mb.Handle(name, h)
	}
}

// Options are what the handlers need of the worker's configuration.
type Options struct {
	// QueueByName declares a queue as the configuration does (add_consumer without an exchange);
	// false when it is not in task_queues and task_create_missing_queues is off.
	QueueByName func(name string) (broker.Queue, bool)
	// CustomQueue completes a queue add_consumer declares with an exchange (task_queue_max_priority).
	CustomQueue func(q broker.Queue) broker.Queue
	// Conf is the reply of inspect conf.
	Conf func(withDefaults bool) map[string]any
	// BrokerURL and ResultBackend are broker_url and result_backend, for stats and report.
	BrokerURL, ResultBackend string
}

// controller holds the command handlers of one worker's mailbox.
type controller struct {
	e  *engine.Engine
	mb *control.Mailbox
	o  Options
}

// valueError is a refusal Python reports as ValueError.
type valueError struct{ msg string }

func (e *valueError) Error() string   { return e.msg }
func (e *valueError) ExcType() string { return "ValueError" }

func refuse(msg string) control.Handler {
	return func(context.Context, json.RawMessage) (any, error) { return nil, &valueError{msg} }
}

func (c *controller) revoke(ctx context.Context, args json.RawMessage) (any, error) {
	a, err := control.DecodeRevokeArgs(args)
	if err != nil {
		return nil, err
	}
	return c.doRevoke(ctx, a)
}

// terminate is revoke with terminate set: {"signal", "task_id"}.
func (c *controller) terminate(ctx context.Context, args json.RawMessage) (any, error) {
	a, err := control.DecodeRevokeArgs(args)
	if err != nil {
		return nil, err
	}
	a.Terminate = true
	return c.doRevoke(ctx, a)
}

func (c *controller) doRevoke(ctx context.Context, a control.RevokeArgs) (any, error) {
	if a.Terminate {
		if _, err := revoke.ParseSignal(a.Signal); err != nil {
			return nil, err
		}
	}
	terminated, err := c.e.Revoke(ctx, a.TaskIDs, a.Terminate, a.Signal)
	if err != nil {
		// The ids are revoked here; only the store failed.
		c.e.Logger().Warn("revoke: "+err.Error(), "task_ids", a.TaskIDs)
	}
	return control.RevokeReply(a, terminated), nil
}

func (c *controller) rateLimit(_ context.Context, args json.RawMessage) (any, error) {
	a, err := control.DecodeRateLimitArgs(args)
	if err != nil {
		return nil, err
	}
	if err := c.e.SetRateLimit(a.TaskName, a.RateLimit); err != nil {
		var nr *engine.NotRegisteredError
		if errors.As(err, &nr) {
			c.e.Logger().Error("Rate limit attempt for unknown task " + a.TaskName)
			return control.Error(control.UnknownTask), nil
		}
		return control.Error("Invalid rate limit string: " + control.ErrorRepr(&valueError{err.Error()})), nil
	}
	if a.RateLimit == "" || a.RateLimit == "0" {
		c.e.Logger().Info("Rate limits disabled for tasks of type " + a.TaskName)
		return control.OK(control.RateLimitDisabled), nil
	}
	c.e.Logger().Info(fmt.Sprintf("New rate limit for tasks of type %s: %s.", a.TaskName, a.RateLimit))
	return control.OK(control.RateLimitSet), nil
}

func (c *controller) timeLimit(_ context.Context, args json.RawMessage) (any, error) {
	a, err := decodeTimeLimitArgs(args)
	if err != nil {
		return nil, err
	}
	if err := c.e.SetTimeLimit(a.TaskName, a.Soft, a.Hard); err != nil {
		var nr *engine.NotRegisteredError
		if errors.As(err, &nr) {
			c.e.Logger().Error("Change time limit attempt for unknown task " + a.TaskName)
			return control.Error(control.UnknownTask), nil
		}
		return nil, err
	}
	return control.OK("time limits set successfully"), nil
}

func (c *controller) addConsumer(ctx context.Context, args json.RawMessage) (any, error) {
	a, err := decodeQueueArgs("add_consumer", args)
	if err != nil {
		return nil, err
	}
	var q broker.Queue
	if a.Exchange != "" {
		q = broker.Queue{Name: a.Queue, Exchange: a.Exchange, ExchangeType: a.ExchangeType, RoutingKey: a.RoutingKey}
		if q.ExchangeType == "" {
			q.ExchangeType = "direct"
		}
		if q.RoutingKey == "" {
			q.RoutingKey = a.Queue
		}
		q = c.o.CustomQueue(q)
	} else {
		var ok bool
		if q, ok = c.o.QueueByName(a.Queue); !ok {
			return nil, fmt.Errorf("add_consumer: queue %q is not in task_queues and task_create_missing_queues is off", a.Queue)
		}
	}
	if err := c.e.AddConsumer(ctx, q); err != nil {
		return nil, err
	}
	return control.OK("add consumer " + a.Queue), nil
}

func (c *controller) cancelConsumer(ctx context.Context, args json.RawMessage) (any, error) {
	a, err := decodeQueueArgs("cancel_consumer", args)
	if err != nil {
		return nil, err
	}
	if _, err := c.e.CancelConsumer(ctx, a.Queue); err != nil {
		return nil, err
	}
	return control.OK("no longer consuming from " + a.Queue), nil
}

func (c *controller) poolGrow(_ context.Context, args json.RawMessage) (any, error) {
	n, err := decodePoolArgs("pool_grow", args)
	if err != nil {
		return nil, err
	}
	if err := c.e.Grow(n); err != nil {
		return nil, err
	}
	return control.OK("pool will grow"), nil
}

func (c *controller) poolShrink(_ context.Context, args json.RawMessage) (any, error) {
	n, err := decodePoolArgs("pool_shrink", args)
	if err != nil {
		return nil, err
	}
	if err := c.e.Shrink(n); err != nil {
		return nil, err
	}
	return control.OK("pool will shrink"), nil
}

func (c *controller) enableEvents(context.Context, json.RawMessage) (any, error) {
	if c.e.Events() == nil {
		return control.Error("events are not set up on this worker"), nil
	}
	if c.e.Events().EnableTaskEvents() {
		c.e.Logger().Info("Events of group {task} enabled by remote.")
		return control.OK("task events enabled"), nil
	}
	return control.OK("task events already enabled"), nil
}

func (c *controller) disableEvents(context.Context, json.RawMessage) (any, error) {
	if c.e.Events() == nil {
		return control.OK("task events already disabled"), nil
	}
	if c.e.Events().DisableTaskEvents() {
		c.e.Logger().Info("Events of group {task} disabled by remote.")
		return control.OK("task events disabled"), nil
	}
	return control.OK("task events already disabled"), nil
}

// heartbeat sends a worker-heartbeat now (freq 5, as Celery's command does); it replies null.
func (c *controller) heartbeat(context.Context, json.RawMessage) (any, error) {
	if c.e.Events() == nil {
		return nil, nil
	}
	active, processed := c.e.HeartbeatStatus()
	la, _ := events.ReadLoadAvg()
	c.e.Events().Send(events.NewWorkerHeartbeat(events.WorkerState{Freq: 5 * time.Second, Active: active,
		Processed: processed, LoadAvg: la, Software: events.DefaultSoftware()}))
	return nil, nil
}

// shutdown starts a warm shutdown. Python raises before replying; this worker replies first.
func (c *controller) shutdown(_ context.Context, args json.RawMessage) (any, error) {
	msg, err := decodeShutdownArgs(args)
	if err != nil {
		return nil, err
	}
	c.e.Logger().Warn(msg)
	c.e.BeginShutdown()
	return control.OK(msg), nil
}
