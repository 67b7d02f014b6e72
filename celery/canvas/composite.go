// This file holds the composite signatures: the constructors of chain, group and chord signatures
// and the accessors that read their parts back, as Celery's canvas module builds and reads them.

package canvas

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/forumads/forumads/celery/protocol"
)

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
