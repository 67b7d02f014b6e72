package services

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/internal/testenv"
)

func TestURLs(t *testing.T) {
	t.Setenv("AMQP_URL", "")
	t.Setenv("REDIS_URL", "redis://127.0.0.1:6379/9")
	amqpURL, redisURL := URLs()
	if amqpURL != DefaultAMQPURL || redisURL != "redis://127.0.0.1:6379/9" {
		t.Errorf("URLs() = %q, %q; want the default AMQP URL and REDIS_URL", amqpURL, redisURL)
	}
}

func TestRedisRefusesABadURL(t *testing.T) {
	if _, err := Redis(context.Background(), "http://127.0.0.1/"); err == nil || !strings.HasPrefix(err.Error(), "REDIS_URL: ") {
		t.Errorf("Redis(http URL) = %v, want a REDIS_URL error", err)
	}
}

// TestResults stores results for more ids than one chunk and reads them with WaitResults,
// CountResults and DeleteResults. Redis is required.
func TestResults(t *testing.T) {
	ctx := context.Background()
	rc, err := Redis(ctx, testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	n := ResultChunk + 5
	ids := make([]string, n)
	keys := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("services-test-%s-%d", testenv.Suffix(), i)
		keys[i] = ResultKey(ids[i])
	}
	testenv.DeleteKeysAtCleanup(t, rc, keys...)

	gone := errors.New("the workers exited")
	exited := func() error { return gone }
	if _, _, err := WaitResults(ctx, rc, ids, time.Millisecond, exited); !errors.Is(err, gone) || !strings.Contains(err.Error(), fmt.Sprintf("(%d results missing)", n)) {
		t.Fatalf("WaitResults with no results and the workers gone = %v, want %v with %d missing", err, gone, n)
	}
	for i, k := range keys {
		status := "SUCCESS"
		if i%100 == 0 {
			status = "FAILURE"
		}
		if err := rc.Set(ctx, k, `{"status": "`+status+`", "result": 3}`, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if _, failed, err := WaitResults(ctx, rc, ids, time.Millisecond, exited); err != nil || failed != (n+99)/100 {
		t.Fatalf("WaitResults = %d failed, %v; want %d, nil", failed, err, (n+99)/100)
	}
	if c, err := CountResults(ctx, rc, ids); err != nil || c != n {
		t.Fatalf("CountResults = %d, %v; want %d", c, err, n)
	}
	if err := DeleteResults(ctx, rc, ids); err != nil {
		t.Fatal(err)
	}
	if c, err := CountResults(ctx, rc, ids); err != nil || c != 0 {
		t.Fatalf("CountResults after DeleteResults = %d, %v; want 0", c, err)
	}
}
