package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/forumads/forumads/celery/canvashook"
	"github.com/forumads/forumads/celery/protocol"
)

// publishFollowUps publishes follow-ups in order. A follow-up that cannot be published is logged
// and retried with backoff (the task's own result is stored regardless); it is given up only on
// cold shutdown. It returns the ids published.
func (w *Engine) publishFollowUps(m *protocol.TaskMessage, fus []canvashook.FollowUp) []string {
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

func (w *Engine) publishFollowUp(f canvashook.FollowUp) error {
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
	var done canvashook.ChordDone
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
