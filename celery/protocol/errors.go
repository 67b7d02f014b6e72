package protocol

import "strings"

// ErrorKind classifies why [Decode] refused a message. Each kind is itself an
// error value, so it works as a sentinel with [errors.Is]:
//
//	if errors.Is(err, protocol.ErrContentDisallowed) { ... }
//
// The kinds map onto what a Python 5.2 worker does with such a message; see
// the constants.
type ErrorKind uint8

const (
	// ErrContentDisallowed: the content type is not in the accept list (pickle
	// never is). A Python worker rejects the message without requeue.
	ErrContentDisallowed ErrorKind = iota + 1
	// ErrUndecodable: the body could not be decoded (bad JSON, YAML or
	// msgpack, bad compression). A Python worker logs it and acks (drops) it.
	ErrUndecodable
	// ErrInvalidTask: the body decoded but a field is malformed (eta/expires,
	// args/kwargs, timelimit, missing id, ...). A Python worker rejects it
	// without requeue.
	ErrInvalidTask
	// ErrUnknownMessage: the message is not a task message at all. A Python
	// worker rejects it without requeue.
	ErrUnknownMessage
)

// Error returns a short description of the kind.
func (k ErrorKind) Error() string {
	switch k {
	case ErrContentDisallowed:
		return "content disallowed"
	case ErrUndecodable:
		return "undecodable message"
	case ErrInvalidTask:
		return "invalid task message"
	case ErrUnknownMessage:
		return "unknown message"
	default:
		return "unknown error kind"
	}
}

// MessageError is the error [Decode] returns for every message it refuses.
// TaskID and TaskName are filled whenever they are knowable, even when the
// body could not be decoded: from the v2 headers `id` and `task`, from a v1
// body, or else TaskID from the correlation_id property.
type MessageError struct {
	Kind     ErrorKind // what went wrong, see the ErrorKind constants
	Reason   string    // human-readable detail
	TaskID   string    // task id if knowable, else the correlation id
	TaskName string    // task name if knowable
	Err      error     // underlying cause, may be nil
}

var _ error = (*MessageError)(nil)

// Error formats the kind, the reason, the task and the cause.
func (e *MessageError) Error() string {
	var b strings.Builder
	b.WriteString("protocol: ")
	b.WriteString(e.Kind.Error())
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	if e.TaskName != "" || e.TaskID != "" {
		b.WriteString(" (task ")
		if e.TaskName != "" {
			b.WriteString(e.TaskName)
			if e.TaskID != "" {
				b.WriteByte(' ')
			}
		}
		if e.TaskID != "" {
			b.WriteString("id ")
			b.WriteString(e.TaskID)
		}
		b.WriteByte(')')
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Is reports whether target is the ErrorKind of e, so errors.Is(err,
// ErrInvalidTask) matches.
func (e *MessageError) Is(target error) bool {
	k, ok := target.(ErrorKind)
	return ok && k == e.Kind
}

// Unwrap returns the underlying cause.
func (e *MessageError) Unwrap() error { return e.Err }
