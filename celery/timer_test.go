package celery

import (
	"sync"
	"testing"
	"time"
)

func TestTimerQueueFiresInOrder(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []int
	done := make(chan struct{})
	q := newTimerQueue(time.Now, func(v int) {
		mu.Lock()
		got = append(got, v)
		if len(got) == 3 {
			close(done)
		}
		mu.Unlock()
	})
	now := time.Now()
	q.add(now.Add(60*time.Millisecond), 3)
	q.add(now.Add(20*time.Millisecond), 1)
	q.add(now.Add(40*time.Millisecond), 2)
	q.add(now.Add(time.Hour), 4)
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
	if q.len() != 1 {
		t.Fatalf("len = %d, want 1 (the far one)", q.len())
	}
	left := q.close()
	if len(left) != 1 || left[0] != 4 {
		t.Fatalf("close returned %v, want [4]", left)
	}
}

func TestTimerQueueRemoveIf(t *testing.T) {
	t.Parallel()
	q := newTimerQueue(time.Now, func(int) {})
	defer q.close()
	for i := 0; i < 10; i++ {
		q.add(time.Now().Add(time.Hour+time.Duration(i)), i)
	}
	removed := q.removeIf(func(v int) bool { return v%2 == 0 })
	if len(removed) != 5 || q.len() != 5 {
		t.Fatalf("removed %v, %d left", removed, q.len())
	}
}

func TestRecentSetForgetsOldest(t *testing.T) {
	t.Parallel()
	s := newRecentSet(3)
	for _, k := range []string{"a", "b", "c", "a", "d"} {
		s.add(k)
	}
	for k, want := range map[string]bool{"a": false, "b": true, "c": true, "d": true, "e": false} {
		if s.has(k) != want {
			t.Errorf("has(%q) = %v, want %v", k, !want, want)
		}
	}
}
