// Package beatstoretest is the conformance suite of beat.Store: every store (beat.MemoryStore,
// redisbeat.Store) must pass Run, so that the scheduler can rely on what the interface documents
// whichever store it is given.
package beatstoretest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/beat"
)

// Factory returns a fresh, empty store for one subtest (its own keys, removed at t's cleanup).
type Factory func(t *testing.T) beat.Store

// Run runs the suite; newStore is called once per subtest. Stores of several beat processes are
// modelled by several goroutines sharing the one store, as the processes share its server.
func Run(t *testing.T, newStore Factory) {
	t.Helper()
	ctx := func(t *testing.T) context.Context {
		c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		t.Cleanup(cancel)
		return c
	}
	start := time.UnixMilli(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC).UnixMilli())
	entry := func(name string, every time.Duration) *beat.Entry {
		return &beat.Entry{Name: name, Task: "t." + name, Every: every}
	}

	t.Run("InitAnchorsNewEntryAndKeepsIt", func(t *testing.T) {
		t.Parallel()
		s, c := newStore(t), ctx(t)
		e := entry("e", 10*time.Second)
		anchor, last, err := s.Init(c, e, start)
		if err != nil || !anchor.Equal(start) || !last.IsZero() {
			t.Fatalf("new entry: anchor %v last %v err %v; want anchor %v, no last run", anchor, last, err, start)
		}
		anchor, last, err = s.Init(c, e, start.Add(time.Hour))
		if err != nil || !anchor.Equal(start) || !last.IsZero() {
			t.Fatalf("same entry later: anchor %v last %v err %v; want the first anchor %v", anchor, last, err, start)
		}
	})

	t.Run("ClaimMakesLastRunAndChangedEntryResets", func(t *testing.T) {
		t.Parallel()
		s, c := newStore(t), ctx(t)
		e := entry("e", 10*time.Second)
		if _, _, err := s.Init(c, e, start); err != nil {
			t.Fatal(err)
		}
		slot := start.Add(10 * time.Second)
		claims, err := s.ClaimMany(c, []beat.SlotClaim{{Name: "e", Slot: slot}}, "tok")
		if err != nil || len(claims) != 1 || claims[0] == "" {
			t.Fatalf("claim = %q, %v; want one claim", claims, err)
		}
		if _, last, err := s.Init(c, e, start.Add(time.Minute)); err != nil || !last.Equal(slot) {
			t.Fatalf("last run after the claim = %v, %v; want %v", last, err, slot)
		}
		changed := entry("e", 20*time.Second)
		later := start.Add(2 * time.Minute)
		anchor, last, err := s.Init(c, changed, later)
		if err != nil || !anchor.Equal(later) || !last.IsZero() {
			t.Fatalf("changed entry: anchor %v last %v err %v; want a new anchor %v and no last run", anchor, last, err, later)
		}
	})

	t.Run("SlotIsClaimedOnceAndNotBeforeLastRun", func(t *testing.T) {
		t.Parallel()
		s, c := newStore(t), ctx(t)
		slot := start.Add(10 * time.Second)
		one := []beat.SlotClaim{{Name: "e", Slot: slot}}
		if claims, err := s.ClaimMany(c, one, "a"); err != nil || claims[0] == "" {
			t.Fatalf("first claim = %q, %v", claims, err)
		}
		for _, tok := range []string{"a", "b"} {
			if claims, err := s.ClaimMany(c, one, tok); err != nil || claims[0] != "" {
				t.Errorf("second claim by %s = %q, %v; want none", tok, claims, err)
			}
		}
		if claims, err := s.ClaimMany(c, []beat.SlotClaim{{Name: "e", Slot: slot.Add(-time.Second)}}, "b"); err != nil || claims[0] != "" {
			t.Errorf("claim of a slot before the last run = %q, %v; want none", claims, err)
		}
		claims, err := s.ClaimMany(c, []beat.SlotClaim{{Name: "e", Slot: slot.Add(10 * time.Second)}, {Name: "other", Slot: slot}}, "b")
		if err != nil || len(claims) != 2 || claims[0] == "" || claims[1] == "" {
			t.Errorf("claims of the next slot and of another entry = %q, %v; want both", claims, err)
		}
		if claims, err := s.ClaimMany(c, nil, "b"); err != nil || len(claims) != 0 {
			t.Errorf("no slots = %q, %v", claims, err)
		}
	})

	t.Run("ConcurrentBeatsClaimEachSlotOnce", func(t *testing.T) {
		t.Parallel()
		s, c := newStore(t), ctx(t)
		const beats, slots = 6, 40
		var mu sync.Mutex
		won := map[string][]string{}
		var wg sync.WaitGroup
		errs := make(chan error, beats)
		for b := range beats {
			tok := fmt.Sprintf("beat-%d", b)
			wg.Go(func() {
				for i := range slots {
					batch := []beat.SlotClaim{{Name: "x", Slot: start.Add(time.Duration(i) * time.Second)},
						{Name: "y", Slot: start.Add(time.Duration(i) * time.Second)}}
					claims, err := s.ClaimMany(c, batch, tok)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					for j, cl := range claims {
						if cl != "" {
							k := batch[j].Name + "@" + batch[j].Slot.String()
							won[k] = append(won[k], tok)
						}
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for k, w := range won {
			if len(w) != 1 {
				t.Errorf("slot %s claimed by %v; want exactly one beat", k, w)
			}
		}
		// Every beat claims slots in order, so some beat claims each slot: none is lost.
		if len(won) != 2*slots {
			t.Errorf("%d slots claimed, want %d", len(won), 2*slots)
		}
	})

	t.Run("ReleaseLetsTheSlotBeSentAgain", func(t *testing.T) {
		t.Parallel()
		s, c := newStore(t), ctx(t)
		e := entry("e", 10*time.Second)
		if _, _, err := s.Init(c, e, start); err != nil {
			t.Fatal(err)
		}
		first, second := start.Add(10*time.Second), start.Add(20*time.Second)
		if claims, err := s.ClaimMany(c, []beat.SlotClaim{{Name: "e", Slot: first}}, "a"); err != nil || claims[0] == "" {
			t.Fatalf("claim = %q, %v", claims, err)
		}
		claims, err := s.ClaimMany(c, []beat.SlotClaim{{Name: "e", Slot: second}}, "a")
		if err != nil || claims[0] == "" {
			t.Fatalf("claim = %q, %v", claims, err)
		}
		// Another beat's claim value, or a made-up one, releases nothing.
		if err := s.Release(c, "e", second, "b|"); err != nil {
			t.Fatal(err)
		}
		if again, err := s.ClaimMany(c, []beat.SlotClaim{{Name: "e", Slot: second}}, "b"); err != nil || again[0] != "" {
			t.Fatalf("a foreign release freed the slot: %q, %v", again, err)
		}
		if err := s.Release(c, "e", second, claims[0]); err != nil {
			t.Fatal(err)
		}
		if _, last, err := s.Init(c, e, start.Add(time.Minute)); err != nil || !last.Equal(first) {
			t.Fatalf("last run after the release = %v, %v; want the previous one %v", last, err, first)
		}
		again, err := s.ClaimMany(c, []beat.SlotClaim{{Name: "e", Slot: second}}, "b")
		if err != nil || again[0] == "" {
			t.Fatalf("released slot not claimable again: %q, %v", again, err)
		}
	})

	t.Run("ReleaseOfTheFirstRunForgetsIt", func(t *testing.T) {
		t.Parallel()
		s, c := newStore(t), ctx(t)
		e := entry("e", 10*time.Second)
		if _, _, err := s.Init(c, e, start); err != nil {
			t.Fatal(err)
		}
		slot := start.Add(10 * time.Second)
		claims, err := s.ClaimMany(c, []beat.SlotClaim{{Name: "e", Slot: slot}}, "a")
		if err != nil || claims[0] == "" {
			t.Fatalf("claim = %q, %v", claims, err)
		}
		if err := s.Release(c, "e", slot, claims[0]); err != nil {
			t.Fatal(err)
		}
		if _, last, err := s.Init(c, e, start.Add(time.Minute)); err != nil || !last.IsZero() {
			t.Fatalf("last run after releasing the only run = %v, %v; want none", last, err)
		}
	})
}
