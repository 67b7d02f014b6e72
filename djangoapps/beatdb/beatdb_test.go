package beatdb_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

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
