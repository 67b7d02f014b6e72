package redisrevoke

import (
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery/backend/backendtest"
	"github.com/forumads/forumads/celery/revoke"
	"github.com/forumads/forumads/internal/tcpproxy"
	"github.com/forumads/forumads/internal/testenv"
)

// TestConformance runs the revoke store suite against real Redis: two stores on one prefix of
// the subtest's own are two workers; the prefix's key is deleted at cleanup.
func TestConformance(t *testing.T) {
	t.Parallel()
	rc := testenv.Redis(t)
	backendtest.RunRevokeStore(t, func(t *testing.T) (revoke.Store, revoke.Store) {
		s := newStore(t, rc, 0)
		return s, New(rc, strings.TrimSuffix(s.SetKey(), "ids"), 0)
	})
}

// TestConformanceGap runs the gap suite: the first store reaches Redis through a proxy of the
// subtest's own, which the interruption pauses and cuts; the second reaches Redis directly.
func TestConformanceGap(t *testing.T) {
	t.Parallel()
	rc := testenv.Redis(t)
	var mu sync.Mutex
	proxies := map[revoke.Store]*tcpproxy.Proxy{}
	backendtest.RunRevokeGap(t, func(t *testing.T) (revoke.Store, revoke.Store) {
		p, url := tcpproxy.StartURL(t, testenv.RedisURL(), "6379")
		opts, err := redis.ParseURL(url)
		if err != nil {
			t.Fatal(err)
		}
		prc := redis.NewClient(opts)
		t.Cleanup(func() { _ = prc.Close() })
		s := newStore(t, rc, 0)
		cut := New(prc, strings.TrimSuffix(s.SetKey(), "ids"), 0)
		mu.Lock()
		proxies[cut] = p
		mu.Unlock()
		return cut, s
	}, func(t *testing.T, s revoke.Store) func() {
		mu.Lock()
		p := proxies[s]
		mu.Unlock()
		p.Pause()
		if p.Cut() == 0 {
			t.Fatal("the store had no connection to cut")
		}
		return p.Resume
	})
}
