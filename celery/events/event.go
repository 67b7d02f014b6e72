package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/forumads/forumads/celery/protocol"
)

// Names of the fields every Celery event carries. Encode writes them in Celery's order: hostname,
// utcoffset, pid, clock, then the type's own fields, then timestamp and type.
const (
	FieldType      = "type"
	FieldHostname  = "hostname"
	FieldTimestamp = "timestamp"
	FieldUTCOffset = "utcoffset"
	FieldPID       = "pid"
	FieldClock     = "clock"
)

// Event is one Celery event: the standard fields every event has, and the fields of its type in the
// order Celery writes them.
//
// The constructors (NewTaskReceived, NewWorkerHeartbeat, ...) fill in Type and Fields; the Dispatcher
// stamps the standard fields when the event is sent. An Event must not be modified once sent.
type Event struct {
	// Type is the event type, "<group>-<name>": "task-succeeded", "worker-heartbeat".
	Type string
	// Hostname is the node name of the sender ("celery@host").
	Hostname string
	// Timestamp is the time the event was made, in seconds since the Unix epoch.
	Timestamp float64
	// UTCOffset is the sender's offset from UTC in whole hours WEST of UTC (Python's
	// time.timezone // 3600): 0 in UTC, -1 in Central Europe in winter, 5 in New York.
	UTCOffset int
	// PID is the sender's process id.
	PID int
	// Clock is the sender's Lamport clock when the event was sent.
	Clock int64
	// Fields are the type's own fields, in order; never one of the standard names.
	Fields []Field
}

// Field is one field of an event: its name and its value as JSON.
type Field struct {
	Name  string
	Value json.RawMessage
}

// NewField returns a field whose value is v written as Python's json.dumps writes it (see
// protocol.PyJSON for the values accepted).
func NewField(name string, v any) (Field, error) {
	b, err := protocol.PyJSON(v)
	if err != nil {
		return Field{}, fmt.Errorf("events: field %q: %w", name, err)
	}
	return Field{Name: name, Value: b}, nil
}

// Group is the part of the type before the first '-': "task", "worker".
func (e *Event) Group() string {
	g, _, _ := strings.Cut(e.Type, "-")
	return g
}

// RoutingKey is the key Celery publishes the event with: the type with '-' replaced by '.'.
func (e *Event) RoutingKey() string { return strings.ReplaceAll(e.Type, "-", ".") }

// Get returns the raw JSON value of the type-specific field name.
func (e *Event) Get(name string) (json.RawMessage, bool) {
	for _, f := range e.Fields {
		if f.Name == name {
			return f.Value, true
		}
	}
	return nil, false
}

// GetString returns the field name when it is a JSON string.
func (e *Event) GetString(name string) (string, bool) {
	raw, ok := e.Get(name)
	if !ok || len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// UUID is the task id of a task event ("" for other events).
func (e *Event) UUID() string {
	s, _ := e.GetString("uuid")
	return s
}

// isStandard reports whether name is one of the fields held outside Fields.
func isStandard(name string) bool {
	switch name {
	case FieldType, FieldHostname, FieldTimestamp, FieldUTCOffset, FieldPID, FieldClock:
		return true
	}
	return false
}

// MarshalJSON writes the event exactly as Celery does (Python's json.dumps: ", " and ": " separators,
// non-ASCII as \u escapes, floats as Python prints them), fields in Celery's order.
func (e Event) MarshalJSON() ([]byte, error) {
	return e.AppendJSON(nil)
}

// AppendJSON appends the event's JSON (see MarshalJSON) to dst.
func (e *Event) AppendJSON(dst []byte) ([]byte, error) {
	if e.Type == "" {
		return dst, errors.New("events: encoding an event without a type")
	}
	if math.IsNaN(e.Timestamp) || math.IsInf(e.Timestamp, 0) {
		return dst, fmt.Errorf("events: %s: timestamp %v is not a finite number", e.Type, e.Timestamp)
	}
	start := len(dst)
	dst = append(dst, `{"hostname": `...)
	dst = appendString(dst, e.Hostname)
	dst = append(dst, `, "utcoffset": `...)
	dst = strconv.AppendInt(dst, int64(e.UTCOffset), 10)
	dst = append(dst, `, "pid": `...)
	dst = strconv.AppendInt(dst, int64(e.PID), 10)
	dst = append(dst, `, "clock": `...)
	dst = strconv.AppendInt(dst, e.Clock, 10)
	for i, f := range e.Fields {
		if isStandard(f.Name) {
			return dst[:start], fmt.Errorf("events: %s: field %q is a standard field and cannot be among Fields", e.Type, f.Name)
		}
		for _, g := range e.Fields[:i] {
			if g.Name == f.Name {
				return dst[:start], fmt.Errorf("events: %s: field %q appears twice", e.Type, f.Name)
			}
		}
		dst = append(dst, ", "...)
		dst = appendString(dst, f.Name)
		dst = append(dst, ": "...)
		if canonical(f.Value) {
			dst = append(dst, f.Value...)
			continue
		}
		v, err := protocol.PyJSON(f.Value)
		if err != nil {
			return dst[:start], fmt.Errorf("events: %s: field %q: %w", e.Type, f.Name, err)
		}
		dst = append(dst, v...)
	}
	dst = append(dst, `, "timestamp": `...)
	ts, err := protocol.PyJSON(e.Timestamp)
	if err != nil {
		return dst[:start], fmt.Errorf("events: %s: timestamp: %w", e.Type, err)
	}
	dst = append(dst, ts...)
	dst = append(dst, `, "type": `...)
	dst = appendString(dst, e.Type)
	return append(dst, '}'), nil
}

// canonical reports whether raw is, byte for byte, what Python's json.dumps writes for its value, for
// the common simple cases: null, true, false, an integer without leading zeros, and a string of
// printable ASCII without escapes. Anything else goes through protocol.PyJSON.
func canonical(raw json.RawMessage) bool {
	switch string(raw) {
	case "null", "true", "false", "0":
		return true
	case "", "-", "-0":
		return false
	}
	switch c := raw[0]; {
	case c == '"':
		if len(raw) < 2 || raw[len(raw)-1] != '"' {
			return false
		}
		for _, b := range raw[1 : len(raw)-1] {
			if b < 0x20 || b > 0x7e || b == '\\' || b == '"' {
				return false
			}
		}
		return true
	case c == '-' || c >= '1' && c <= '9':
		digits := raw
		if c == '-' {
			digits = raw[1:]
		}
		if digits[0] == '0' {
			return false
		}
		for _, b := range digits {
			if b < '0' || b > '9' {
				return false
			}
		}
		return true
	}
	return false
}

// appendString appends s as a Python json.dumps string. PyJSON never fails on a string.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '\\' || c == '"' {
			b, _ := protocol.PyJSON(s)
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// EncodeBatch writes events as one JSON list, the body of a "<group>.multi" message.
func EncodeBatch(events []Event) ([]byte, error) {
	dst := []byte{'['}
	for i := range events {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		var err error
		if dst, err = events[i].AppendJSON(dst); err != nil {
			return nil, fmt.Errorf("events: element %d: %w", i, err)
		}
	}
	return append(dst, ']'), nil
}

// DecodeError is an event (or an element of a .multi list) that could not be decoded.
type DecodeError struct {
	// Index is the position in a .multi list, or -1 for a single event.
	Index int
	// Field is the field that was wrong, "" when the event as a whole was.
	Field string
	Msg   string
}

func (e *DecodeError) Error() string {
	var b strings.Builder
	b.WriteString("events: decoding")
	if e.Index >= 0 {
		fmt.Fprintf(&b, " element %d", e.Index)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, " field %q", e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Decode decodes one event: a JSON object with at least "type" (a non-empty string), "hostname" (a
// string) and "timestamp" (a number). "utcoffset" and "pid" must be integers and "clock" an integer
// or null when present; missing (or a null clock) they decode as 0, so re-encoding writes them.
// Every other field is kept, in order, with its raw value. Duplicate keys and invalid UTF-8 are errors.
func Decode(data []byte) (Event, error) {
	if !utf8.Valid(data) {
		return Event{}, &DecodeError{Index: -1, Msg: "not valid UTF-8"}
	}
	return decodeObject(data, -1)
}

// DecodeBody decodes an event message body: one event (a JSON object) or a list of events (the body
// of a "<group>.multi" message). multi reports whether the body was a list. The events that decode
// are returned even when others do not; err then joins one *DecodeError per bad element.
func DecodeBody(data []byte) (evs []Event, multi bool, err error) {
	if !utf8.Valid(data) {
		return nil, false, &DecodeError{Index: -1, Msg: "not valid UTF-8"}
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '[' {
		e, err := decodeObject(data, -1)
		if err != nil {
			return nil, false, err
		}
		return []Event{e}, false, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(data, &items); err != nil {
		return nil, true, &DecodeError{Index: -1, Msg: "invalid JSON list: " + err.Error()}
	}
	var errs []error
	evs = make([]Event, 0, len(items))
	for i, it := range items {
		e, err := decodeObject(it, i)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		evs = append(evs, e)
	}
	return evs, true, errors.Join(errs...)
}

func decodeObject(data []byte, index int) (Event, error) {
	fail := func(field, format string, args ...any) (Event, error) {
		return Event{}, &DecodeError{Index: index, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return fail("", "invalid JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fail("", "an event must be a JSON object, got %s", describe(tok))
	}
	var e Event
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fail("", "invalid JSON: %v", err)
		}
		name, ok := tok.(string)
		if !ok {
			return fail("", "invalid JSON object key %v", tok)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fail(name, "invalid JSON value: %v", err)
		}
		if seen[name] {
			return fail(name, "the key appears twice")
		}
		seen[name] = true
		switch name {
		case FieldType:
			if e.Type, ok = jsonString(raw); !ok || e.Type == "" {
				return fail(name, "want a non-empty string, got %s", kindOf(raw))
			}
		case FieldHostname:
			if e.Hostname, ok = jsonString(raw); !ok {
				return fail(name, "want a string, got %s", kindOf(raw))
			}
		case FieldTimestamp:
			f, err := strconv.ParseFloat(string(raw), 64)
			if kindOf(raw) != "number" || err != nil {
				return fail(name, "want a finite number, got %s", abbreviate(raw))
			}
			e.Timestamp = f
		case FieldUTCOffset, FieldPID:
			n, err := strconv.ParseInt(string(raw), 10, 32)
			if err != nil {
				return fail(name, "want an integer, got %s", abbreviate(raw))
			}
			if name == FieldPID {
				e.PID = int(n)
			} else {
				e.UTCOffset = int(n)
			}
		case FieldClock:
			if string(raw) == "null" {
				break
			}
			n, err := strconv.ParseInt(string(raw), 10, 64)
			if err != nil {
				return fail(name, "want an integer or null, got %s", abbreviate(raw))
			}
			e.Clock = n
		default:
			e.Fields = append(e.Fields, Field{Name: name, Value: raw})
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return fail("", "invalid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fail("", "extra data after the event object")
	}
	for _, f := range []string{FieldType, FieldHostname, FieldTimestamp} {
		if !seen[f] {
			return fail(f, "missing")
		}
	}
	return e, nil
}

// jsonString decodes raw when it is a JSON string.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// kindOf names the JSON type of a valid raw value.
func kindOf(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "list"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// isInt reports whether a raw JSON number is written as an integer (as Python writes an int).
func isInt(raw json.RawMessage) bool {
	return kindOf(raw) == "number" && !bytes.ContainsAny(raw, ".eE")
}

func describe(tok json.Token) string {
	switch tok.(type) {
	case json.Delim:
		return "a list"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", tok)
}

// abbreviate quotes a raw value for an error message, cut to 40 bytes.
func abbreviate(raw json.RawMessage) string {
	if len(raw) <= 40 {
		return string(raw)
	}
	cut := 40
	for cut > 0 && !utf8.RuneStart(raw[cut]) {
		cut--
	}
	return string(raw[:cut]) + "..."
}
