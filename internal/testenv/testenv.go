// Package testenv gives tests the real services they run against, with per-test names so tests run
// in parallel and leave nothing behind. A missing service fails the test loudly; nothing is skipped.
//
//	AMQP_URL   default amqp://guest:guest@127.0.0.1:5672/
//	REDIS_URL  default redis://127.0.0.1:6379/0
//
// PostgreSQL, which only the ads side's tests need, is in internal/testdb, so that the Celery
// library's test binaries do not link sqlx, lib/pq or the ads schema (internal/layout checks it).
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"
)

// AMQPURL is the RabbitMQ the tests use.
func AMQPURL() string {
	if u := os.Getenv("AMQP_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// RedisURL is the Redis the tests use.
func RedisURL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// Suffix returns a short random string for unique names.
func Suffix() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Name returns a name unique to this test run, readable in the RabbitMQ UI: prefix.test-xxxx.
func Name(t testing.TB, prefix string) string {
	n := strings.ToLower(t.Name())
	n = strings.NewReplacer("/", "-", " ", "-", "#", "").Replace(n)
	if len(n) > 40 {
		n = n[:40]
	}
	return prefix + "." + n + "-" + Suffix()
}

// AMQP dials RabbitMQ, failing the test if it is not there, and closes the connection at cleanup.
func AMQP(t testing.TB) *amqp.Connection {
	t.Helper()
	conn, err := amqp.Dial(AMQPURL())
	if err != nil {
		t.Fatalf("RabbitMQ is required at %s (run scripts/services.sh): %v", AMQPURL(), err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// DeleteQueuesAtCleanup deletes the named queues (and exchanges of the same name) when the test ends.
func DeleteQueuesAtCleanup(t testing.TB, names ...string) {
	t.Helper()
	t.Cleanup(func() {
		conn, err := amqp.Dial(AMQPURL())
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		defer conn.Close()
		for _, n := range names {
			ch, err := conn.Channel()
			if err != nil {
				t.Errorf("cleanup: %v", err)
				return
			}
			_, _ = ch.QueueDelete(n, false, false, false)
			_ = ch.Close()
			if ch, err = conn.Channel(); err == nil {
				_ = ch.ExchangeDelete(n, false, false)
				_ = ch.Close()
			}
		}
	})
}

// Redis returns a client, failing the test if Redis is not there.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rc.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis is required at %s (run scripts/services.sh): %v", RedisURL(), err)
	}
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

// DeleteKeysAtCleanup deletes the given Redis keys when the test ends.
func DeleteKeysAtCleanup(t testing.TB, rc redis.UniversalClient, keys ...string) {
	t.Cleanup(func() {
		if len(keys) > 0 {
			_ = rc.Del(context.Background(), keys...).Err()
		}
	})
}

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// FixturesDir is ../shared/fixtures beside the repository (where CI puts shared/).
func FixturesDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(RepoRoot(), "..", "shared", "fixtures")
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the Celery fixtures are required at %s: %v", dir, err)
	}
	return dir
}

// FreeAddr is a loopback host:port that nothing listens on right now: for a program that must
// be given a port to listen on, or a client that must find a port closed.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}
