// This file holds the Canvas seam a worker continues canvases through, and its adapter to the
// engine's own copy of these types (the engine imports nothing of this package).

package celery

import (
	"context"
	"encoding/json"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/internal/engine"
	"github.com/forumads/forumads/celery/protocol"
)

// Canvas continues Celery canvases after a task has finished, as a Celery 5.2 worker does
// (celery/app/trace.py): link callbacks, the next chain step, errbacks and chord bookkeeping. It
// lives outside this package (canvas.WorkerCanvas implements it) because the canvas package
// imports this one.
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

// canvasHook adapts a Canvas to the engine's: the same calls, the follow-ups converted (the
// engine calls it only for messages with callbacks, errbacks, a chain or a chord).
type canvasHook struct{ c Canvas }

func (h canvasHook) Succeeded(msg *protocol.TaskMessage, retval json.RawMessage) ([]engine.FollowUp, json.RawMessage, error) {
	fus, children, err := h.c.Succeeded(msg, retval)
	return engineFollowUps(fus), children, err
}

func (h canvasHook) Failed(msg *protocol.TaskMessage, exc json.RawMessage) ([]engine.FollowUp, []*protocol.TaskMessage, error) {
	fus, rest, err := h.c.Failed(msg, exc)
	return engineFollowUps(fus), rest, err
}

func (h canvasHook) ChordPartReturn(ctx context.Context, msg *protocol.TaskMessage, state string, result json.RawMessage, store *protocol.ResultMeta) (engine.ChordDone, error) {
	done, err := h.c.ChordPartReturn(ctx, msg, state, result, store)
	return engine.ChordDone{FollowUps: engineFollowUps(done.FollowUps), BodyFailure: done.BodyFailure, Err: done.Err}, err
}

func engineFollowUps(fus []FollowUp) []engine.FollowUp {
	if fus == nil {
		return nil
	}
	out := make([]engine.FollowUp, len(fus))
	for i, f := range fus {
		out[i] = engine.FollowUp(f)
	}
	return out
}
