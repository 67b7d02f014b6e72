// This file holds what a running task does with canvases: send one as its child (SendFrom) and
// replace itself with one (Replace, Celery's Task.replace).

package canvas

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/forumads/forumads/celery"
)

// ImproperlyConfiguredError is a signature Replace refuses; Python raises it as
// celery.exceptions.ImproperlyConfigured, with the same message as Celery 5.2.
type ImproperlyConfiguredError struct{ Reason string }

func (e *ImproperlyConfiguredError) Error() string { return e.Reason }

// ExcType makes the error Celery's ImproperlyConfigured.
func (e *ImproperlyConfiguredError) ExcType() string { return "ImproperlyConfigured" }

// ExcModule is celery.exceptions, so Python raises the real class.
func (e *ImproperlyConfiguredError) ExcModule() string { return "celery.exceptions" }

// ErrReplaced is what Replace returns once the replacement is published: it wraps celery.ErrIgnore,
// so the worker stores nothing for the replaced task (the replacement stores its result under the
// same id), as Celery's Ignore('Replaced by new task').
var ErrReplaced = fmt.Errorf("replaced by new task: %w", celery.ErrIgnore)

// SendFrom applies sig as a child of the running task req (its parent_id is req's id, its root_id
// req's root) and publishes it, as apply_async() called inside a Celery task does.
func (s *Sender) SendFrom(ctx context.Context, req *celery.Request, sig Signature) (Result, error) {
	outs, res, err := s.applier.Apply(sig, childOf(req))
	if err != nil {
		return Result{}, err
	}
	if err := s.Publish(ctx, outs); err != nil {
		return Result{}, err
	}
	return res, nil
}

func childOf(req *celery.Request) Incoming {
	root := req.RootID
	if root == "" {
		root = req.ID
	}
	return Incoming{ParentID: req.ID, RootID: root}
}

// Replace replaces the running task req with sig, as Celery 5.2's self.replace(sig) does, and
// returns [ErrReplaced] for the task to return (or the error that prevented it):
//
//   - a group is made a chord with celery.accumulate(index=0) as its body, so that something can be
//     linked after it and its result is the group's results (register it with [RegisterBuiltins]);
//   - req's link callbacks and errbacks are linked to sig (a chain's callbacks to its last step);
//   - sig takes req's id (a chain's last step, a chord's body), req's root id, group, group index
//     and chord, so results already handed out keep working and a chord header member still counts;
//   - the rest of req's chain runs after sig;
//   - the replacement is published as a child of req, with replaced_task_nesting one more than req's.
//
// A sig with a chord option, or an empty chain, is refused with [ImproperlyConfiguredError].
func (s *Sender) Replace(ctx context.Context, req *celery.Request, sig Signature) error {
	full, err := s.Replacement(req, sig)
	if err != nil {
		return err
	}
	outs, _, err := s.applier.Apply(full, childOf(req))
	if err != nil {
		return fmt.Errorf("canvas: replacing %s[%s]: %w", req.Task, req.ID, err)
	}
	if err := s.Publish(ctx, outs); err != nil {
		return fmt.Errorf("canvas: replacing %s[%s]: %w", req.Task, req.ID, err)
	}
	return ErrReplaced
}

// Replacement returns the signature Replace publishes for req and sig (see there).
func (s *Sender) Replacement(req *celery.Request, sig Signature) (Signature, error) {
	if sig.err != nil {
		return Signature{}, sig.err
	}
	if raw, ok := sig.Options["chord"]; ok && !isNull(raw) {
		return Signature{}, &ImproperlyConfiguredError{"A signature replacing a task must not be part of a chord"}
	}
	if sig.SubtaskType == TypeChain {
		tasks, err := sig.Tasks()
		if err != nil {
			return Signature{}, err
		}
		if len(tasks) == 0 {
			return Signature{}, &ImproperlyConfiguredError{"Cannot replace with an empty chain"}
		}
	}
	if sig.SubtaskType == TypeGroup {
		sig = Chord(sig, S(TaskAccumulate).Kwarg("index", 0))
	}
	for _, cb := range req.Embed.Callbacks {
		sig = sig.Link(FromProtocol(cb))
	}
	for _, eb := range req.Embed.Errbacks {
		sig = sig.LinkError(FromProtocol(eb))
	}
	var err error
	sig, err = onResultStep(sig, func(last Signature) Signature {
		last = last.TaskID(req.ID)
		if req.GroupID != "" {
			last = last.Set("group_id", req.GroupID)
		}
		if req.GroupIndex != nil {
			last = last.Set("group_index", *req.GroupIndex)
		}
		if req.Embed.Chord != nil {
			last = last.Set("chord", FromProtocol(*req.Embed.Chord))
		}
		return last
	})
	if err != nil {
		return Signature{}, err
	}
	sig, err = onFirstStep(sig, func(first Signature) Signature {
		return withHeader(first, "replaced_task_nesting", req.ReplacedTaskNesting+1)
	})
	if err != nil {
		return Signature{}, err
	}
	if len(req.Embed.Chain) > 0 {
		steps := []Signature{sig}
		for _, t := range slices.Backward(req.Embed.Chain) {
			steps = append(steps, FromProtocol(t))
		}
		sig = Chain(steps...)
	}
	return sig, nil
}

// onResultStep returns sig with f applied to the step whose result is sig's result: a task
// itself, a chain's last step, a chord's body (through the chord's options, which go to its body).
func onResultStep(sig Signature, f func(Signature) Signature) (Signature, error) {
	switch sig.SubtaskType {
	case TypeChain:
		tasks, err := sig.Tasks()
		if err != nil {
			return Signature{}, err
		}
		last, err := onResultStep(tasks[len(tasks)-1], f)
		if err != nil {
			return Signature{}, err
		}
		tasks[len(tasks)-1] = last
		c := sig.clone()
		c.setTasks(tasks)
		return c, nil
	case TypeChord:
		body, err := sig.ChordBody()
		if err != nil {
			return Signature{}, err
		}
		body, err = onResultStep(body, f)
		if err != nil {
			return Signature{}, err
		}
		c := sig.clone()
		c.setKwarg("body", mustJSON(body))
		return c, nil
	}
	return f(sig), nil
}

// onFirstStep returns sig with f applied to the task published first when sig is a task or a chain
// starting with one; other signatures are returned as they are.
func onFirstStep(sig Signature, f func(Signature) Signature) (Signature, error) {
	switch sig.SubtaskType {
	case "":
		return f(sig), nil
	case TypeChain:
		tasks, err := sig.Tasks()
		if err != nil {
			return Signature{}, err
		}
		first, err := onFirstStep(tasks[0], f)
		if err != nil {
			return Signature{}, err
		}
		tasks[0] = first
		c := sig.clone()
		c.setTasks(tasks)
		return c, nil
	}
	return sig, nil
}

// withHeader returns sig with one more custom header (the headers option).
func withHeader(sig Signature, key string, v any) Signature {
	headers := map[string]any{}
	if raw, ok := sig.Options["headers"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &headers); err != nil {
			headers = map[string]any{}
		}
	}
	headers[key] = v
	return sig.Set("headers", headers)
}

// ChordAdder grows a running chord: one more part completes it (Celery's backend.add_to_chord;
// a *redisbackend.Backend is one, INCR of the chord's .t key).
type ChordAdder interface {
	AddToChord(ctx context.Context, gid string) error
}

// NotInChordError is AddToChord called from a task that is no chord header member: Python raises
// it as ValueError, with Celery 5.2's message.
type NotInChordError struct{}

func (*NotInChordError) Error() string { return "Current task is not member of any chord" }

// ExcType makes the error Python's ValueError.
func (*NotInChordError) ExcType() string { return "ValueError" }

// ExcModule is builtins.
func (*NotInChordError) ExcModule() string { return "builtins" }

// AddToChord adds sig to the chord the running task req is a header member of, as Celery 5.2's
// self.add_to_chord(sig) does: sig takes req's group, group index, chord body and root id, the
// chord counts one more part (the Sender's ChordSizer must be a [ChordAdder]: the Redis result
// backend; Celery supports no other), and sig is published as req's child. Its result then
// reaches the chord body with the other parts'. A req outside a chord is a [NotInChordError].
func (s *Sender) AddToChord(ctx context.Context, req *celery.Request, sig Signature) (Result, error) {
	if req.Embed.Chord == nil || req.GroupID == "" {
		return Result{}, &NotInChordError{}
	}
	adder, ok := s.sizer.(ChordAdder)
	if !ok {
		return Result{}, fmt.Errorf("canvas: add to chord %s: the result backend cannot grow a chord (Celery supports it with Redis only)", req.GroupID)
	}
	sig = sig.Set("group_id", req.GroupID).Set("chord", FromProtocol(*req.Embed.Chord))
	if req.GroupIndex != nil {
		sig = sig.Set("group_index", *req.GroupIndex)
	}
	outs, res, err := s.applier.Apply(sig, childOf(req))
	if err != nil {
		return Result{}, fmt.Errorf("canvas: add to chord %s: %w", req.GroupID, err)
	}
	if err := adder.AddToChord(ctx, req.GroupID); err != nil {
		return Result{}, fmt.Errorf("canvas: add to chord %s: %w", req.GroupID, err)
	}
	if err := s.Publish(ctx, outs); err != nil {
		return Result{}, fmt.Errorf("canvas: add to chord %s: %w", req.GroupID, err)
	}
	return res, nil
}

// TaskAccumulate is Celery's built-in celery.accumulate: the body Replace gives a group.
const TaskAccumulate = "celery.accumulate"

// RegisterBuiltins registers the built-in Celery tasks that canvases made by Go workers send:
// celery.accumulate (accumulate(*args, index=None): args[index], or all args when index is None).
func RegisterBuiltins(reg *celery.Registry) error {
	return celery.RegisterE(reg, TaskAccumulate, accumulate)
}

// accumulateArgs are celery.accumulate's arguments, accumulate(*args, **kwargs).
type accumulateArgs struct {
	Args  []json.RawMessage
	Index *int
}

// UnmarshalCelery takes every positional argument and the index keyword argument.
func (a *accumulateArgs) UnmarshalCelery(args []json.RawMessage, kwargs map[string]json.RawMessage) error {
	a.Args = args
	if raw, ok := kwargs["index"]; ok && !isNull(raw) {
		var i int
		if err := json.Unmarshal(raw, &i); err != nil {
			return fmt.Errorf("index: %w", err)
		}
		a.Index = &i
	}
	return nil
}

// indexError is Python's IndexError.
type indexError struct{ msg string }

func (e *indexError) Error() string     { return e.msg }
func (e *indexError) ExcType() string   { return "IndexError" }
func (e *indexError) ExcModule() string { return "builtins" }

func accumulate(_ context.Context, t *celery.Task[accumulateArgs]) (json.RawMessage, error) {
	if t.Args.Index == nil {
		return json.Marshal(orEmpty(t.Args.Args))
	}
	i := *t.Args.Index
	if i < 0 {
		i += len(t.Args.Args)
	}
	if i < 0 || i >= len(t.Args.Args) {
		return nil, &indexError{"tuple index out of range"}
	}
	return t.Args.Args[i], nil
}

func orEmpty(a []json.RawMessage) []json.RawMessage {
	if a == nil {
		return []json.RawMessage{}
	}
	return a
}
