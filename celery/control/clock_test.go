package control

import (
	"math"
	"sync"
	"testing"
)

func TestClock(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		steps func(c *Clock) uint64
		want  uint64
	}{
		{"tick from zero", func(c *Clock) uint64 { return c.Tick() }, 1},
		{"forward past a larger value", func(c *Clock) uint64 { c.Tick(); return c.Forward(10) }, 11},
		{"forward past a smaller value", func(c *Clock) uint64 { c.Forward(10); return c.Forward(3) }, 12},
		{"forward past zero", func(c *Clock) uint64 { return c.Forward(0) }, 1},
		{"saturates", func(c *Clock) uint64 { c.Forward(math.MaxUint64); return c.Tick() }, math.MaxUint64},
	} {
		var c Clock
		if got := tc.steps(&c); got != tc.want || c.Value() != tc.want {
			t.Errorf("%s: got %d (value %d), want %d", tc.name, got, c.Value(), tc.want)
		}
	}
}

func TestClockConcurrent(t *testing.T) {
	t.Parallel()
	var c Clock
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				c.Tick()
			}
		}()
	}
	wg.Wait()
	if c.Value() != 8000 {
		t.Fatalf("value %d after 8000 ticks", c.Value())
	}
}
