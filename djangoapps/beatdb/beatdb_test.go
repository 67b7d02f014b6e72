package beatdb_test

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/schedule"
	"github.com/forumads/forumads/internal/testenv"
)

// TestGoBeatRunsAdminSchedules makes interval, crontab (Asia/Kolkata), one-off, clocked and
// not-yet-started schedules through django-celery-beat's models on the real migrations, runs the
// Go beat on them, and checks each is sent on its slots with its options; then disables one
// through the model and checks it stops without a restart, and that the rows' last_run_at and
// total_run_count are the runs sent.
func TestGoBeatRunsAdminSchedules(t *testing.T) {
	d := newDjango(t)
	q := d.consume(t, d.queue)
	now := time.Now()
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	h := now.In(kolkata).Hour()
	hours := fmt.Sprintf("%d,%d", h, (h+1)%24) // never the UTC hour: Kolkata is UTC+05:30
	clockedAt := now.Add(4 * time.Second).Truncate(time.Millisecond)
	d.models(t,
		map[string]any{"op": "interval", "name": "add every 2s", "task": "diag.add", "every": 2, "period": "seconds",
			"args": "[1, 2]", "kwargs": `{"b": 1, "a": 2}`, "headers": `{"x-source": "admin"}`, "priority": 3,
			"expire_seconds": 60, "queue": d.queue},
		map[string]any{"op": "interval", "name": "echo every 3s", "task": "diag.echo", "every": 3, "period": "seconds", "args": `["hi"]`},
		map[string]any{"op": "crontab", "name": "kolkata minutely", "task": "diag.sum", "minute": "*", "hour": hours, "timezone": "Asia/Kolkata"},
		map[string]any{"op": "interval", "name": "once", "task": "diag.sleep", "every": 1, "period": "seconds", "one_off": true, "args": "[0]"},
		map[string]any{"op": "clocked", "name": "clocked", "task": "diag.fail", "clocked_time": clockedAt.Format(time.RFC3339Nano)},
		map[string]any{"op": "interval", "name": "later", "task": "diag.flaky", "every": 1, "period": "seconds",
			"start_time": now.Add(time.Hour).Format(time.RFC3339)},
	)
	b := d.goBeat(t, "go beat", nil)
	testenv.Eventually(t, 75*time.Second, func() bool {
		return len(q.of("diag.sum")) >= 1 && len(q.of("diag.add")) >= 3 && len(q.of("diag.fail")) == 1
	}, "not every schedule was sent; got add=%d sum=%d fail=%d", len(q.of("diag.add")), len(q.of("diag.sum")), len(q.of("diag.fail")))

	adds := q.of("diag.add")
	for i, m := range adds {
		if m.Got.Before(m.Slot) {
			t.Errorf("add %d sent before its slot: slot %s, read %s", i, m.Slot, m.Got)
		}
		if i > 0 && m.Slot.Sub(adds[i-1].Slot) != 2*time.Second {
			t.Errorf("add slots %s and %s are not 2 s apart", adds[i-1].Slot, m.Slot)
		}
		if string(m.Args) != "[1,2]" && string(m.Args) != "[1, 2]" {
			t.Errorf("add args %s, want [1, 2]", m.Args)
		}
		var kw map[string]int
		if err := json.Unmarshal(m.Kwargs, &kw); err != nil || kw["a"] != 2 || kw["b"] != 1 {
			t.Errorf("add kwargs %s (%v), want {b: 1, a: 2}", m.Kwargs, err)
		}
		if m.Headers["x-source"] != "admin" || m.Priority != 3 || m.Headers["kwargsrepr"] != "{'b': 1, 'a': 2}" {
			t.Errorf("add headers %v priority %d: want x-source admin, priority 3, kwargsrepr in the row's order", m.Headers, m.Priority)
		}
		exp, _ := m.Headers["expires"].(string)
		if et, err := time.Parse(time.RFC3339Nano, exp); err != nil || et.Sub(m.Slot) < 59*time.Second || et.Sub(m.Slot) > 61*time.Second {
			t.Errorf("add expires %q, want about 60 s after the slot %s (expire_seconds)", exp, m.Slot)
		}
	}
	for _, m := range q.of("diag.sum") {
		if m.Slot.Second() != 0 || m.Slot.Nanosecond() != 0 || !strings.Contains(hours, fmt.Sprint(m.Slot.In(kolkata).Hour())) {
			t.Errorf("crontab slot %s is not a minute of hours %s in Asia/Kolkata", m.Slot.In(kolkata), hours)
		}
	}
	if got := q.of("diag.fail"); !got[0].Slot.Equal(clockedAt) || got[0].Got.Before(clockedAt) {
		t.Errorf("clocked sent for slot %s, read at %s; want slot %s", got[0].Slot, got[0].Got, clockedAt)
	}
	if n := len(q.of("diag.sleep")); n != 1 {
		t.Errorf("the one-off interval was sent %d times, want once", n)
	}
	if n := len(q.of("diag.flaky")); n != 0 {
		t.Errorf("the schedule starting in an hour was sent %d times", n)
	}
	for _, name := range []string{"once", "clocked"} {
		if r := d.get(t, name); r.Enabled || r.TotalRunCount != 0 || r.LastRunAt != nil {
			t.Errorf("one-off %q after its run: %+v; want disabled, total_run_count 0, last_run_at NULL (as ModelEntry.is_due leaves it)", name, r)
		}
	}

	// Disabled through the model: the Go beat notices last_update and stops sending it.
	changes := b.log.Count("Schedule changed")
	d.models(t, map[string]any{"op": "disable", "name": "add every 2s"})
	testenv.Eventually(t, 15*time.Second, func() bool { return b.log.Count("Schedule changed") > changes }, "the Go beat did not re-read the changed schedule")
	time.Sleep(2500 * time.Millisecond) // a run claimed before the re-read may still arrive
	stopped := len(q.of("diag.add"))
	time.Sleep(5 * time.Second)
	if n := len(q.of("diag.add")); n != stopped {
		t.Errorf("the disabled schedule was sent %d more times after beat re-read the schedule", n-stopped)
	}

	b.stop(t)
	for name, task := range map[string]string{"echo every 3s": "diag.echo", "kolkata minutely": "diag.sum"} {
		msgs, r := q.of(task), d.get(t, name)
		if r.TotalRunCount != int64(len(msgs)) || r.LastRunAt == nil || !r.LastRunAt.Truncate(time.Millisecond).Equal(msgs[len(msgs)-1].Slot) {
			t.Errorf("%q: row total_run_count %d last_run_at %v; want %d runs, the last at %s", name, r.TotalRunCount, r.LastRunAt, len(msgs), msgs[len(msgs)-1].Slot)
		}
	}
}

// TestTwoGoBeatsSendEachSlotOnce runs two Go beats on the same tables: every slot of every row is
// sent by exactly one of them, and each row counts its runs once.
func TestTwoGoBeatsSendEachSlotOnce(t *testing.T) {
	d := newDjango(t)
	q := d.consume(t, d.queue)
	var ops []map[string]any
	tasks := map[string]string{}
	for i := range 4 {
		name, task := fmt.Sprintf("every second %d", i), fmt.Sprintf("diag.n%d", i)
		tasks[name] = task
		ops = append(ops, map[string]any{"op": "interval", "name": name, "task": task, "every": 1, "period": "seconds"})
	}
	d.models(t, ops...)
	b1, b2 := d.goBeat(t, "go beat 1", nil), d.goBeat(t, "go beat 2", nil)
	testenv.Eventually(t, 60*time.Second, func() bool {
		for _, task := range tasks {
			if len(q.of(task)) < 6 {
				return false
			}
		}
		return true
	}, "the beats did not send 6 runs of every row")
	b1.stop(t)
	b2.stop(t)
	time.Sleep(500 * time.Millisecond) // the last messages reach the queue
	for name, task := range tasks {
		msgs := q.of(task)
		seen := map[time.Time]int{}
		for _, m := range msgs {
			seen[m.Slot]++
		}
		for slot, n := range seen {
			if n != 1 {
				t.Errorf("%s: slot %s sent %d times", name, slot, n)
			}
		}
		if r := d.get(t, name); r.TotalRunCount != int64(len(msgs)) {
			t.Errorf("%s: total_run_count %d, %d runs sent", name, r.TotalRunCount, len(msgs))
		}
	}
	if b1.log.Count("Sending due task") == 0 && b2.log.Count("Sending due task") == 0 {
		t.Error("neither beat logged a send")
	}
}

// TestBadRowsAreSkippedOthersRun gives the Go beat rows it cannot run (invalid JSON args and
// headers, a task outside beat_known_tasks, a crontab minute of 61, an interval row that is
// missing, a solar schedule with an unknown event): each is logged with its id and skipped, the good row runs, the table
// is never left locked, and a row fixed through the model runs without a restart.
func TestBadRowsAreSkippedOthersRun(t *testing.T) {
	d := newDjango(t)
	q := d.consume(t, d.queue)
	res := d.models(t,
		map[string]any{"op": "interval", "name": "good", "task": "diag.add", "every": 1, "period": "seconds", "args": "[1, 1]"},
		map[string]any{"op": "interval", "name": "bad json", "task": "diag.echo", "every": 1, "period": "seconds", "args": "[1,"},
		map[string]any{"op": "interval", "name": "bad headers", "task": "diag.echo", "every": 1, "period": "seconds", "headers": `{"x":`},
		map[string]any{"op": "interval", "name": "unknown task", "task": "nosuch.task", "every": 1, "period": "seconds"},
		map[string]any{"op": "crontab", "name": "bad cron", "task": "diag.echo", "minute": "61"},
		map[string]any{"op": "interval", "name": "orphan", "task": "diag.echo", "every": 1, "period": "seconds"},
		map[string]any{"op": "solar", "name": "sunrise", "task": "diag.echo", "event": "moonrise", "latitude": "52.52", "longitude": "13.40"},
	)
	// A PeriodicTask whose interval row is gone: only possible without the foreign key.
	var fks []string
	if err := d.pg.DB.Select(&fks, `SELECT conname FROM pg_constraint WHERE contype = 'f'
		AND conrelid = 'django_celery_beat_periodictask'::regclass AND confrelid = 'django_celery_beat_intervalschedule'::regclass`); err != nil || len(fks) == 0 {
		t.Fatalf("interval foreign key: %v %v", fks, err)
	}
	for _, fk := range fks {
		d.pg.DB.MustExec(`ALTER TABLE django_celery_beat_periodictask DROP CONSTRAINT "` + fk + `"`)
	}
	d.pg.DB.MustExec(`UPDATE django_celery_beat_periodictask SET interval_id = 987654 WHERE name = 'orphan'`)

	b := d.goBeat(t, "go beat", map[string]any{"beat_known_tasks": []string{"diag.*"}})
	testenv.Eventually(t, 30*time.Second, func() bool { return len(q.of("diag.add")) >= 3 }, "the good row was not sent")
	for i, want := range []string{"", "args", "headers", "unknown task", "crontab", "interval schedule row 987654 is missing", `solar event "moonrise" is invalid`} {
		if i == 0 {
			continue
		}
		id := int64(res[i]["id"].(float64))
		if n := b.log.Count(fmt.Sprintf("id=%d ", id), want, "row skipped"); n == 0 {
			t.Errorf("no ERROR naming row id=%d and %q:\n%s", id, want, b.log)
		}
	}
	for _, task := range []string{"diag.echo", "nosuch.task"} {
		if n := len(q.of(task)); n != 0 {
			t.Errorf("%s sent %d times from bad rows", task, n)
		}
	}
	// Never left locked: a writer that waits at most 2 s for a row lock gets every row.
	tx := d.pg.DB.MustBegin()
	tx.MustExec(`SET LOCAL lock_timeout = '2s'`)
	if _, err := tx.Exec(`UPDATE django_celery_beat_periodictask SET description = 'checked'`); err != nil {
		t.Errorf("the rows are locked while the Go beat runs: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Error(err)
	}
	// Fixed in the admin (the model): runs without a restart.
	d.models(t, map[string]any{"op": "update", "name": "bad json", "args": `["fixed"]`})
	testenv.Eventually(t, 20*time.Second, func() bool { return len(q.of("diag.echo")) >= 1 }, "the fixed row was not sent")
	if m := q.of("diag.echo")[0]; string(m.Args) != `["fixed"]` {
		t.Errorf("fixed row args %s", m.Args)
	}
}

// TestRowsAsPythonDatabaseSchedulerWritesThem runs Python's DatabaseScheduler (`celery beat -S
// django`) and then the Go beat on the same rows: the Go beat carries on from the last_run_at
// Python wrote (its slots are Python's last run + k×every), both count total_run_count the same
// way (one per run sent), and a one-off row ends in the same state after either.
//
// Python's one-off run has a beat of its own: its disabling moves last_update, and Python's reload
// then loses the count of a run in flight on the other rows (ModelEntry.__next__ counts on the old
// entry's model while sync saves the new one's), which would make the comparison about that quirk.
func TestRowsAsPythonDatabaseSchedulerWritesThem(t *testing.T) {
	d := newDjango(t)
	q := d.consume(t, d.queue)
	d.models(t, map[string]any{"op": "interval", "name": "shared", "task": "diag.add", "every": 2, "period": "seconds", "args": "[2, 2]"})
	py := d.pythonBeat(t)
	testenv.Eventually(t, 60*time.Second, func() bool { return len(q.of("diag.add")) >= 3 }, "Python's beat did not send 3 runs")
	py.stop(t) // beat syncs its dirty entries on the way out
	time.Sleep(500 * time.Millisecond)
	pyRuns := q.of("diag.add")
	pyRow := d.get(t, "shared")
	if pyRow.TotalRunCount != int64(len(pyRuns)) || pyRow.LastRunAt == nil {
		t.Fatalf("Python wrote total_run_count %d last_run_at %v after %d runs", pyRow.TotalRunCount, pyRow.LastRunAt, len(pyRuns))
	}
	if gap := pyRuns[len(pyRuns)-1].Got.Sub(*pyRow.LastRunAt); gap < -time.Second || gap > 3*time.Second {
		t.Fatalf("Python's last_run_at %s is not its last send (%s)", pyRow.LastRunAt, pyRuns[len(pyRuns)-1].Got)
	}

	// The one-off, with Python; "shared" is disabled meanwhile (and re-enabled with its state).
	d.pg.DB.MustExec(`UPDATE django_celery_beat_periodictask SET enabled = false WHERE name = 'shared'`)
	d.models(t, map[string]any{"op": "interval", "name": "py once", "task": "diag.sleep", "every": 1, "period": "seconds", "one_off": true})
	py = d.pythonBeat(t)
	testenv.Eventually(t, 60*time.Second, func() bool { return len(q.of("diag.sleep")) == 1 && !d.get(t, "py once").Enabled },
		"Python's beat did not send and disable its one-off row")
	py.stop(t)
	pyOnce := d.get(t, "py once")
	d.pg.DB.MustExec(`UPDATE django_celery_beat_periodictask SET enabled = true WHERE name = 'shared'`)
	d.models(t, map[string]any{"op": "interval", "name": "go once", "task": "diag.echo", "every": 1, "period": "seconds", "one_off": true})

	g := d.goBeat(t, "go beat", nil)
	testenv.Eventually(t, 30*time.Second, func() bool { return len(q.of("diag.add")) >= len(pyRuns)+3 && len(q.of("diag.echo")) == 1 },
		"the Go beat did not carry on")
	testenv.Eventually(t, 10*time.Second, func() bool { return !d.get(t, "go once").Enabled }, "the Go beat did not disable its one-off row")
	g.stop(t)
	time.Sleep(500 * time.Millisecond)
	goRuns := q.of("diag.add")[len(pyRuns):]
	for _, m := range goRuns {
		if off := m.Slot.Sub(*pyRow.LastRunAt) % (2 * time.Second); off > time.Millisecond && off < 2*time.Second-time.Millisecond {
			t.Errorf("Go slot %s is not Python's last run %s + k×2 s", m.Slot, pyRow.LastRunAt)
		}
	}
	r := d.get(t, "shared")
	if r.TotalRunCount != int64(len(pyRuns)+len(goRuns)) || r.LastRunAt == nil || !r.LastRunAt.Truncate(time.Millisecond).Equal(goRuns[len(goRuns)-1].Slot) {
		t.Errorf("after Python's %d and Go's %d runs: total_run_count %d last_run_at %v; want %d, %s",
			len(pyRuns), len(goRuns), r.TotalRunCount, r.LastRunAt, len(pyRuns)+len(goRuns), goRuns[len(goRuns)-1].Slot)
	}
	goOnce := d.get(t, "go once")
	if goOnce.Enabled != pyOnce.Enabled || goOnce.TotalRunCount != pyOnce.TotalRunCount || (goOnce.LastRunAt == nil) != (pyOnce.LastRunAt == nil) {
		t.Errorf("one-off row after the Go beat %+v, after Python's %+v", goOnce, pyOnce)
	}
	if pyOnce.Enabled || pyOnce.TotalRunCount != 0 || pyOnce.LastRunAt != nil {
		t.Errorf("Python left its one-off row %+v; the Go beat is checked against disabled, 0, NULL", pyOnce)
	}
}

// TestGoBeatRunsSolarSchedule makes a SolarSchedule (sunset) through the model at a longitude
// where the sun sets some seconds from now, runs the Go beat, and checks that it sends the row
// once, for the slot Celery's solar computes there, and writes last_run_at and total_run_count.
func TestGoBeatRunsSolarSchedule(t *testing.T) {
	d := newDjango(t)
	q := d.consume(t, d.queue)
	const lat = "41.9"
	target := time.Now().Add(20 * time.Second)
	lon, slot := sunsetNear(t, lat, target)
	d.models(t, map[string]any{"op": "solar", "name": "sunset", "task": "diag.echo", "event": "sunset",
		"latitude": lat, "longitude": lon, "args": `["sun"]`})
	b := d.goBeat(t, "go beat", nil)
	testenv.Eventually(t, 60*time.Second, func() bool { return len(q.of("diag.echo")) >= 1 },
		"the solar row was not sent for sunset at %s (latitude %s, longitude %s)", slot, lat, lon)
	b.stop(t)
	time.Sleep(500 * time.Millisecond) // a second message would have arrived
	msgs := q.of("diag.echo")
	if len(msgs) != 1 || !msgs[0].Slot.Equal(slot) || msgs[0].Got.Before(slot) || string(msgs[0].Args) != `["sun"]` {
		t.Fatalf("sent %+v; want one run for the slot %s, not before it", msgs, slot)
	}
	if r := d.get(t, "sunset"); r.TotalRunCount != 1 || r.LastRunAt == nil || !r.LastRunAt.Truncate(time.Millisecond).Equal(slot) {
		t.Errorf("row after the run: total_run_count %d last_run_at %v; want 1, %s", r.TotalRunCount, r.LastRunAt, slot)
	}
}

// sunsetNear returns a longitude (six decimals, as SolarSchedule stores it) where the sun sets at
// latitude lat close to target, and that sunset.
func sunsetNear(t *testing.T, lat string, target time.Time) (string, time.Time) {
	t.Helper()
	la, err := strconv.ParseFloat(lat, 64)
	if err != nil {
		t.Fatal(err)
	}
	lon := 0.0
	text := "0.000000"
	var at time.Time
	for range 6 {
		s, err := schedule.ParseSolar("sunset", la, lon)
		if err != nil {
			t.Fatal(err)
		}
		at = s.Next(target.Add(-12 * time.Hour))
		// One degree east is four minutes earlier.
		lon += at.Sub(target).Hours() / 24 * 360
		lon = math.Mod(lon+540, 360) - 180
		text = strconv.FormatFloat(lon, 'f', 6, 64)
		lon, _ = strconv.ParseFloat(text, 64)
	}
	s, err := schedule.ParseSolar("sunset", la, lon)
	if err != nil {
		t.Fatal(err)
	}
	at = s.Next(target.Add(-12 * time.Hour))
	if d := at.Sub(target).Abs(); d > 2*time.Second {
		t.Fatalf("no longitude found for a sunset at %s: %s at %s", target, at, text)
	}
	return text, at
}
