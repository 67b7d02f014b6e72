package testenv

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
)

// DeletePrefixAtCleanup deletes every Redis key that starts with prefix when the test ends: for a
// test whose code under test writes keys under a prefix of the test's own (result backends, revoke
// stores).
func DeletePrefixAtCleanup(t testing.TB, rc redis.UniversalClient, prefix string) {
	t.Cleanup(func() {
		ctx := context.Background()
		if keys, _ := rc.Keys(ctx, prefix+"*").Result(); len(keys) > 0 {
			_ = rc.Del(ctx, keys...).Err()
		}
	})
}
