package serving

import (
	"errors"
	"strconv"
	"sync"
	"testing"
)

func TestMemo(t *testing.T) {
	t.Parallel()
	m := newMemo[int](3)
	decodes := 0
	atoi := func(s string) (int, error) { decodes++; return strconv.Atoi(s) }
	for _, step := range []struct {
		key, raw string
		want     int
		decoded  int
	}{
		{"a", "1", 1, 1},
		{"a", "1", 1, 1}, // same value: remembered
		{"a", "2", 2, 2}, // changed value: decoded again
		{"b", "2", 2, 3}, // another key
		{"a", "2", 2, 3}, // still remembered
		{"c", "3", 3, 4}, // full now (3 entries)
		{"d", "4", 4, 5}, // emptied, then d
		{"a", "2", 2, 6}, // forgotten when emptied
	} {
		got, err := m.get(step.key, step.raw, atoi)
		if err != nil || got != step.want || decodes != step.decoded {
			t.Fatalf("get(%s, %s) = %d, %v after %d decodes; want %d after %d", step.key, step.raw, got, err, decodes, step.want, step.decoded)
		}
	}
	// Errors are remembered with their value.
	if _, err := m.get("e", "x", atoi); err == nil {
		t.Fatal("no error for x")
	}
	before := decodes
	if _, err := m.get("e", "x", atoi); err == nil || decodes != before {
		t.Fatalf("error not remembered: %v, %d decodes", err, decodes-before)
	}
	if len(m.m) > m.max {
		t.Fatalf("memo holds %d entries, max %d", len(m.m), m.max)
	}

	// Concurrent use (run with -race).
	c := newMemo[int](8)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				raw := strconv.Itoa(i % 5)
				v, err := c.get(strconv.Itoa(g%3), raw, strconv.Atoi)
				if err != nil || v != i%5 {
					panic(errors.Join(err, errors.New("wrong value")))
				}
			}
		})
	}
	wg.Wait()
}
