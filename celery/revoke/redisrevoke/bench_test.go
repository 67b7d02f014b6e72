package redisrevoke

import (
	"context"
	"strconv"
	"testing"

	"github.com/forumads/forumads/internal/testenv"
)

// BenchmarkIsRevoked is the per-task check a worker makes: one ZSCORE against a full set.
func BenchmarkIsRevoked(b *testing.B) {
	rc := testenv.Redis(b)
	s := New(rc, "t:"+testenv.Suffix()+":revoked:", 0)
	testenv.DeleteKeysAtCleanup(b, rc, s.SetKey())
	ctx := context.Background()
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = "task-" + strconv.Itoa(i)
	}
	if err := s.Revoke(ctx, ids, false, ""); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := s.IsRevoked(ctx, ids[i%len(ids)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAreRevoked checks 100 ids per round trip.
func BenchmarkAreRevoked(b *testing.B) {
	rc := testenv.Redis(b)
	s := New(rc, "t:"+testenv.Suffix()+":revoked:", 0)
	testenv.DeleteKeysAtCleanup(b, rc, s.SetKey())
	ctx := context.Background()
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = "task-" + strconv.Itoa(i)
	}
	if err := s.Revoke(ctx, ids[:50], false, ""); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.AreRevoked(ctx, ids); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRevoke is one revoke (the script: trim, add, bound, expire, publish).
func BenchmarkRevoke(b *testing.B) {
	rc := testenv.Redis(b)
	s := New(rc, "t:"+testenv.Suffix()+":revoked:", 0, WithMaxSize(10000))
	testenv.DeleteKeysAtCleanup(b, rc, s.SetKey())
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := s.Revoke(ctx, []string{"task-" + strconv.Itoa(i)}, false, ""); err != nil {
			b.Fatal(err)
		}
	}
}
