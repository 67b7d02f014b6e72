package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/forumads/forumads/celery/protocol"
)

// OK is Celery's ok(value) reply shape, {"ok": value}. `celery inspect` and `celery control` print
// the value under "OK".
func OK(value any) map[string]any { return map[string]any{"ok": value} }

// Error is Celery's nok(value) reply shape, {"error": value}: an answer saying the command failed
// (`celery control` prints it under "ERROR"). A [Handler] returns it as its result for an expected
// refusal ("unknown task"); returning a Go error instead makes the reply {"error": "<repr>"}.
func Error(value any) map[string]any { return map[string]any{"error": value} }

// ExcTyper is implemented by errors that name the Python exception class they stand for; the
// error reply of a failed handler is then "<ExcType>('<message>')". Other errors are Exception.
// (celery.ExcTyper is the same interface.)
type ExcTyper interface{ ExcType() string }

// ErrorRepr is what kombu puts in the reply when a handler raises: repr(exc), such as
// "KeyError('nosuch')" or "ValueError('bad value')". The class is the error's ExcType (see
// [ExcTyper]) or Exception; the message is written with Python's string repr.
func ErrorRepr(err error) string {
	typ := "Exception"
	var t ExcTyper
	if errors.As(err, &t) && t.ExcType() != "" {
		typ = t.ExcType()
	}
	var msg string
	var k *unknownCommandError
	if errors.As(err, &k) {
		msg = k.method
	} else {
		msg = err.Error()
	}
	return typ + "(" + pyStr(msg) + ")"
}

// unknownCommandError is the KeyError kombu raises for a method no handler is registered for.
type unknownCommandError struct{ method string }

func (e *unknownCommandError) Error() string { return "no such control command: " + e.method }

// ExcType makes the error Python's KeyError.
func (e *unknownCommandError) ExcType() string { return "KeyError" }

// pyStr is Python's repr() of a str.
func pyStr(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		return "''"
	}
	return protocol.Repr(b)
}

// marshal encodes v as JSON without HTML escaping (Python's json does not escape <, > and &);
// a json.RawMessage is validated and used as it is.
func marshal(v any) ([]byte, error) {
	if raw, ok := v.(json.RawMessage); ok {
		if !json.Valid(raw) {
			return nil, errors.New("invalid JSON in json.RawMessage result")
		}
		return raw, nil
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// EncodeReply is the body a node publishes as its reply: {"<node>": result}, with Python's
// json.dumps formatting. result is encoded with encoding/json (a json.RawMessage is used as is).
func EncodeReply(node string, result any) ([]byte, error) {
	raw, err := marshal(result)
	if err != nil {
		return nil, fmt.Errorf("control: encoding reply of %s: %w", node, err)
	}
	body, err := encodeObject([]member{{node, json.RawMessage(raw)}})
	if err != nil {
		return nil, fmt.Errorf("control: encoding reply of %s: %w", node, err)
	}
	return body, nil
}

// DecodeReply decodes a reply body, {"<node>": result, ...}, into the results by node name.
func DecodeReply(body []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return nil, fmt.Errorf("control: reply is not a JSON object of results by node: %s", excerpt(body))
	}
	return m, nil
}

// RequestInfo describes one task request in the replies to `inspect active`, `inspect reserved`
// and `inspect scheduled`, as Celery's Request.info() does.
type RequestInfo struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Args and Kwargs are the task's positional and keyword arguments as JSON (a list and an
	// object), or, when the request asked for safe=true, their repr strings (argsrepr/kwargsrepr).
	Args   json.RawMessage `json:"args"`
	Kwargs json.RawMessage `json:"kwargs"`
	// Type is the task's registered name (Name may be a shadow name).
	Type     string `json:"type"`
	Hostname string `json:"hostname"`
	// TimeStart is when the task started running, unix seconds; nil when it has not.
	TimeStart    *float64     `json:"time_start"`
	Acknowledged bool         `json:"acknowledged"`
	DeliveryInfo DeliveryInfo `json:"delivery_info"`
	// WorkerPID is the process running the task; nil when it has not started.
	WorkerPID *int `json:"worker_pid"`
}

// DeliveryInfo is where a task message came from.
type DeliveryInfo struct {
	Exchange   string `json:"exchange"`
	RoutingKey string `json:"routing_key"`
	// Priority is the message's priority property; nil when it had none.
	Priority    *int `json:"priority"`
	Redelivered bool `json:"redelivered"`
}

// ScheduledInfo is one item of the reply to `inspect scheduled`: a task held until its eta.
type ScheduledInfo struct {
	// ETA is Python's isoformat() of the eta (see protocol.FormatTime); nil when unknown.
	ETA      *string     `json:"eta"`
	Priority int         `json:"priority"`
	Request  RequestInfo `json:"request"`
}
