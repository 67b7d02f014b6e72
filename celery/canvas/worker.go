package canvas

import (
	"encoding/json"
	"fmt"

	"github.com/forumads/forumads/celery/protocol"
)

// These are the messages a Celery 5.2 worker publishes after a task has
// finished (celery/app/trace.py). The worker publishes callbacks and the
// next chain step before it stores the task's result, then does the chord
// bookkeeping (backend.ChordStore.OnChordPartReturn) when msg.Embed.Chord
// is set, and applies ChordBody when that call completes the chord.

func rootOf(msg *protocol.TaskMessage) string {
	if msg.RootID != "" {
		return msg.RootID
	}
	return msg.ID
}

// NextChainStep returns what follows msg's success in a chain: the last
// element of msg.Embed.Chain applied with args [retval] (prepended unless
// the step is immutable), embed.chain = the remaining elements,
// parent_id = msg.ID and root_id = msg's root. No chain gives nil. A step
// that is itself a chain, group or chord is expanded with the client rules
// (the remaining steps follow it).
func (a *Applier) NextChainStep(msg *protocol.TaskMessage, retval json.RawMessage) ([]Outgoing, error) {
	outs, _, err := a.nextChainStep(msg, retval)
	return outs, err
}

func (a *Applier) nextChainStep(msg *protocol.TaskMessage, retval json.RawMessage) ([]Outgoing, []Result, error) {
	chain := msg.Embed.Chain
	if len(chain) == 0 {
		return nil, nil, nil
	}
	next := FromProtocol(chain[len(chain)-1])
	rest := append([]protocol.Signature(nil), chain[:len(chain)-1]...)
	in := Incoming{Args: []json.RawMessage{orNull(retval)}, ParentID: msg.ID, RootID: rootOf(msg)}
	if next.SubtaskType != "" && len(rest) > 0 {
		steps := []Signature{next}
		for i := len(rest) - 1; i >= 0; i-- {
			steps = append(steps, FromProtocol(rest[i]))
		}
		next, rest = Chain(steps...), nil
	}
	if len(rest) > 0 {
		in.Chain = rest
	}
	outs, res, err := a.Apply(next, in)
	if err != nil {
		return nil, nil, fmt.Errorf("canvas: next chain step of task %s: %w", msg.ID, err)
	}
	return outs, []Result{res}, nil
}

func orNull(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	return raw
}

// Callbacks returns the link callbacks of msg after it returned retval: one
// callback is applied alone with args [retval]; with several, the group
// signatures are applied one by one and the others together as one new
// group (fresh group id). parent_id = msg.ID, root_id = msg's root.
func (a *Applier) Callbacks(msg *protocol.TaskMessage, retval json.RawMessage) ([]Outgoing, error) {
	outs, _, err := a.callbacks(msg, retval)
	return outs, err
}

func (a *Applier) callbacks(msg *protocol.TaskMessage, retval json.RawMessage) ([]Outgoing, []Result, error) {
	cbs := msg.Embed.Callbacks
	if len(cbs) == 0 {
		return nil, nil, nil
	}
	in := Incoming{Args: []json.RawMessage{orNull(retval)}, ParentID: msg.ID, RootID: rootOf(msg)}
	if len(cbs) == 1 {
		outs, res, err := a.Apply(FromProtocol(cbs[0]), in)
		if err != nil {
			return nil, nil, fmt.Errorf("canvas: callback of task %s: %w", msg.ID, err)
		}
		return outs, []Result{res}, nil
	}
	var outs []Outgoing
	var results []Result
	var plain []Signature
	for _, cb := range cbs {
		s := FromProtocol(cb)
		if s.SubtaskType != TypeGroup {
			plain = append(plain, s)
			continue
		}
		o, res, err := a.Apply(s, in)
		if err != nil {
			return nil, nil, fmt.Errorf("canvas: callback group of task %s: %w", msg.ID, err)
		}
		outs, results = append(outs, o...), append(results, res)
	}
	if len(plain) > 0 {
		o, res, err := a.Apply(Group(plain...), in)
		if err != nil {
			return nil, nil, fmt.Errorf("canvas: callbacks of task %s: %w", msg.ID, err)
		}
		outs, results = append(outs, o...), append(results, res)
	}
	return outs, results, nil
}

// Errbacks returns msg's link_error errbacks after it failed, published as
// Celery publishes "old-style" errbacks: one group (fresh group id) with
// args [failedID], parent_id = failedID, root_id = msg's root. Celery
// publishes nothing for a chord header member unless
// task_allow_error_cb_on_chord_header; pass allowOnChordHeader accordingly.
//
// A Python worker calls "new-style" errbacks, tasks taking (request, exc,
// traceback), in its own process. A Go worker cannot call a Python function,
// so an errback whose task RequestErrback reports as new-style (a Go task
// registered so) is published on its own with args [request, exc, traceback]:
// the failed task's request as a dict (id, task, args, kwargs, root_id,
// parent_id, group, group_index, retries), its exception when known (else
// None) and None for the traceback. An immutable errback keeps its own args.
func (a *Applier) Errbacks(msg *protocol.TaskMessage, failedID string, allowOnChordHeader bool) ([]Outgoing, error) {
	return a.ErrbacksWith(msg, failedID, nil, allowOnChordHeader)
}

// ErrbacksWith is Errbacks with the failed task's exception (its result JSON, nil: unknown), which
// new-style errbacks receive.
func (a *Applier) ErrbacksWith(msg *protocol.TaskMessage, failedID string, exc json.RawMessage, allowOnChordHeader bool) ([]Outgoing, error) {
	if len(msg.Embed.Errbacks) == 0 || (msg.Embed.Chord != nil && !allowOnChordHeader) {
		return nil, nil
	}
	var old []Signature
	var outs []Outgoing
	for _, e := range msg.Embed.Errbacks {
		sig := FromProtocol(e)
		if a.RequestErrback == nil || sig.Immutable || !a.RequestErrback(sig.Task) {
			old = append(old, sig)
			continue
		}
		req, err := errbackRequest(msg, failedID)
		if err != nil {
			return nil, fmt.Errorf("canvas: errbacks of task %s: %w", msg.ID, err)
		}
		in := Incoming{Args: []json.RawMessage{req, orNull(exc), json.RawMessage("null")}, ParentID: failedID, RootID: rootOf(msg)}
		o, _, err := a.Apply(sig, in)
		if err != nil {
			return nil, fmt.Errorf("canvas: errbacks of task %s: %w", msg.ID, err)
		}
		outs = append(outs, o...)
	}
	if len(old) == 0 {
		return outs, nil
	}
	in := Incoming{Args: []json.RawMessage{quote(failedID)}, ParentID: failedID, RootID: rootOf(msg)}
	o, _, err := a.Apply(Group(old...), in)
	if err != nil {
		return nil, fmt.Errorf("canvas: errbacks of task %s: %w", msg.ID, err)
	}
	return append(o, outs...), nil
}

// errbackRequest is the request dict a new-style errback gets.
func errbackRequest(msg *protocol.TaskMessage, failedID string) (json.RawMessage, error) {
	args := msg.Args
	if args == nil {
		args = []json.RawMessage{}
	}
	kwargs := msg.Kwargs
	if kwargs == nil {
		kwargs = map[string]json.RawMessage{}
	}
	orNone := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	return json.Marshal(map[string]any{"id": failedID, "task": orNone(msg.Task), "args": args, "kwargs": kwargs,
		"root_id": orNone(rootOf(msg)), "parent_id": orNone(msg.ParentID), "group": orNone(msg.GroupID),
		"group_index": msg.GroupIndex, "retries": msg.Retries})
}

// ChordBody returns the chord body applied with args [results] (the header
// results in group order), as the worker completing a chord publishes it:
// parent_id = that header member's id, root_id = its root.
func (a *Applier) ChordBody(body protocol.Signature, results []json.RawMessage, member *protocol.TaskMessage) ([]Outgoing, error) {
	list := make([]json.RawMessage, len(results))
	for i, r := range results {
		list[i] = orNull(r)
	}
	in := Incoming{Args: []json.RawMessage{joinList(list)}}
	if member != nil {
		in.ParentID, in.RootID = member.ID, rootOf(member)
	}
	outs, _, err := a.Apply(FromProtocol(body), in)
	if err != nil {
		return nil, fmt.Errorf("canvas: chord body %s: %w", body.Task, err)
	}
	return outs, nil
}

// ChainFailure is a remaining chain element that must be marked FAILURE
// when the task before it failed (Celery's mark_as_failure).
type ChainFailure struct {
	// TaskID is the element's options.task_id.
	TaskID string
	// GroupID and GroupIndex are its options group_id/group_index, if any.
	GroupID    string
	GroupIndex *int
	// Chord is its options.chord (a chord body): the worker must then also
	// do the chord bookkeeping for it with the same FAILURE.
	Chord *protocol.Signature
}

// ChainFailures returns the remaining chain elements of a failed msg that
// carry a task_id, in the order Celery visits them (msg.Embed.Chain order).
func ChainFailures(msg *protocol.TaskMessage) ([]ChainFailure, error) {
	var out []ChainFailure
	for i, el := range msg.Embed.Chain {
		s := FromProtocol(el)
		id, err := s.stringOption("task_id")
		if err != nil {
			return nil, fmt.Errorf("canvas: chain element %d: %w", i, err)
		}
		if id == "" {
			continue
		}
		f := ChainFailure{TaskID: id}
		if f.GroupID, err = s.stringOption("group_id"); err != nil {
			return nil, fmt.Errorf("canvas: chain element %d: %w", i, err)
		}
		var gi int
		if ok, err := s.option("group_index", &gi); err != nil {
			return nil, fmt.Errorf("canvas: chain element %d: %w", i, err)
		} else if ok {
			f.GroupIndex = &gi
		}
		if raw, ok := s.Options["chord"]; ok && !isNull(raw) {
			body, err := Decode(raw)
			if err != nil {
				return nil, fmt.Errorf("canvas: chain element %d: option chord: %w", i, err)
			}
			f.Chord = &body.Signature
		}
		out = append(out, f)
	}
	return out, nil
}
