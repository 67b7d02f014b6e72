package celery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/events"
	"github.com/forumads/forumads/celery/internal/engine"
	"github.com/forumads/forumads/celery/protocol"
)

// ClientOptions configure a Client.
type ClientOptions struct {
	Config Config
	Broker broker.Broker
	// Backend reads results; nil means AsyncResult.Get is unavailable.
	Backend ResultBackend
	// Registry, if given, supplies per-task default queues (the Queue task option).
	Registry *Registry
	// Events, when task_send_sent_event is on, gets a task-sent event for every task published
	// (create it with Enabled: true and the client's node name, Client.Origin). nil sends none.
	Events *events.Dispatcher
}

// Client publishes Celery protocol-2 task messages, like a Python app's send_task/apply_async, and
// reads their results. It is safe for concurrent use.
type Client struct {
	cfg     Config
	br      broker.Broker
	backend ResultBackend
	reg     *Registry
	events  *events.Dispatcher
	router  *Router
	origin  string
	replyTo string
}

// NewClient returns a client.
func NewClient(o ClientOptions) (*Client, error) {
	cfg := o.Config.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.Broker == nil {
		return nil, errors.New("celery: client needs a Broker")
	}
	router, err := NewRouter(cfg)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	return &Client{cfg: cfg, br: o.Broker, backend: o.Backend, reg: o.Registry, events: o.Events, router: router,
		origin: fmt.Sprintf("gen%d@%s", os.Getpid(), host), replyTo: NewID()}, nil
}

// Origin is the client's node name, "gen<pid>@<host>", as Celery names a client: the origin
// header of its messages and the hostname of its task-sent events.
func (c *Client) Origin() string { return c.origin }

// NewID returns a random UUID4 string, Celery's task id format.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// SendOptions are apply_async's options.
type SendOptions struct {
	TaskID       string
	Countdown    time.Duration
	ETA          *time.Time
	Expires      *time.Time
	ExpiresIn    time.Duration
	Queue        string
	Exchange     string
	RoutingKey   string
	Priority     *int
	Retries      int
	TimeLimit    time.Duration
	SoftLimit    time.Duration
	Headers      map[string]any
	IgnoreResult bool
	Shadow       string
	ParentID     string
	RootID       string
	GroupID      string
	GroupIndex   *int

	// taskQueue is the queue of the task's declaration ([TaskDef]), used as the registry's Queue
	// option is: when neither the call nor task_routes names a queue.
	taskQueue string
}

// SendOption sets one of the SendOptions.
type SendOption func(*SendOptions)

// WithTaskID sets the task id (default: a new UUID).
func WithTaskID(id string) SendOption { return func(o *SendOptions) { o.TaskID = id } }

// WithCountdown runs the task no earlier than d from now.
func WithCountdown(d time.Duration) SendOption { return func(o *SendOptions) { o.Countdown = d } }

// WithETA runs the task no earlier than t.
func WithETA(t time.Time) SendOption { return func(o *SendOptions) { o.ETA = &t } }

// WithExpires revokes the task if it has not started by t.
func WithExpires(t time.Time) SendOption { return func(o *SendOptions) { o.Expires = &t } }

// WithExpiresIn revokes the task if it has not started within d.
func WithExpiresIn(d time.Duration) SendOption { return func(o *SendOptions) { o.ExpiresIn = d } }

// WithQueue sends to a queue instead of the routed one.
func WithQueue(q string) SendOption { return func(o *SendOptions) { o.Queue = q } }

// WithPriority sets the message priority (0-255; effective on queues with x-max-priority).
func WithPriority(p int) SendOption { return func(o *SendOptions) { o.Priority = &p } }

// WithRetries sets the retries header.
func WithRetries(n int) SendOption { return func(o *SendOptions) { o.Retries = n } }

// WithTimeLimits sets the hard and soft time limits for this call.
func WithTimeLimits(hard, soft time.Duration) SendOption {
	return func(o *SendOptions) { o.TimeLimit, o.SoftLimit = hard, soft }
}

// WithHeaders adds custom message headers.
func WithHeaders(h map[string]any) SendOption { return func(o *SendOptions) { o.Headers = h } }

// WithParent marks the task as sent by the running task r (parent_id = r's id, root_id = r's root),
// as Celery does for a task sent from inside another, so AsyncResult.parent links them.
func WithParent(r *Request) SendOption {
	return func(o *SendOptions) {
		o.ParentID, o.RootID = r.ID, r.RootID
		if o.RootID == "" {
			o.RootID = r.ID
		}
	}
}

// WithIgnoreResult asks the worker not to store the result.
func WithIgnoreResult() SendOption { return func(o *SendOptions) { o.IgnoreResult = true } }

// SendTask publishes a task by name with positional and keyword arguments (each JSON-encodable),
// like Celery's app.send_task, and returns a handle on its result.
func (c *Client) SendTask(ctx context.Context, name string, args []any, kwargs map[string]any, opts ...SendOption) (*AsyncResult, error) {
	rawArgs := make([]json.RawMessage, len(args))
	for i, a := range args {
		b, err := marshalResult(a)
		if err != nil {
			return nil, fmt.Errorf("send_task %s: args[%d]: %w", name, i, err)
		}
		rawArgs[i] = b
	}
	rawKwargs := make(map[string]json.RawMessage, len(kwargs))
	for k, v := range kwargs {
		b, err := marshalResult(v)
		if err != nil {
			return nil, fmt.Errorf("send_task %s: kwargs[%q]: %w", name, k, err)
		}
		rawKwargs[k] = b
	}
	return c.SendRaw(ctx, name, rawArgs, rawKwargs, opts...)
}

// Send publishes a task whose arguments are a struct using the same `celery` tags as the task's
// registration, so a Go producer and a Go task share one type. Named parameters go as kwargs.
// A [TaskDef] also ties the result's type to the task.
func Send[A any](ctx context.Context, c *Client, name string, args A, opts ...SendOption) (*AsyncResult, error) {
	pos, kw, err := encodeArgs(name, args)
	if err != nil {
		return nil, err
	}
	return c.SendRaw(ctx, name, pos, kw, opts...)
}

// encodeArgs encodes a task's argument struct into Celery's args and kwargs with the `celery`
// tags the worker decodes it with (planArgs): named parameters as kwargs (an optional one left
// out when zero), *args positionally (the named parameters then positionally in front of them),
// **kwargs merged into the kwargs.
func encodeArgs[A any](name string, args A) ([]json.RawMessage, map[string]json.RawMessage, error) {
	plan, err := planArgs(reflect.TypeFor[A]())
	if err != nil {
		return nil, nil, err
	}
	v := reflect.ValueOf(args)
	var pos []json.RawMessage
	kw := map[string]json.RawMessage{}
	for _, p := range plan.Params {
		f := v.FieldByIndex(p.Index)
		if p.Optional && f.IsZero() {
			continue
		}
		b, err := marshalResult(f.Interface())
		if err != nil {
			return nil, nil, fmt.Errorf("send %s: %s: %w", name, p.Name, err)
		}
		kw[p.Name] = b
	}
	if plan.Star != nil {
		f := v.FieldByIndex(plan.Star)
		if len(plan.Params) > 0 && f.Len() > 0 {
			// Extra positional args need the named ones positionally in front of them, an
			// optional one left out of the kwargs included (as its value), or it would be a hole.
			pos = make([]json.RawMessage, 0, len(plan.Params)+f.Len())
			for _, p := range plan.Params {
				b, ok := kw[p.Name]
				if !ok {
					if b, err = marshalResult(v.FieldByIndex(p.Index).Interface()); err != nil {
						return nil, nil, fmt.Errorf("send %s: %s: %w", name, p.Name, err)
					}
				}
				pos = append(pos, b)
				delete(kw, p.Name)
			}
		}
		for i := 0; i < f.Len(); i++ {
			b, err := marshalResult(f.Index(i).Interface())
			if err != nil {
				return nil, nil, err
			}
			pos = append(pos, b)
		}
	}
	if plan.Kwargs != nil {
		it := v.FieldByIndex(plan.Kwargs).MapRange()
		for it.Next() {
			b, err := marshalResult(it.Value().Interface())
			if err != nil {
				return nil, nil, err
			}
			kw[it.Key().String()] = b
		}
	}
	return pos, kw, nil
}

// SendRaw publishes a task with arguments already encoded as JSON.
func (c *Client) SendRaw(ctx context.Context, name string, args []json.RawMessage, kwargs map[string]json.RawMessage, opts ...SendOption) (*AsyncResult, error) {
	var o SendOptions
	for _, opt := range opts {
		opt(&o)
	}
	if args == nil {
		args = []json.RawMessage{}
	}
	if kwargs == nil {
		kwargs = map[string]json.RawMessage{}
	}
	id := o.TaskID
	if id == "" {
		id = NewID()
	}
	now := time.Now().UTC()
	msg := &protocol.TaskMessage{
		Protocol: 2, ID: id, Task: name, Shadow: o.Shadow, Args: args, Kwargs: kwargs,
		Retries: o.Retries, RootID: o.RootID, ParentID: o.ParentID, GroupID: o.GroupID, GroupIndex: o.GroupIndex,
		Origin: c.origin, IgnoreResult: o.IgnoreResult, ExtraHeaders: o.Headers, ReplyTo: c.replyTo, UTC: true,
	}
	if msg.RootID == "" {
		msg.RootID = id
	}
	switch {
	case o.ETA != nil:
		t := o.ETA.UTC()
		msg.ETA = &t
	case o.Countdown > 0:
		t := now.Add(o.Countdown)
		msg.ETA = &t
	}
	switch {
	case o.Expires != nil:
		t := o.Expires.UTC()
		msg.Expires = &t
	case o.ExpiresIn > 0:
		t := now.Add(o.ExpiresIn)
		msg.Expires = &t
	}
	if o.TimeLimit > 0 {
		h := o.TimeLimit.Seconds()
		msg.TimeLimit.Hard = &h
	}
	if o.SoftLimit > 0 {
		s := o.SoftLimit.Seconds()
		msg.TimeLimit.Soft = &s
	}
	if o.Queue == "" && o.taskQueue == "" && c.reg != nil {
		if opts, ok := c.reg.Options(name); ok {
			o.taskQueue = opts.Queue
		}
	}
	dest, err := c.router.route(name, &o)
	if err != nil {
		return nil, fmt.Errorf("send_task %s: %w", name, err)
	}
	msg.Priority = &dest.Priority
	pub := dest.Publishing()
	env, err := protocol.EncodeV2(msg, protocol.EncodeOptions{Serializer: c.cfg.TaskSerializer, Compression: c.cfg.TaskCompression})
	if err != nil {
		return nil, fmt.Errorf("send_task %s: %w", name, err)
	}
	env.DeliveryMode = c.cfg.DeliveryMode()
	pub.Envelope = env
	pub.Timestamp = now
	if err := c.br.Publish(ctx, pub); err != nil {
		return nil, fmt.Errorf("send_task %s: %w", name, err)
	}
	if c.cfg.TaskSendSentEvent && c.events != nil {
		queue := pub.RoutingKey
		if pub.Declare != nil {
			queue = pub.Declare.Name
		}
		c.events.Send(events.NewTaskSent(engine.TaskInfo(msg), queue, pub.Exchange, pub.RoutingKey))
	}
	return &AsyncResult{ID: id, backend: c.backend}, nil
}

// AsyncResult is a handle on a sent task's result, like Celery's AsyncResult.
type AsyncResult struct {
	ID      string
	backend ResultBackend
}

// NewAsyncResult returns a handle on the result of the task with this id.
func NewAsyncResult(id string, backend ResultBackend) *AsyncResult {
	return &AsyncResult{ID: id, backend: backend}
}

// TaskError is the failure of a task, as read from the result backend.
type TaskError struct {
	ID        string
	State     string
	Exception protocol.ExceptionInfo
	Traceback string
}

func (e *TaskError) Error() string {
	return fmt.Sprintf("task %s %s: %s", e.ID, e.State, e.Exception.Error())
}

// Info returns the stored meta (state, result, traceback...) without waiting.
func (r *AsyncResult) Info(ctx context.Context) (protocol.ResultMeta, error) {
	if r.backend == nil {
		return protocol.ResultMeta{}, errors.New("celery: no result backend")
	}
	return r.backend.Get(ctx, r.ID)
}

// State returns the task's state (PENDING when unknown).
func (r *AsyncResult) State(ctx context.Context) (string, error) {
	m, err := r.Info(ctx)
	return m.Status, err
}

// Get waits until the task is ready and returns its result; a FAILURE or REVOKED task returns a
// *TaskError. Bound the wait with ctx.
func (r *AsyncResult) Get(ctx context.Context) (json.RawMessage, error) {
	if r.backend == nil {
		return nil, errors.New("celery: no result backend")
	}
	m, err := r.backend.Wait(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	if m.Status == protocol.StateSuccess {
		return m.Result, nil
	}
	te := &TaskError{ID: r.ID, State: m.Status}
	_ = json.Unmarshal(m.Result, &te.Exception)
	if m.Traceback != nil {
		te.Traceback = *m.Traceback
	}
	return nil, te
}

// GetInto waits for the result and decodes it into v.
func (r *AsyncResult) GetInto(ctx context.Context, v any) error {
	raw, err := r.Get(ctx)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}
