// This file holds how the Applier turns composite signatures into messages: chains (flattened,
// each step carrying the rest of the chain), groups (one message per member, one group id) and chords
// (the header as a group whose members carry the chord body, the size stored first).

package canvas

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/forumads/forumads/celery/protocol"
)

// flattenChain returns a chain's steps with nested chains inlined and each
// group followed by another step upgraded to a chord.
func flattenChain(sig Signature) ([]Signature, error) {
	tasks, err := sig.Tasks()
	if err != nil {
		return nil, err
	}
	for _, t := range tasks {
		if t.SubtaskType == TypeChain {
			if _, err := t.Tasks(); err != nil {
				return nil, err
			}
		}
	}
	return upgradeSteps(tasks), nil
}

func (a *Applier) applyChain(sig Signature, in Incoming) ([]Outgoing, Result, error) {
	steps, err := flattenChain(sig)
	if err != nil {
		return nil, Result{}, err
	}
	if len(steps) == 0 {
		return nil, Result{}, fmt.Errorf("canvas: empty chain")
	}
	// Chain-level options (queue, ...) apply to every step, unless set there; as Celery's
	// chain.run does, its link callbacks are added to the last step and its errbacks to every step.
	links, err := sig.signatureList("link")
	if err != nil {
		return nil, Result{}, err
	}
	errbacks, err := sig.signatureList("link_error")
	if err != nil {
		return nil, Result{}, err
	}
	for i := range steps {
		for _, k := range sig.OptionsOrder {
			if _, ok := steps[i].Options[k]; !ok && k != "task_id" && k != "link" && k != "link_error" && k != "chain" {
				steps[i] = steps[i].clone()
				steps[i].setRaw(k, sig.Options[k])
			}
		}
		for _, eb := range errbacks {
			steps[i] = steps[i].LinkError(FromProtocol(eb))
		}
		if i == len(steps)-1 {
			for _, cb := range links {
				steps[i] = steps[i].Link(FromProtocol(cb))
			}
		}
		if steps[i], err = a.Freeze(steps[i]); err != nil {
			return nil, Result{}, err
		}
	}
	first, rest := steps[0], steps[1:]
	// The result handle: the last step, with parents.
	var res *Result
	for _, s := range steps {
		id := s.ID()
		if s.SubtaskType == TypeChord {
			if b, err := s.ChordBody(); err == nil {
				id = b.ID()
			}
		}
		res = &Result{ID: id, Parent: res}
	}
	if first.SubtaskType == TypeChord && len(rest) > 0 {
		// The rest of the chain runs after the chord's body.
		body, err := first.ChordBody()
		if err != nil {
			return nil, Result{}, err
		}
		h, err := first.ChordHeader()
		if err != nil {
			return nil, Result{}, err
		}
		first = Chord(h, Chain(append([]Signature{body}, rest...)...))
		rest = nil
	}
	// A chain option holds steps that run after this chain's own (reversed, as embed.chain).
	later, err := sig.signatureList("chain")
	if err != nil {
		return nil, Result{}, err
	}
	chainRest := make([]protocol.Signature, 0, len(rest)+len(later))
	chainRest = append(chainRest, later...)
	for i := len(rest) - 1; i >= 0; i-- {
		chainRest = append(chainRest, rest[i].Signature)
	}
	if first.SubtaskType == TypeChord && len(chainRest) > 0 {
		// The steps after a chord run after its body, as Celery's chord.run leaves them on it.
		body, err := first.ChordBody()
		if err != nil {
			return nil, Result{}, err
		}
		h, err := first.ChordHeader()
		if err != nil {
			return nil, Result{}, err
		}
		items := make([]json.RawMessage, len(chainRest))
		for i := range chainRest {
			items[i] = mustJSON(FromProtocol(chainRest[i]))
		}
		b := body.clone()
		b.setRaw("chain", joinList(items))
		first, chainRest = Chord(h, b), nil
	}
	sub := in
	if len(chainRest) > 0 {
		sub.Chain = chainRest
	}
	if first.SubtaskType == "" {
		o, err := a.applyTask(first, sub)
		if err != nil {
			return nil, Result{}, err
		}
		return []Outgoing{o}, *res, nil
	}
	if len(chainRest) > 0 {
		return nil, Result{}, fmt.Errorf("canvas: a chain starting with a %s followed by other steps is not supported", first.SubtaskType)
	}
	outs, _, err := a.Apply(first, in)
	return outs, *res, err
}

func (a *Applier) applyGroup(sig Signature, in Incoming, inChord bool) ([]Outgoing, Result, error) {
	sig, err := a.Freeze(sig)
	if err != nil {
		return nil, Result{}, err
	}
	tasks, err := sig.Tasks()
	if err != nil {
		return nil, Result{}, err
	}
	gid := sig.ID()
	gr := &GroupResult{ID: gid}
	var outs []Outgoing
	for i, t := range tasks {
		for _, k := range sig.OptionsOrder {
			if _, ok := t.Options[k]; !ok && k != "task_id" {
				t = t.clone()
				t.setRaw(k, sig.Options[k])
			}
		}
		sub := in
		sub.GroupID = gid
		sub.GroupIndex = nil
		if inChord {
			idx := i
			sub.GroupIndex = &idx
		}
		switch t.SubtaskType {
		case "":
		case TypeChain:
			// As Celery freezes a chain member: the group (and chord)
			// belong to its last step, carried in that step's options.
			if t, err = memberChain(t, gid, sub.GroupIndex, sub.Chord); err != nil {
				return nil, Result{}, fmt.Errorf("canvas: group %s member %d: %w", gid, i, err)
			}
			sub.GroupID, sub.GroupIndex, sub.Chord = "", nil, nil
		default:
			return nil, Result{}, fmt.Errorf("canvas: group %s member %d: a %s inside a group is not supported", gid, i, t.SubtaskType)
		}
		o, r, err := a.Apply(t, sub)
		if err != nil {
			return nil, Result{}, fmt.Errorf("canvas: group %s member %d: %w", gid, i, err)
		}
		outs = append(outs, o...)
		gr.Results = append(gr.Results, r.ID)
	}
	return outs, Result{ID: gid, Group: gr}, nil
}

func (a *Applier) applyChord(sig Signature, in Incoming) ([]Outgoing, Result, error) {
	sig, err := a.Freeze(sig)
	if err != nil {
		return nil, Result{}, err
	}
	header, err := sig.ChordHeader()
	if err != nil {
		return nil, Result{}, err
	}
	body, err := sig.ChordBody()
	if err != nil {
		return nil, Result{}, err
	}
	tasks, err := header.Tasks()
	if err != nil {
		return nil, Result{}, err
	}
	if len(tasks) == 0 {
		return a.Apply(body, Incoming{Args: []json.RawMessage{json.RawMessage("[]")}, ParentID: in.ParentID, RootID: in.RootID})
	}
	// Python's chord.run passes its options (but task_id) to the header.
	for _, k := range sig.OptionsOrder {
		if _, ok := header.Options[k]; !ok && k != "task_id" && k != "group_id" {
			header = header.clone()
			header.setRaw(k, sig.Options[k])
		}
	}
	sub := in
	sub.Chord = &body.Signature
	outs, hres, err := a.applyGroup(header, sub, true)
	if err != nil {
		return nil, Result{}, err
	}
	outs[len(outs)-1].ChordSize = &ChordSize{GroupID: header.ID(), Size: len(tasks)}
	id := body.ID()
	if body.SubtaskType == TypeChain {
		if steps, err := flattenChain(body); err == nil && len(steps) > 0 {
			id = steps[len(steps)-1].ID()
		}
	}
	return outs, Result{ID: id, Parent: &hres}, nil
}

// memberChain returns a chain group member with group_id, group_index and
// chord (the chord body) set on its last step.
func memberChain(c Signature, gid string, index *int, chord *protocol.Signature) (Signature, error) {
	steps, err := flattenChain(c)
	if err != nil {
		return Signature{}, err
	}
	if len(steps) == 0 {
		return Signature{}, errors.New("empty chain")
	}
	last := steps[len(steps)-1]
	if last.SubtaskType != "" {
		return Signature{}, fmt.Errorf("a chain ending in a %s inside a group is not supported", last.SubtaskType)
	}
	last = last.clone()
	last.setRaw("group_id", quote(gid))
	if index != nil {
		last.setRaw("group_index", json.RawMessage(strconv.Itoa(*index)))
	}
	if chord != nil {
		b, err := chord.MarshalJSON()
		if err != nil {
			return Signature{}, err
		}
		last.setRaw("chord", b)
	}
	steps[len(steps)-1] = last
	out := c.clone()
	out.setTasks(steps)
	return out, nil
}
