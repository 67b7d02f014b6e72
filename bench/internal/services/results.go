package services

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ResultChunk is how many result keys one MGET, EXISTS or UNLINK names.
const ResultChunk = 1000

// ResultKey is Celery 5.2's Redis key of a task's result.
func ResultKey(id string) string { return "celery-task-meta-" + id }

// resultKeys are the result keys of ids.
func resultKeys(ids []string) []string {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = ResultKey(id)
	}
	return keys
}

// WaitResults polls Redis until a result exists for every id and returns when the last one was
// seen, with the number of results that are not SUCCESS. Ids are read with MGET, ResultChunk at a
// time, oldest first; a chunk found complete is followed at once by the next, otherwise the poll
// waits `every`. Before each wait it asks exited whether the workers are still there: its error
// ends the wait, as ctx's cause does, each with the number of results missing.
func WaitResults(ctx context.Context, rc *redis.Client, ids []string, every time.Duration, exited func() error) (time.Time, int, error) {
	pending := append([]string(nil), ids...)
	failed := 0
	success := `"status": "SUCCESS"`
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		chunk := pending[:min(ResultChunk, len(pending))]
		vals, err := rc.MGet(ctx, resultKeys(chunk)...).Result()
		if err != nil {
			return time.Now(), failed, fmt.Errorf("reading results: %w", err)
		}
		var missing []string
		for i, v := range vals {
			s, ok := v.(string)
			switch {
			case !ok:
				missing = append(missing, chunk[i])
			case !strings.Contains(s, success):
				failed++
			}
		}
		pending = append(missing, pending[len(chunk):]...)
		if len(pending) == 0 {
			return time.Now(), failed, nil
		}
		if len(missing) == 0 {
			continue
		}
		if err := exited(); err != nil {
			return time.Now(), failed, fmt.Errorf("%w (%d results missing)", err, len(pending))
		}
		select {
		case <-ctx.Done():
			return time.Now(), failed, fmt.Errorf("%w (%d results missing)", context.Cause(ctx), len(pending))
		case <-t.C:
		}
	}
}

// CountResults counts the ids whose result exists.
func CountResults(ctx context.Context, rc *redis.Client, ids []string) (int, error) {
	n := 0
	for chunk := range slices.Chunk(ids, ResultChunk) {
		c, err := rc.Exists(ctx, resultKeys(chunk)...).Result()
		if err != nil {
			return n, fmt.Errorf("counting results: %w", err)
		}
		n += int(c)
	}
	return n, nil
}

// DeleteResults deletes the result keys of ids.
func DeleteResults(ctx context.Context, rc *redis.Client, ids []string) error {
	for chunk := range slices.Chunk(ids, ResultChunk) {
		if err := rc.Unlink(ctx, resultKeys(chunk)...).Err(); err != nil {
			return fmt.Errorf("deleting results: %w", err)
		}
	}
	return nil
}
