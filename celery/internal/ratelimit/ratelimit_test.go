package ratelimit

import (
	"sync"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, true}, {"0", 0, true}, {" 0/m ", 0, true}, {"10/s", 100 * time.Millisecond, true},
		{"10/m", 6 * time.Second, true}, {"2/h", 30 * time.Minute, true}, {"4", 250 * time.Millisecond, true},
		{"1.5/s", time.Second * 2 / 3, true}, {" 5 / m ", 12 * time.Second, true},
		{"10/d", 0, false}, {"abc", 0, false}, {"-1/s", 0, false}, {"/s", 0, false}, {"10/", 0, false},
	} {
		got, err := Parse(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("Parse(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestTokenBucket(t *testing.T) {
	t.Parallel()
	b := NewBucket(time.Second)
	now := time.Unix(1000, 0)
	waits := []time.Duration{b.Reserve(now), b.Reserve(now), b.Reserve(now), b.Reserve(now.Add(5 * time.Second))}
	want := []time.Duration{0, time.Second, 2 * time.Second, 0}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits = %v, want %v", waits, want)
		}
	}
}

// One token per interval: back-to-back reservations wait 0, 1, 2... intervals.
func TestBucketSpacesReservations(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	b := NewBucket(time.Second)
	for i := 0; i < 4; i++ {
		if got, want := b.Reserve(now), time.Duration(i)*time.Second; got != want {
			t.Fatalf("reservation %d waits %v, want %v", i, got, want)
		}
	}
}

// Capacity is one: after a long idle spell only one token is available at once.
func TestBucketDoesNotAccumulate(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	b := NewBucket(time.Second)
	b.Reserve(now)
	later := now.Add(time.Hour)
	if got := b.Reserve(later); got != 0 {
		t.Fatalf("first reservation after an idle hour waits %v, want 0", got)
	}
	if got := b.Reserve(later); got != time.Second {
		t.Fatalf("second reservation after an idle hour waits %v, want 1s", got)
	}
}

func TestBucketNoLimit(t *testing.T) {
	t.Parallel()
	now := time.Now()
	for name, b := range map[string]*Bucket{"zero value": {}, "NewBucket(0)": NewBucket(0), "negative": NewBucket(-time.Second)} {
		for i := 0; i < 3; i++ {
			if got := b.Reserve(now); got != 0 {
				t.Fatalf("%s: reservation %d waits %v, want 0", name, i, got)
			}
		}
	}
}

// SetInterval turns a limit on and off at run time, as the rate_limit control command does.
func TestBucketSetInterval(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	var b Bucket
	b.SetInterval(10 * time.Second)
	b.Reserve(now)
	if got := b.Reserve(now); got != 10*time.Second {
		t.Fatalf("after SetInterval(10s) the second reservation waits %v, want 10s", got)
	}
	b.SetInterval(0)
	if got := b.Reserve(now); got != 0 {
		t.Fatalf("after SetInterval(0) a reservation waits %v, want 0", got)
	}
}

// Concurrent reservations each get a distinct slot: no two starts share one interval.
func TestBucketConcurrentReservationsAreDistinct(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	b := NewBucket(time.Millisecond)
	const n = 100
	waits := make([]time.Duration, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { waits[i] = b.Reserve(now) })
	}
	wg.Wait()
	seen := map[time.Duration]bool{}
	for _, w := range waits {
		if seen[w] || w%time.Millisecond != 0 || w >= n*time.Millisecond {
			t.Fatalf("waits %v: want each of 0..99ms once", waits)
		}
		seen[w] = true
	}
}
