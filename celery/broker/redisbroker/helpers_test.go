package redisbroker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery/broker/redisbroker"
	"github.com/forumads/forumads/internal/testenv"
)

// testDB is the Redis database the broker tests use (10-13 are theirs); every test also has a key
// prefix of its own (kombu's global_keyprefix), deleted at its cleanup.
const testDB = 10

// client returns a client on testDB, failing the test when Redis is not there.
func client(t testing.TB) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	opts.DB = testDB
	rc := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rc.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis is required at %s (run scripts/services.sh): %v", testenv.RedisURL(), err)
	}
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

var prefixes sync.Map // test name -> prefix, so that brokers opened by one test share their keys

// prefix is the test's key prefix; its keys are deleted when the test ends.
func prefix(t testing.TB) string {
	t.Helper()
	p := "rbtest." + testenv.Suffix() + "."
	got, loaded := prefixes.LoadOrStore(t.Name(), p)
	if loaded {
		return got.(string)
	}
	rc := client(t)
	t.Cleanup(func() {
		prefixes.Delete(t.Name())
		deleteKeys(t, rc, p)
	})
	return p
}

func deleteKeys(t testing.TB, rc *redis.Client, p string) {
	ctx := context.Background()
	iter := rc.Scan(ctx, 0, p+"*", 1000).Iterator()
	for iter.Next(ctx) {
		_ = rc.Del(ctx, iter.Val()).Err()
	}
	if err := iter.Err(); err != nil {
		t.Errorf("cleanup of %s*: %v", p, err)
	}
}

// open returns a Broker on the test's prefix, closed at cleanup.
func open(t testing.TB, opts redisbroker.Options) *redisbroker.Broker {
	t.Helper()
	opts.KeyPrefix = prefix(t)
	b, err := redisbroker.New(client(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func redisZ(member string, score float64) redis.Z { return redis.Z{Score: score, Member: member} }

// logs collects a Broker's log records (slog's JSON lines) for a test to read.
type logs struct{ testenv.LogBuffer }

// logger is a Logger writing to l at every level.
func (l *logs) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// records are the records logged at level whose message contains msg.
func (l *logs) records(t testing.TB, level, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range bytes.Split([]byte(l.String()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m, _ := r["msg"].(string); r["level"] == level && bytes.Contains([]byte(m), []byte(msg)) {
			out = append(out, r)
		}
	}
	return out
}
