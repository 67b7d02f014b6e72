package beatdb_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/beat"
	"github.com/forumads/forumads/djangoapps/beatdb"
)

// pythonSetup makes the Python DatabaseScheduler's rows: constructing it runs setup_schedule
// (install_default_entries, then update_from_dict of beat_schedule), with the same settings the
// Go beat is given.
const pythonSetup = `
import os, sys
import django
sys.path.insert(0, os.getcwd())
django.setup()
from celery.schedules import crontab, solar
from forumads_site.celery import app
app.conf.timezone = "Europe/Berlin"
app.conf.result_expires = 600
app.conf.beat_schedule = {
    "every-10s": {"task": "diag.add", "schedule": 10, "args": [1, 2], "kwargs": {"z": 3},
                  "options": {"queue": "q1", "priority": 5}},
    "berlin-morning": {"task": "ads.import_feed", "schedule": crontab(minute="30", hour="6"),
                       "args": ["samples/feed.csv"], "options": {"exchange": "ex", "routing_key": "rk"}},
    "berlin-sunset": {"task": "diag.echo", "schedule": solar("sunset", 52.52, 13.405)},
}
from django_celery_beat.schedulers import DatabaseScheduler
DatabaseScheduler(app=app)
`

// scheduleRows are the periodic task rows with their schedules, as one JSON document per row
// (ids, date_changed and the run counts left out: they differ between any two databases).
func scheduleRows(t *testing.T, d *django) []string {
	t.Helper()
	var rows []string
	err := d.pg.DB.Select(&rows, `
SELECT json_build_object('name', p.name, 'task', p.task, 'args', p.args, 'kwargs', p.kwargs, 'queue', p.queue,
    'exchange', p.exchange, 'routing_key', p.routing_key, 'priority', p.priority, 'headers', p.headers,
    'expire_seconds', p.expire_seconds, 'expires', p.expires, 'enabled', p.enabled, 'one_off', p.one_off,
    'description', p.description, 'start_time', p.start_time, 'every', i.every, 'period', i.period,
    'minute', c.minute, 'hour', c.hour, 'day_of_week', c.day_of_week, 'day_of_month', c.day_of_month,
    'month_of_year', c.month_of_year, 'timezone', c.timezone, 'event', s.event, 'latitude', s.latitude,
    'longitude', s.longitude, 'clocked', p.clocked_id)::text
  FROM django_celery_beat_periodictask p
  LEFT JOIN django_celery_beat_intervalschedule i ON i.id = p.interval_id
  LEFT JOIN django_celery_beat_crontabschedule c ON c.id = p.crontab_id
  LEFT JOIN django_celery_beat_solarschedule s ON s.id = p.solar_id
 ORDER BY p.name`)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestStartWritesTheScheduleAsPython: at start the Go beat on django-celery-beat's tables writes
// the celery.backend_cleanup row (result_expires set) and beat_schedule's entries (interval,
// crontab in the timezone setting, solar, args/kwargs JSON, queue/exchange/routing_key/priority) exactly
// as the Python DatabaseScheduler's setup_schedule writes them on another copy of the tables, and
// moves last_update; a second start reuses the schedule rows instead of adding more.
func TestStartWritesTheScheduleAsPython(t *testing.T) {
	goSide, pySide := newDjango(t), newDjango(t)
	pySide.python(t, time.Minute, nil, "-c", pythonSetup)
	want := scheduleRows(t, pySide)
	if len(want) != 4 {
		t.Fatalf("Python wrote %d rows, want 4:\n%s", len(want), strings.Join(want, "\n"))
	}
	settings := map[string]any{
		"timezone":       "Europe/Berlin",
		"result_expires": 600,
		// The entries' first runs are far away: this test is about the rows, not the sends.
		"beat_schedule": map[string]any{
			"every-10s": map[string]any{"task": "diag.add", "schedule": 10, "args": []any{1, 2}, "kwargs": map[string]any{"z": 3},
				"options": map[string]any{"queue": "q1", "priority": 5}},
			"berlin-morning": map[string]any{"task": "ads.import_feed", "schedule": map[string]any{"crontab": map[string]any{"minute": "30", "hour": "6"}},
				"args": []any{"samples/feed.csv"}, "options": map[string]any{"exchange": "ex", "routing_key": "rk"}},
			"berlin-sunset": map[string]any{"task": "diag.echo", "schedule": map[string]any{"solar": map[string]any{"event": "sunset", "lat": 52.52, "lon": 13.405}}},
		},
	}
	before := time.Now()
	for run := range 2 {
		p := goSide.goBeat(t, "go beat", settings)
		p.stop(t)
		got := scheduleRows(t, goSide)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("start %d: Go wrote\n%s\nPython wrote\n%s", run+1, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	var n struct{ Crontabs, Intervals, Solars int }
	if err := goSide.pg.DB.Get(&n.Crontabs, `SELECT count(*) FROM django_celery_beat_crontabschedule`); err != nil {
		t.Fatal(err)
	}
	if err := goSide.pg.DB.Get(&n.Intervals, `SELECT count(*) FROM django_celery_beat_intervalschedule`); err != nil {
		t.Fatal(err)
	}
	if err := goSide.pg.DB.Get(&n.Solars, `SELECT count(*) FROM django_celery_beat_solarschedule`); err != nil {
		t.Fatal(err)
	}
	if n.Crontabs != 2 || n.Intervals != 1 || n.Solars != 1 {
		t.Errorf("after two starts: %d crontab, %d interval and %d solar rows, want 2, 1 and 1 (reused)", n.Crontabs, n.Intervals, n.Solars)
	}
	lu := goSide.models(t, map[string]any{"op": "last_update"})
	if s, _ := lu[0]["last_update"].(string); s == "" {
		t.Fatalf("last_update not set: %v", lu[0])
	} else if tm, err := time.Parse(time.RFC3339Nano, s); err != nil || tm.Before(before.Add(-time.Second)) {
		t.Errorf("last_update %s (%v), want after the start at %s", s, err, before)
	}
}

// TestUpdateFromDictBadEntries: an entry that cannot be a row (an interval that is not whole
// seconds; expire_seconds onto a row whose expires is set, which the model refuses) is logged at
// ERROR with its name and returned; the other entries are still written; nothing stays locked.
func TestUpdateFromDictBadEntries(t *testing.T) {
	pg := capturedTables(t)
	pg.DB.MustExec(`INSERT INTO django_celery_beat_intervalschedule (id, every, period) VALUES (1, 60, 'seconds')`)
	pg.DB.MustExec(`INSERT INTO django_celery_beat_periodictask (name, task, args, kwargs, enabled, total_run_count,
		date_changed, description, interval_id, one_off, headers, expires) VALUES ('celery.backend_cleanup', 'x', '[]', '{}', true, 0,
		now(), '', 1, false, '{}', now() + interval '1 day')`)
	var logs bytes.Buffer
	d := beatdb.New(pg.DB, beatdb.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	cleanup, err := beat.BackendCleanupEntry(time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	entries := []*beat.Entry{
		{Name: "half-seconds", Task: "diag.add", Every: 1500 * time.Millisecond},
		cleanup,
		{Name: "good", Task: "diag.add", Every: time.Minute},
	}
	err = d.UpdateFromDict(context.Background(), entries)
	for _, tc := range []struct{ name, why string }{
		{"half-seconds", "not whole seconds"},
		{"celery.backend_cleanup", "both expires and expire_seconds"},
	} {
		if err == nil || !strings.Contains(err.Error(), `"`+tc.name+`"`) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("error %v does not name %s: %s", err, tc.name, tc.why)
		}
		if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "entry="+tc.name) {
			t.Errorf("%s not logged at ERROR:\n%s", tc.name, logs.String())
		}
	}
	var rows []string
	if err := pg.DB.Select(&rows, `SELECT name || ' ' || task || ' ' || coalesce(expire_seconds::text, '-') FROM django_celery_beat_periodictask ORDER BY name`); err != nil {
		t.Fatal(err)
	}
	if want := "celery.backend_cleanup x -|good diag.add -"; strings.Join(rows, "|") != want {
		t.Errorf("rows %q, want %q", strings.Join(rows, "|"), want)
	}
	var locks int
	if err := pg.DB.Get(&locks, `SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
		WHERE c.relnamespace = current_schema()::regnamespace AND l.pid <> pg_backend_pid()`); err != nil || locks != 0 {
		t.Errorf("%d locks left on the tables (%v)", locks, err)
	}
}
