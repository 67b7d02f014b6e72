// Package memorybackend is a result backend in this process's memory: task results, chord
// counters and saved groups ([backend.Backend]), for the engine's unit tests, for users' tests and
// for examples that should run without Redis.
//
// It is one process only: nothing is shared with other processes (a Python client, another
// worker) and everything is lost when the process ends. Within the process it keeps the
// guarantees package backend documents, as the Redis backend does: a stored SUCCESS is never
// overwritten, an unknown id is PENDING, exactly one chord part sees its chord complete, and
// results expire after Options.Expires. Values are kept JSON-encoded, as Redis keeps them, so
// what Get returns is what a Redis backend would return for the same Store. Wait blocks on a
// channel that every Store of the task closes: it never polls.
package memorybackend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/forumads/forumads/celery/backend"
	"github.com/forumads/forumads/celery/protocol"
)

// Options configures a Backend. The zero value keeps results forever.
type Options struct {
	// Expires is result_expires: how long a stored result, a chord's counters and a saved group
	// are kept. Zero or less keeps them forever.
	Expires time.Duration
	// Now is the clock for expiry and date_done (nil = time.Now).
	Now func() time.Time
}

// Backend is an in-memory backend.Backend. It is safe for concurrent use; the zero value is not
// usable, call New.
type Backend struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	results map[string]item          // task id -> encoded meta
	changed map[string]chan struct{} // task id -> closed at the task's next Store
	groups  map[string]item          // group id -> encoded member ids
	chords  map[string]*chord        // group id -> counters
	sizes   map[string]expiring[int] // group id -> chord size
}

// item is a stored value and when it expires (zero: never).
type item struct {
	val     []byte
	expires time.Time
}

// expiring is a value and when it expires (zero: never).
type expiring[T any] struct {
	v       T
	expires time.Time
}

// chord is one chord's counted parts, keyed by their encoded entry as Redis's sorted set is.
type chord struct {
	parts   map[string]chordEntry
	expires time.Time
}

// chordEntry is one counted part: its task, state, result and group index (nil sorts last).
type chordEntry struct {
	member string
	taskID string
	state  string
	result json.RawMessage
	index  *int
}

// New returns an empty Backend.
func New(opts Options) *Backend {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Backend{ttl: opts.Expires, now: now, results: map[string]item{}, changed: map[string]chan struct{}{},
		groups: map[string]item{}, chords: map[string]*chord{}, sizes: map[string]expiring[int]{}}
}

var _ backend.Backend = (*Backend)(nil)

// StoreError is the error Store returns for a meta it did not write. No error of this backend is
// temporary: storing the same meta again cannot succeed.
type StoreError struct {
	// TaskID is the meta's task id.
	TaskID string
	// Err is the cause: backend.ErrAlreadySucceeded, backend.ErrInvalidMeta or an encoding error.
	Err error
}

// Error implements error.
func (e *StoreError) Error() string {
	return fmt.Sprintf("memorybackend: store result of task %q: %v", e.TaskID, e.Err)
}

// Unwrap returns e.Err.
func (e *StoreError) Unwrap() error { return e.Err }

// Temporary is false: the worker must not retry.
func (e *StoreError) Temporary() bool { return false }

// expiry is when a value stored at now expires.
func (b *Backend) expiry(now time.Time) time.Time {
	if b.ttl <= 0 {
		return time.Time{}
	}
	return now.Add(b.ttl)
}

// live reports whether a value expiring at exp is still there at now.
func live(exp, now time.Time) bool { return exp.IsZero() || exp.After(now) }

// encode checks meta and returns its stored value, stamping date_done on a ready state.
func (b *Backend) encode(meta protocol.ResultMeta, now time.Time) ([]byte, error) {
	if meta.TaskID == "" {
		return nil, fmt.Errorf("%w: empty task id", backend.ErrInvalidMeta)
	}
	if meta.Status == "" {
		return nil, fmt.Errorf("%w: empty status", backend.ErrInvalidMeta)
	}
	if meta.DateDone == nil && protocol.IsReady(meta.Status) {
		t := now.UTC()
		meta.DateDone = &t
	}
	return meta.MarshalJSON()
}

// Store writes meta unless a SUCCESS is stored for its task, as backend.ResultBackend documents,
// and wakes the task's waiters. Errors are *StoreError.
func (b *Backend) Store(ctx context.Context, meta protocol.ResultMeta) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := b.now()
	val, err := b.encode(meta, now)
	if err != nil {
		return &StoreError{TaskID: meta.TaskID, Err: err}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.storeLocked(meta.TaskID, val, now)
}

// storeLocked writes an encoded meta; b.mu is held.
func (b *Backend) storeLocked(id string, val []byte, now time.Time) error {
	if cur, ok := b.results[id]; ok && live(cur.expires, now) && isSuccess(cur.val) {
		return &StoreError{TaskID: id, Err: backend.ErrAlreadySucceeded}
	}
	b.results[id] = item{val: val, expires: b.expiry(now)}
	if ch, ok := b.changed[id]; ok {
		close(ch)
		delete(b.changed, id)
	}
	return nil
}

// isSuccess reports whether an encoded meta has status SUCCESS.
func isSuccess(val []byte) bool {
	var m struct {
		Status string `json:"status"`
	}
	return json.Unmarshal(val, &m) == nil && m.Status == protocol.StateSuccess
}

// Get returns the stored meta of task id; an unknown or expired id is PENDING.
func (b *Backend) Get(ctx context.Context, id string) (protocol.ResultMeta, error) {
	if err := ctx.Err(); err != nil {
		return protocol.ResultMeta{}, err
	}
	b.mu.Lock()
	val, ok := b.getLocked(id)
	b.mu.Unlock()
	return decode(id, val, ok)
}

// getLocked returns the live stored value of id; b.mu is held.
func (b *Backend) getLocked(id string) ([]byte, bool) {
	cur, ok := b.results[id]
	if !ok {
		return nil, false
	}
	if !live(cur.expires, b.now()) {
		delete(b.results, id)
		return nil, false
	}
	return cur.val, true
}

// decode parses a stored value; none is PENDING.
func decode(id string, val []byte, ok bool) (protocol.ResultMeta, error) {
	if !ok {
		return protocol.ResultMeta{Status: protocol.StatePending, TaskID: id}, nil
	}
	var meta protocol.ResultMeta
	if err := meta.UnmarshalJSON(val); err != nil {
		return protocol.ResultMeta{}, fmt.Errorf("memorybackend: decode result of %s: %w", id, err)
	}
	return meta, nil
}

// Wait returns the meta of task id once it is ready (SUCCESS, FAILURE, REVOKED), as
// backend.ResultBackend documents. It wakes at each Store of the task, never polls.
func (b *Backend) Wait(ctx context.Context, id string) (protocol.ResultMeta, error) {
	last := protocol.ResultMeta{Status: protocol.StatePending, TaskID: id}
	for {
		b.mu.Lock()
		val, ok := b.getLocked(id)
		ch, waiting := b.changed[id]
		if !waiting {
			ch = make(chan struct{})
			b.changed[id] = ch
		}
		b.mu.Unlock()
		meta, err := decode(id, val, ok)
		if err != nil {
			return last, err
		}
		if protocol.IsReady(meta.Status) {
			return meta, nil
		}
		last = meta
		select {
		case <-ch:
		case <-ctx.Done():
			return last, ctx.Err()
		}
	}
}

// Forget deletes the stored result of task id.
func (b *Backend) Forget(_ context.Context, id string) error {
	b.mu.Lock()
	delete(b.results, id)
	b.mu.Unlock()
	return nil
}

// SaveGroup saves the group's member ids, as backend.GroupStore documents.
func (b *Backend) SaveGroup(ctx context.Context, gid string, members []string) error {
	if gid == "" {
		return errors.New("memorybackend: save group: empty group id")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	val, err := json.Marshal(members)
	if err != nil {
		return fmt.Errorf("memorybackend: save group %s: %w", gid, err)
	}
	b.mu.Lock()
	b.groups[gid] = item{val: val, expires: b.expiry(b.now())}
	b.mu.Unlock()
	return nil
}

// RestoreGroup returns a saved group's member ids, as backend.GroupStore documents.
func (b *Backend) RestoreGroup(ctx context.Context, gid string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	g, ok := b.groups[gid]
	if ok && !live(g.expires, b.now()) {
		delete(b.groups, gid)
		ok = false
	}
	b.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %s", backend.ErrGroupNotFound, gid)
	}
	var ids []string
	if err := json.Unmarshal(g.val, &ids); err != nil {
		return nil, fmt.Errorf("memorybackend: restore group %s: %w", gid, err)
	}
	return ids, nil
}

// SetChordSize records the chord's header size, as backend.ChordSizer documents.
func (b *Backend) SetChordSize(ctx context.Context, gid string, size int) error {
	if gid == "" {
		return errors.New("memorybackend: set chord size: empty group id")
	}
	if size < 0 {
		return fmt.Errorf("memorybackend: set chord size of group %s: negative size %d", gid, size)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	b.sizes[gid] = expiring[int]{v: size, expires: b.expiry(b.now())}
	b.mu.Unlock()
	return nil
}

// OnChordPartReturn counts a finished chord header member, as backend.ChordStore documents. The
// whole call holds the backend's lock, so exactly one part of a chord sees it complete.
func (b *Backend) OnChordPartReturn(ctx context.Context, part backend.ChordPart) (backend.ChordOutcome, error) {
	if part.GroupID == "" || part.TaskID == "" {
		return backend.ChordOutcome{}, fmt.Errorf("memorybackend: chord part: group id %q and task id %q must both be set", part.GroupID, part.TaskID)
	}
	if part.State == "" {
		return backend.ChordOutcome{}, fmt.Errorf("memorybackend: chord part %s: empty state", part.TaskID)
	}
	if err := ctx.Err(); err != nil {
		return backend.ChordOutcome{}, err
	}
	result := part.Result
	if len(result) == 0 {
		result = json.RawMessage("null")
	}
	member, err := protocol.PyJSON([]any{1, part.TaskID, part.State, result})
	if err != nil {
		return backend.ChordOutcome{}, fmt.Errorf("memorybackend: chord part %s: encode result: %w", part.TaskID, err)
	}
	now := b.now()
	var storeVal []byte
	if part.Store != nil {
		if storeVal, err = b.encode(*part.Store, now); err != nil {
			return backend.ChordOutcome{}, &StoreError{TaskID: part.Store.TaskID, Err: err}
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if storeVal != nil {
		if err := b.storeLocked(part.Store.TaskID, storeVal, now); err != nil && !errors.Is(err, backend.ErrAlreadySucceeded) {
			return backend.ChordOutcome{}, err
		}
	}
	c, ok := b.chords[part.GroupID]
	if !ok || !live(c.expires, now) {
		c = &chord{parts: map[string]chordEntry{}}
		b.chords[part.GroupID] = c
	}
	c.parts[string(member)] = chordEntry{member: string(member), taskID: part.TaskID, state: part.State,
		result: slices.Clone(result), index: part.GroupIndex}
	c.expires = b.expiry(now)
	size, ok := b.sizes[part.GroupID]
	if !ok || !live(size.expires, now) || len(c.parts) != size.v {
		return backend.ChordOutcome{}, nil
	}
	out := backend.ChordOutcome{Complete: true}
	if g, ok := b.groups[part.GroupID]; ok && live(g.expires, now) {
		out.Results, out.Err = b.joinSavedLocked(g.val)
	} else {
		out.Results, out.Err = joinParts(c)
	}
	delete(b.chords, part.GroupID)
	delete(b.sizes, part.GroupID)
	return out, nil
}

// joinParts returns the parts' results in group_index order (ties by entry, as Redis orders a
// sorted set), stopping at the first failed member.
func joinParts(c *chord) ([]json.RawMessage, *backend.ChordError) {
	entries := make([]chordEntry, 0, len(c.parts))
	for _, e := range c.parts {
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(x, y chordEntry) int {
		switch {
		case x.index != nil && y.index == nil:
			return -1
		case x.index == nil && y.index != nil:
			return 1
		case x.index != nil && *x.index != *y.index:
			return *x.index - *y.index
		}
		return strings.Compare(x.member, y.member)
	})
	results := make([]json.RawMessage, 0, len(entries))
	for _, e := range entries {
		if e.state == protocol.StateFailure || e.state == protocol.StateRevoked {
			return nil, backend.DependencyError(e.taskID, e.result)
		}
		results = append(results, e.result)
	}
	return results, nil
}

// joinSavedLocked reads the results of a saved group's members in order (Celery's join_native
// after GroupResult.restore); b.mu is held.
func (b *Backend) joinSavedLocked(saved []byte) ([]json.RawMessage, *backend.ChordError) {
	var ids []string
	if err := json.Unmarshal(saved, &ids); err != nil {
		return nil, &backend.ChordError{Message: "Join error: " + err.Error()}
	}
	results := make([]json.RawMessage, 0, len(ids))
	for _, id := range ids {
		val, ok := b.getLocked(id)
		meta, err := decode(id, val, ok)
		if err != nil {
			return nil, &backend.ChordError{Message: "Join error: " + err.Error()}
		}
		if meta.Status == protocol.StateFailure || meta.Status == protocol.StateRevoked {
			return nil, backend.DependencyError(id, meta.Result)
		}
		if meta.Status != protocol.StateSuccess {
			return nil, &backend.ChordError{Message: fmt.Sprintf("Join error: member %s is %s", id, meta.Status)}
		}
		results = append(results, meta.Result)
	}
	return results, nil
}
