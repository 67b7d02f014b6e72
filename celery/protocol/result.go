package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"time"
	"unicode/utf8"
)

// Task states, spelled as Celery stores them in the result backend.
const (
	// StatePending is never stored: a missing result key reads as PENDING.
	StatePending = "PENDING"
	// StateReceived is used by events only.
	StateReceived = "RECEIVED"
	// StateStarted is stored when a task with track_started begins; its
	// result is {"pid": int, "hostname": str}.
	StateStarted = "STARTED"
	// StateSuccess is stored with the task's return value. It is never
	// overwritten.
	StateSuccess = "SUCCESS"
	// StateFailure is stored with the exception (see [ExceptionInfo]).
	StateFailure = "FAILURE"
	// StateRetry is stored with the exception that caused the retry.
	StateRetry = "RETRY"
	// StateRevoked is stored with a TaskRevokedError exception.
	StateRevoked = "REVOKED"
	// StateRejected is internal to the worker.
	StateRejected = "REJECTED"
	// StateIgnored is internal to the worker.
	StateIgnored = "IGNORED"
)

// IsReady reports whether state is final (SUCCESS, FAILURE or REVOKED), the
// states that end AsyncResult.get() in Python.
func IsReady(state string) bool {
	switch state {
	case StateSuccess, StateFailure, StateRevoked:
		return true
	}
	return false
}

// IsExceptionState reports whether a result in state holds an exception
// (RETRY, FAILURE or REVOKED) that Python turns back into an exception object.
func IsExceptionState(state string) bool {
	switch state {
	case StateRetry, StateFailure, StateRevoked:
		return true
	}
	return false
}

// ResultMeta is the JSON object Celery keeps in the result backend under
// celery-task-meta-<task id>.
type ResultMeta struct {
	// Status is the task state, e.g. [StateSuccess].
	Status string
	// Result is the JSON value of the result; nil means null. For exception
	// states it holds the object built by [ExceptionResult].
	Result json.RawMessage
	// Traceback is the traceback text, or nil for null.
	Traceback *string
	// Children is the JSON list of result tuples of subtasks; nil means [].
	Children json.RawMessage
	// DateDone is when the task reached a ready state; nil means null.
	DateDone *time.Time
	// TaskID is the task's id.
	TaskID string
	// GroupID is the id of the group the task belongs to; written only when
	// non-empty.
	GroupID string
	// ParentID is the id of the task that sent this one; written only when
	// non-empty.
	ParentID string
	// Extended holds the result_extended fields; nil means they are absent.
	Extended *ExtendedMeta
}

// ExtendedMeta holds the fields Celery adds with result_extended=True.
type ExtendedMeta struct {
	// Name is the task name; empty is written as null.
	Name string
	// Args is the JSON list of positional arguments; nil means null.
	Args json.RawMessage
	// Kwargs is the JSON object of keyword arguments; nil means null.
	Kwargs json.RawMessage
	// Worker is the worker's node name (e.g. celery@host); empty is written
	// as null.
	Worker string
	// Retries is how many times the task was retried.
	Retries int
	// Queue is the routing key the task was delivered with; empty is written
	// as null.
	Queue string
	// ArgsRepr and KwargsRepr are the request's argsrepr and kwargsrepr
	// headers ("" when the message had none, as protocol 1 messages), and
	// PeriodicTaskName its periodic_task_name (set by django-celery-beat).
	// The Redis meta has no such keys, so MarshalJSON never writes them;
	// database backends store them (django-celery-results' task_args,
	// task_kwargs and periodic_task_name columns).
	ArgsRepr, KwargsRepr string
	PeriodicTaskName     string
}

// MarshalJSON writes m as Python's json.dumps does (", " and ": "
// separators, \uXXXX escapes for everything outside printable ASCII) and in
// Python's key order: status, result, traceback, children, date_done,
// [group_id], [parent_id], [name, args, kwargs, worker, retries, queue],
// task_id. JSON values held in Result, Children, Args and Kwargs are
// re-spaced and re-escaped the same way; number literals are kept as written
// (Python would rewrite e.g. 1E2 as 100.0, a difference no reader sees).
//
// Call MarshalJSON directly to get these bytes: json.Marshal compacts the
// output of a Marshaler (and escapes <, >, &), which readers accept but which
// is no longer byte-identical to Python's.
func (m ResultMeta) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 128+len(m.Result)+len(m.Children))
	b = append(b, `{"status": `...)
	b = appendPyString(b, m.Status)
	var err error
	b = append(b, `, "result": `...)
	if b, err = resultAppendPyRaw(b, m.Result, "null"); err != nil {
		return nil, fmt.Errorf("protocol: ResultMeta.Result: %w", err)
	}
	b = append(b, `, "traceback": `...)
	b = resultAppendPyOptString(b, m.Traceback)
	b = append(b, `, "children": `...)
	if b, err = resultAppendPyRaw(b, m.Children, "[]"); err != nil {
		return nil, fmt.Errorf("protocol: ResultMeta.Children: %w", err)
	}
	b = append(b, `, "date_done": `...)
	if m.DateDone == nil {
		b = append(b, "null"...)
	} else {
		b = appendPyString(b, FormatDateDone(*m.DateDone))
	}
	if m.GroupID != "" {
		b = append(b, `, "group_id": `...)
		b = appendPyString(b, m.GroupID)
	}
	if m.ParentID != "" {
		b = append(b, `, "parent_id": `...)
		b = appendPyString(b, m.ParentID)
	}
	if x := m.Extended; x != nil {
		b = append(b, `, "name": `...)
		b = resultAppendPyNullString(b, x.Name)
		b = append(b, `, "args": `...)
		if b, err = resultAppendPyRaw(b, x.Args, "null"); err != nil {
			return nil, fmt.Errorf("protocol: ExtendedMeta.Args: %w", err)
		}
		b = append(b, `, "kwargs": `...)
		if b, err = resultAppendPyRaw(b, x.Kwargs, "null"); err != nil {
			return nil, fmt.Errorf("protocol: ExtendedMeta.Kwargs: %w", err)
		}
		b = append(b, `, "worker": `...)
		b = resultAppendPyNullString(b, x.Worker)
		b = append(b, `, "retries": `...)
		b = strconv.AppendInt(b, int64(x.Retries), 10)
		b = append(b, `, "queue": `...)
		b = resultAppendPyNullString(b, x.Queue)
	}
	b = append(b, `, "task_id": `...)
	b = appendPyString(b, m.TaskID)
	b = append(b, '}')
	return b, nil
}

// UnmarshalJSON reads a result meta object as written by any Celery version:
// date_done may be naive (5.2, read as UTC) or carry an offset (5.4+), null
// values read as the zero value, and unknown keys are ignored. A missing or
// non-string status, and fields of the wrong JSON type, give a
// *json.UnmarshalTypeError; a malformed date_done gives a *time.ParseError.
func (m *ResultMeta) UnmarshalJSON(data []byte) error {
	var f map[string]json.RawMessage
	if err := json.Unmarshal(data, &f); err != nil {
		return err
	}
	if f == nil {
		return &json.UnmarshalTypeError{Value: "null", Type: reflect.TypeFor[ResultMeta](), Offset: 0}
	}
	var out ResultMeta
	status, ok, err := resultStringField(f, "status")
	if err != nil {
		return err
	}
	if !ok {
		return resultMissing("status")
	}
	out.Status = status
	out.Result = resultRawField(f, "result")
	if raw, present := f["traceback"]; present && !resultIsNull(raw) {
		var tb string
		if err := resultDecodeField(raw, &tb, "traceback"); err != nil {
			return err
		}
		out.Traceback = &tb
	}
	out.Children = resultRawField(f, "children")
	dd, ok, err := resultStringField(f, "date_done")
	if err != nil {
		return err
	}
	if ok {
		t, err := resultParseDateDone(dd)
		if err != nil {
			return err
		}
		out.DateDone = &t
	}
	for _, s := range []struct {
		key string
		dst *string
	}{{"task_id", &out.TaskID}, {"group_id", &out.GroupID}, {"parent_id", &out.ParentID}} {
		if *s.dst, _, err = resultStringField(f, s.key); err != nil {
			return err
		}
	}
	if x, err := resultExtended(f); err != nil {
		return err
	} else if x != nil {
		out.Extended = x
	}
	*m = out
	return nil
}

// resultExtended reads the result_extended fields; nil when none is present.
func resultExtended(f map[string]json.RawMessage) (*ExtendedMeta, error) {
	present := false
	for _, k := range []string{"name", "args", "kwargs", "worker", "retries", "queue"} {
		if _, ok := f[k]; ok {
			present = true
			break
		}
	}
	if !present {
		return nil, nil
	}
	var x ExtendedMeta
	var err error
	if x.Name, _, err = resultStringField(f, "name"); err != nil {
		return nil, err
	}
	if x.Worker, _, err = resultStringField(f, "worker"); err != nil {
		return nil, err
	}
	if x.Queue, _, err = resultStringField(f, "queue"); err != nil {
		return nil, err
	}
	x.Args = resultRawField(f, "args")
	x.Kwargs = resultRawField(f, "kwargs")
	if raw, ok := f["retries"]; ok && !resultIsNull(raw) {
		if err := resultDecodeField(raw, &x.Retries, "retries"); err != nil {
			return nil, err
		}
	}
	return &x, nil
}

// FormatDateDone formats t as Celery 5.2 writes date_done: the UTC time
// without offset, as Python's datetime.isoformat gives it
// ("2026-11-25T18:11:56.863107"; the fraction is omitted when the
// microseconds are zero). Nanoseconds are truncated to microseconds.
func FormatDateDone(t time.Time) string {
	t = t.UTC()
	b := make([]byte, 0, 26)
	b = t.AppendFormat(b, "2006-01-02T15:04:05")
	if us := t.Nanosecond() / 1000; us != 0 {
		b = append(b, '.')
		s := strconv.Itoa(us)
		for i := len(s); i < 6; i++ {
			b = append(b, '0')
		}
		b = append(b, s...)
	}
	return string(b)
}

// resultParseDateDone parses date_done with an offset (5.4+, or "Z") or
// naive (5.2, taken as UTC).
// Like Python's datetime, the year must lie in 1..9999 (in UTC).
func resultParseDateDone(s string) (time.Time, error) {
	const aware, naive = "2006-01-02T15:04:05Z07:00", "2006-01-02T15:04:05"
	layout := aware
	t, err := time.Parse(aware, s)
	if err != nil {
		layout = naive
		if t, err = time.Parse(naive, s); err != nil {
			return time.Time{}, err
		}
	}
	t = t.UTC()
	if y := t.Year(); y < 1 || y > 9999 {
		return time.Time{}, &time.ParseError{Layout: layout, Value: s, Message: ": year out of range"}
	}
	return t, nil
}

// ExceptionInfo is the JSON form of an exception in a result (the result of
// RETRY, FAILURE and REVOKED): the class name, the exception's args and the
// Python module of the class. Python rebuilds the exception from it; a module
// that is not already imported gives a synthesized class of that name.
type ExceptionInfo struct {
	Type    string `json:"exc_type"`
	Message []any  `json:"exc_message"`
	Module  string `json:"exc_module"`
}

// UnmarshalJSON reads an exception object. exc_message may be a list (the
// exception's args) or any single value such as a plain string, which becomes
// a one-element Message; numbers are kept as json.Number. A missing exc_type
// is an error (*json.UnmarshalTypeError), as it is for Python.
func (e *ExceptionInfo) UnmarshalJSON(data []byte) error {
	var f map[string]json.RawMessage
	if err := json.Unmarshal(data, &f); err != nil {
		return err
	}
	if f == nil {
		return &json.UnmarshalTypeError{Value: "null", Type: reflect.TypeFor[ExceptionInfo]()}
	}
	var out ExceptionInfo
	typ, ok, err := resultStringField(f, "exc_type")
	if err != nil {
		return err
	}
	if !ok {
		return resultMissing("exc_type")
	}
	out.Type = typ
	if out.Module, _, err = resultStringField(f, "exc_module"); err != nil {
		return err
	}
	if raw, ok := f["exc_message"]; ok && !resultIsNull(raw) {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			return err
		}
		if list, isList := v.([]any); isList {
			out.Message = list
		} else {
			out.Message = []any{v}
		}
	}
	*e = out
	return nil
}

// Error returns "Type: message" as Python's traceback prints an exception:
// a single argument is shown as is (strings unquoted), several as a JSON
// list; without arguments only the type is shown.
func (e ExceptionInfo) Error() string {
	var msg string
	switch len(e.Message) {
	case 0:
	case 1:
		if s, ok := e.Message[0].(string); ok {
			msg = s
		} else {
			msg = string(resultMarshalArg(e.Message[0]))
		}
	default:
		msg = string(resultMarshalArg(e.Message))
	}
	switch {
	case msg == "":
		return e.Type
	case e.Type == "":
		return msg
	}
	return e.Type + ": " + msg
}

// ExceptionResult builds the result value for an exception state, as
// Python's json.dumps writes it:
// {"exc_type": ..., "exc_message": [...], "exc_module": ...}. A message item
// that cannot be encoded as JSON is replaced by its fmt %v text, as Celery
// replaces it by its repr.
func ExceptionResult(info ExceptionInfo) json.RawMessage {
	b := make([]byte, 0, 64)
	b = append(b, `{"exc_type": `...)
	b = appendPyString(b, info.Type)
	b = append(b, `, "exc_message": [`...)
	for i, item := range info.Message {
		if i > 0 {
			b = append(b, ", "...)
		}
		// resultMarshalArg always returns valid JSON.
		b, _ = resultAppendPyRaw(b, resultMarshalArg(item), "null")
	}
	b = append(b, `], "exc_module": `...)
	b = appendPyString(b, info.Module)
	b = append(b, '}')
	return b
}

// resultMarshalArg encodes v as JSON, or its %v text as a JSON string when v
// cannot be encoded.
func resultMarshalArg(v any) []byte {
	if raw, err := json.Marshal(v); err == nil {
		return raw
	}
	raw, _ := json.Marshal(fmt.Sprintf("%v", v))
	return raw
}

// resultMissing reports a required key that is absent.
func resultMissing(key string) error {
	return &json.UnmarshalTypeError{Value: "missing key", Type: reflect.TypeFor[string](), Field: key}
}

// resultIsNull reports whether raw is the JSON literal null.
func resultIsNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

// resultRawField returns f[key], or nil when absent or null.
func resultRawField(f map[string]json.RawMessage, key string) json.RawMessage {
	raw, ok := f[key]
	if !ok || resultIsNull(raw) {
		return nil
	}
	return raw
}

// resultStringField returns the string at f[key]; ok is false when the key is
// absent or null.
func resultStringField(f map[string]json.RawMessage, key string) (s string, ok bool, err error) {
	raw, present := f[key]
	if !present || resultIsNull(raw) {
		return "", false, nil
	}
	if err := resultDecodeField(raw, &s, key); err != nil {
		return "", false, err
	}
	return s, true, nil
}

// resultDecodeField decodes raw into dst, naming key in a type error.
func resultDecodeField(raw json.RawMessage, dst any, key string) error {
	err := json.Unmarshal(raw, dst)
	if te, ok := err.(*json.UnmarshalTypeError); ok && te.Field == "" {
		te.Field = key
	}
	return err
}

// resultAppendPyRaw appends the JSON value raw as Python's json.dumps writes it (see PyJSON), or
// def when raw is empty. Invalid JSON gives encoding/json's *json.SyntaxError.
func resultAppendPyRaw(dst, raw []byte, def string) ([]byte, error) {
	if len(raw) == 0 {
		return append(dst, def...), nil
	}
	if !json.Valid(raw) {
		var v any
		return dst, json.Unmarshal(raw, &v)
	}
	if !utf8.Valid(raw) {
		// encoding/json reads invalid UTF-8 in strings as U+FFFD; write what it read.
		raw = bytes.ToValidUTF8(raw, []byte("\uFFFD"))
	}
	return appendPyRaw(dst, raw)
}

// resultAppendPyOptString appends *s, or null when s is nil.
func resultAppendPyOptString(dst []byte, s *string) []byte {
	if s == nil {
		return append(dst, "null"...)
	}
	return appendPyString(dst, *s)
}

// resultAppendPyNullString appends s, or null when s is empty.
func resultAppendPyNullString(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, "null"...)
	}
	return appendPyString(dst, s)
}

// TaskTuple returns a task's result tuple [[id, null], null] (Celery's AsyncResult.as_tuple
// without a parent): one item of a result meta's `children`.
func TaskTuple(id string) json.RawMessage {
	q, _ := json.Marshal(id) // a string always marshals
	b := append([]byte(`[[`), q...)
	return append(b, `, null], null]`...)
}
