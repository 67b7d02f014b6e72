package backendtest

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/forumads/forumads/celery/revoke"
)

// RevokeFactory returns a fresh, empty revoke store for one subtest; its data is removed at t's
// cleanup. Two calls within one subtest must return stores sharing their ids (two workers on one
// Redis prefix; the same MemoryStore).
type RevokeFactory func(t *testing.T) (first, second revoke.Store)

// RunRevokeStore runs the revoke store suite: revoke and query, refused input, listing, and
// notices delivered to a subscriber of a store sharing the ids.
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
}
