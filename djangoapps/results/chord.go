package results

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/forumads/forumads/celery/backend"
	"github.com/forumads/forumads/celery/protocol"
)

// SetChordSize creates the chord counter of group gid for size header parts (replacing one
// left from an earlier attempt): count = size, sub_tasks = size null slots that the parts fill
// (see the package doc). It implements backend.ChordSizer.
func (b *Backend) SetChordSize(ctx context.Context, gid string, size int) error {
	if gid == "" {
		return errors.New("results: set chord size: empty group id")
	}
	if size < 0 {
		return fmt.Errorf("results: set chord size of group %s: negative size %d", gid, size)
	}
	sub, err := encodeSubTasks(make([]string, size))
	if err != nil {
		return fmt.Errorf("results: set chord size of group %s: %w", gid, err)
	}
	_, err = b.db.ExecContext(ctx, `INSERT INTO `+ChordTable+` (group_id, sub_tasks, count) VALUES ($1, $2, $3)
		ON CONFLICT (group_id) DO UPDATE SET sub_tasks = EXCLUDED.sub_tasks, count = EXCLUDED.count`, gid, sub, size)
	if err != nil {
		return fmt.Errorf("results: set chord size of group %s: %w", gid, err)
	}
	return nil
}

// OnChordPartReturn counts a finished header member, as DatabaseBackend.on_chord_part_return
// does, in one transaction holding the counter row (SELECT … FOR UPDATE); see
// backend.ChordStore and the package doc. The member's result is stored first (part.Store; or,
// when the counter exists and the member has no row yet, its state and result). Without a counter
// row nothing completes.
func (b *Backend) OnChordPartReturn(ctx context.Context, part backend.ChordPart) (backend.ChordOutcome, error) {
	if part.GroupID == "" || part.TaskID == "" {
		return backend.ChordOutcome{}, fmt.Errorf("results: chord part: group id %q and task id %q must both be set", part.GroupID, part.TaskID)
	}
	if part.State == "" {
		return backend.ChordOutcome{}, fmt.Errorf("results: chord part %s: empty state", part.TaskID)
	}
	if m := part.Store; m != nil {
		if m.TaskID == "" || m.Status == "" {
			return backend.ChordOutcome{}, &StoreError{TaskID: m.TaskID, Err: fmt.Errorf("%w: task id %q, status %q", backend.ErrInvalidMeta, m.TaskID, m.Status)}
		}
		if _, err := encodeRow(*m, b.now()); err != nil {
			return backend.ChordOutcome{}, &StoreError{TaskID: m.TaskID, Err: fmt.Errorf("%w: %v", backend.ErrInvalidMeta, err)}
		}
	}
	tx, err := b.db.BeginTxx(ctx, nil)
	if err != nil {
		return backend.ChordOutcome{}, fmt.Errorf("results: chord part %s: %w", part.TaskID, err)
	}
	defer func() { _ = tx.Rollback() }()
	out, err := b.countPart(ctx, tx, part)
	if err != nil {
		return backend.ChordOutcome{}, fmt.Errorf("results: chord part %s of group %s: %w", part.TaskID, part.GroupID, err)
	}
	if err := tx.Commit(); err != nil {
		return backend.ChordOutcome{}, fmt.Errorf("results: chord part %s of group %s: commit: %w", part.TaskID, part.GroupID, err)
	}
	return out, nil
}

func (b *Backend) countPart(ctx context.Context, tx *sqlx.Tx, part backend.ChordPart) (backend.ChordOutcome, error) {
	var c struct {
		SubTasks string `db:"sub_tasks"`
		Count    int    `db:"count"`
	}
	err := tx.QueryRowxContext(ctx, `SELECT sub_tasks, count FROM `+ChordTable+` WHERE group_id = $1 FOR UPDATE`,
		part.GroupID).StructScan(&c)
	found := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return backend.ChordOutcome{}, err
	}
	if err := b.storePart(ctx, tx, part, found); err != nil {
		return backend.ChordOutcome{}, err
	}
	if !found {
		return backend.ChordOutcome{}, nil // Python logs "Can't find ChordCounter for Group"
	}
	ids, err := decodeSubTasks(c.SubTasks)
	if err != nil {
		return backend.ChordOutcome{}, err
	}
	if goCounter(ids) {
		if i := indexOf(ids, part.TaskID); i >= 0 {
			return backend.ChordOutcome{}, nil // a redelivered part: counted already
		}
		ids[slot(ids, part.GroupIndex)] = part.TaskID
		c.Count = emptySlots(ids)
	} else {
		c.Count--
	}
	if c.Count > 0 {
		sub, err := encodeSubTasks(ids)
		if err != nil {
			return backend.ChordOutcome{}, err
		}
		_, err = tx.ExecContext(ctx, `UPDATE `+ChordTable+` SET sub_tasks = $2, count = $3 WHERE group_id = $1`,
			part.GroupID, sub, c.Count)
		return backend.ChordOutcome{}, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+ChordTable+` WHERE group_id = $1`, part.GroupID); err != nil {
		return backend.ChordOutcome{}, err
	}
	saved, err := b.restoreGroup(ctx, tx, part.GroupID)
	if err != nil {
		return backend.ChordOutcome{}, err
	}
	if saved != nil {
		ids = saved
	}
	return b.join(ctx, tx, compact(ids))
}

// storePart stores the part's result: part.Store always (a SUCCESS already there is kept), else,
// when the chord's counter exists, the part's state and result unless the member has a row.
func (b *Backend) storePart(ctx context.Context, tx *sqlx.Tx, part backend.ChordPart, counted bool) error {
	if part.Store != nil {
		err := b.store(ctx, tx, *part.Store)
		if err != nil && !errors.Is(err, backend.ErrAlreadySucceeded) {
			return err
		}
		return nil
	}
	if !counted {
		return nil
	}
	r, err := encodeRow(protocol.ResultMeta{TaskID: part.TaskID, Status: part.State, Result: part.Result}, b.now())
	if err != nil {
		return fmt.Errorf("%w: %v", backend.ErrInvalidMeta, err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO `+TaskTable+` (task_id, status, result, meta, content_type,
		content_encoding, date_created, date_done) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
		ON CONFLICT (task_id) DO NOTHING`,
		r.TaskID, r.Status, r.Result, r.Meta, r.ContentType, r.ContentEncoding, r.DateDone.Time)
	return err
}

// join reads the header results of ids, in that order (ResultSet.join): the first member in
// FAILURE or REVOKED fails the chord, as does a member without a ready result.
func (b *Backend) join(ctx context.Context, tx *sqlx.Tx, ids []string) (backend.ChordOutcome, error) {
	var rows []row
	err := tx.SelectContext(ctx, &rows, `SELECT task_id, status, result, traceback, meta, content_type,
		content_encoding, task_name, task_args, task_kwargs, worker, periodic_task_name, date_done, date_created
		FROM `+TaskTable+` WHERE task_id = ANY($1)`, pq.Array(ids))
	if err != nil {
		return backend.ChordOutcome{}, err
	}
	byID := make(map[string]row, len(rows))
	for _, r := range rows {
		byID[r.TaskID] = r
	}
	out := backend.ChordOutcome{Complete: true, Results: make([]json.RawMessage, 0, len(ids))}
	for _, id := range ids {
		r, ok := byID[id]
		if !ok || !protocol.IsReady(r.Status) {
			status := protocol.StatePending
			if ok {
				status = r.Status
			}
			out.Results = nil
			out.Err = &backend.ChordError{TaskID: id, Message: fmt.Sprintf("Dependency %s is not ready (%s)", id, status)}
			return out, nil
		}
		result, err := decodeContent(r.ContentType, r.ContentEncoding, r.Result)
		if err != nil {
			out.Results = nil
			out.Err = &backend.ChordError{Message: fmt.Sprintf("Cannot read the result of %s: %v", id, err)}
			return out, nil
		}
		if result == nil {
			result = json.RawMessage("null")
		}
		if r.Status != protocol.StateSuccess {
			out.Results = nil
			out.Err = backend.DependencyError(id, result)
			return out, nil
		}
		out.Results = append(out.Results, result)
	}
	return out, nil
}

// goCounter reports whether sub_tasks has unfilled slots: a counter SetChordSize made. A Python
// client's apply_chord lists every header member from the start.
func goCounter(ids []string) bool { return emptySlots(ids) > 0 }

func emptySlots(ids []string) int {
	n := 0
	for _, id := range ids {
		if id == "" {
			n++
		}
	}
	return n
}

func indexOf(ids []string, id string) int {
	for i, x := range ids {
		if x == id {
			return i
		}
	}
	return -1
}

// slot is where a part with group index gi goes: its own slot when free, else (no index, an index
// out of range, or a taken slot) the last free one. ids has a free slot.
func slot(ids []string, gi *int) int {
	if gi != nil && *gi >= 0 && *gi < len(ids) && ids[*gi] == "" {
		return *gi
	}
	for i := len(ids) - 1; i >= 0; i-- {
		if ids[i] == "" {
			return i
		}
	}
	return -1
}

// compact drops empty ids.
func compact(ids []string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id != "" {
			out = append(out, id)
		}
	}
	return out
}
