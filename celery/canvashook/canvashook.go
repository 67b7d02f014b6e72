// Package canvashook is the seam a Go worker continues Celery canvases through: the Canvas it
// calls after a task has finished and what that returns (FollowUp, ChordDone). The celery package
// re-exports them (celery.Canvas, celery.FollowUp, celery.ChordDone) and package canvas implements
// Canvas (canvas.WorkerCanvas); they live here, in a package that imports neither, so that the
// worker engine (celery/internal/engine, which may not import the celery package) calls the same
// types the user's Canvas returns.
package canvashook

import (
	"context"
	"encoding/json"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/protocol"
)

// Canvas continues Celery canvases after a task has finished, as a Celery 5.2 worker does
// (celery/app/trace.py): link callbacks, the next chain step, errbacks and chord bookkeeping. The
// worker calls it only for messages with callbacks, errbacks, a chain or a chord.
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
