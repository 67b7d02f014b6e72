package beat

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func scheduleNode(t *testing.T, doc string) *yaml.Node {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		t.Fatal(err)
	}
	return root.Content[0]
}

func TestParseSchedule(t *testing.T) {
	es, err := ParseSchedule(scheduleNode(t, `
import:
  task: ads.import_feed
  schedule: 3600
  args: [samples/feed.csv, 2]
  options: {queue: ads.import, priority: 5, expires: 30}
workdays:
  task: ads.score
  schedule: {crontab: {minute: 0, hour: "*/2", day_of_week: [mon, "wed-fri"]}}
  kwargs: {b: 1, a: {x: [1, 2.5, null, true]}}
half:
  task: diag.add
  schedule: 0.5
`), time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 {
		t.Fatalf("%d entries", len(es))
	}
	imp, cron, half := es[0], es[1], es[2]
	if imp.Every != time.Hour || imp.Crontab != nil || string(imp.Args[0]) != `"samples/feed.csv"` || string(imp.Args[1]) != "2" {
		t.Errorf("import: %+v", imp)
	}
	if imp.Options.Queue != "ads.import" || *imp.Options.Priority != 5 || imp.Options.Expires != 30*time.Second {
		t.Errorf("import options: %+v", imp.Options)
	}
	if cron.Crontab == nil || cron.Crontab.String() != "<crontab: 0 */2 mon,wed-fri * * (m/h/dM/MY/d)>" {
		t.Errorf("crontab: %v", cron.ScheduleString())
	}
	if got := strings.Join(cron.KwargsOrder, ","); got != "b,a" || string(cron.Kwargs["a"]) != `{"x":[1,2.5,null,true]}` {
		t.Errorf("kwargs %s %s", got, cron.Kwargs["a"])
	}
	if cron.Args != nil || ArgsRepr(cron.Args) != "()" || ArgsRepr(imp.Args) != "['samples/feed.csv', 2]" {
		t.Errorf("argsrepr %q %q", ArgsRepr(cron.Args), ArgsRepr(imp.Args))
	}
	if half.Every != 500*time.Millisecond {
		t.Errorf("half: %v", half.Every)
	}
}

// TestParseScheduleSolar reads `schedule: {solar: {event, lat, lon}}` into Celery's solar
// schedule: its repr, and a first run that is the event's next occurrence (sunset in Berlin).
func TestParseScheduleSolar(t *testing.T) {
	es, err := ParseSchedule(scheduleNode(t, `
dusk:
  task: lights.on
  schedule: {solar: {event: sunset, lat: 52.52, lon: 13}}
`), time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	e := es[0]
	if e.Schedule == nil || e.ScheduleString() != "<solar: sunset at latitude 52.52, longitude: 13.0>" {
		t.Fatalf("schedule %v", e.ScheduleString())
	}
	// Celery 5.2 with ephem: solar("sunset", 52.52, 13).remaining_estimate from 2026-12-07 00:00 UTC.
	want := time.Date(2026, 12, 7, 14, 54, 37, 658e6, time.UTC)
	if got := e.Schedule.Next(time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)); got.Sub(want).Abs() > time.Minute {
		t.Errorf("next sunset %s, Celery %s", got, want)
	}
}

func TestParseScheduleErrors(t *testing.T) {
	for _, tc := range []struct{ name, doc, entry, field string }{
		{"unknown field", "a: {task: t, schedule: 1, retries: 3}", "a", "retries"},
		{"zero interval", "a: {task: t, schedule: 0}", "a", "schedule"},
		{"negative interval", "a: {task: t, schedule: -5}", "a", "schedule"},
		{"string interval", "a: {task: t, schedule: hourly}", "a", "schedule"},
		{"no task", "a: {schedule: 1}", "a", "task"},
		{"no schedule", "a: {task: t}", "a", "schedule"},
		{"bad crontab", "ok: {task: t, schedule: 5}\nb: {task: t, schedule: {crontab: {day_of_week: 7}}}", "b", "schedule"},
		{"N/S", "c: {task: t, schedule: {crontab: {minute: 5/2}}}", "c", "schedule"},
		{"crontab typo", "d: {task: t, schedule: {crontab: {minutes: 5}}}", "d", "schedule"},
		{"bad option", "e: {task: t, schedule: 5, options: {countdown: 3}}", "e", "options"},
		{"bad priority", "e: {task: t, schedule: 5, options: {priority: 300}}", "e", "options"},
		{"args not list", "f: {task: t, schedule: 5, args: 3}", "f", "args"},
		{"solar unknown event", "g: {task: t, schedule: {solar: {event: moonrise, lat: 1, lon: 2}}}", "g", "schedule"},
		{"solar latitude out of range", "g: {task: t, schedule: {solar: {event: sunset, lat: 91, lon: 2}}}", "g", "schedule"},
		{"solar longitude missing", "g: {task: t, schedule: {solar: {event: sunset, lat: 1}}}", "g", "schedule"},
		{"solar latitude not a number", "g: {task: t, schedule: {solar: {event: sunset, lat: north, lon: 2}}}", "g", "schedule"},
		{"solar typo", "g: {task: t, schedule: {solar: {event: sunset, lat: 1, long: 2}}}", "g", "schedule"},
		{"solar not a mapping", "g: {task: t, schedule: {solar: sunset}}", "g", "schedule"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSchedule(scheduleNode(t, tc.doc), time.UTC)
			var ee *EntryError
			if !errors.As(err, &ee) || !errors.Is(err, ErrConfig) {
				t.Fatalf("got %v, want an *EntryError", err)
			}
			if ee.Entry != tc.entry || ee.Field != tc.field {
				t.Errorf("entry %q field %q (%v), want %q %q", ee.Entry, ee.Field, err, tc.entry, tc.field)
			}
		})
	}
}

func TestParseSettings(t *testing.T) {
	node := func(doc string) map[string]*yaml.Node {
		var root yaml.Node
		if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
			t.Fatal(err)
		}
		m := map[string]*yaml.Node{}
		for i := 0; i+1 < len(root.Content[0].Content); i += 2 {
			m[root.Content[0].Content[i].Value] = root.Content[0].Content[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name, doc, env, backend string
		want                    Settings
		err                     bool
	}{
		{"defaults from env", "x: 1", "redis://e/1", "redis://b/0", Settings{MissedOnce, "redis://e/1", "celery-beat:", 10 * time.Second, ""}, false},
		{"backend fallback", "x: 1", "", "redis://b/0", Settings{MissedOnce, "redis://b/0", "celery-beat:", 10 * time.Second, ""}, false},
		{"explicit", "beat_missed_runs: skip\nbeat_state_url: redis://s/2\nbeat_key_prefix: \"p:\"\nbeat_lock_ttl: 2.5", "redis://e/1", "",
			Settings{MissedSkip, "redis://s/2", "p:", 2500 * time.Millisecond, ""}, false},
		{"bad policy", "beat_missed_runs: all", "redis://e", "", Settings{}, true},
		{"no redis", "x: 1", "", "", Settings{}, true},
		{"no redis with another scheduler", "beat_scheduler: django", "", "", Settings{MissedOnce, "", "celery-beat:", 10 * time.Second, "django"}, false},
		{"no redis with Celery's default scheduler", "beat_scheduler: celery.beat.PersistentScheduler", "", "", Settings{}, true},
		{"bad ttl", "beat_lock_ttl: 0", "redis://e", "", Settings{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSettings(node(tc.doc), tc.env, tc.backend)
			if tc.err {
				if !errors.Is(err, ErrConfig) {
					t.Fatalf("got %v, want ErrConfig", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}
