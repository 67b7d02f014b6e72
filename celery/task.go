package celery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/forumads/forumads/celery/internal/engine"
	"github.com/forumads/forumads/celery/protocol"
)

// Request is the metadata of one task execution, Celery's task.request.
type Request struct {
	ID         string
	Task       string // registered name
	Shadow     string // display name given by the sender, if any
	Retries    int
	ETA        *time.Time
	Expires    *time.Time
	RootID     string
	ParentID   string
	GroupID    string
	GroupIndex *int
	Origin     string
	Hostname   string // this worker's node name
	// Headers holds the custom headers the sender added (everything that is not Celery's own).
	Headers      map[string]any
	DeliveryInfo DeliveryInfo
	// Embed is the message's canvas: its link callbacks and errbacks, the rest of its chain and its
	// chord body (task.request.callbacks, errbacks, chain, chord); canvas.Sender.Replace carries it
	// over to a replacement.
	Embed protocol.Embed
	// ReplacedTaskNesting is how many times the task was replaced (the replaced_task_nesting header).
	ReplacedTaskNesting int

	state stateWriter
	props *protocol.Envelope // the delivery's, for Properties (nil outside a worker)
}

// DeliveryInfo is where the message came from.
type DeliveryInfo struct {
	Exchange    string
	RoutingKey  string
	Queue       string
	Priority    uint8
	Redelivered bool
}

// stateWriter stores intermediate states for a running task.
type stateWriter interface {
	updateState(ctx context.Context, req *Request, state string, meta any) error
}

// UpdateState stores a custom state (e.g. "PROGRESS") with meta for the running task, as Celery's
// task.update_state(state=..., meta=...): Python reads it with AsyncResult(id).state and .info.
func (r *Request) UpdateState(ctx context.Context, state string, meta any) error {
	if r.state == nil {
		return fmt.Errorf("update_state: no result backend")
	}
	return r.state.updateState(ctx, r, state, meta)
}

// Retry returns the error that retries this task (see [Retry]).
func (r *Request) Retry(err error, opts ...RetryOption) error { return Retry(err, opts...) }

// Task is one execution of a task with arguments of type A.
type Task[A any] struct {
	Request
	Args A
}

// TaskFunc is a task body: it gets the decoded arguments and returns the result that Python's
// AsyncResult.get() returns (JSON-encoded), or an error (a FAILURE, or one of the signals
// [Retry], [Reject], [ErrIgnore]).
type TaskFunc[A, R any] func(ctx context.Context, t *Task[A]) (R, error)

// TaskOptions are per-task settings, Celery's task attributes. Nil means the worker's global setting.
type TaskOptions struct {
	AcksLate                 *bool
	AcksOnFailureOrTimeout   *bool
	RejectOnWorkerLost       *bool
	MaxRetries               *int // -1 = unlimited (Celery's None); default 3
	DefaultRetryDelay        *time.Duration
	TimeLimit                *time.Duration
	SoftTimeLimit            *time.Duration
	RateLimit                string
	IgnoreResult             *bool
	StoreErrorsEvenIfIgnored bool
	TrackStarted             *bool
	// AutoRetryFor, when it returns true for an error, turns that error into a retry (autoretry_for).
	AutoRetryFor func(error) bool
	// RetryBackoff > 0 makes automatic retries wait factor·2^retries (retry_backoff), capped by
	// RetryBackoffMax (default 600s), randomised in [0, that] unless RetryJitter is false.
	RetryBackoff    time.Duration
	RetryBackoffMax time.Duration
	RetryJitter     *bool
	// Queue is where clients of this registry send the task when no route says otherwise.
	Queue string
	// RequestErrback marks the task as a "new-style" errback, taking (request, exc, traceback)
	// instead of the failed task's id (see canvas.Applier.Errbacks).
	RequestErrback bool
}

// TaskOption sets one of the TaskOptions.
type TaskOption func(*TaskOptions)

func ptr[T any](v T) *T { return &v }

// AcksLate acknowledges the message after the task ran instead of before.
func AcksLate(v bool) TaskOption { return func(o *TaskOptions) { o.AcksLate = ptr(v) } }

// AcksOnFailureOrTimeout with acks_late: ack failed tasks (true, default) or reject them.
func AcksOnFailureOrTimeout(v bool) TaskOption {
	return func(o *TaskOptions) { o.AcksOnFailureOrTimeout = ptr(v) }
}

// RejectOnWorkerLost with acks_late: requeue a task whose execution was abandoned by a hard time limit.
func RejectOnWorkerLost(v bool) TaskOption {
	return func(o *TaskOptions) { o.RejectOnWorkerLost = ptr(v) }
}

// MaxRetries caps retries (-1 = unlimited).
func MaxRetries(n int) TaskOption { return func(o *TaskOptions) { o.MaxRetries = ptr(n) } }

// DefaultRetryDelay is the countdown of a retry that does not give one (default 180s).
func DefaultRetryDelay(d time.Duration) TaskOption {
	return func(o *TaskOptions) { o.DefaultRetryDelay = ptr(d) }
}

// TimeLimit is the hard time limit.
func TimeLimit(d time.Duration) TaskOption { return func(o *TaskOptions) { o.TimeLimit = ptr(d) } }

// SoftTimeLimit is the soft time limit: the task's context is cancelled with cause ErrSoftTimeLimit.
func SoftTimeLimit(d time.Duration) TaskOption {
	return func(o *TaskOptions) { o.SoftTimeLimit = ptr(d) }
}

// RateLimit limits how often this worker starts the task: "10/s", "10/m", "10/h" or "10".
func RateLimit(r string) TaskOption { return func(o *TaskOptions) { o.RateLimit = r } }

// IgnoreResult stores no SUCCESS result; failures are still stored when StoreErrorsEvenIfIgnored is set,
// as with Celery's task attribute of the same name.
func IgnoreResult(v bool) TaskOption { return func(o *TaskOptions) { o.IgnoreResult = ptr(v) } }

// TrackStarted stores the STARTED state when the task starts.
func TrackStarted(v bool) TaskOption { return func(o *TaskOptions) { o.TrackStarted = ptr(v) } }

// AutoRetry retries the task automatically when match(err) is true, with exponential backoff
// factor (0 = the default retry delay).
func AutoRetry(match func(error) bool, backoff time.Duration) TaskOption {
	return func(o *TaskOptions) { o.AutoRetryFor, o.RetryBackoff = match, backoff }
}

// RetryBackoffMax caps the automatic retry backoff.
func RetryBackoffMax(d time.Duration) TaskOption {
	return func(o *TaskOptions) { o.RetryBackoffMax = d }
}

// RetryJitter randomises automatic retry backoff (default true).
func RetryJitter(v bool) TaskOption { return func(o *TaskOptions) { o.RetryJitter = ptr(v) } }

// RequestErrback marks the task as a new-style errback: used as a link_error of a task that fails
// on a Go worker, it gets (request, exc, traceback), the failed task's request as a dict, as
// Celery calls such errbacks.
func RequestErrback() TaskOption { return func(o *TaskOptions) { o.RequestErrback = true } }

// Queue sets the default queue clients send this task to.
func Queue(name string) TaskOption { return func(o *TaskOptions) { o.Queue = name } }

// Registry maps Celery task names to Go task functions. It is safe for concurrent use.
type Registry struct {
	mu    sync.RWMutex
	tasks map[string]*taskDef
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{tasks: map[string]*taskDef{}} }

// taskDef is a registered task with its type-erased runner, and the engine's view of it (eng).
type taskDef struct {
	name string
	opts TaskOptions
	run  func(ctx context.Context, req *Request, args []json.RawMessage, kwargs map[string]json.RawMessage) (json.RawMessage, error)
	eng  engine.Task
}

// Register adds a task under a Celery name. It panics on an empty or duplicate name or an argument
// type that is not a struct, as http.ServeMux does on bad patterns: these are programming errors.
func Register[A, R any](reg *Registry, name string, fn TaskFunc[A, R], opts ...TaskOption) {
	if err := RegisterE(reg, name, fn, opts...); err != nil {
		panic(err)
	}
}

// RegisterE is Register returning the error instead of panicking.
func RegisterE[A, R any](reg *Registry, name string, fn TaskFunc[A, R], opts ...TaskOption) error {
	if name == "" {
		return fmt.Errorf("celery: register: empty task name")
	}
	if fn == nil {
		return fmt.Errorf("celery: register %q: nil function", name)
	}
	var o TaskOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.RateLimit != "" {
		if _, err := ParseRateLimit(o.RateLimit); err != nil {
			return fmt.Errorf("celery: register %q: %w", name, err)
		}
	}
	at := reflect.TypeFor[A]()
	custom := reflect.PointerTo(at).Implements(reflect.TypeFor[ArgsUnmarshaler]())
	var plan *argsPlan
	if !custom {
		var err error
		if plan, err = planArgs(at); err != nil {
			return fmt.Errorf("celery: register %q: %w", name, err)
		}
	}
	def := &taskDef{name: name, opts: o}
	def.run = func(ctx context.Context, req *Request, args []json.RawMessage, kwargs map[string]json.RawMessage) (json.RawMessage, error) {
		t := &Task[A]{Request: *req}
		if custom {
			if err := any(&t.Args).(ArgsUnmarshaler).UnmarshalCelery(args, kwargs); err != nil {
				return nil, &ArgsError{Task: name, Err: err}
			}
		} else if err := plan.decode(name, reflect.ValueOf(&t.Args), args, kwargs); err != nil {
			return nil, err
		}
		res, err := fn(ctx, t)
		if err != nil {
			return nil, err
		}
		return marshalResult(res)
	}
	def.eng = engine.Task{Name: name, Options: engine.TaskOptions(o), Run: def.runCall}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if _, dup := reg.tasks[name]; dup {
		return fmt.Errorf("celery: register %q: already registered", name)
	}
	reg.tasks[name] = def
	return nil
}

func marshalResult(v any) (json.RawMessage, error) {
	if raw, ok := v.(json.RawMessage); ok {
		if len(raw) == 0 {
			return json.RawMessage("null"), nil
		}
		return raw, nil
	}
	e := resultEncoders.Get().(*resultEncoder)
	defer func() {
		if e.buf.Cap() <= 64<<10 { // a huge result's buffer is not kept
			resultEncoders.Put(e)
		}
	}()
	e.buf.Reset()
	if err := e.enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encoding the task's result as JSON: %w", err)
	}
	return bytes.Clone(bytes.TrimRight(e.buf.Bytes(), "\n")), nil
}

// resultEncoder is a JSON encoder that leaves <, > and & alone (as Python's json.dumps does) with
// its buffer; marshalResult reuses them (one allocation per result: the copy it returns).
type resultEncoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var resultEncoders = sync.Pool{New: func() any {
	e := &resultEncoder{}
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}}

func (reg *Registry) lookup(name string) (*taskDef, bool) {
	reg.mu.RLock()
	defer reg.mu.RUnlock()
	d, ok := reg.tasks[name]
	return d, ok
}

// Names lists the registered task names, sorted.
func (reg *Registry) Names() []string {
	reg.mu.RLock()
	defer reg.mu.RUnlock()
	names := make([]string, 0, len(reg.tasks))
	for n := range reg.tasks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Options returns a registered task's options.
func (reg *Registry) Options(name string) (TaskOptions, bool) {
	d, ok := reg.lookup(name)
	if !ok {
		return TaskOptions{}, false
	}
	return d.opts, true
}

// Apply runs a registered task once in the calling goroutine, like Celery's Task.apply(): no broker,
// no result backend, no retries (a retry request is returned as the error). It is how a task is run
// from the command line or a test.
func (reg *Registry) Apply(ctx context.Context, name string, args []json.RawMessage, kwargs map[string]json.RawMessage) (json.RawMessage, error) {
	return reg.ApplyWith(ctx, name, args, kwargs, ApplyOptions{})
}

// ApplyOptions adjust [Registry.ApplyWith].
type ApplyOptions struct {
	// ID is the task id the task sees (default: a new one).
	ID string
	// OnState receives the task's UpdateState calls (default: UpdateState fails with "no result
	// backend"); a command line prints them.
	OnState func(ctx context.Context, state string, meta any) error
}

// ApplyWith is Apply with options.
func (reg *Registry) ApplyWith(ctx context.Context, name string, args []json.RawMessage, kwargs map[string]json.RawMessage, o ApplyOptions) (json.RawMessage, error) {
	def, ok := reg.lookup(name)
	if !ok {
		return nil, &NotRegisteredError{Name: name}
	}
	req := &Request{ID: o.ID, Task: name}
	if req.ID == "" {
		req.ID = NewID()
	}
	if o.OnState != nil {
		req.state = stateFunc(o.OnState)
	}
	return def.run(ctx, req, args, kwargs)
}

// stateFunc adapts a function to the stateWriter a Request reports to.
type stateFunc func(ctx context.Context, state string, meta any) error

func (f stateFunc) updateState(ctx context.Context, _ *Request, state string, meta any) error {
	return f(ctx, state, meta)
}
