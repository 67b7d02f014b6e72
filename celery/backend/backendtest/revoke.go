package backendtest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/revoke"
)

// RevokeFactory returns a fresh, empty revoke store for one subtest; its data is removed at t's
// cleanup. Two calls within one subtest must return stores sharing their ids (two workers on one
// Redis prefix; the same MemoryStore).
type RevokeFactory func(t *testing.T) (first, second revoke.Store)

// RunRevokeStore runs the revoke store suite: revoke and query, refused input, listing, notices
// delivered to a subscriber of a store sharing the ids, and, for a revoke.Follower, its Live
// marker first and Entries agreeing with List. A store that can lose its subscription on purpose
// runs RunRevokeGap too.
func RunRevokeStore(t *testing.T, newStores RevokeFactory) {
	t.Helper()
	t.Run("RevokeAndQuery", func(t *testing.T) {
		t.Parallel()
		s, other := newStores(t)
		ctx := testCtx(t)
		if s.TTL() <= 0 || s.String() == "" {
			t.Errorf("TTL %v, String %q; want both set", s.TTL(), s.String())
		}
		if err := s.Revoke(ctx, []string{"a", "b"}, false, ""); err != nil {
			t.Fatal(err)
		}
		if err := s.Revoke(ctx, []string{"c"}, true, "KILL"); err != nil {
			t.Fatal(err)
		}
		for id, want := range map[string]bool{"a": true, "b": true, "c": true, "d": false, "": false} {
			if got, err := s.IsRevoked(ctx, id); err != nil || got != want {
				t.Errorf("IsRevoked(%q) = %v, %v; want %v", id, got, err, want)
			}
		}
		got, err := s.AreRevoked(ctx, []string{"a", "d", "c", "a"})
		if err != nil || !slices.Equal(got, []bool{true, false, true, true}) {
			t.Errorf("AreRevoked = %v, %v", got, err)
		}
		if got, err := s.AreRevoked(ctx, nil); err != nil || len(got) != 0 {
			t.Errorf("AreRevoked(nil) = %v, %v", got, err)
		}
		ids, err := s.List(ctx)
		slices.Sort(ids)
		if err != nil || !slices.Equal(ids, []string{"a", "b", "c"}) {
			t.Errorf("List = %v, %v", ids, err)
		}
		if ok, err := other.IsRevoked(ctx, "b"); err != nil || !ok {
			t.Errorf("a store sharing the ids: IsRevoked(b) = %v, %v", ok, err)
		}
	})
	t.Run("BadInputRevokesNothing", func(t *testing.T) {
		t.Parallel()
		s, _ := newStores(t)
		ctx := testCtx(t)
		for _, tc := range []struct {
			ids       []string
			terminate bool
			signal    string
			want      string
		}{
			{[]string{"a", ""}, false, "", "empty task id"},
			{[]string{"a"}, true, "SIGNOPE", "no such signal"},
			{[]string{"a"}, true, "term", "uppercase"},
			{[]string{"a"}, false, "99", "no such signal"},
			{[]string{"\xff"}, false, "", "UTF-8"},
		} {
			if err := s.Revoke(ctx, tc.ids, tc.terminate, tc.signal); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Revoke(%q, %v, %q) = %v, want %q", tc.ids, tc.terminate, tc.signal, err, tc.want)
			}
		}
		if err := s.Revoke(ctx, nil, false, ""); err != nil {
			t.Errorf("Revoke(nil) = %v", err)
		}
		if ids, err := s.List(ctx); err != nil || len(ids) != 0 {
			t.Errorf("refused revokes stored %v (%v)", ids, err)
		}
	})
	t.Run("SubscriberLearnsRevokes", func(t *testing.T) {
		t.Parallel()
		s, other := newStores(t)
		ctx, cancel := context.WithCancel(testCtx(t))
		defer cancel()
		ch, err := s.Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Revoke(ctx, []string{"x", "y"}, true, ""); err != nil {
			t.Fatal(err)
		}
		if err := other.Revoke(ctx, []string{"z"}, false, ""); err != nil {
			t.Fatal(err)
		}
		var got []revoke.Revocation
		for len(got) < 3 {
			select {
			case r := <-ch:
				got = append(got, r)
			case <-ctx.Done():
				t.Fatalf("got %+v before the deadline", got)
			}
		}
		for i, want := range []revoke.Revocation{{ID: "x", Terminate: true, Signal: "SIGTERM"}, {ID: "y", Terminate: true, Signal: "SIGTERM"}, {ID: "z"}} {
			g := got[i]
			if g.ID != want.ID || g.Terminate != want.Terminate || g.Signal != want.Signal || g.Expires.IsZero() {
				t.Errorf("revocation %d = %+v, want %+v with an expiry", i, g, want)
			}
		}
		cancel()
		for range ch { // closed once ctx ends
		}
	})
	t.Run("FollowerStartsLive", func(t *testing.T) {
		t.Parallel()
		s, other := newStores(t)
		ctx, cancel := context.WithCancel(testCtx(t))
		defer cancel()
		if err := other.Revoke(ctx, []string{"before"}, false, ""); err != nil {
			t.Fatal(err)
		}
		f, ch := followLive(ctx, t, s, t.Skipf)
		if err := other.Revoke(ctx, []string{"after"}, true, "KILL"); err != nil {
			t.Fatal(err)
		}
		if r := receive(ctx, t, ch); r.ID != "after" || !r.Terminate || r.Signal != "SIGKILL" || r.Live || r.Gap {
			t.Errorf("revocation after Live = %+v", r)
		}
		entries, err := f.Entries(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]string, len(entries))
		for i, e := range entries {
			got[i] = e.ID
			if left := time.Until(e.Expires); left <= 0 || left > s.TTL() {
				t.Errorf("entry %+v expires in %v, want within (0, %v]", e, left, s.TTL())
			}
		}
		if !slices.Equal(got, ids) || len(ids) != 2 {
			t.Errorf("Entries %v, List %v; want the same 2 ids", got, ids)
		}
		cancel()
		for range ch {
		}
	})
}

// Interrupt breaks the subscriptions of store s, as a lost connection would, and keeps them from
// being renewed until resume is called.
type Interrupt func(t *testing.T, s revoke.Store) (resume func())

// RunRevokeGap runs the suite of a revoke.Follower that can lose its subscription: after
// interrupt it sends a Gap; an id revoked while the subscription is down is in Entries; after
// resume it sends Live, and then delivers revokes again.
func RunRevokeGap(t *testing.T, newStores RevokeFactory, interrupt Interrupt) {
	t.Helper()
	t.Run("GapThenLive", func(t *testing.T) {
		t.Parallel()
		s, other := newStores(t)
		ctx, cancel := context.WithCancel(testCtx(t))
		defer cancel()
		f, ch := followLive(ctx, t, s, t.Fatalf)
		resume := interrupt(t, s)
		if r := receive(ctx, t, ch); !r.Gap || r.Live || r.ID != "" {
			t.Fatalf("after the interruption: %+v, want a Gap marker", r)
		}
		if err := other.Revoke(ctx, []string{"lost"}, false, ""); err != nil {
			t.Fatal(err)
		}
		resume()
		for {
			r := receive(ctx, t, ch)
			if r.Live {
				break
			}
			// The notice of "lost" may still arrive if the store renewed its subscription before
			// it was sent; nothing else may.
			if r.Gap || r.ID != "lost" {
				t.Fatalf("before Live again: %+v", r)
			}
		}
		entries, err := f.Entries(ctx)
		if err != nil || len(entries) != 1 || entries[0].ID != "lost" {
			t.Errorf("Entries after the gap = %+v, %v; want the id revoked meanwhile", entries, err)
		}
		if err := other.Revoke(ctx, []string{"seen"}, false, ""); err != nil {
			t.Fatal(err)
		}
		if r := receive(ctx, t, ch); r.ID != "seen" {
			t.Errorf("after Live again: %+v, want the revoke of seen", r)
		}
		cancel()
		for range ch {
		}
	})
}

// followLive follows s (a revoke.Follower: notFollower, t.Skipf or t.Fatalf, ends the test when it
// is not) until ctx ends, and checks that the first value it sends is the Live marker.
func followLive(ctx context.Context, t *testing.T, s revoke.Store, notFollower func(string, ...any)) (revoke.Follower, <-chan revoke.Revocation) {
	t.Helper()
	f, ok := s.(revoke.Follower)
	if !ok {
		notFollower("%s is not a revoke.Follower", s)
		return nil, nil
	}
	ch, err := f.Follow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := receive(ctx, t, ch); !r.Live || r.Gap || r.ID != "" {
		t.Fatalf("first value of Follow = %+v, want a Live marker", r)
	}
	return f, ch
}

// receive is the next value of ch, failing the test if ctx ends or ch closes first.
func receive(ctx context.Context, t *testing.T, ch <-chan revoke.Revocation) revoke.Revocation {
	t.Helper()
	select {
	case r, ok := <-ch:
		if !ok {
			t.Fatal("the subscription's channel closed")
		}
		return r
	case <-ctx.Done():
		t.Fatal("nothing received before the deadline")
	}
	return revoke.Revocation{}
}
