package canvas

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend"
	"github.com/forumads/forumads/celery/protocol"
)

// WorkerCanvas is the celery.Canvas a Go worker uses to continue canvases: it builds follow-ups
// with the Sender's Applier and routing and does chord bookkeeping in a backend.ChordStore.
type WorkerCanvas struct {
	sender *Sender
	chords backend.ChordStore
}

// NewWorkerCanvas returns a celery.Canvas publishing with s's routing and counting chord parts in
// chords (which must also be s's ChordSizer for chords inside follow-ups, and the worker's result
// backend: the worker leaves storing a chord header member's result to the canvas, which stores it
// with the part, in one round trip where the store can). A *redisbackend.Backend or a
// *memorybackend.Backend is all three.
func NewWorkerCanvas(s *Sender, chords backend.ChordStore) (*WorkerCanvas, error) {
	if s == nil || chords == nil {
		return nil, errors.New("canvas: worker canvas needs a sender and a chord store")
	}
	return &WorkerCanvas{sender: s, chords: chords}, nil
}

var _ celery.Canvas = (*WorkerCanvas)(nil)

func (wc *WorkerCanvas) followUps(outs []Outgoing) ([]celery.FollowUp, error) {
	now := time.Now().UTC()
	fus := make([]celery.FollowUp, 0, len(outs))
	for _, o := range outs {
		pub, err := wc.sender.Envelope(o, now)
		if err != nil {
			return fus, err
		}
		f := celery.FollowUp{Task: o.Msg.Task, ID: o.Msg.ID, Publishing: pub}
		if cs := o.ChordSize; cs != nil {
			f.Prepare = func(ctx context.Context) error { return wc.chords.SetChordSize(ctx, cs.GroupID, cs.Size) }
		}
		fus = append(fus, f)
	}
	return fus, nil
}

// Succeeded returns msg's link callbacks then its next chain step, and the `children` they make
// (Celery applies them before storing the result, so they are the task's request.children).
func (wc *WorkerCanvas) Succeeded(msg *protocol.TaskMessage, retval json.RawMessage) ([]celery.FollowUp, json.RawMessage, error) {
	a := wc.sender.Applier()
	var errs []error
	cbs, cbResults, err := a.callbacks(msg, retval)
	if err != nil {
		errs = append(errs, err)
	}
	next, nextResults, err := a.nextChainStep(msg, retval)
	if err != nil {
		errs = append(errs, err)
	}
	fus, err := wc.followUps(append(cbs, next...))
	if err != nil {
		errs = append(errs, err)
	}
	var children json.RawMessage
	if results := append(cbResults, nextResults...); len(results) > 0 {
		children = Children(childrenOf(results)...)
	}
	return fus, children, errors.Join(errs...)
}

// childrenOf returns what a parent's trail records for each applied result: the first step of
// a chain (the message actually sent from the parent), a group as a group.
func childrenOf(results []Result) []Result {
	out := make([]Result, len(results))
	for i, r := range results {
		for r.Parent != nil {
			r = *r.Parent
		}
		out[i] = r
	}
	return out
}

// Failed returns msg's errbacks and its remaining chain elements (ChainFailures) as messages
// with their ids, group headers and chord body. exc, msg's FAILURE result, is what new-style
// errbacks get as their exc argument, as Celery 5.2's _call_task_errbacks passes the exception.
func (wc *WorkerCanvas) Failed(msg *protocol.TaskMessage, exc json.RawMessage) ([]celery.FollowUp, []*protocol.TaskMessage, error) {
	var errs []error
	ebs, err := wc.sender.Applier().ErrbacksWith(msg, msg.ID, exc, false)
	if err != nil {
		errs = append(errs, err)
	}
	fus, err := wc.followUps(ebs)
	if err != nil {
		errs = append(errs, err)
	}
	cf, err := ChainFailures(msg)
	if err != nil {
		errs = append(errs, err)
	}
	rest := make([]*protocol.TaskMessage, 0, len(cf))
	for _, f := range cf {
		rest = append(rest, &protocol.TaskMessage{ID: f.TaskID, GroupID: f.GroupID, GroupIndex: f.GroupIndex,
			RootID: rootOf(msg), Embed: protocol.Embed{Chord: f.Chord}})
	}
	return fus, rest, errors.Join(errs...)
}

// ChordPartReturn counts msg as a finished header member of its chord; when that completes the
// chord it returns the body, or the body's ChordError FAILURE and its errbacks.
func (wc *WorkerCanvas) ChordPartReturn(ctx context.Context, msg *protocol.TaskMessage, state string, result json.RawMessage, store *protocol.ResultMeta) (celery.ChordDone, error) {
	body := msg.Embed.Chord
	if body == nil {
		return celery.ChordDone{}, nil
	}
	out, err := wc.chords.OnChordPartReturn(ctx, backend.ChordPart{GroupID: msg.GroupID, TaskID: msg.ID,
		GroupIndex: msg.GroupIndex, State: state, Result: result, Store: store})
	if err != nil || !out.Complete {
		return celery.ChordDone{}, err
	}
	done := wc.completed(msg, *body, out)
	return done, nil
}

// completed builds what a completed chord publishes; problems go to ChordDone.Err.
func (wc *WorkerCanvas) completed(msg *protocol.TaskMessage, body protocol.Signature, out backend.ChordOutcome) celery.ChordDone {
	a := wc.sender.Applier()
	var done celery.ChordDone
	if out.Err == nil {
		outs, err := a.ChordBody(body, out.Results, msg)
		if err != nil {
			done.Err = err
			return done
		}
		done.FollowUps, done.Err = wc.followUps(outs)
		return done
	}
	sig := FromProtocol(body)
	bodyID, err := sig.stringOption("task_id")
	if err != nil || bodyID == "" {
		done.Err = fmt.Errorf("canvas: chord %s failed (%s) but its body %s has no task_id to store it under: %v", msg.GroupID, out.Err.Message, body.Task, err)
		return done
	}
	now := time.Now().UTC()
	tb := out.Err.Error() + "\n"
	done.BodyFailure = &protocol.ResultMeta{TaskID: bodyID, Status: protocol.StateFailure,
		Result: protocol.ExceptionResult(out.Err.Exception()), Traceback: &tb, DateDone: &now}
	ebs, err := sig.signatureList("link_error")
	if err != nil {
		done.Err = fmt.Errorf("canvas: chord %s body errbacks: %w", msg.GroupID, err)
		return done
	}
	if len(ebs) == 0 {
		return done
	}
	bodyMsg := &protocol.TaskMessage{ID: bodyID, RootID: rootOf(msg), Embed: protocol.Embed{Errbacks: ebs}}
	outs, err := a.ErrbacksWith(bodyMsg, bodyID, done.BodyFailure.Result, false)
	if err != nil {
		done.Err = err
		return done
	}
	done.FollowUps, done.Err = wc.followUps(outs)
	return done
}
