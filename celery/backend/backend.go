// Package backend declares the seams between the Celery engine and where it keeps task state:
// results ([ResultBackend]), chord counters ([ChordStore]) and saved group results
// ([GroupStore]). Adapters implement them: package redisbackend for Redis (the wire format Python
// Celery reads), package memorybackend for one process (tests, examples). Package backendtest is
// the conformance suite every adapter must pass.
//
// The package imports only the standard library and package protocol, so that an adapter, the
// engine and the canvas can all depend on it without depending on each other.
package backend

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/forumads/forumads/celery/protocol"
)

// ErrAlreadySucceeded is the error a Store wraps when it did not write because a SUCCESS result
// is already stored for the task. Celery ignores such a write silently; callers usually do the
// same with errors.Is.
var ErrAlreadySucceeded = errors.New("backend: a SUCCESS result is already stored")

// ErrInvalidMeta is the error a Store wraps for a meta without a task id or a status.
var ErrInvalidMeta = errors.New("backend: invalid result meta")

// ErrGroupNotFound is the error RestoreGroup wraps for a group that was never saved, or whose
// saved result expired.
var ErrGroupNotFound = errors.New("backend: group result not saved")

// ResultBackend stores and reads task states the way Python Celery does. Implementations are safe
// for concurrent use.
//
// Errors that storing again cannot fix (a SUCCESS already stored, an invalid or unencodable meta)
// implement Temporary() bool returning false; the worker retries the others (a lost connection)
// with backoff.
type ResultBackend interface {
	// Store writes a task's state. A stored SUCCESS is never overwritten: the write is then
	// refused with an error wrapping ErrAlreadySucceeded, so a task that runs twice cannot
	// replace its first result. Any other state replaces the stored one. A ready state (SUCCESS,
	// FAILURE, REVOKED) without DateDone gets the current time. A meta without TaskID or Status
	// is refused with an error wrapping ErrInvalidMeta.
	Store(ctx context.Context, meta protocol.ResultMeta) error
	// Get reads a task's state; an unknown (or expired) id is a PENDING meta with TaskID set,
	// never an error, as Python reports an unknown task.
	Get(ctx context.Context, id string) (protocol.ResultMeta, error)
	// Wait blocks until the task is in a ready state (SUCCESS, FAILURE, REVOKED) and returns it;
	// a FAILURE or REVOKED is a meta, not an error. A state stored at any time after Wait is
	// called, or before, is seen. When ctx ends first, Wait returns the last state it saw and
	// ctx's error.
	Wait(ctx context.Context, id string) (protocol.ResultMeta, error)
}

// ChordSizer stores a chord's header size where the chord counter reads it, as a Celery 5.2
// client does right before it publishes the last header task.
type ChordSizer interface {
	// SetChordSize records that the chord of group gid completes after size header parts. An
	// empty gid or a negative size is an error.
	SetChordSize(ctx context.Context, gid string, size int) error
}

// ChordStore counts the finished header members of chords (Celery's on_chord_part_return) and
// tells exactly one caller that a chord is complete. Implementations are safe for concurrent use.
type ChordStore interface {
	ChordSizer
	// OnChordPartReturn counts part as a finished member of its chord. When part.Store is set, the
	// member's own result is stored first, as ResultBackend.Store stores it (a SUCCESS already
	// stored is kept and is not an error). Once the count reaches the chord's size (set by
	// SetChordSize), exactly one call — the one whose part made the count reach it, however many
	// parts finish concurrently — returns Complete with the header results in group_index order,
	// or the chord's failure in Err; the chord's counters are then removed. A part reported
	// again with the same task id, state and result (a redelivered member) is counted once.
	// Without a stored size nothing completes. The returned error is a storage or argument problem, never the
	// chord's failure.
	OnChordPartReturn(ctx context.Context, part ChordPart) (ChordOutcome, error)
}

// GroupStore keeps saved group results (Celery's GroupResult.save / GroupResult.restore).
type GroupStore interface {
	// SaveGroup saves the group gid with its members' task ids in order; saving again replaces
	// the members. An empty gid is an error.
	SaveGroup(ctx context.Context, gid string, members []string) error
	// RestoreGroup returns the member ids of a saved group in the order saved; a group never
	// saved (or expired) is an error wrapping ErrGroupNotFound.
	RestoreGroup(ctx context.Context, gid string) ([]string, error)
}

// ChordPart is one finished chord header member, as a worker reports it.
type ChordPart struct {
	// GroupID is the chord's group id (the header member's group header).
	GroupID string
	// TaskID is the header member's id.
	TaskID string
	// GroupIndex is the member's group_index header; nil sorts after every index.
	GroupIndex *int
	// State is the member's final state (SUCCESS, FAILURE, REVOKED, ...).
	State string
	// Result is the stored result: the return value, or an exception object for exception
	// states. nil is JSON null.
	Result json.RawMessage
	// Store, when set, is the member's own result meta, stored as ResultBackend.Store stores it
	// (a SUCCESS already there is kept) before the part is counted, in the same round trip where
	// the adapter can. A meta that cannot be encoded is an error and nothing is counted.
	Store *protocol.ResultMeta
}

// ChordOutcome is what OnChordPartReturn did.
type ChordOutcome struct {
	// Complete is true for exactly one call per chord: the one whose part made the count reach
	// the chord size. Only then must the caller apply the chord body (or, when Err is set, store
	// Err as the body's FAILURE and apply its errbacks).
	Complete bool
	// Results are the header results in group_index order (when Complete and Err is nil).
	Results []json.RawMessage
	// Err is the chord's failure when Complete: the first failed member in group order, or a
	// join error.
	Err *ChordError
}

// ChordError is the failure of a chord: a header member failed ("Dependency <tid> raised
// <repr>") or the results could not be joined. Celery stores it as the chord body's result with
// exc_type "ChordError" and exc_module "celery.exceptions".
type ChordError struct {
	// Message is the exception's single argument.
	Message string
	// TaskID is the failed header member ("" for a join error).
	TaskID string
}

// Error implements error.
func (e *ChordError) Error() string { return "ChordError: " + e.Message }

// Exception returns the error as the result of a FAILURE meta.
func (e *ChordError) Exception() protocol.ExceptionInfo {
	return protocol.ExceptionInfo{Type: "ChordError", Message: []any{e.Message}, Module: "celery.exceptions"}
}

// Backend is a complete result backend: results, chord counters and saved groups, as the worker
// and the canvas need them together. Every adapter of this module (redisbackend.Backend,
// memorybackend.Backend) is one; wiring picks one by the scheme of result_backend.
type Backend interface {
	ResultBackend
	ChordStore
	GroupStore
}

// DependencyError is the ChordError of a failed header member taskID whose stored result is
// result: "Dependency <taskID> raised <repr>", where repr is Python's repr of the exception
// (ValueError('boom')), as Celery words it.
func DependencyError(taskID string, result json.RawMessage) *ChordError {
	return &ChordError{TaskID: taskID, Message: "Dependency " + taskID + " raised " + exceptionRepr(result)}
}

// exceptionRepr is Python's repr of the exception stored as raw, e.g. ValueError('boom'); a value
// that is not an exception object is shown with protocol.Repr.
func exceptionRepr(raw json.RawMessage) string {
	var info protocol.ExceptionInfo
	if err := json.Unmarshal(raw, &info); err != nil || info.Type == "" {
		return protocol.Repr(raw)
	}
	args := make([]string, len(info.Message))
	for i, m := range info.Message {
		b, err := json.Marshal(m)
		if err != nil {
			b = []byte("null")
		}
		args[i] = protocol.Repr(b)
	}
	return info.Type + "(" + strings.Join(args, ", ") + ")"
}
