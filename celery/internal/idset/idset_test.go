package idset

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"
)

func TestRecentSetForgetsOldest(t *testing.T) {
	t.Parallel()
	s := NewRecent[string](3)
	for _, k := range []string{"a", "b", "c", "a", "d"} {
		s.Add(k)
	}
	for k, want := range map[string]bool{"a": false, "b": true, "c": true, "d": true, "e": false} {
		if s.Has(k) != want {
			t.Errorf("Has(%q) = %v, want %v", k, !want, want)
		}
	}
}

// A set of one remembers only the last key.
func TestRecentOfOne(t *testing.T) {
	t.Parallel()
	s := NewRecent[string](1)
	s.Add("a")
	s.Add("b")
	if s.Has("a") || !s.Has("b") {
		t.Fatalf("Has(a) = %v, Has(b) = %v; want false, true", s.Has("a"), s.Has("b"))
	}
}

// The bound holds however many keys go through: only the last n are kept.
func TestRecentStaysBounded(t *testing.T) {
	t.Parallel()
	s := NewRecent[string](100)
	for i := range 1000 {
		s.Add(fmt.Sprint(i))
	}
	s.mu.Lock()
	n := len(s.keys)
	s.mu.Unlock()
	if n != 100 {
		t.Fatalf("the set holds %d keys, want 100", n)
	}
	if !s.Has("999") || !s.Has("900") || s.Has("899") {
		t.Fatalf("Has(999) %v, Has(900) %v, Has(899) %v; want true, true, false", s.Has("999"), s.Has("900"), s.Has("899"))
	}
}

func TestRevokedSet(t *testing.T) {
	t.Parallel()
	now := time.Now()
	s := NewExpiring(10)
	if s.Has("a", now) {
		t.Fatal("empty set has a")
	}
	s.Add("a", now.Add(time.Hour))
	s.Add("a", now.Add(time.Minute)) // an earlier expiry never shortens
	s.Add("old", now.Add(-time.Second))
	if !s.Has("a", now.Add(30*time.Minute)) || s.Has("old", now) || s.Has("b", now) {
		t.Errorf("has: a %v, old %v, b %v", s.Has("a", now.Add(30*time.Minute)), s.Has("old", now), s.Has("b", now))
	}
	for i := 0; i < 25; i++ {
		s.Add(string(rune('A'+i)), now.Add(time.Duration(i+1)*time.Minute))
	}
	s.mu.RLock()
	n := len(s.ids)
	s.mu.RUnlock()
	if n > 10 {
		t.Errorf("the set holds %d ids, bound 10", n)
	}
	if !s.Has("Y", now) {
		t.Error("the id added last was evicted")
	}
	if got := s.List(now); len(got) == 0 || len(got) > 10 {
		t.Errorf("list = %v", got)
	}
}

// A later expiry extends an id.
func TestExpiringLaterExpiryWins(t *testing.T) {
	t.Parallel()
	now := time.Now()
	s := NewExpiring(10)
	s.Add("a", now.Add(time.Minute))
	s.Add("a", now.Add(time.Hour))
	if !s.Has("a", now.Add(30*time.Minute)) {
		t.Fatal("a later expiry did not extend the id")
	}
	if s.Has("a", now.Add(2*time.Hour)) {
		t.Fatal("the id is still there after its expiry")
	}
}

// When the set is full, expired ids go first: the live ones all stay.
func TestExpiringTrimsExpiredFirst(t *testing.T) {
	t.Parallel()
	now := time.Now()
	s := NewExpiring(10)
	for i := range 5 {
		s.Add(fmt.Sprint("dead", i), now.Add(-time.Minute))
	}
	for i := range 5 {
		s.Add(fmt.Sprint("live", i), now.Add(time.Hour))
	}
	s.Add("new", now.Add(time.Hour)) // full: trims the five expired ones
	got := s.List(now)
	sort.Strings(got)
	want := []string{"live0", "live1", "live2", "live3", "live4", "new"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	s.mu.RLock()
	n := len(s.ids)
	s.mu.RUnlock()
	if n != 6 {
		t.Fatalf("the set holds %d ids, want 6 (the expired ones dropped)", n)
	}
	if n := s.Evicted(); n != 0 {
		t.Fatalf("Evicted = %d; dropping expired ids is not an eviction", n)
	}
}

// When the set is full of live ids, those closest to expiry are dropped.
func TestExpiringDropsClosestToExpiry(t *testing.T) {
	t.Parallel()
	now := time.Now()
	s := NewExpiring(10)
	for i := range 10 {
		s.Add(fmt.Sprint(i), now.Add(time.Duration(i+1)*time.Minute))
	}
	if n := s.Evicted(); n != 0 {
		t.Fatalf("Evicted = %d before the set was full", n)
	}
	s.Add("new", now.Add(time.Hour))
	if s.Has("0", now) {
		t.Fatal("the id closest to expiry was kept")
	}
	if n := s.Evicted(); n != 1 {
		t.Fatalf("Evicted = %d, want the 1 live id dropped", n)
	}
	for i := 1; i < 10; i++ {
		if !s.Has(fmt.Sprint(i), now) {
			t.Fatalf("id %d was dropped, only the closest to expiry should be", i)
		}
	}
	if !s.Has("new", now) {
		t.Fatal("the id added was not kept")
	}
}

// Add, Has and List may be called at once (run with -race).
func TestSetsConcurrentUse(t *testing.T) {
	t.Parallel()
	now := time.Now()
	r := NewRecent[string](64)
	e := NewExpiring(64)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				id := fmt.Sprint(g, "-", i)
				r.Add(id)
				e.Add(id, now.Add(time.Hour))
				r.Has(id)
				e.Has(id, now)
				if i%50 == 0 {
					e.List(now)
				}
			}
		})
	}
	wg.Wait()
	if got := len(e.List(now)); got == 0 || got > 64 {
		t.Fatalf("List has %d ids, want 1..64", got)
	}
}

// The zero key is a key like any other (the ring's free slots are counted, not marked).
func TestRecentZeroKey(t *testing.T) {
	t.Parallel()
	s := NewRecent[uint64](2)
	if s.Has(0) {
		t.Fatal("an empty set has 0")
	}
	s.Add(0)
	s.Add(1)
	if !s.Has(0) || !s.Has(1) {
		t.Fatalf("Has(0) = %v, Has(1) = %v; want both", s.Has(0), s.Has(1))
	}
	s.Add(2)
	if s.Has(0) || !s.Has(1) || !s.Has(2) {
		t.Fatalf("after a third key: Has(0) %v, Has(1) %v, Has(2) %v; want false, true, true", s.Has(0), s.Has(1), s.Has(2))
	}
}
