package beatdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/forumads/forumads/celery/beat"
)

// Options configure a DB.
type Options struct {
	// Logger gets the rows that are skipped (ERROR, with the row id) and the one-off rows disabled.
	Logger *slog.Logger
	// Known, if set, says whether a task name may be sent; rows naming another task are skipped
	// (beat_known_tasks). Nil accepts every well-formed name.
	Known func(task string) bool
}

// DB is django-celery-beat's schedule in PostgreSQL, for the Go beat: a beat.Source and the
// beat.Store of its entries (see the package documentation). It is safe for concurrent use.
type DB struct {
	db      *sqlx.DB
	o       Options
	queries atomic.Int64

	mu      sync.Mutex
	rows    map[string]*Row // by PeriodicTask.name, as of the last Entries
	seen    time.Time       // last_update as of the last Entries
	skipped []error
}

var (
	_ beat.Source = (*DB)(nil)
	_ beat.Store  = (*DB)(nil)
)

// New returns the schedule kept in db's django-celery-beat tables (found through the connection's
// search_path).
func New(db *sqlx.DB, o Options) *DB {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &DB{db: db, o: o, rows: map[string]*Row{}}
}

// Queries is how many SQL statements the DB has sent: the database load the benchmark compares.
func (d *DB) Queries() int64 { return d.queries.Load() }

// Skipped returns the errors of the rows the last Entries left out, one *RowError each.
func (d *DB) Skipped() []error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]error(nil), d.skipped...)
}

// Ping checks that the database answers (for /healthz).
func (d *DB) Ping(ctx context.Context) error {
	d.queries.Add(1)
	return d.db.PingContext(ctx)
}

const selectRows = `
SELECT p.id, p.name, p.task, p.args, p.kwargs, p.queue, p.exchange, p.routing_key, p.priority, p.headers,
       p.expires, p.expire_seconds, p.one_off, p.start_time, p.last_run_at, p.total_run_count, p.date_changed,
       p.interval_id, i.every AS interval_every, i.period AS interval_period,
       p.crontab_id, c.minute, c.hour, c.day_of_week, c.day_of_month, c.month_of_year, c.timezone,
       p.solar_id, s.event AS solar_event, s.latitude::float8 AS solar_latitude, s.longitude::float8 AS solar_longitude,
       p.clocked_id, k.clocked_time
  FROM django_celery_beat_periodictask p
  LEFT JOIN django_celery_beat_intervalschedule i ON i.id = p.interval_id
  LEFT JOIN django_celery_beat_crontabschedule c ON c.id = p.crontab_id
  LEFT JOIN django_celery_beat_solarschedule s ON s.id = p.solar_id
  LEFT JOIN django_celery_beat_clockedschedule k ON k.id = p.clocked_id
 WHERE p.enabled
 ORDER BY p.id`

// lastChange is PeriodicTasks.last_change(): NULL when no row was ever saved.
const lastChange = `SELECT max(last_update) FROM django_celery_beat_periodictasks WHERE ident = 1`

// Entries reads the enabled rows (one query, plus one for the change marker) and returns an entry
// for each usable one; the others are logged with their id and left out. One-off rows that have
// already run (total_run_count > 0) are disabled instead, as ModelEntry.is_due does.
func (d *DB) Entries(ctx context.Context) ([]*beat.Entry, error) {
	var mark sql.NullTime
	d.queries.Add(1)
	if err := d.db.GetContext(ctx, &mark, lastChange); err != nil {
		return nil, fmt.Errorf("django_celery_beat_periodictasks: %w", err)
	}
	var rows []Row
	d.queries.Add(1)
	if err := d.db.SelectContext(ctx, &rows, selectRows); err != nil {
		return nil, fmt.Errorf("django_celery_beat_periodictask: %w", err)
	}
	var (
		out     []*beat.Entry
		skipped []error
		spent   []int64
		byName  = make(map[string]*Row, len(rows))
	)
	for i := range rows {
		r := &rows[i]
		if r.OneOff && r.TotalRunCount > 0 {
			spent = append(spent, r.ID)
			continue
		}
		e, err := ParseRow(*r, d.o.Known)
		if err != nil {
			d.o.Logger.Error("beat: "+err.Error()+"; row skipped", "row_id", r.ID, "entry", r.Name)
			skipped = append(skipped, err)
			continue
		}
		byName[r.Name] = r
		out = append(out, e)
	}
	for _, id := range spent {
		if err := d.disable(ctx, id); err != nil {
			return nil, err
		}
	}
	d.mu.Lock()
	d.rows, d.skipped = byName, skipped
	d.seen = mark.Time
	d.mu.Unlock()
	return out, nil
}

// Changed reports whether django_celery_beat_periodictasks.last_update moved since the last
// Entries (the admin, the models and the one-off disabling all move it).
func (d *DB) Changed(ctx context.Context) (bool, error) {
	var mark sql.NullTime
	d.queries.Add(1)
	if err := d.db.GetContext(ctx, &mark, lastChange); err != nil {
		return false, fmt.Errorf("django_celery_beat_periodictasks: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return !mark.Time.Equal(d.seen), nil
}

// Sent disables a one-off row once its run was sent, as the Python scheduler does: enabled false,
// total_run_count 0, last_run_at NULL (PeriodicTask.save clears it on disabled rows) and
// last_update moved so that every beat re-reads the schedule.
func (d *DB) Sent(ctx context.Context, e *beat.Entry, _ time.Time) error {
	d.mu.Lock()
	r := d.rows[e.Name]
	d.mu.Unlock()
	if r == nil || !r.OneOff {
		return nil
	}
	return d.disable(ctx, r.ID)
}

// disable turns a spent one-off row off and moves last_update, in one statement.
func (d *DB) disable(ctx context.Context, id int64) error {
	d.queries.Add(1)
	res, err := d.db.ExecContext(ctx, `
WITH off AS (
  UPDATE django_celery_beat_periodictask
     SET enabled = false, total_run_count = 0, last_run_at = NULL, date_changed = now()
   WHERE id = $1 AND enabled
  RETURNING id)
INSERT INTO django_celery_beat_periodictasks (ident, last_update)
SELECT 1, now() WHERE EXISTS (SELECT 1 FROM off)
ON CONFLICT (ident) DO UPDATE SET last_update = EXCLUDED.last_update`, id)
	if err != nil {
		return fmt.Errorf("disabling one-off periodic task id=%d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		d.o.Logger.Info("beat: one-off periodic task ran; disabled it", "row_id", id)
	}
	return nil
}

// Init returns the entry's last run from the row read by the last Entries: last_run_at; for a row
// that never ran, now (nothing before beat read it is missed, as Python counts from when it reads
// the row); for a clocked row that never ran, none (its time is sent even when already past).
func (d *DB) Init(_ context.Context, e *beat.Entry, now time.Time) (anchor, last time.Time, err error) {
	d.mu.Lock()
	r := d.rows[e.Name]
	d.mu.Unlock()
	if r == nil {
		return time.Time{}, time.Time{}, fmt.Errorf("beat entry %q is not a row of the last read", e.Name)
	}
	switch {
	case r.LastRunAt.Valid:
		return time.Time{}, r.LastRunAt.Time, nil
	case r.ClockedID.Valid:
		return time.Time{}, time.Time{}, nil
	}
	return time.Time{}, now, nil
}

// claimSlots sets last_run_at to the slot and counts the run on every row whose last run is
// before its slot, locking the rows in id order (two beats' batches cannot deadlock), and returns
// the rows claimed with their previous last_run_at.
const claimSlots = `
WITH want AS (
  SELECT * FROM unnest($1::integer[], $2::timestamptz[]) AS w(id, slot)
), locked AS (
  SELECT p.id, p.last_run_at FROM django_celery_beat_periodictask p JOIN want w ON w.id = p.id
   WHERE p.enabled AND (p.last_run_at IS NULL OR p.last_run_at < w.slot)
   ORDER BY p.id FOR UPDATE OF p
)
UPDATE django_celery_beat_periodictask p
   SET last_run_at = w.slot, total_run_count = p.total_run_count + 1, date_changed = now()
  FROM locked l JOIN want w ON w.id = l.id
 WHERE p.id = l.id AND (p.last_run_at IS NULL OR p.last_run_at < w.slot)
RETURNING p.id, l.last_run_at`

// ClaimMany claims the slots in one statement, as beat.Store documents: a slot is this beat's
// when its row is enabled and its last_run_at is before the slot; the claim writes last_run_at
// and total_run_count as the Python scheduler's sync does.
func (d *DB) ClaimMany(ctx context.Context, slots []beat.SlotClaim, _ string) ([]string, error) {
	if len(slots) == 0 {
		return nil, nil
	}
	ids := make([]int64, 0, len(slots))
	times := make([]time.Time, 0, len(slots))
	index := make(map[int64]int, len(slots))
	d.mu.Lock()
	for i, sc := range slots {
		if r := d.rows[sc.Name]; r != nil {
			if _, dup := index[r.ID]; dup {
				continue
			}
			index[r.ID] = i
			ids = append(ids, r.ID)
			times = append(times, sc.Slot)
		}
	}
	d.mu.Unlock()
	claims := make([]string, len(slots))
	if len(ids) == 0 {
		return claims, nil
	}
	d.queries.Add(1)
	rows, err := d.db.QueryContext(ctx, claimSlots, pq.Array(ids), pq.Array(times))
	if err != nil {
		return nil, fmt.Errorf("claiming slots in django_celery_beat_periodictask: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var prev sql.NullTime
		if err := rows.Scan(&id, &prev); err != nil {
			return nil, err
		}
		i, ok := index[id]
		if !ok {
			continue
		}
		claims[i] = strconv.FormatInt(id, 10) + "|"
		if prev.Valid {
			claims[i] += prev.Time.UTC().Format(time.RFC3339Nano)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claiming slots in django_celery_beat_periodictask: %w", err)
	}
	return claims, nil
}

// Release undoes a claim whose send failed: the row's last_run_at goes back to what it was and
// the run is no longer counted, if the row still shows the claimed slot.
func (d *DB) Release(ctx context.Context, _ string, slot time.Time, claim string) error {
	idText, prevText, ok := strings.Cut(claim, "|")
	id, err := strconv.ParseInt(idText, 10, 64)
	if !ok || err != nil {
		return errors.New("beatdb: not a claim of this store: " + claim)
	}
	var prev sql.NullTime
	if prevText != "" {
		t, err := time.Parse(time.RFC3339Nano, prevText)
		if err != nil {
			return fmt.Errorf("beatdb: claim %q: %w", claim, err)
		}
		prev = sql.NullTime{Time: t, Valid: true}
	}
	d.queries.Add(1)
	_, err = d.db.ExecContext(ctx, `
UPDATE django_celery_beat_periodictask
   SET last_run_at = $2, total_run_count = greatest(total_run_count - 1, 0)
 WHERE id = $1 AND last_run_at = $3`, id, prev, slot)
	if err != nil {
		return fmt.Errorf("releasing the claim of periodic task id=%d: %w", id, err)
	}
	return nil
}
