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
	// group_id, group_index and chord (a chain that is a chord header member, or a chord body
	// Celery's chord.run gave them) belong to the last step only, as Celery's prepare_steps
	// freezes the last task with them.
	gid, err := sig.stringOption("group_id")
	if err != nil {
		return nil, Result{}, err
	}
	var index *int
	var gi int
	if ok, err := sig.option("group_index", &gi); err != nil {
		return nil, Result{}, err
	} else if ok {
		index = &gi
	}
	var chord *protocol.Signature
	if raw, ok := sig.Options["chord"]; ok && !isNull(raw) {
		b, err := Decode(raw)
		if err != nil {
			return nil, Result{}, fmt.Errorf("canvas: %s: option chord: %w", sig.Task, err)
		}
		chord = &b.Signature
	}
	if gid != "" || index != nil || chord != nil {
		last := len(steps) - 1
		if steps[last], err = a.member(steps[last], gid, index, chord, 0); err != nil {
			return nil, Result{}, fmt.Errorf("canvas: chain: %w", err)
		}
	}
	for i := range steps {
		for _, k := range sig.OptionsOrder {
			switch k {
			case "task_id", "link", "link_error", "chain", "group_id", "group_index", "chord":
				continue
			}
			if _, ok := steps[i].Options[k]; !ok {
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

// unrollGroup returns a group's members with nested groups replaced by their members, as
// Celery's group._prepared and _freeze_unroll flatten them (the nested group's options are not
// kept).
func unrollGroup(tasks []Signature) ([]Signature, error) {
	var out []Signature
	for _, t := range tasks {
		if t.SubtaskType != TypeGroup {
			out = append(out, t)
			continue
		}
		inner, err := t.Tasks()
		if err != nil {
			return nil, err
		}
		flat, err := unrollGroup(inner)
		if err != nil {
			return nil, err
		}
		out = append(out, flat...)
	}
	return out, nil
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
	if tasks, err = unrollGroup(tasks); err != nil {
		return nil, Result{}, fmt.Errorf("canvas: group %s: %w", gid, err)
	}
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
		if t.SubtaskType != "" {
			// As Celery freezes a chain or chord member: the group (and chord) belong to what
			// completes it, the last step of a chain, a chord's body, each member of a group
			// a chain ends in; carried in their options.
			if t, err = a.member(t, gid, sub.GroupIndex, sub.Chord, 0); err != nil {
				return nil, Result{}, fmt.Errorf("canvas: group %s member %d: %w", gid, i, err)
			}
			sub.GroupID, sub.GroupIndex, sub.Chord = "", nil, nil
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
	size, err := chordSize(header, 0)
	if err != nil {
		return nil, Result{}, fmt.Errorf("canvas: chord %s: %w", header.ID(), err)
	}
	sub := in
	sub.Chord = &body.Signature
	outs, hres, err := a.applyGroup(header, sub, true)
	if err != nil {
		return nil, Result{}, err
	}
	outs[len(outs)-1].ChordSize = &ChordSize{GroupID: header.ID(), Size: size}
	id := body.ID()
	if body.SubtaskType == TypeChain {
		if steps, err := flattenChain(body); err == nil && len(steps) > 0 {
			id = steps[len(steps)-1].ID()
		}
	}
	return outs, Result{ID: id, Parent: &hres}, nil
}

// maxNesting bounds how deeply canvases nest (a decoded signature cannot exhaust the stack).
const maxNesting = 64

// chordSize is Celery's chord._descend: how many finished parts complete a chord with this
// header member. A task counts 1, a group the sum of its members, a chain its last step that
// counts (a chain ending in a group: that group's size), a chord its body.
func chordSize(sig Signature, depth int) (int, error) {
	if depth > maxNesting {
		return 0, fmt.Errorf("canvas: signatures nested deeper than %d", maxNesting)
	}
	switch sig.SubtaskType {
	case TypeGroup, TypeChain:
		tasks, err := sig.Tasks()
		if err != nil {
			return 0, err
		}
		n := 0
		for i := range tasks {
			if sig.SubtaskType == TypeChain {
				// The last step that counts, from the end.
				i = len(tasks) - 1 - i
			}
			c, err := chordSize(tasks[i], depth+1)
			if err != nil {
				return 0, err
			}
			if sig.SubtaskType == TypeChain && c > 0 {
				return c, nil
			}
			n += c
		}
		if sig.SubtaskType == TypeChain {
			return 0, nil
		}
		return n, nil
	case TypeChord:
		body, err := sig.ChordBody()
		if err != nil {
			return 0, err
		}
		return chordSize(body, depth+1)
	}
	return 1, nil
}

// member returns sig frozen as a member of group gid (the group_index index and the chord body
// chord, when in a chord header), as Celery's freeze(group_id=, chord=, group_index=) does: on a
// task the options group_id (unless already set), group_index and chord; on a chain its last step;
// on a chord its body; on a group (its own id kept or made) the group's options and each member.
func (a *Applier) member(sig Signature, gid string, index *int, chord *protocol.Signature, depth int) (Signature, error) {
	if depth > maxNesting {
		return Signature{}, fmt.Errorf("signatures nested deeper than %d", maxNesting)
	}
	mark := func(s Signature) (Signature, error) {
		s = s.clone()
		if own, _ := s.stringOption("group_id"); own == "" && gid != "" {
			s.setRaw("group_id", quote(gid))
		}
		if index != nil {
			s.setRaw("group_index", json.RawMessage(strconv.Itoa(*index)))
		}
		if chord != nil {
			b, err := chord.MarshalJSON()
			if err != nil {
				return Signature{}, err
			}
			s.setRaw("chord", b)
		}
		return s, nil
	}
	switch sig.SubtaskType {
	case "":
		return mark(sig)
	case TypeChain:
		steps, err := flattenChain(sig)
		if err != nil {
			return Signature{}, err
		}
		if len(steps) == 0 {
			return Signature{}, errors.New("empty chain")
		}
		if steps[len(steps)-1], err = a.member(steps[len(steps)-1], gid, index, chord, depth+1); err != nil {
			return Signature{}, err
		}
		out := sig.clone()
		out.setTasks(steps)
		return out, nil
	case TypeGroup:
		g, err := a.Freeze(sig)
		if err != nil {
			return Signature{}, err
		}
		tasks, err := g.Tasks()
		if err != nil {
			return Signature{}, err
		}
		if tasks, err = unrollGroup(tasks); err != nil {
			return Signature{}, err
		}
		for i := range tasks {
			if tasks[i], err = a.member(tasks[i], gid, index, chord, depth+1); err != nil {
				return Signature{}, err
			}
		}
		g.setTasks(tasks)
		return mark(g)
	case TypeChord:
		c, err := a.Freeze(sig)
		if err != nil {
			return Signature{}, err
		}
		body, err := c.ChordBody()
		if err != nil {
			return Signature{}, err
		}
		if body, err = a.member(body, gid, index, chord, depth+1); err != nil {
			return Signature{}, err
		}
		c.setKwarg("body", mustJSON(body))
		return c, nil
	}
	return Signature{}, fmt.Errorf("subtask_type %q is not supported", sig.SubtaskType)
}
