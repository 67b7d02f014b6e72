package testenv

import (
	"context"
	"encoding/json"

	"github.com/redis/go-redis/v9"
)

// UnackedFor counts the entries of kombu's `unacked` hash (each a JSON [message, exchange,
// routing key]) whose routing key is queue: the messages of queue that a consumer on the Redis
// broker has taken and not yet acknowledged.
func UnackedFor(ctx context.Context, rc redis.Cmdable, queue string) (int, error) {
	entries, err := rc.HGetAll(ctx, "unacked").Result()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		var parts []json.RawMessage
		var rk string
		if json.Unmarshal([]byte(e), &parts) == nil && len(parts) == 3 && json.Unmarshal(parts[2], &rk) == nil && rk == queue {
			n++
		}
	}
	return n, nil
}
