package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/protocol"
)

// Canvas is the engine's copy of the root's Canvas seam (celery.Canvas, adapted by the root, which
// converts its FollowUp to this one with a type conversion: that compiles only while the two keep
// the same fields, so the copies cannot drift apart). It continues Celery canvases after a task
// has finished, as a Celery 5.2 worker does (celery/app/trace.py): link callbacks, the next chain
// step, errbacks and chord bookkeeping.
type Canvas interface {
	// Succeeded returns what msg's success with retval publishes: its link callbacks, then the
	// next chain step; and the `children` value of msg's stored result naming them (nil: none).
	Succeeded(msg *protocol.TaskMessage, retval json.RawMessage) ([]FollowUp, json.RawMessage, error)
	// Failed returns what msg's failure publishes (its errbacks) and the remaining chain
	// elements to mark FAILURE, as messages carrying their ID, GroupID, GroupIndex, RootID and,
	// for the last step of a chord header member, Embed.Chord (its chord part is then counted
	// with the same failure). exc is msg's stored FAILURE result (the exception's JSON), which
	// new-style errbacks receive as their exc argument (nil: unknown, they get None).
	Failed(msg *protocol.TaskMessage, exc json.RawMessage) ([]FollowUp, []*protocol.TaskMessage, error)
	// ChordPartReturn reports a finished chord header member (msg.Embed.Chord set, msg.GroupID
	// and msg.ID not empty) with its final state and stored result; when that completes the chord
	// it returns the body to publish, or the body's FAILURE to store and its errbacks. store, when
	// not nil, is the member's result meta, to be stored before the part is counted (the worker
	// then leaves storing it to the canvas, whose result backend must be the worker's). Its error
	// means the bookkeeping itself failed (the backend is unreachable) and may be retried (storing
	// and counting again is harmless); a problem building the follow-ups of a completed chord is
	// ChordDone.Err.
	ChordPartReturn(ctx context.Context, msg *protocol.TaskMessage, state string, result json.RawMessage, store *protocol.ResultMeta) (ChordDone, error)
}

// FollowUp is one message a finished task makes the worker publish.
type FollowUp struct {
	// Task and ID name the message, for logs.
	Task, ID string
	// Prepare, if set, runs right before publishing (it stores a chord's header size).
	Prepare func(ctx context.Context) error
	// Publishing is the routed, encoded message.
	Publishing broker.Publishing
}

// ChordDone is what completing a chord asks the worker to do.
type ChordDone struct {
	// FollowUps are published (the chord body, or the body's errbacks).
	FollowUps []FollowUp
	// BodyFailure, when set, is stored first: the body's FAILURE with the ChordError.
	BodyFailure *protocol.ResultMeta
	// Err is a problem building what the completed chord publishes (a bad body signature); the
	// part was counted, so the worker logs it and does not retry.
	Err error
}

// publishFollowUps publishes follow-ups in order. A follow-up that cannot be published is logged
// and retried with backoff (the task's own result is stored regardless); it is given up only on
// cold shutdown. It returns the ids published.
func (w *Engine) publishFollowUps(m *protocol.TaskMessage, fus []FollowUp) []string {
	var ids []string
	for _, f := range fus {
		backoff := 100 * time.Millisecond
		for attempt := 1; ; attempt++ {
			err := w.publishFollowUp(f)
			if err == nil {
				ids = append(ids, f.ID)
				break
			}
			if w.taskCtx != nil && w.taskCtx.Err() != nil {
				w.log.Error("canvas follow-up lost: cold shutdown while it could not be published",
					"task_id", m.ID, "follow_up", f.Task, "follow_up_id", f.ID, "error", err)
				break
			}
			if attempt == 1 || attempt%10 == 0 {
				w.log.Error("publishing a canvas follow-up failed, retrying", "task_id", m.ID,
					"follow_up", f.Task, "follow_up_id", f.ID, "attempt", attempt, "error", err)
			}
			time.Sleep(backoff)
			backoff = min(backoff*2, 5*time.Second)
		}
	}
	return ids
}

func (w *Engine) publishFollowUp(f FollowUp) error {
	if f.Prepare != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := f.Prepare(ctx)
		cancel()
		if err != nil {
			return fmt.Errorf("prepare %s[%s]: %w", f.Task, f.ID, err)
		}
	}
	if err := w.publish(f.Publishing); err != nil {
		return fmt.Errorf("publish %s[%s]: %w", f.Task, f.ID, err)
	}
	return nil
}

// canvasSucceeded publishes a successful task's callbacks and next chain step (before its result
// is stored, as Celery does) and returns the `children` to store with the result. Bad canvas data
// is logged with the task id, never panics.
func (w *Engine) canvasSucceeded(j *job, result json.RawMessage) json.RawMessage {
	m := j.msg
	if w.canvas == nil || (len(m.Embed.Callbacks) == 0 && len(m.Embed.Chain) == 0) {
		return nil
	}
	fus, children, err := w.canvas.Succeeded(m, result)
	if err != nil {
		w.log.Error(fmt.Sprintf("Task %s[%s]: its canvas follow-ups could not be built: %v", m.Task, m.ID, err), "task_id", m.ID, "error", err)
	}
	w.publishFollowUps(m, fus)
	return children
}

// canvasFailed publishes a failed task's errbacks and marks its remaining chain FAILURE (with
// their chord bookkeeping when the chain is a chord header member).
func (w *Engine) canvasFailed(j *job, meta protocol.ResultMeta) {
	m := j.msg
	if w.canvas == nil || (len(m.Embed.Errbacks) == 0 && len(m.Embed.Chain) == 0) {
		return
	}
	fus, rest, err := w.canvas.Failed(m, meta.Result)
	if err != nil {
		w.log.Error(fmt.Sprintf("Task %s[%s]: its errbacks or chain could not be read: %v", m.Task, m.ID, err), "task_id", m.ID, "error", err)
	}
	w.publishFollowUps(m, fus)
	for _, el := range rest {
		if w.backend != nil {
			mm := meta
			mm.TaskID, mm.GroupID, mm.ParentID, mm.Extended, mm.Children = el.ID, el.GroupID, "", nil, nil
			w.storeMeta(mm)
		}
		w.chordPart(el, protocol.StateFailure, meta.Result)
	}
}

// chordPart does the chord bookkeeping of a finished chord header member (after its result is
// stored) and, when it completes the chord, publishes the body or stores the body's failure.
func (w *Engine) chordPart(m *protocol.TaskMessage, state string, result json.RawMessage) {
	w.chordPartStoring(m, state, result, nil)
}

// isChordMember reports whether the worker counts m's chord part when it finishes.
func (w *Engine) isChordMember(m *protocol.TaskMessage) bool {
	return w.canvas != nil && m.Embed.Chord != nil && m.GroupID != "" && m.ID != ""
}

// chordPartStoring is chordPart that also stores the member's own result meta (when store is not
// nil) in the same round trip to the result backend.
func (w *Engine) chordPartStoring(m *protocol.TaskMessage, state string, result json.RawMessage, store *protocol.ResultMeta) {
	if w.canvas == nil || m.Embed.Chord == nil {
		return
	}
	if m.GroupID == "" || m.ID == "" {
		w.log.Error(fmt.Sprintf("Task %s[%s] is a chord header member without a group id: its chord part cannot be counted", m.Task, m.ID),
			"task_id", m.ID, "chord_body", m.Embed.Chord.Task)
		return
	}
	backoff := 100 * time.Millisecond
	var done ChordDone
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		d, err := w.canvas.ChordPartReturn(ctx, m, state, result, store)
		cancel()
		if err == nil {
			done = d
			break
		}
		var tmp interface{ Temporary() bool }
		if store != nil && errors.As(err, &tmp) && !tmp.Temporary() {
			// The meta itself was refused (too large, not encodable): store it alone, which logs
			// why, and count the part without it.
			w.storeMeta(*store)
			store = nil
			continue
		}
		if w.taskCtx != nil && w.taskCtx.Err() != nil {
			w.log.Error("chord part lost: cold shutdown while the result backend was unreachable", "task_id", m.ID, "group_id", m.GroupID, "error", err)
			return
		}
		if attempt == 1 || attempt%20 == 0 {
			w.log.Error("chord bookkeeping failed, retrying", "task_id", m.ID, "group_id", m.GroupID, "attempt", attempt, "error", err)
		}
		time.Sleep(backoff)
		backoff = min(backoff*2, 5*time.Second)
	}
	if done.Err != nil {
		w.log.Error(fmt.Sprintf("chord %s completed but what it publishes could not be built: %v", m.GroupID, done.Err),
			"task_id", m.ID, "group_id", m.GroupID, "error", done.Err)
	}
	if done.BodyFailure != nil && w.backend != nil {
		w.storeMeta(*done.BodyFailure)
	}
	w.publishFollowUps(m, done.FollowUps)
}
