package schedule

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type solarGolden struct {
	Generator string `json:"generator"`
	Cases     []struct {
		Event string  `json:"event"`
		Lat   float64 `json:"lat"`
		Lon   float64 `json:"lon"`
		After string  `json:"after"`
		Next  *string `json:"next"`
	} `json:"cases"`
}

// TestSolarGolden checks NextEvent against PyEphem driven by Celery's own solar() horizons
// (testdata/gen_solar.py): every case within 60 seconds, including polar ones found months later.
func TestSolarGolden(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "solar.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g solarGolden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Cases) < 300 {
		t.Fatalf("golden file has %d cases", len(g.Cases))
	}
	var worst time.Duration
	var worstCase string
	for _, c := range g.Cases {
		s, err := ParseSolar(c.Event, c.Lat, c.Lon)
		if err != nil {
			t.Errorf("%s %v %v: %v", c.Event, c.Lat, c.Lon, err)
			continue
		}
		after, err := time.Parse(time.RFC3339Nano, c.After)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.NextEvent(after)
		if c.Next == nil {
			if !errors.Is(err, ErrNoSolarEvent) {
				t.Errorf("%s after %s: ephem finds none, got %v, %v", s, c.After, got, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s after %s: %v, ephem says %s", s, c.After, err, *c.Next)
			continue
		}
		want, err := time.Parse(time.RFC3339Nano, *c.Next)
		if err != nil {
			t.Fatal(err)
		}
		d := got.Sub(want).Abs()
		if d > worst {
			worst, worstCase = d, s.String()+" after "+c.After
		}
		if d > 60*time.Second || !got.After(after) {
			t.Errorf("%s after %s: got %s, ephem %s (off by %v)", s, c.After, got.Format(time.RFC3339), *c.Next, d)
		}
	}
	t.Logf("%d cases (%s): worst error %v, %s", len(g.Cases), g.Generator, worst, worstCase)
}

// TestParseSolarErrors checks that ParseSolar refuses what Celery's solar() refuses (and NaN,
// which Celery's comparisons let through), with ErrInvalid and a message naming the value.
func TestParseSolarErrors(t *testing.T) {
	for _, c := range []struct {
		name     string
		event    string
		lat, lon float64
		want     string
	}{
		{"unknown event", "moonrise", 0, 0, `solar event "moonrise" is invalid, must be one of dawn_astronomical, dawn_civil, dawn_nautical, dusk_astronomical, dusk_civil, dusk_nautical, solar_noon, sunrise, sunset`},
		{"empty event", "", 0, 0, `solar event "" is invalid`},
		{"event case matters", "Sunrise", 0, 0, `solar event "Sunrise" is invalid`},
		{"latitude too high", "sunrise", 90.5, 0, "solar latitude 90.5 is invalid, must be between -90 and 90"},
		{"latitude too low", "sunset", -91, 0, "solar latitude -91 is invalid"},
		{"latitude NaN", "sunset", math.NaN(), 0, "solar latitude NaN is invalid"},
		{"longitude too high", "solar_noon", 10, 180.01, "solar longitude 180.01 is invalid, must be between -180 and 180"},
		{"longitude too low", "dusk_civil", 10, -200, "solar longitude -200 is invalid"},
		{"longitude infinite", "dusk_civil", 10, math.Inf(1), "solar longitude +Inf is invalid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := ParseSolar(c.event, c.lat, c.lon)
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseSolar(%q, %v, %v) = %v, %v; want ErrInvalid with %q", c.event, c.lat, c.lon, s, err, c.want)
			}
		})
	}
}

// TestParseSolarLimits checks that the limits themselves are accepted, as in Celery, and the repr.
func TestParseSolarLimits(t *testing.T) {
	for _, c := range []struct {
		event    string
		lat, lon float64
		repr     string
	}{
		{"sunrise", 90, 180, "<solar: sunrise at latitude 90.0, longitude: 180.0>"},
		{"sunset", -90, -180, "<solar: sunset at latitude -90.0, longitude: -180.0>"},
		{"dusk_astronomical", 52.52, 13.4, "<solar: dusk_astronomical at latitude 52.52, longitude: 13.4>"},
	} {
		s, err := ParseSolar(c.event, c.lat, c.lon)
		if err != nil {
			t.Fatalf("%s %v %v: %v", c.event, c.lat, c.lon, err)
		}
		if s.String() != c.repr {
			t.Errorf("String() = %q, want %q", s.String(), c.repr)
		}
	}
}

// TestSolarNextOutOfRange checks that instants Meeus' series do not cover give ErrNoSolarEvent
// from NextEvent and the zero time from Next, instead of a wrong time.
func TestSolarNextOutOfRange(t *testing.T) {
	s, err := ParseSolar("sunrise", 52.52, 13.4)
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Time{time.Date(999, 12, 31, 0, 0, 0, 0, time.UTC), time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if got, err := s.NextEvent(at); !errors.Is(err, ErrNoSolarEvent) {
			t.Errorf("NextEvent(%v) = %v, %v; want ErrNoSolarEvent", at, got, err)
		}
		if got := s.Next(at); !got.IsZero() {
			t.Errorf("Next(%v) = %v, want zero", at, got)
		}
	}
}

// TestSolarNextChains checks that following Next from an event gives the next day's event (the
// way beat derives slots): strictly later, about a day apart at mid latitudes, the same each time
// it is asked, and a second before an event finds that same event.
func TestSolarNextChains(t *testing.T) {
	for _, ev := range SolarEvents() {
		s, err := ParseSolar(ev, 48.85, 2.35)
		if err != nil {
			t.Fatal(err)
		}
		at := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
		prev := s.Next(at)
		for i := 0; i < 30; i++ {
			next := s.Next(prev)
			if gap := next.Sub(prev); gap < 23*time.Hour || gap > 25*time.Hour {
				t.Fatalf("%s: %v then %v (gap %v)", s, prev, next, gap)
			}
			if again := s.Next(prev); !again.Equal(next) {
				t.Fatalf("%s: Next(%v) gave %v then %v", s, prev, next, again)
			}
			if early := s.Next(next.Add(-time.Second)); early.Sub(next).Abs() > time.Millisecond {
				t.Fatalf("%s: Next(a second before %v) = %v", s, next, early)
			}
			prev = next
		}
	}
}

// FuzzSolarNext checks that NextEvent never panics and returns an instant strictly after its
// argument, or an error.
func FuzzSolarNext(f *testing.F) {
	f.Add("sunrise", 52.52, 13.4, int64(1796000000))
	f.Add("dusk_astronomical", -82.0, 180.0, int64(1750000000))
	f.Add("solar_noon", 89.9, -180.0, int64(-30000000000))
	f.Add("dawn_civil", 66.6, 0.0, int64(0))
	f.Fuzz(func(t *testing.T, event string, lat, lon float64, unix int64) {
		s, err := ParseSolar(event, lat, lon)
		if err != nil {
			return
		}
		after := time.Unix(unix%(4000*365*86400), 0)
		got, err := s.NextEvent(after)
		if err != nil {
			if !errors.Is(err, ErrNoSolarEvent) {
				t.Fatalf("%s after %v: unexpected error %v", s, after, err)
			}
			return
		}
		if !got.After(after) {
			t.Fatalf("%s after %v: got %v", s, after, got)
		}
	})
}
