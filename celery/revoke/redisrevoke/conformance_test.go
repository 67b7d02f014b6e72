package redisrevoke

import (
	"strings"
	"testing"

	"github.com/forumads/forumads/celery/backend/backendtest"
	"github.com/forumads/forumads/celery/revoke"
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
