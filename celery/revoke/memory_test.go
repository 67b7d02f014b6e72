package revoke_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/forumads/forumads/celery/backend/backendtest"
	"github.com/forumads/forumads/celery/revoke"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMemoryStoreConformance(t *testing.T) {
	t.Parallel()
	backendtest.RunRevokeStore(t, func(t *testing.T) (revoke.Store, revoke.Store) {
		s := revoke.NewMemoryStore(0)
		return s, s
	})
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// TestMemoryStoreExpiryAndBound: ids expire after the TTL, a second revoke extends an id, and past
// the bound the ids closest to expiry are evicted.
func TestMemoryStoreExpiryAndBound(t *testing.T) {
	t.Parallel()
	c := &clock{now: time.Now()}
	s := revoke.NewMemoryStore(time.Hour, revoke.WithMemoryClock(c.Now), revoke.WithMemoryMaxSize(3))
	ctx := context.Background()
	if err := s.Revoke(ctx, []string{"old"}, false, ""); err != nil {
		t.Fatal(err)
	}
	c.Advance(40 * time.Minute)
	if err := s.Revoke(ctx, []string{"new"}, false, ""); err != nil {
		t.Fatal(err)
	}
	c.Advance(30 * time.Minute)
	if got, err := s.AreRevoked(ctx, []string{"old", "new"}); err != nil || !slices.Equal(got, []bool{false, true}) {
		t.Fatalf("AreRevoked = %v, %v; want old expired, new revoked", got, err)
	}
	if err := s.Revoke(ctx, []string{"new"}, false, ""); err != nil {
		t.Fatal(err)
	}
	c.Advance(45 * time.Minute)
	if ok, err := s.IsRevoked(ctx, "new"); err != nil || !ok {
		t.Fatalf("a revoked-again id expired with its first revoke: %v, %v", ok, err)
	}
	for _, id := range []string{"1", "2", "3"} {
		c.Advance(time.Second)
		if err := s.Revoke(ctx, []string{id}, false, ""); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := s.List(ctx)
	if err != nil || !slices.Equal(ids, []string{"1", "2", "3"}) {
		t.Fatalf("List = %v, %v; want the 3 newest, soonest to expire first", ids, err)
	}
}
