package results

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/forumads/forumads/celery/backend"
)

// SaveGroup saves group gid with its members, as DatabaseBackend._save_group does: a _groupresult
// row whose result is GroupResult.as_tuple() JSON-encoded. Saving again replaces the members.
func (b *Backend) SaveGroup(ctx context.Context, gid string, members []string) error {
	if gid == "" {
		return errors.New("results: save group: empty group id")
	}
	for i, id := range members {
		if id == "" {
			return fmt.Errorf("results: save group %s: member %d has an empty id", gid, i)
		}
	}
	text, err := encodeContent(groupTuple(gid, members))
	if err != nil {
		return fmt.Errorf("results: save group %s: %w", gid, err)
	}
	now := b.now().UTC()
	_, err = b.db.ExecContext(ctx, `INSERT INTO `+GroupTable+` AS g
		(group_id, result, content_type, content_encoding, date_created, date_done)
		VALUES ($1, $2, $3, $4, $5, $5)
		ON CONFLICT (group_id) DO UPDATE SET result = EXCLUDED.result, content_type = EXCLUDED.content_type,
		 content_encoding = EXCLUDED.content_encoding, date_done = EXCLUDED.date_done`,
		gid, text, ContentType, ContentEncoding, now)
	if err != nil {
		return fmt.Errorf("results: save group %s: %w", gid, err)
	}
	return nil
}

// RestoreGroup returns the members of saved group gid in the order saved (DatabaseBackend.
// _restore_group); a group without a row, or whose row has no result, wraps
// backend.ErrGroupNotFound.
func (b *Backend) RestoreGroup(ctx context.Context, gid string) ([]string, error) {
	ids, err := b.restoreGroup(ctx, b.db, gid)
	if err != nil {
		return nil, err
	}
	if ids == nil {
		return nil, fmt.Errorf("results: restore group %s: %w", gid, backend.ErrGroupNotFound)
	}
	return ids, nil
}

// restoreGroup is RestoreGroup on q; nil ids (and no error) when the group is not saved.
func (b *Backend) restoreGroup(ctx context.Context, q querier, gid string) ([]string, error) {
	var r struct {
		Result          *string `db:"result"`
		ContentType     string  `db:"content_type"`
		ContentEncoding string  `db:"content_encoding"`
	}
	err := q.QueryRowxContext(ctx, `SELECT result, content_type, content_encoding FROM `+GroupTable+
		` WHERE group_id = $1`, gid).StructScan(&r)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("results: restore group %s: %w", gid, err)
	}
	raw, err := decodeContent(r.ContentType, r.ContentEncoding, r.Result)
	if err != nil {
		return nil, fmt.Errorf("results: restore group %s: %w", gid, err)
	}
	if raw == nil || string(raw) == "null" {
		return nil, nil
	}
	ids, err := decodeGroupTuple(raw)
	if err != nil {
		return nil, fmt.Errorf("results: restore group %s: %w", gid, err)
	}
	if ids == nil {
		ids = []string{}
	}
	return ids, nil
}
