package timerq

import (
	"sync"
	"testing"
	"time"
)

// collector gathers what a queue fires and signals when it has n of them.
type collector struct {
	mu   sync.Mutex
	got  []int
	n    int
	done chan struct{}
}

func newCollector(n int) *collector { return &collector{n: n, done: make(chan struct{})} }

func (c *collector) fire(v int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, v)
	if len(c.got) == c.n {
		close(c.done)
	}
}

func (c *collector) wait(t *testing.T) []int {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		t.Fatal("timer did not fire")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.got...)
}

func TestQueueFiresInOrder(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []int
	done := make(chan struct{})
	q := New(time.Now, func(v int) {
		mu.Lock()
		got = append(got, v)
		if len(got) == 3 {
			close(done)
		}
		mu.Unlock()
	})
	now := time.Now()
	q.Add(now.Add(60*time.Millisecond), 3)
	q.Add(now.Add(20*time.Millisecond), 1)
	q.Add(now.Add(40*time.Millisecond), 2)
	q.Add(now.Add(time.Hour), 4)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("timer did not fire")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Fatalf("fired %v, want [1 2 3]", got)
	}
	if q.Len() != 1 {
		t.Fatalf("Len = %d, want 1 (the far one)", q.Len())
	}
	left := q.Close()
	if len(left) != 1 || left[0] != 4 {
		t.Fatalf("Close returned %v, want [4]", left)
	}
}

func TestQueueRemoveIf(t *testing.T) {
	t.Parallel()
	q := New(time.Now, func(int) {})
	for i := 0; i < 10; i++ {
		q.Add(time.Now().Add(time.Hour+time.Duration(i)), i)
	}
	removed := q.RemoveIf(func(v int) bool { return v%2 == 0 })
	if len(removed) != 5 || q.Len() != 5 {
		t.Fatalf("removed %v, %d left", removed, q.Len())
	}
	for _, v := range removed {
		if v%2 != 0 {
			t.Fatalf("removed %d, which drop refused", v)
		}
	}
	left := q.Close()
	if len(left) != 5 {
		t.Fatalf("Close returned %v, want the 5 odd ones", left)
	}
	for _, v := range left {
		if v%2 != 1 {
			t.Fatalf("kept %d, which drop took", v)
		}
	}
}

// Items due at the same instant fire in the order they were added.
func TestQueueSameTimeFiresInAddOrder(t *testing.T) {
	t.Parallel()
	c := newCollector(20)
	// at is in the past: every item is due as soon as the queue looks.
	at := time.Now().Add(-time.Minute)
	q := New(time.Now, c.fire)
	defer q.Close()
	for i := 0; i < 20; i++ {
		q.Add(at, i)
	}
	got := c.wait(t)
	for i, v := range got {
		if v != i {
			t.Fatalf("fired %v, want 0..19 in add order", got)
		}
	}
}

// An item due now, added after one due in an hour, wakes the queue: it does not wait for the far
// item's timer.
func TestQueueEarlierItemWakesTheLoop(t *testing.T) {
	t.Parallel()
	c := newCollector(1)
	q := New(time.Now, c.fire)
	q.Add(time.Now().Add(time.Hour), 2)
	q.Add(time.Now().Add(-time.Second), 1)
	if got := c.wait(t); len(got) != 1 || got[0] != 1 {
		t.Fatalf("fired %v, want [1]", got)
	}
	if left := q.Close(); len(left) != 1 || left[0] != 2 {
		t.Fatalf("Close returned %v, want [2]", left)
	}
}

// The queue asks its clock, not the wall clock: an item the clock says is due fires even though
// it lies in the real future.
func TestQueueUsesItsClock(t *testing.T) {
	t.Parallel()
	c := newCollector(1)
	future := time.Now().Add(24 * time.Hour)
	q := New(func() time.Time { return future }, c.fire)
	defer q.Close()
	q.Add(future.Add(-time.Second), 7)
	if got := c.wait(t); len(got) != 1 || got[0] != 7 {
		t.Fatalf("fired %v, want [7]", got)
	}
}

// Close on a queue with nothing waiting returns nothing and stops its goroutine (goleak in
// TestMain checks the goroutine).
func TestQueueCloseEmpty(t *testing.T) {
	t.Parallel()
	q := New(time.Now, func(int) { t.Error("fired on an empty queue") })
	if left := q.Close(); len(left) != 0 {
		t.Fatalf("Close returned %v", left)
	}
}
