package schedule

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

type goldenFile struct {
	Cases []struct {
		Spec  map[string]string `json:"spec"`
		Error string            `json:"error"`
		Next  []struct {
			After string  `json:"after"`
			Next  *string `json:"next"`
		} `json:"next"`
	} `json:"cases"`
}

func specOf(m map[string]string) CrontabSpec {
	return CrontabSpec{Minute: m["minute"], Hour: m["hour"], DayOfWeek: m["day_of_week"],
		DayOfMonth: m["day_of_month"], MonthOfYear: m["month_of_year"]}
}

// TestCrontabGolden checks parsing and Next against values computed by the real Celery 5.2
// (testdata/gen_crontab_golden.py).
func TestCrontabGolden(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "crontab_golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g goldenFile
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Cases) < 20 {
		t.Fatalf("golden file has %d cases", len(g.Cases))
	}
	for _, c := range g.Cases {
		spec := specOf(c.Spec)
		cr, err := ParseCrontab(spec, time.UTC)
		if c.Error != "" {
			var fe *FieldError
			if err == nil || !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
				t.Errorf("%v: Celery says %s; got err=%v", c.Spec, c.Error, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", c.Spec, err)
			continue
		}
		for _, n := range c.Next {
			after, _ := time.Parse(time.RFC3339, n.After)
			got := cr.Next(after)
			if n.Next == nil {
				t.Errorf("%v after %s: Celery finds no run, got %v", c.Spec, n.After, got)
				continue
			}
			want, _ := time.Parse(time.RFC3339, *n.Next)
			if !got.Equal(want) {
				t.Errorf("%v after %s: got %s, want %s", c.Spec, n.After, got.UTC().Format(time.RFC3339), *n.Next)
			}
		}
	}
}

func TestParseCrontabErrors(t *testing.T) {
	for _, tc := range []struct {
		spec  CrontabSpec
		field string
	}{
		{CrontabSpec{DayOfWeek: "7"}, "day_of_week"},
		{CrontabSpec{Minute: "5/2"}, "minute"},
		{CrontabSpec{Minute: "1-2-3"}, "minute"},
		{CrontabSpec{Minute: "1-5/2/3"}, "minute"},
		{CrontabSpec{Hour: "L"}, "hour"},
		{CrontabSpec{DayOfMonth: "?"}, "day_of_month"},
		{CrontabSpec{MonthOfYear: "jan"}, "month_of_year"},
		{CrontabSpec{Minute: "sun"}, "minute"},
		{CrontabSpec{Minute: "*/x"}, "minute"},
		{CrontabSpec{Minute: " 5"}, "minute"},
		{CrontabSpec{DayOfMonth: "30", MonthOfYear: "2"}, "day_of_month"},
	} {
		_, err := ParseCrontab(tc.spec, nil)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%+v: got %v, want a FieldError on %s", tc.spec, err, tc.field)
		}
	}
}

func TestCrontabWeekdayNames(t *testing.T) {
	for _, tc := range []struct{ dow, want string }{
		{"mon-fri", "1-5"}, {"Monday", "1"}, {"SAT,sun", "0,6"}, {"fri-mon", "0,1,5,6"}, {"*/2", "0,2,4,6"},
	} {
		a, err := ParseCrontab(CrontabSpec{DayOfWeek: tc.dow}, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ParseCrontab(CrontabSpec{DayOfWeek: tc.want}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if a.dow != b.dow {
			t.Errorf("%s: %07b, want %07b", tc.dow, a.dow, b.dow)
		}
	}
}

func runsBetween(t *testing.T, c *Crontab, from, to time.Time) []time.Time {
	t.Helper()
	var out []time.Time
	for at := c.Next(from); !at.IsZero() && at.Before(to); at = c.Next(at) {
		if len(out) > 0 && !at.After(out[len(out)-1]) {
			t.Fatalf("Next not increasing: %v after %v", at, out[len(out)-1])
		}
		out = append(out, at)
	}
	return out
}

func TestCrontabDST(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatalf("tzdata: %v", err)
	}
	day := func(y int, m time.Month, d int) (time.Time, time.Time) {
		return time.Date(y, m, d, 0, 0, 0, 0, berlin).Add(-time.Nanosecond), time.Date(y, m, d+1, 0, 0, 0, 0, berlin)
	}
	cet := func(m time.Month, d, h, mi, offH int) time.Time {
		return time.Date(2026, m, d, h-offH, mi, 0, 0, time.UTC)
	}
	for _, tc := range []struct {
		name       string
		spec       CrontabSpec
		month      time.Month
		day        int
		wantCount  int
		wantFirsts []time.Time // the runs around the transition, checked in order from wantFrom
		wantFrom   int
	}{
		// 2026-03-29: 02:00 CET -> 03:00 CEST (01:00 UTC).
		{"daily 02:30 spring", CrontabSpec{Minute: "30", Hour: "2"}, time.March, 29, 1,
			[]time.Time{cet(time.March, 29, 1, 0, 0)}, 0},
		{"daily 02:30 day before spring", CrontabSpec{Minute: "30", Hour: "2"}, time.March, 28, 1,
			[]time.Time{cet(time.March, 28, 2, 30, 1)}, 0},
		{"hourly spring", CrontabSpec{Minute: "30"}, time.March, 29, 23,
			[]time.Time{cet(time.March, 29, 0, 30, 0), cet(time.March, 29, 1, 30, 0)}, 1},
		// 2026-10-25: 03:00 CEST -> 02:00 CET (01:00 UTC).
		{"daily 02:30 autumn", CrontabSpec{Minute: "30", Hour: "2"}, time.October, 25, 1,
			[]time.Time{cet(time.October, 25, 0, 30, 0)}, 0},
		{"hourly autumn", CrontabSpec{Minute: "30"}, time.October, 25, 25,
			[]time.Time{cet(time.October, 25, 23, 30, 24), cet(time.October, 25, 0, 30, 0), cet(time.October, 25, 1, 30, 0), cet(time.October, 25, 2, 30, 0)}, 1},
		{"every 15 min autumn", CrontabSpec{Minute: "*/15"}, time.October, 25, 100, nil, 0},
		{"every 15 min spring", CrontabSpec{Minute: "*/15"}, time.March, 29, 92, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCrontab(tc.spec, berlin)
			if err != nil {
				t.Fatal(err)
			}
			from, to := day(2026, tc.month, tc.day)
			runs := runsBetween(t, c, from, to)
			if len(runs) != tc.wantCount {
				t.Fatalf("%d runs, want %d: %v", len(runs), tc.wantCount, runs)
			}
			for i, w := range tc.wantFirsts {
				if got := runs[tc.wantFrom+i]; !got.Equal(w) {
					t.Errorf("run %d = %s, want %s", tc.wantFrom+i, got.UTC(), w.UTC())
				}
			}
			if c.everyHour {
				for i := 1; i < len(runs); i++ {
					if d := runs[i].Sub(runs[i-1]); tc.spec.Minute == "30" && d != time.Hour {
						t.Errorf("hourly gap %v between %v and %v", d, runs[i-1], runs[i])
					}
				}
			}
		})
	}
}

func TestCrontabNextIsStrictlyAfter(t *testing.T) {
	c, err := ParseCrontab(CrontabSpec{Minute: "*/15"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ after, want string }{
		{"2026-01-01T00:00:00Z", "2026-01-01T00:15:00Z"},
		{"2026-01-01T00:14:59.999Z", "2026-01-01T00:15:00Z"},
		{"2026-01-01T23:50:00Z", "2026-01-02T00:00:00Z"},
	} {
		a, _ := time.Parse(time.RFC3339Nano, tc.after)
		w, _ := time.Parse(time.RFC3339, tc.want)
		if got := c.Next(a); !got.Equal(w) {
			t.Errorf("Next(%s) = %s, want %s", tc.after, got, tc.want)
		}
	}
	if s := c.String(); s != "<crontab: */15 * * * * (m/h/dM/MY/d)>" {
		t.Errorf("String() = %q", s)
	}
}

func TestInterval(t *testing.T) {
	anchor := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	i := Interval{Every: 10 * time.Second, Anchor: anchor}
	for _, tc := range []struct {
		after      time.Duration
		next, last time.Duration
	}{
		{-time.Hour, 0, 0},
		{0, 10 * time.Second, 0},
		{9 * time.Second, 10 * time.Second, 0},
		{10 * time.Second, 20 * time.Second, 10 * time.Second},
		{95 * time.Second, 100 * time.Second, 90 * time.Second},
	} {
		if got := i.Next(anchor.Add(tc.after)); !got.Equal(anchor.Add(tc.next)) {
			t.Errorf("Next(+%v) = %v", tc.after, got)
		}
		if got := i.Last(anchor.Add(tc.after)); !got.Equal(anchor.Add(tc.last)) {
			t.Errorf("Last(+%v) = %v", tc.after, got)
		}
	}
	if s := (Interval{Every: time.Hour}).String(); s != "<freq: 1.00 hours>" {
		t.Errorf("String() = %q", s)
	}
}

// FuzzCrontab: the parser never panics, rejects with a typed error, and an accepted spec gives a
// Next strictly after its argument that the spec's own fields match; reparsing is stable.
func FuzzCrontab(f *testing.F) {
	data, err := os.ReadFile(filepath.Join("testdata", "crontab_golden.json"))
	if err != nil {
		f.Fatal(err)
	}
	var g goldenFile
	if err := json.Unmarshal(data, &g); err != nil {
		f.Fatal(err)
	}
	for _, c := range g.Cases {
		s := specOf(c.Spec)
		f.Add(s.Minute, s.Hour, s.DayOfWeek, s.DayOfMonth, s.MonthOfYear, int64(1774745400))
	}
	f.Add("1-2-3", "22-2", "fri-mon", "*/10", "2-12/2", int64(1792890000))
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, mi, h, dow, dom, moy string, unix int64) {
		spec := CrontabSpec{mi, h, dow, dom, moy}
		for _, loc := range []*time.Location{time.UTC, berlin} {
			c, err := ParseCrontab(spec, loc)
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("untyped error %v", err)
				}
				return
			}
			again, err := ParseCrontab(c.Spec(), loc)
			if err != nil || again.String() != c.String() || again.minute != c.minute || again.dow != c.dow {
				t.Fatalf("reparse of %+v differs: %v", spec, err)
			}
			after := time.Unix(unix%(1<<33), 0)
			n := c.Next(after)
			if n.IsZero() || !n.After(after) {
				t.Fatalf("%+v: Next(%v) = %v", spec, after, n)
			}
			l := n.In(loc)
			if !c.dayMatches(l.Year(), l.Month(), l.Day()) {
				t.Fatalf("%+v: Next %v does not match the day fields", spec, l)
			}
		}
	})
}

func BenchmarkCrontabNext(b *testing.B) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		b.Fatal(err)
	}
	for _, spec := range []CrontabSpec{{}, {Minute: "30", Hour: "2"}, {Minute: "0", Hour: "9", DayOfWeek: "mon-fri"}} {
		c, err := ParseCrontab(spec, berlin)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.String(), func(b *testing.B) {
			t := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
			for b.Loop() {
				t = c.Next(t)
			}
		})
	}
}
