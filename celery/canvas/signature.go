package canvas

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/forumads/forumads/celery/protocol"
)

// Subtask types of composite signatures.
const (
	TypeChain = "chain"
	TypeGroup = "group"
	TypeChord = "chord"
)

// Composite task names.
const (
	TaskChain = "celery.chain"
	TaskGroup = "celery.group"
	TaskChord = "celery.chord"
)

// Signature is a Celery signature. Its JSON form (MarshalJSON, from the
// embedded protocol.Signature) is byte for byte what Python's json.dumps
// writes for the same signature dict, key order included. Setters return a
// modified copy and never change the receiver.
type Signature struct {
	protocol.Signature
	// err is a construction error (an argument that cannot be encoded),
	// reported by MarshalJSON and by every Applier method.
	err error
	// tasks and header remember what kwargs.tasks and kwargs.header were
	// encoded from, so that Tasks and ChordHeader need not decode them again
	// (a group of thousands of members is otherwise decoded several times
	// on its way to the broker). Each is used only while the kwarg still
	// holds the very bytes it was made with.
	tasks  *tasksMemo
	header *headerMemo
}

type tasksMemo struct {
	raw  json.RawMessage
	sigs []Signature
}

type headerMemo struct {
	raw json.RawMessage
	sig Signature
}

// sameBytes reports whether a and b are the same bytes in memory (not merely
// equal).
func sameBytes(a, b json.RawMessage) bool {
	return len(a) == len(b) && len(a) > 0 && &a[0] == &b[0]
}

// Decode parses a signature dict as Python sends it (in embed, in options
// link/link_error/chord, or in a composite's kwargs). Anything but a JSON
// object with a string task name is an error.
func Decode(data []byte) (Signature, error) {
	var s Signature
	if err := s.UnmarshalJSON(data); err != nil {
		return Signature{}, fmt.Errorf("canvas: decode signature: %w", err)
	}
	if s.Task == "" {
		return Signature{}, errors.New("canvas: decode signature: missing or empty task name")
	}
	return s, nil
}

// MarshalJSON writes the signature dict in Python's json.dumps format.
func (s Signature) MarshalJSON() ([]byte, error) {
	if s.err != nil {
		return nil, s.err
	}
	return s.Signature.MarshalJSON()
}

// Err returns the construction error, if any.
func (s Signature) Err() error { return s.err }

// S returns the signature of task with partial positional args, like
// Python's task.s(*args). Each arg is encoded with encoding/json
// (json.RawMessage values are taken as they are).
func S(task string, args ...any) Signature {
	s := Signature{Signature: protocol.Signature{Task: task, Args: []json.RawMessage{}}}
	if task == "" {
		s.err = errors.New("canvas: signature with an empty task name")
	}
	for i, a := range args {
		raw, err := encodeValue(a)
		if err != nil && s.err == nil {
			s.err = fmt.Errorf("canvas: %s: arg %d: %w", task, i, err)
		}
		s.Args = append(s.Args, raw)
	}
	return s
}

// SI returns an immutable signature, like Python's task.si(*args): the
// parent's result is not prepended to its args.
func SI(task string, args ...any) Signature {
	s := S(task, args...)
	s.Immutable = true
	return s
}

// FromProtocol wraps a decoded protocol signature.
func FromProtocol(p protocol.Signature) Signature { return Signature{Signature: p} }

func encodeValue(v any) (json.RawMessage, error) {
	if raw, ok := v.(json.RawMessage); ok {
		if !json.Valid(raw) {
			return json.RawMessage("null"), errors.New("invalid JSON")
		}
		return raw, nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage("null"), err
	}
	return raw, nil
}

// clone copies the maps and slices so a modified copy shares nothing
// mutable with the original.
func (s Signature) clone() Signature {
	c := s
	c.Args = slices.Clone(s.Args)
	c.Kwargs = maps.Clone(s.Kwargs)
	c.KwargsOrder = slices.Clone(s.KwargsOrder)
	c.Options = maps.Clone(s.Options)
	c.OptionsOrder = slices.Clone(s.OptionsOrder)
	c.Extra = maps.Clone(s.Extra)
	c.ExtraOrder = slices.Clone(s.ExtraOrder)
	return c
}

// setRaw sets an option (kept in first-set order, as a Python dict).
func (s *Signature) setRaw(key string, raw json.RawMessage) {
	if s.Options == nil {
		s.Options = map[string]json.RawMessage{}
	}
	if _, ok := s.Options[key]; !ok {
		s.OptionsOrder = append(s.OptionsOrder, key)
	}
	s.Options[key] = raw
}

func (s *Signature) setKwarg(key string, raw json.RawMessage) {
	if s.Kwargs == nil {
		s.Kwargs = map[string]json.RawMessage{}
	}
	if _, ok := s.Kwargs[key]; !ok {
		s.KwargsOrder = append(s.KwargsOrder, key)
	}
	s.Kwargs[key] = raw
}

// Set returns a copy with the apply_async option key set to v, like
// Python's sig.set(key=v).
func (s Signature) Set(key string, v any) Signature {
	c := s.clone()
	raw, err := encodeValue(v)
	if err != nil && c.err == nil {
		c.err = fmt.Errorf("canvas: %s: option %q: %w", s.Task, key, err)
	}
	c.setRaw(key, raw)
	return c
}

// Kwarg returns a copy with the partial keyword argument key set to v.
func (s Signature) Kwarg(key string, v any) Signature {
	c := s.clone()
	raw, err := encodeValue(v)
	if err != nil && c.err == nil {
		c.err = fmt.Errorf("canvas: %s: kwarg %q: %w", s.Task, key, err)
	}
	c.setKwarg(key, raw)
	return c
}

// Queue sets the queue option.
func (s Signature) Queue(q string) Signature { return s.Set("queue", q) }

// Exchange sets the exchange option.
func (s Signature) Exchange(e string) Signature { return s.Set("exchange", e) }

// RoutingKey sets the routing_key option.
func (s Signature) RoutingKey(k string) Signature { return s.Set("routing_key", k) }

// Priority sets the priority option.
func (s Signature) Priority(p int) Signature { return s.Set("priority", p) }

// Countdown sets the countdown option, in seconds.
func (s Signature) Countdown(seconds float64) Signature { return s.Set("countdown", seconds) }

// Expires sets the expires option, in seconds from sending.
func (s Signature) Expires(seconds float64) Signature { return s.Set("expires", seconds) }

// TimeLimit sets the time_limit and soft_time_limit options (seconds; 0
// leaves one unset).
func (s Signature) TimeLimit(hard, soft float64) Signature {
	c := s
	if hard > 0 {
		c = c.Set("time_limit", hard)
	}
	if soft > 0 {
		c = c.Set("soft_time_limit", soft)
	}
	return c
}

// TaskID pre-assigns the task id (for a group or chord: the group id).
func (s Signature) TaskID(id string) Signature { return s.Set("task_id", id) }

// Shadow sets the shadow (display name) option.
func (s Signature) Shadow(name string) Signature { return s.Set("shadow", name) }

// IgnoreResult sets the ignore_result option.
func (s Signature) IgnoreResult(v bool) Signature { return s.Set("ignore_result", v) }

// AsImmutable returns a copy with immutable set (Python's sig.set(immutable=True)).
func (s Signature) AsImmutable() Signature {
	c := s.clone()
	c.Immutable = true
	return c
}

// Link returns a copy with sig added to the link option (success callbacks),
// like Python's sig.link(callback). On a chain the callback goes to its last
// task (where Python's chain.run puts it), on a group to its first member as
// an immutable copy (Celery's group.link), on a chord to its body.
func (s Signature) Link(callback Signature) Signature { return s.appendLink("link", callback) }

// LinkError returns a copy with sig added to the link_error option
// (errbacks). On a chain it goes to every task, on a group to every member,
// on a chord to its body.
func (s Signature) LinkError(errback Signature) Signature {
	return s.appendLink("link_error", errback)
}

func (s Signature) appendLink(key string, cb Signature) Signature {
	c := s.clone()
	if cb.err != nil && c.err == nil {
		c.err = cb.err
	}
	switch s.SubtaskType {
	case TypeChain:
		tasks, err := c.Tasks()
		if err != nil || len(tasks) == 0 {
			break
		}
		if key == "link" {
			tasks[len(tasks)-1] = tasks[len(tasks)-1].appendLink(key, cb)
		} else {
			for i := range tasks {
				tasks[i] = tasks[i].appendLink(key, cb)
			}
		}
		c.setTasks(tasks)
		return c
	case TypeGroup:
		tasks, err := c.Tasks()
		if err != nil || len(tasks) == 0 {
			break
		}
		if key == "link" {
			// Celery links only the first member, with an immutable copy.
			tasks[0] = tasks[0].appendLink(key, cb.AsImmutable())
		} else {
			for i := range tasks {
				tasks[i] = tasks[i].appendLink(key, cb)
			}
		}
		c.setTasks(tasks)
		return c
	case TypeChord:
		body, err := c.ChordBody()
		if err != nil {
			break
		}
		c.setKwarg("body", mustJSON(body.appendLink(key, cb)))
		return c
	}
	var list []json.RawMessage
	if raw, ok := c.Options[key]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &list); err != nil {
			// A single signature dict, as Python also accepts.
			list = []json.RawMessage{raw}
		}
	}
	b, err := cb.MarshalJSON()
	if err != nil {
		return c
	}
	list = append(list, b)
	c.setRaw(key, joinList(list))
	return c
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// joinList writes raw items as a Python-spaced JSON list.
func joinList(items []json.RawMessage) json.RawMessage {
	b := []byte{'['}
	for i, it := range items {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, it...)
	}
	return append(b, ']')
}

func mustJSON(s Signature) json.RawMessage {
	b, err := s.MarshalJSON()
	if err != nil {
		return json.RawMessage("null")
	}
	return b
}
