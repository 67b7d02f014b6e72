package main

import (
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves goroutines behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestPercentiles(t *testing.T) {
	t.Parallel()
	r := result{}
	for i := 1; i <= 100; i++ {
		r.lat = append(r.lat, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond, 0: time.Millisecond} {
		if got := r.pct(p); got != want {
			t.Errorf("p%v = %s, want %s", p, got, want)
		}
	}
	if (result{}).pct(50) != 0 {
		t.Error("empty result")
	}
	h := r.histogram()
	total := 0
	for _, line := range strings.Split(strings.TrimSpace(h), "\n") {
		f := strings.Fields(line) // "lo - hi count bars" or "lo+ count bars"
		i := 1
		if len(f) > 1 && f[1] == "-" {
			i = 3
		}
		n, err := strconv.Atoi(f[i])
		if err != nil {
			t.Fatalf("histogram line %q", line)
		}
		total += n
	}
	if total != 100 {
		t.Errorf("histogram counts %d of 100:\n%s", total, h)
	}
}

// The schedule makes exactly rate×duration calls, each counted once, errors included.
func TestScheduleCounts(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	ws := newWalkers(make([]int64, 4))
	r := schedule(1000, 50*time.Millisecond, ws, func(*walker) error {
		if calls.Add(1)%10 == 0 {
			return errTest
		}
		return nil
	})
	if calls.Load() != 50 || len(r.lat) != 50 || r.errs != 5 || r.firstErr == nil {
		t.Errorf("%d calls, %d latencies, %d errors", calls.Load(), len(r.lat), r.errs)
	}
}

var errTest = errorString("test error")

type errorString string

func (e errorString) Error() string { return string(e) }
