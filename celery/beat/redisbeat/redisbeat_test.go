package redisbeat_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/forumads/forumads/celery/beat"
	"github.com/forumads/forumads/celery/beat/beatstoretest"
	"github.com/forumads/forumads/celery/beat/redisbeat"
	"github.com/forumads/forumads/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestConformance runs the beat store suite against real Redis, each subtest under its own key
// prefix, whose keys are deleted at cleanup.
func TestConformance(t *testing.T) {
	t.Parallel()
	rc := testenv.Redis(t)
	beatstoretest.Run(t, func(t *testing.T) beat.Store {
		st := redisbeat.New(rc, "beat-test-"+testenv.Suffix()+":", time.Minute)
		t.Cleanup(func() {
			ctx := context.Background()
			keys, _ := rc.Keys(ctx, st.Prefix()+"*").Result()
			if len(keys) > 0 {
				rc.Del(ctx, keys...)
			}
		})
		return st
	})
}
