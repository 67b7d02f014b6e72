package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/forumads/forumads/celery/protocol"
)

// The event types Celery 5.2 sends.
const (
	TypeTaskSent        = "task-sent"
	TypeTaskReceived    = "task-received"
	TypeTaskStarted     = "task-started"
	TypeTaskSucceeded   = "task-succeeded"
	TypeTaskFailed      = "task-failed"
	TypeTaskRetried     = "task-retried"
	TypeTaskRevoked     = "task-revoked"
	TypeTaskRejected    = "task-rejected"
	TypeWorkerOnline    = "worker-online"
	TypeWorkerHeartbeat = "worker-heartbeat"
	TypeWorkerOffline   = "worker-offline"
)

// The event groups: the part of the type before the first '-'.
const (
	GroupTask   = "task"
	GroupWorker = "worker"
)

// TaskInfo describes a task message for the task-sent and task-received events.
type TaskInfo struct {
	ID   string
	Name string // the shadow name if the message has one, as Celery reports it
	// ArgsRepr and KwargsRepr are the argsrepr and kwargsrepr headers: "(2, 3)", "{}".
	ArgsRepr, KwargsRepr string
	// RootID and ParentID: "" is sent as null.
	RootID, ParentID string
	Retries          int
	// ETA and Expires: the zero time is sent as null, others as datetime.isoformat() strings.
	ETA, Expires time.Time
}

// NewTaskSent is the event a client sends after publishing a task (task_send_sent_event): uuid,
// root_id, parent_id, name, args, kwargs, retries, eta, expires, queue, exchange, routing_key.
func NewTaskSent(t TaskInfo, queue, exchange, routingKey string) Event {
	return Event{Type: TypeTaskSent, Fields: []Field{
		str("uuid", t.ID), strOrNull("root_id", t.RootID), strOrNull("parent_id", t.ParentID),
		str("name", t.Name), str("args", t.ArgsRepr), str("kwargs", t.KwargsRepr),
		integer("retries", int64(t.Retries)), timeOrNull("eta", t.ETA), timeOrNull("expires", t.Expires),
		str("queue", queue), str("exchange", exchange), str("routing_key", routingKey),
	}}
}

// NewTaskReceived is the event a worker sends when it takes a task message: uuid, name, args, kwargs,
// root_id, parent_id, retries, eta, expires.
func NewTaskReceived(t TaskInfo) Event {
	return Event{Type: TypeTaskReceived, Fields: []Field{
		str("uuid", t.ID), str("name", t.Name), str("args", t.ArgsRepr), str("kwargs", t.KwargsRepr),
		strOrNull("root_id", t.RootID), strOrNull("parent_id", t.ParentID),
		integer("retries", int64(t.Retries)), timeOrNull("eta", t.ETA), timeOrNull("expires", t.Expires),
	}}
}

// NewTaskStarted is the event a worker sends when a task starts running: uuid.
func NewTaskStarted(id string) Event {
	return Event{Type: TypeTaskStarted, Fields: []Field{str("uuid", id)}}
}

// NewTaskSucceeded is the event a worker sends when a task returned: uuid, result (Celery's saferepr
// of the JSON result, at most protocol.ReprMaxSize characters: "5", "{'a': 1}"), runtime (seconds).
func NewTaskSucceeded(id string, result json.RawMessage, runtime time.Duration) Event {
	if result == nil {
		result = json.RawMessage("null")
	}
	return Event{Type: TypeTaskSucceeded, Fields: []Field{
		str("uuid", id), str("result", protocol.SafeRepr(result, protocol.ReprMaxSize)),
		number("runtime", runtime.Seconds()),
	}}
}

// NewTaskFailed is the event a worker sends when a task failed: uuid, exception (the exception's
// repr, see ExceptionRepr), traceback.
func NewTaskFailed(id, exception, traceback string) Event {
	return Event{Type: TypeTaskFailed, Fields: []Field{
		str("uuid", id), str("exception", exception), str("traceback", traceback),
	}}
}

// NewTaskRetried is the event a worker sends when a task will be retried: uuid, exception (the repr
// of the exception that caused the retry), traceback.
func NewTaskRetried(id, exception, traceback string) Event {
	return Event{Type: TypeTaskRetried, Fields: []Field{
		str("uuid", id), str("exception", exception), str("traceback", traceback),
	}}
}

// NewTaskRevoked is the event a worker sends when it discards a revoked or expired task, or
// terminates one: uuid, terminated, signum (null when signum is 0), expired.
func NewTaskRevoked(id string, terminated bool, signum int, expired bool) Event {
	sig := Field{Name: "signum", Value: json.RawMessage("null")}
	if signum != 0 {
		sig = integer("signum", int64(signum))
	}
	return Event{Type: TypeTaskRevoked, Fields: []Field{
		str("uuid", id), boolean("terminated", terminated), sig, boolean("expired", expired),
	}}
}

// NewTaskRejected is the event a worker sends when it rejects a task's message: uuid, requeue.
// (Celery's documentation says "requeued"; its code sends "requeue".)
func NewTaskRejected(id string, requeue bool) Event {
	return Event{Type: TypeTaskRejected, Fields: []Field{str("uuid", id), boolean("requeue", requeue)}}
}

// WorkerState is what the worker-online, worker-heartbeat and worker-offline events report.
type WorkerState struct {
	// Freq is the heartbeat interval (Celery: 2 s); monitors think a worker gone after 2×Freq
	// without a heartbeat.
	Freq time.Duration
	// Active is the number of tasks running now; Processed the number taken since start.
	Active, Processed int
	// LoadAvg is the system load average over 1, 5 and 15 minutes (see ReadLoadAvg).
	LoadAvg  [3]float64
	Software Software
}

// Software identifies the worker implementation in worker events (sw_ident, sw_ver, sw_sys).
// Nothing in Celery or Flower interprets these values; Flower shows them on the worker's page.
type Software struct {
	Ident   string // sw_ident; Python Celery sends "py-celery"
	Version string // sw_ver; Python Celery sends its version, "5.2.6"
	System  string // sw_sys; Python's platform.system(): "Linux"
}

// NewWorkerOnline is the event a worker sends when it starts.
func NewWorkerOnline(s WorkerState) Event { return workerEvent(TypeWorkerOnline, s) }

// NewWorkerHeartbeat is the event a worker sends every WorkerState.Freq.
func NewWorkerHeartbeat(s WorkerState) Event { return workerEvent(TypeWorkerHeartbeat, s) }

// NewWorkerOffline is the event a worker sends when it shuts down.
func NewWorkerOffline(s WorkerState) Event { return workerEvent(TypeWorkerOffline, s) }

// workerEvent has Celery's fields in its order: freq, active, processed, loadavg, sw_ident, sw_ver,
// sw_sys.
func workerEvent(typ string, s WorkerState) Event {
	la, _ := protocol.PyJSON([]any{finite(s.LoadAvg[0]), finite(s.LoadAvg[1]), finite(s.LoadAvg[2])})
	return Event{Type: typ, Fields: []Field{
		number("freq", s.Freq.Seconds()), integer("active", int64(s.Active)),
		integer("processed", int64(s.Processed)), {Name: "loadavg", Value: la},
		str("sw_ident", s.Software.Ident), str("sw_ver", s.Software.Version), str("sw_sys", s.Software.System),
	}}
}

// ExceptionRepr is Python's repr() of an exception of class typ made with the given string
// arguments, as task-failed and task-retried carry it: ExceptionRepr("ValueError", "boom") is
// "ValueError('boom')"; with no arguments "ValueError()".
func ExceptionRepr(typ string, args ...string) string {
	var b strings.Builder
	b.WriteString(typ)
	b.WriteByte('(')
	for i, a := range args {
		if i > 0 {
			b.WriteString(", ")
		}
		j, _ := json.Marshal(a)
		b.WriteString(protocol.Repr(j))
	}
	b.WriteByte(')')
	return b.String()
}

func str(name, v string) Field {
	return Field{Name: name, Value: appendString(make([]byte, 0, len(v)+2), v)}
}

func strOrNull(name, v string) Field {
	if v == "" {
		return Field{Name: name, Value: json.RawMessage("null")}
	}
	return str(name, v)
}

func timeOrNull(name string, t time.Time) Field {
	if t.IsZero() {
		return Field{Name: name, Value: json.RawMessage("null")}
	}
	return str(name, protocol.FormatTime(t))
}

func integer(name string, v int64) Field {
	return Field{Name: name, Value: strconv.AppendInt(nil, v, 10)}
}

func number(name string, v float64) Field {
	b, _ := protocol.PyJSON(finite(v))
	return Field{Name: name, Value: b}
}

func boolean(name string, v bool) Field {
	return Field{Name: name, Value: strconv.AppendBool(nil, v)}
}

// finite maps NaN and ±Inf, which JSON cannot hold, to 0.
func finite(f float64) float64 {
	if f != f || f > 1e308 || f < -1e308 {
		return 0
	}
	return f
}

// kind is the JSON type a field of a known event type must have.
type kind uint8

const (
	kString       kind = iota + 1
	kStringOrNull      // a string or null
	kInt               // a number written as an integer
	kNumber            // any number (Python floats; an int is accepted)
	kBool
	kSignum  // an integer, a string or null (Celery sends str(exc) for some terminations)
	kLoadAvg // a list of three numbers
)

func (k kind) String() string {
	switch k {
	case kString:
		return "a string"
	case kStringOrNull:
		return "a string or null"
	case kInt:
		return "an integer"
	case kNumber:
		return "a number"
	case kBool:
		return "a boolean"
	case kSignum:
		return "an integer, a string or null"
	case kLoadAvg:
		return "a list of three numbers"
	}
	return "?"
}

// fieldSpec is one field of a known event type.
type fieldSpec struct {
	name     string
	kind     kind
	optional bool
}

var workerSchema = []fieldSpec{
	{"freq", kNumber, false}, {"active", kInt, false}, {"processed", kInt, false},
	{"loadavg", kLoadAvg, false}, {"sw_ident", kString, false}, {"sw_ver", kString, false},
	{"sw_sys", kString, false},
}

// schema lists, per known type, the fields Celery 5.2 sends, in its order.
var schema = map[string][]fieldSpec{
	TypeTaskSent: {
		{"uuid", kString, false}, {"root_id", kStringOrNull, false}, {"parent_id", kStringOrNull, false},
		{"name", kString, false}, {"args", kString, false}, {"kwargs", kString, false},
		{"retries", kInt, false}, {"eta", kStringOrNull, false}, {"expires", kStringOrNull, false},
		{"queue", kString, false}, {"exchange", kString, false}, {"routing_key", kString, false},
	},
	TypeTaskReceived: {
		{"uuid", kString, false}, {"name", kString, false}, {"args", kString, false},
		{"kwargs", kString, false}, {"root_id", kStringOrNull, false}, {"parent_id", kStringOrNull, false},
		{"retries", kInt, false}, {"eta", kStringOrNull, false}, {"expires", kStringOrNull, false},
	},
	TypeTaskStarted:   {{"uuid", kString, false}},
	TypeTaskSucceeded: {{"uuid", kString, false}, {"result", kString, false}, {"runtime", kNumber, false}},
	// The worker's NotRegistered path sends task-failed without a traceback.
	TypeTaskFailed:  {{"uuid", kString, false}, {"exception", kString, false}, {"traceback", kString, true}},
	TypeTaskRetried: {{"uuid", kString, false}, {"exception", kString, false}, {"traceback", kString, false}},
	TypeTaskRevoked: {
		{"uuid", kString, false}, {"terminated", kBool, false}, {"signum", kSignum, false},
		{"expired", kBool, false},
	},
	TypeTaskRejected:    {{"uuid", kString, false}, {"requeue", kBool, false}},
	TypeWorkerOnline:    workerSchema,
	TypeWorkerHeartbeat: workerSchema,
	TypeWorkerOffline:   workerSchema,
}

// Known reports whether typ is one of the event types Celery 5.2 sends.
func Known(typ string) bool {
	_, ok := schema[typ]
	return ok
}

// Validate checks that a known event type has every field Celery 5.2 sends, each with the JSON type
// Celery gives it. Extra fields are allowed (later versions add some), and events of other types
// (custom events) are not checked.
func (e *Event) Validate() error {
	specs, ok := schema[e.Type]
	if !ok {
		return nil
	}
	for _, s := range specs {
		raw, ok := e.Get(s.name)
		if !ok {
			if s.optional {
				continue
			}
			return fmt.Errorf("events: %s: field %q is missing", e.Type, s.name)
		}
		if !s.kind.matches(raw) {
			return fmt.Errorf("events: %s: field %q: want %s, got %s", e.Type, s.name, s.kind, abbreviate(raw))
		}
	}
	return nil
}

func (k kind) matches(raw json.RawMessage) bool {
	switch got := kindOf(raw); k {
	case kString:
		return got == "string"
	case kStringOrNull:
		return got == "string" || got == "null"
	case kInt:
		return isInt(raw)
	case kNumber:
		return got == "number"
	case kBool:
		return got == "boolean"
	case kSignum:
		return isInt(raw) || got == "string" || got == "null"
	case kLoadAvg:
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil || len(items) != 3 {
			return false
		}
		for _, it := range items {
			if kindOf(it) != "number" {
				return false
			}
		}
		return true
	}
	return false
}
