package results

import (
	"context"
	"fmt"
	"time"
)

// Cleanup is django-celery-results' DatabaseBackend.cleanup, which Celery's built-in task
// celery.backend_cleanup calls: it deletes the task results and the group results whose
// date_done is older than result_expires (Options.Expires), both in one transaction as the
// managers' delete_expired do, and returns how many rows of each went. With no Expires (results
// never expire) it deletes nothing.
func (b *Backend) Cleanup(ctx context.Context) (tasks, groups int64, err error) {
	if b.expires <= 0 {
		return 0, 0, nil
	}
	before := b.now().Add(-b.expires)
	tx, err := b.db.BeginTxx(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("results: cleanup: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	for _, d := range []struct {
		table string
		n     *int64
	}{{TaskTable, &tasks}, {GroupTable, &groups}} {
		res, err := tx.ExecContext(ctx, "DELETE FROM "+d.table+" WHERE date_done < $1", before)
		if err != nil {
			return 0, 0, fmt.Errorf("results: cleanup: %s: %w", d.table, err)
		}
		if *d.n, err = res.RowsAffected(); err != nil {
			return 0, 0, fmt.Errorf("results: cleanup: %s: %w", d.table, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, fmt.Errorf("results: cleanup: %w", err)
	}
	return tasks, groups, nil
}

// Expires is result_expires as the Backend uses it (0: results never expire).
func (b *Backend) Expires() time.Duration { return b.expires }
