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

// Chain returns chain(sigs...): the signature celery.chain with kwargs
// {"tasks": [...]} in execution order.
//
// As Python's chain() does, nested chains are inlined and a group followed
// by another step becomes chord(group, step).
func Chain(sigs ...Signature) Signature {
	return composite(TaskChain, TypeChain, upgradeSteps(sigs))
}

// upgradeSteps inlines nested chains and turns group + step into a chord.
func upgradeSteps(sigs []Signature) []Signature {
	var flat []Signature
	for _, t := range sigs {
		if t.SubtaskType == TypeChain && t.err == nil {
			if inner, err := t.Tasks(); err == nil {
				flat = append(flat, inner...)
				continue
			}
		}
		flat = append(flat, t)
	}
	var steps []Signature
	for i := 0; i < len(flat); i++ {
		t := flat[i]
		if t.SubtaskType == TypeGroup && i+1 < len(flat) {
			t = Chord(t, flat[i+1])
			i++
		}
		steps = append(steps, t)
	}
	return steps
}

// Group returns group(sigs...): the signature celery.group with kwargs
// {"tasks": [...]}.
func Group(sigs ...Signature) Signature { return composite(TaskGroup, TypeGroup, sigs) }

func composite(task, typ string, sigs []Signature) Signature {
	s := Signature{Signature: protocol.Signature{Task: task, Args: []json.RawMessage{}, SubtaskType: typ,
		Options: map[string]json.RawMessage{}}}
	for _, m := range sigs {
		if m.err != nil && s.err == nil {
			s.err = m.err
		}
	}
	s.setTasks(sigs)
	return s
}

// Chord returns chord(header, body): the signature celery.chord with kwargs
// {"kwargs": {}, "header": [<member>, ...], "body": <body>}, Python's shape
// (an unfrozen header group is stored as its list of tasks). A header group
// with a task_id (a frozen header, the chord's group id) is kept as a group
// dict, as Python serializes a frozen chord. A header that is not a group is
// a one-member header.
func Chord(header Signature, body Signature) Signature {
	s := Signature{Signature: protocol.Signature{Task: TaskChord, Args: []json.RawMessage{}, SubtaskType: TypeChord,
		Options: map[string]json.RawMessage{}}}
	for _, e := range []error{header.err, body.err} {
		if e != nil && s.err == nil {
			s.err = e
		}
	}
	var h json.RawMessage
	var hs Signature // what ChordHeader returns for h
	switch {
	case header.SubtaskType == TypeGroup && header.ID() != "":
		h, hs = mustJSON(header), header
	case header.SubtaskType == TypeGroup:
		members, err := header.Tasks()
		if err != nil && s.err == nil {
			s.err = err
		}
		// Stored as the list of its members; read back as a group of them
		// (what Group(members...) builds, with the same bytes).
		hs = Signature{Signature: protocol.Signature{Task: TaskGroup, Args: []json.RawMessage{}, SubtaskType: TypeGroup,
			Options: map[string]json.RawMessage{}}, err: header.err}
		hs.setTasks(members)
		h = hs.Kwargs["tasks"]
	default:
		h = joinList([]json.RawMessage{mustJSON(header)})
		hs = Group(header)
	}
	s.setKwarg("kwargs", json.RawMessage("{}"))
	s.setHeader(h, hs)
	s.setKwarg("body", mustJSON(body))
	return s
}

// setHeader sets kwargs.header to raw, the encoding of the chord header sig.
func (s *Signature) setHeader(raw json.RawMessage, sig Signature) {
	s.setKwarg("header", raw)
	s.header = &headerMemo{raw: raw, sig: sig}
}

func (s *Signature) setTasks(sigs []Signature) {
	items := make([]json.RawMessage, len(sigs))
	for i := range sigs {
		items[i] = mustJSON(sigs[i])
	}
	raw := joinList(items)
	s.setKwarg("tasks", raw)
	s.tasks = &tasksMemo{raw: raw, sigs: slices.Clone(sigs)}
}

// Tasks returns the members of a chain or group (kwargs.tasks).
func (s Signature) Tasks() ([]Signature, error) {
	raw, ok := s.Kwargs["tasks"]
	if !ok {
		return nil, fmt.Errorf("canvas: %s signature has no kwargs.tasks", s.Task)
	}
	if m := s.tasks; m != nil && sameBytes(m.raw, raw) {
		out := make([]Signature, len(m.sigs))
		for i := range m.sigs {
			out[i] = m.sigs[i].clone()
		}
		return out, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("canvas: %s: kwargs.tasks is not a list: %w", s.Task, err)
	}
	out := make([]Signature, len(items))
	for i, it := range items {
		d, err := Decode(it)
		if err != nil {
			return nil, fmt.Errorf("canvas: %s: task %d: %w", s.Task, i, err)
		}
		out[i] = d
	}
	return out, nil
}

// ChordHeader returns a chord's header group (kwargs.header; a list is
// taken as the group's tasks).
func (s Signature) ChordHeader() (Signature, error) {
	raw, ok := s.Kwargs["header"]
	if !ok {
		return Signature{}, fmt.Errorf("canvas: %s signature has no kwargs.header", s.Task)
	}
	if m := s.header; m != nil && sameBytes(m.raw, raw) {
		return m.sig.clone(), nil
	}
	if len(raw) > 0 && raw[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return Signature{}, fmt.Errorf("canvas: chord header: %w", err)
		}
		sigs := make([]Signature, len(items))
		for i, it := range items {
			d, err := Decode(it)
			if err != nil {
				return Signature{}, fmt.Errorf("canvas: chord header task %d: %w", i, err)
			}
			sigs[i] = d
		}
		return Group(sigs...), nil
	}
	h, err := Decode(raw)
	if err != nil {
		return Signature{}, fmt.Errorf("canvas: chord header: %w", err)
	}
	if h.SubtaskType != TypeGroup {
		h = Group(h)
	}
	return h, nil
}

// ChordBody returns a chord's body (kwargs.body).
func (s Signature) ChordBody() (Signature, error) {
	raw, ok := s.Kwargs["body"]
	if !ok || isNull(raw) {
		return Signature{}, fmt.Errorf("canvas: %s signature has no kwargs.body", s.Task)
	}
	b, err := Decode(raw)
	if err != nil {
		return Signature{}, fmt.Errorf("canvas: chord body: %w", err)
	}
	return b, nil
}

// option decodes the option key into v; it reports whether it was set (and
// not null).
func (s Signature) option(key string, v any) (bool, error) {
	raw, ok := s.Options[key]
	if !ok || isNull(raw) {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("canvas: %s: option %s=%s: %w", s.Task, key, raw, err)
	}
	return true, nil
}

// stringOption returns a string option ("" when unset).
func (s Signature) stringOption(key string) (string, error) {
	var v string
	_, err := s.option(key, &v)
	return v, err
}

// ID returns the pre-assigned task id (options.task_id), "" when not frozen.
func (s Signature) ID() string {
	id, _ := s.stringOption("task_id")
	return id
}

// signatureList decodes an option holding a signature or a list of them
// (link, link_error).
func (s Signature) signatureList(key string) ([]protocol.Signature, error) {
	raw, ok := s.Options[key]
	if !ok || isNull(raw) {
		return nil, nil
	}
	var items []json.RawMessage
	if len(raw) > 0 && raw[0] == '{' {
		items = []json.RawMessage{raw}
	} else if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("canvas: %s: option %s is neither a signature nor a list: %w", s.Task, key, err)
	}
	out := make([]protocol.Signature, len(items))
	for i, it := range items {
		d, err := Decode(it)
		if err != nil {
			return nil, fmt.Errorf("canvas: %s: option %s[%d]: %w", s.Task, key, i, err)
		}
		out[i] = d.Signature
	}
	return out, nil
}
