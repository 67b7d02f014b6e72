package beatdb

import (
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/internal/testenv"
)

func null(s string) sql.NullString { return sql.NullString{String: s, Valid: true} }
func id(n int64) sql.NullInt64     { return sql.NullInt64{Int64: n, Valid: true} }
func at(t time.Time) sql.NullTime  { return sql.NullTime{Time: t, Valid: true} }

var changed = time.Date(2026, 11, 25, 18, 12, 23, 50166000, time.UTC)

// intervalRow is a valid interval row every 10 seconds.
func intervalRow() Row {
	return Row{ID: 1, Name: "add every 10s", Task: "tasks.add", Args: "[1, 2]", Kwargs: "{}", Headers: null("{}"),
		DateChanged: changed, IntervalID: id(1), IntervalEvery: id(10), IntervalPeriod: null("seconds")}
}

// cronRow is a valid crontab row at 03:30 in Europe/Berlin.
func cronRow() Row {
	return Row{ID: 2, Name: "nightly", Task: "reports.nightly", Args: "[]", Kwargs: "{}", Headers: null("{}"), DateChanged: changed,
		CrontabID: id(1), Minute: null("30"), Hour: null("3"), DayOfWeek: null("*"), DayOfMonth: null("*"), MonthOfYear: null("*"),
		Timezone: null("Europe/Berlin")}
}

func num(f float64) sql.NullFloat64 { return sql.NullFloat64{Float64: f, Valid: true} }

// solarRow is a valid solar row: sunrise in Berlin.
func solarRow() Row {
	return Row{ID: 4, Name: "berlin sunrise", Task: "tasks.sun", Args: "[]", Kwargs: "{}", DateChanged: changed,
		SolarID: id(1), SolarEvent: null("sunrise"), SolarLatitude: num(52.52), SolarLongitude: num(13.405)}
}

func TestParseRowSchedules(t *testing.T) {
	t.Parallel()
	last := time.Date(2026, 12, 1, 10, 0, 0, 123456000, time.UTC)
	clockedAt := time.Date(2026, 12, 24, 18, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		row   func() Row
		after time.Time
		want  []time.Time // the next slots from after
		str   string
	}{
		{"interval never ran: date_changed's grid", intervalRow, changed.Add(25 * time.Second),
			[]time.Time{changed.Add(30 * time.Second), changed.Add(40 * time.Second)}, "every 10 seconds"},
		{"interval on its last run", func() Row { r := intervalRow(); r.LastRunAt = at(last); return r }, last,
			[]time.Time{last.Add(10 * time.Second), last.Add(20 * time.Second)}, "every 10 seconds"},
		{"interval in days", func() Row { r := intervalRow(); r.IntervalEvery, r.IntervalPeriod = id(1), null("days"); return r }, changed,
			[]time.Time{changed.Add(24 * time.Hour)}, "every day"},
		{"crontab in its time zone", cronRow, time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC),
			[]time.Time{time.Date(2026, 11, 25, 2, 30, 0, 0, time.UTC), time.Date(2026, 11, 26, 2, 30, 0, 0, time.UTC)},
			"<crontab: 30 3 * * * (m/h/dM/MY/d)> Europe/Berlin"},
		{"crontab in summer time", cronRow, time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC),
			[]time.Time{time.Date(2026, 7, 1, 1, 30, 0, 0, time.UTC)}, "<crontab: 30 3 * * * (m/h/dM/MY/d)> Europe/Berlin"},
		{"clocked once", func() Row {
			return Row{ID: 3, Name: "c", Task: "t", OneOff: true, DateChanged: changed, ClockedID: id(1), ClockedTime: at(clockedAt)}
		}, changed, []time.Time{clockedAt, {}}, "<clocked: 2026-12-24 18:00:00+00:00>"},
		{"start_time holds runs back", func() Row {
			r := intervalRow()
			r.StartTime = at(changed.Add(time.Hour + 5*time.Second))
			return r
		}, changed, []time.Time{changed.Add(time.Hour + 10*time.Second), changed.Add(time.Hour + 20*time.Second)},
			"every 10 seconds starting 2026-11-25T19:12:28Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := ParseRow(tc.row(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := e.ScheduleString(); got != tc.str {
				t.Errorf("schedule %q, want %q", got, tc.str)
			}
			after := tc.after
			for i, w := range tc.want {
				got := e.Schedule.Next(after)
				if !got.Equal(w) {
					t.Fatalf("slot %d after %s: %s, want %s", i, after, got, w)
				}
				after = got
			}
		})
	}
}

func TestParseRowOptions(t *testing.T) {
	t.Parallel()
	r := cronRow()
	r.Kwargs = `{"kind": "full", "name": "Zo\u00eb", "kind": "short"}`
	r.Queue, r.Exchange, r.RoutingKey = null("reports"), null("ex"), null("rk")
	r.Priority = id(5)
	r.Headers = null(`{"x-source": "beat", "n": 12345678901234567890}`)
	r.ExpireSeconds = id(600)
	e, err := ParseRow(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(e.KwargsOrder, ",") != "kind,name" || string(e.Kwargs["kind"]) != `"short"` || string(e.Kwargs["name"]) != `"Zo\u00eb"` {
		t.Errorf("kwargs %v order %v", e.Kwargs, e.KwargsOrder)
	}
	o := e.Options
	if o.Queue != "reports" || o.Exchange != "ex" || o.RoutingKey != "rk" || o.Priority == nil || *o.Priority != 5 || o.Expires != 10*time.Minute || !o.ExpiresAt.IsZero() {
		t.Errorf("options %+v", o)
	}
	if o.Headers["x-source"] != "beat" || o.Headers["n"] != json.Number("12345678901234567890") {
		t.Errorf("headers %#v", o.Headers)
	}
	exp := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	r.Expires = at(exp) // expires wins, as `model.expires or model.expire_seconds`
	if e, err = ParseRow(r, nil); err != nil || !e.Options.ExpiresAt.Equal(exp) {
		t.Errorf("expires: %+v %v", e.Options, err)
	}
	r.Args, r.Kwargs, r.Headers = "", "", sql.NullString{}
	if e, err = ParseRow(r, nil); err != nil || len(e.Args) != 0 || e.Args == nil || len(e.Kwargs) != 0 || e.Options.Headers != nil {
		t.Errorf("empty columns: %+v %v", e, err)
	}
}

func TestParseRowRefusesBadRows(t *testing.T) {
	t.Parallel()
	known := func(task string) bool { return strings.HasPrefix(task, "tasks.") }
	for _, tc := range []struct {
		name, field string
		edit        func(*Row)
	}{
		{"invalid JSON args", "args", func(r *Row) { r.Args = "[1," }},
		{"args not a list", "args", func(r *Row) { r.Args = `{"a": 1}` }},
		{"null args", "args", func(r *Row) { r.Args = "null" }},
		{"args invalid UTF-8", "args", func(r *Row) { r.Args = "[\"\xff\"]" }},
		{"kwargs not an object", "kwargs", func(r *Row) { r.Kwargs = "[1]" }},
		{"kwargs trailing data", "kwargs", func(r *Row) { r.Kwargs = "{} {}" }},
		{"headers invalid", "headers", func(r *Row) { r.Headers = null(`{"x":`) }},
		{"headers trailing data", "headers", func(r *Row) { r.Headers = null(`{} 1`) }},
		{"unknown task", "task", func(r *Row) { r.Task = "other.add" }},
		{"empty task", "task", func(r *Row) { r.Task = "" }},
		{"task with a space", "task", func(r *Row) { r.Task = "tasks. add" }},
		{"priority too high", "priority", func(r *Row) { r.Priority = id(300) }},
		{"missing interval row", "interval_id", func(r *Row) { r.IntervalEvery, r.IntervalPeriod = sql.NullInt64{}, sql.NullString{} }},
		{"unknown period", "interval_id", func(r *Row) { r.IntervalPeriod = null("weeks") }},
		{"zero every", "interval_id", func(r *Row) { r.IntervalEvery = id(0) }},
		{"huge every", "interval_id", func(r *Row) { r.IntervalEvery, r.IntervalPeriod = id(1<<40), null("days") }},
		{"no schedule", "schedule", func(r *Row) { r.IntervalID = sql.NullInt64{} }},
		{"two schedules", "schedule", func(r *Row) { r.CrontabID, r.Minute = id(1), null("*") }},
		{"crontab minute 61", "crontab_id", func(r *Row) {
			*r = cronRow()
			r.Task, r.Minute = "tasks.cron", null("61")
		}},
		{"crontab bad time zone", "crontab_id", func(r *Row) {
			*r = cronRow()
			r.Task, r.Timezone = "tasks.cron", null("Mars/Olympus")
		}},
		{"missing crontab row", "crontab_id", func(r *Row) {
			*r = cronRow()
			r.Task, r.Minute = "tasks.cron", sql.NullString{}
		}},
		{"solar unknown event", "solar_id", func(r *Row) { *r = solarRow(); r.SolarEvent = null("moonrise") }},
		{"solar latitude out of range", "solar_id", func(r *Row) { *r = solarRow(); r.SolarLatitude = num(91) }},
		{"solar longitude out of range", "solar_id", func(r *Row) { *r = solarRow(); r.SolarLongitude = num(-180.5) }},
		{"missing solar row", "solar_id", func(r *Row) { *r = solarRow(); r.SolarEvent, r.SolarLatitude = sql.NullString{}, sql.NullFloat64{} }},
		{"missing clocked row", "clocked_id", func(r *Row) { r.IntervalID, r.ClockedID = sql.NullInt64{}, id(4) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := intervalRow()
			tc.edit(&r)
			_, err := ParseRow(r, known)
			var re *RowError
			if !errors.As(err, &re) || re.Field != tc.field || re.ID != r.ID {
				t.Fatalf("got %v, want a RowError for row %d, field %s", err, r.ID, tc.field)
			}
			if !strings.Contains(err.Error(), "id=") {
				t.Errorf("error %q does not name the row id", err)
			}
		})
	}
}

// TestParseRowSolar reads a SolarSchedule row (sunrise and civil dusk in Berlin) into Celery's
// solar schedule: its slots are the events Celery 5.2 with ephem computes for that place (to 60 s),
// one a day, and a bad event is an error naming the row and the valid events.
func TestParseRowSolar(t *testing.T) {
	t.Parallel()
	after := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		event string
		want  []string // Celery's solar(event, 52.52, 13.405).remaining_estimate, chained
	}{
		{"sunrise", []string{"2026-12-07T07:02:20.069Z", "2026-12-08T07:03:32.409Z"}},
		{"dusk_civil", []string{"2026-12-07T15:33:55.188Z", "2026-12-08T15:33:41.977Z"}},
	} {
		r := solarRow()
		r.SolarEvent = null(tc.event)
		e, err := ParseRow(r, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.event, err)
		}
		if want := "<solar: " + tc.event + " at latitude 52.52, longitude: 13.405>"; e.ScheduleString() != want {
			t.Errorf("schedule %q, want %q", e.ScheduleString(), want)
		}
		at := after
		for i, w := range tc.want {
			want, _ := time.Parse(time.RFC3339Nano, w)
			got := e.Schedule.Next(at)
			if d := got.Sub(want).Abs(); d > time.Minute {
				t.Errorf("%s slot %d after %s: %s, Celery %s", tc.event, i, at, got, want)
			}
			at = got
		}
	}
	r := solarRow()
	r.SolarEvent = null("noon")
	_, err := ParseRow(r, nil)
	if err == nil || !strings.Contains(err.Error(), "id=4") || !strings.Contains(err.Error(), `"noon" is invalid, must be one of dawn_astronomical,`) {
		t.Errorf("bad event: %v", err)
	}
}

// TestParseRowFixture reads the rows django-celery-beat 2.4 wrote (../shared/fixtures).
func TestParseRowFixture(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(testenv.FixturesDir(t), "django_celery_beat_rows.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		Tables struct {
			Interval []struct {
				ID, Every int64
				Period    string
			} `json:"django_celery_beat_intervalschedule"`
			Crontab []map[string]any `json:"django_celery_beat_crontabschedule"`
			Tasks   []map[string]any `json:"django_celery_beat_periodictask"`
		} `json:"tables"`
	}
	if err := json.Unmarshal(b, &fx); err != nil {
		t.Fatal(err)
	}
	str := func(m map[string]any, k string) sql.NullString {
		s, ok := m[k].(string)
		return sql.NullString{String: s, Valid: ok}
	}
	num := func(m map[string]any, k string) sql.NullInt64 {
		f, ok := m[k].(float64)
		return sql.NullInt64{Int64: int64(f), Valid: ok}
	}
	var entries []string
	for _, p := range fx.Tables.Tasks {
		dc, _ := time.Parse(time.RFC3339Nano, p["date_changed"].(string))
		r := Row{ID: num(p, "id").Int64, Name: p["name"].(string), Task: p["task"].(string), Args: p["args"].(string),
			Kwargs: p["kwargs"].(string), Queue: str(p, "queue"), Exchange: str(p, "exchange"), RoutingKey: str(p, "routing_key"),
			Priority: num(p, "priority"), Headers: str(p, "headers"), ExpireSeconds: num(p, "expire_seconds"),
			OneOff: p["one_off"].(bool), DateChanged: dc, IntervalID: num(p, "interval_id"), CrontabID: num(p, "crontab_id")}
		if r.IntervalID.Valid {
			iv := fx.Tables.Interval[0]
			r.IntervalEvery, r.IntervalPeriod = id(iv.Every), null(iv.Period)
		}
		if r.CrontabID.Valid {
			c := fx.Tables.Crontab[0]
			r.Minute, r.Hour, r.DayOfWeek, r.DayOfMonth, r.MonthOfYear, r.Timezone = str(c, "minute"), str(c, "hour"),
				str(c, "day_of_week"), str(c, "day_of_month"), str(c, "month_of_year"), str(c, "timezone")
		}
		e, err := ParseRow(r, nil)
		if err != nil {
			t.Fatalf("fixture row %d: %v", r.ID, err)
		}
		entries = append(entries, e.Name+" "+e.Task+" "+e.ScheduleString())
		if e.Name == "nightly report" {
			if e.Options.Queue != "reports" || *e.Options.Priority != 5 || e.Options.Expires != 600*time.Second ||
				e.Options.Headers["x-source"] != "beat" || strings.Join(e.KwargsOrder, ",") != "kind,name" {
				t.Errorf("nightly report options %+v kwargs %v", e.Options, e.KwargsOrder)
			}
			if got, want := e.Schedule.Next(dc), time.Date(2026, 11, 26, 2, 30, 0, 0, time.UTC); !got.Equal(want) {
				t.Errorf("nightly report next %s, want %s (03:30 Berlin)", got, want)
			}
		}
	}
	want := "add every 10s tasks.add every 10 seconds|nightly report reports.nightly <crontab: 30 3 * * * (m/h/dM/MY/d)> Europe/Berlin"
	if got := strings.Join(entries, "|"); got != want {
		t.Errorf("entries\n%s\nwant\n%s", got, want)
	}
}

// FuzzParseRow feeds arbitrary args, kwargs, headers and crontab columns to ParseRow: it never
// panics, an error is always a *RowError, and what it accepts re-encodes as the JSON it read.
func FuzzParseRow(f *testing.F) {
	f.Add("[1, 2]", "{}", "{}", "30", "3", "Europe/Berlin")
	f.Add(`["Zo\u00eb", {"a": [1.5, null]}]`, `{"kind": "full", "name": "x"}`, `{"x-source": "beat"}`, "*/15", "*", "UTC")
	f.Add("[1,", `{"a"`, `{"x":`, "61", "25", "Mars/Olympus")
	f.Add("", "", "", "0-59/7,3", "mon-fri", "")
	f.Fuzz(func(t *testing.T, args, kwargs, headers, minute, hour, zone string) {
		for _, r := range []Row{intervalRow(), cronRow()} {
			r.Args, r.Kwargs, r.Headers = args, kwargs, null(headers)
			if r.CrontabID.Valid {
				r.Minute, r.Hour, r.Timezone = null(minute), null(hour), null(zone)
			}
			e, err := ParseRow(r, nil)
			if err != nil {
				var re *RowError
				if !errors.As(err, &re) {
					t.Fatalf("error %v is not a *RowError", err)
				}
				continue
			}
			for _, a := range e.Args {
				if !json.Valid(a) {
					t.Fatalf("accepted arg %q is not JSON", a)
				}
			}
			if len(e.KwargsOrder) != len(e.Kwargs) {
				t.Fatalf("kwargs %v, order %v", e.Kwargs, e.KwargsOrder)
			}
			if _, err := json.Marshal(e.Options.Headers); err != nil {
				t.Fatalf("headers %v do not encode: %v", e.Options.Headers, err)
			}
			_ = e.Schedule.Next(changed)
		}
	})
}
