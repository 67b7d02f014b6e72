package beatdb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/forumads/forumads/celery/beat"
	"github.com/forumads/forumads/celery/schedule"
)

// InstallDefaultEntries is the Python DatabaseScheduler's install_default_entries: with
// result_expires set (resultExpires > 0, whatever the result backend) it writes the
// celery.backend_cleanup row (crontab 0 4 * * * in loc, the timezone setting; expire_seconds
// 43200) through UpdateFromDict, as every start of the Python scheduler does.
func (d *DB) InstallDefaultEntries(ctx context.Context, resultExpires time.Duration, loc *time.Location) error {
	if resultExpires <= 0 {
		return nil
	}
	e, err := beat.BackendCleanupEntry(loc)
	if err != nil {
		return err
	}
	return d.UpdateFromDict(ctx, []*beat.Entry{e})
}

// UpdateFromDict is the Python DatabaseScheduler's update_from_dict (ModelEntry.from_entry): each
// entry becomes the django_celery_beat_periodictask row of its name, created or updated (task;
// its schedule as an interval row of whole seconds, a crontab row with its time zone or a solar
// row, reused when one with the same fields exists; args, kwargs and headers as JSON; queue, exchange,
// routing_key, priority; expire_seconds from the expires option), leaving enabled, one_off,
// start_time, description and the run counts of an existing row as they are; then last_update
// moves so that every beat re-reads the schedule. Each entry is one short transaction. An entry
// that cannot be written is logged at ERROR with its name and left out, the others are written
// (as Python logs and goes on); the errors are returned joined.
func (d *DB) UpdateFromDict(ctx context.Context, entries []*beat.Entry) error {
	var errs []error
	for _, e := range entries {
		if err := d.updateEntry(ctx, e); err != nil {
			err = fmt.Errorf("beat: cannot add entry %q to the database schedule: %w", e.Name, err)
			d.o.Logger.Error(err.Error(), "entry", e.Name)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// updateEntry writes one entry's rows in one transaction.
func (d *DB) updateEntry(ctx context.Context, e *beat.Entry) error {
	args, kwargs, headers, err := entryJSON(e)
	if err != nil {
		return err
	}
	var expireSeconds sql.NullInt64
	if e.Options.Expires > 0 {
		expireSeconds = sql.NullInt64{Int64: int64(e.Options.Expires / time.Second), Valid: true}
	}
	nullable := func(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }
	var priority sql.NullInt64
	if e.Options.Priority != nil {
		priority = sql.NullInt64{Int64: int64(*e.Options.Priority), Valid: true}
	}
	tx, err := d.db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	var intervalID, crontabID, solarID sql.NullInt64
	sol, _ := e.Schedule.(*schedule.Solar)
	switch {
	case sol != nil:
		d.queries.Add(1)
		err = tx.GetContext(ctx, &solarID, `
WITH found AS (
  SELECT id FROM django_celery_beat_solarschedule WHERE event = $1 AND latitude = $2 AND longitude = $3 ORDER BY id LIMIT 1),
made AS (
  INSERT INTO django_celery_beat_solarschedule (event, latitude, longitude)
  SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM found)
  RETURNING id)
SELECT id FROM found UNION ALL SELECT id FROM made`, sol.Event(), sol.Latitude(), sol.Longitude())
	case e.Crontab != nil && e.Schedule == nil:
		spec, tz := e.Crontab.Spec(), e.Crontab.Location().String()
		for _, f := range []*string{&spec.Minute, &spec.Hour, &spec.DayOfWeek, &spec.DayOfMonth, &spec.MonthOfYear} {
			if *f == "" {
				*f = "*" // an omitted field, as crontab()'s defaults
			}
		}
		if tz == "Local" {
			return errors.New("crontab in the machine's local time zone: set the timezone setting to a zone name")
		}
		d.queries.Add(1)
		err = tx.GetContext(ctx, &crontabID, `
WITH found AS (
  SELECT id FROM django_celery_beat_crontabschedule
   WHERE minute = $1 AND hour = $2 AND day_of_week = $3 AND day_of_month = $4 AND month_of_year = $5 AND timezone = $6
   ORDER BY id LIMIT 1),
made AS (
  INSERT INTO django_celery_beat_crontabschedule (minute, hour, day_of_week, day_of_month, month_of_year, timezone)
  SELECT $1, $2, $3, $4, $5, $6 WHERE NOT EXISTS (SELECT 1 FROM found)
  RETURNING id)
SELECT id FROM found UNION ALL SELECT id FROM made`, spec.Minute, spec.Hour, spec.DayOfWeek, spec.DayOfMonth, spec.MonthOfYear, tz)
	case e.Schedule == nil && e.Every > 0:
		if e.Every%time.Second != 0 {
			return fmt.Errorf("interval %s is not whole seconds (IntervalSchedule.every is an integer)", e.Every)
		}
		d.queries.Add(1)
		err = tx.GetContext(ctx, &intervalID, `
WITH found AS (
  SELECT id FROM django_celery_beat_intervalschedule WHERE every = $1 AND period = 'seconds' ORDER BY id LIMIT 1),
made AS (
  INSERT INTO django_celery_beat_intervalschedule (every, period)
  SELECT $1, 'seconds' WHERE NOT EXISTS (SELECT 1 FROM found)
  RETURNING id)
SELECT id FROM found UNION ALL SELECT id FROM made`, int64(e.Every/time.Second))
	default:
		return fmt.Errorf("schedule %s cannot be stored as an interval, crontab or solar row", e.ScheduleString())
	}
	if err != nil {
		return fmt.Errorf("schedule row: %w", err)
	}
	d.queries.Add(1)
	res, err := tx.ExecContext(ctx, `
INSERT INTO django_celery_beat_periodictask AS p (name, task, args, kwargs, queue, exchange, routing_key, priority, headers,
    expire_seconds, interval_id, crontab_id, solar_id, clocked_id, enabled, total_run_count, date_changed, description, one_off)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL, true, 0, now(), '', false)
ON CONFLICT (name) DO UPDATE SET task = EXCLUDED.task, args = EXCLUDED.args, kwargs = EXCLUDED.kwargs,
    queue = EXCLUDED.queue, exchange = EXCLUDED.exchange, routing_key = EXCLUDED.routing_key, priority = EXCLUDED.priority,
    headers = EXCLUDED.headers, expire_seconds = EXCLUDED.expire_seconds, interval_id = EXCLUDED.interval_id,
    crontab_id = EXCLUDED.crontab_id, solar_id = EXCLUDED.solar_id, clocked_id = NULL, date_changed = now(),
    last_run_at = CASE WHEN p.enabled THEN p.last_run_at END
  WHERE p.expires IS NULL OR EXCLUDED.expire_seconds IS NULL`,
		e.Name, e.Task, args, kwargs, nullable(e.Options.Queue), nullable(e.Options.Exchange), nullable(e.Options.RoutingKey),
		priority, headers, expireSeconds, intervalID, crontabID, solarID)
	if err != nil {
		return fmt.Errorf("periodic task row: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return errors.New("the row has expires set, and a task cannot have both expires and expire_seconds (PeriodicTask._clean_expires)")
	}
	d.queries.Add(1)
	if _, err := tx.ExecContext(ctx, `INSERT INTO django_celery_beat_periodictasks (ident, last_update) VALUES (1, now())
ON CONFLICT (ident) DO UPDATE SET last_update = EXCLUDED.last_update`); err != nil {
		return fmt.Errorf("last_update: %w", err)
	}
	return tx.Commit()
}

// entryJSON is the entry's args, kwargs and headers as the row stores them: json.dumps of
// args or [], kwargs or {} (in their order) and headers or {}.
func entryJSON(e *beat.Entry) (args, kwargs, headers string, err error) {
	parts := make([]string, len(e.Args))
	for i, a := range e.Args {
		parts[i] = string(a)
	}
	args = "[" + strings.Join(parts, ", ") + "]"
	order := e.KwargsOrder
	if len(order) != len(e.Kwargs) {
		order = order[:0:0]
		for k := range e.Kwargs {
			order = append(order, k)
		}
		sort.Strings(order)
	}
	parts = parts[:0]
	for _, k := range order {
		key, err := json.Marshal(k)
		if err != nil {
			return "", "", "", err
		}
		parts = append(parts, string(key)+": "+string(e.Kwargs[k]))
	}
	kwargs = "{" + strings.Join(parts, ", ") + "}"
	headers = "{}"
	if len(e.Options.Headers) > 0 {
		b, err := json.Marshal(e.Options.Headers)
		if err != nil {
			return "", "", "", fmt.Errorf("headers: %w", err)
		}
		headers = string(b)
	}
	for name, text := range map[string]string{"args": args, "kwargs": kwargs} {
		if !json.Valid([]byte(text)) {
			return "", "", "", fmt.Errorf("%s: not valid JSON: %.80s", name, text)
		}
	}
	return args, kwargs, headers, nil
}
