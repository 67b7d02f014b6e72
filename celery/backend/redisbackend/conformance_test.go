package redisbackend

import (
	"context"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/backend"
	"github.com/forumads/forumads/celery/backend/backendtest"
	"github.com/forumads/forumads/internal/testenv"
)

// TestConformance runs the result backend suite against real Redis: each subtest has a key prefix
// of its own, whose keys are deleted at its cleanup.
func TestConformance(t *testing.T) {
	t.Parallel()
	rc := testenv.Redis(t)
	for _, expires := range []time.Duration{0, time.Hour} {
		t.Run("Expires="+expires.String(), func(t *testing.T) {
			t.Parallel()
			backendtest.Run(t, func(t *testing.T) backend.Backend {
				prefix := "t:" + testenv.Suffix() + ":"
				t.Cleanup(func() {
					ctx := context.Background()
					keys, err := rc.Keys(ctx, prefix+"*").Result()
					if err != nil {
						t.Errorf("listing the test's keys: %v", err)
					}
					if len(keys) > 0 {
						rc.Del(ctx, keys...)
					}
				})
				return New(rc, Options{KeyPrefix: prefix, Expires: expires})
			})
		})
	}
}
