package redisrevoke

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/forumads/forumads/celery/revoke"
	"github.com/forumads/forumads/internal/testenv"
)

// TestMain fails the run if a test leaves a subscription goroutine behind. Started with
// REVOKE_HELPER_PREFIX set, the test binary is instead another worker process revoking ids (see
// revokeFromAnotherProcess).
func TestMain(m *testing.M) {
	if prefix := os.Getenv("REVOKE_HELPER_PREFIX"); prefix != "" {
		os.Exit(helperRevoke(prefix))
	}
	goleak.VerifyTestMain(m)
}

// helperRevoke is the other process: it revokes x and y with terminate, then z, and exits 0.
func helperRevoke(prefix string) int {
	opts, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	rc := redis.NewClient(opts)
	defer rc.Close()
	s := New(rc, prefix, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Revoke(ctx, []string{"x", "y"}, true, ""); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := s.Revoke(ctx, []string{"z"}, false, ""); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// revokeFromAnotherProcess runs helperRevoke in a child process.
func revokeFromAnotherProcess(t *testing.T, prefix string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "REVOKE_HELPER_PREFIX="+prefix)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("revoking process: %v\n%s", err, out)
	}
}

// fakeClock is a settable time source, so expiry is tested without waiting.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newStore is a store under a prefix of the test's own, deleted at cleanup.
func newStore(t *testing.T, rc redis.UniversalClient, ttl time.Duration, opts ...Option) *Store {
	t.Helper()
	s := New(rc, "t:"+testenv.Suffix()+":revoked:", ttl, opts...)
	testenv.DeleteKeysAtCleanup(t, rc, s.SetKey())
	return s
}

func ctx20(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestRevokeRedisLayout: what the conformance suite (conformance_test.go) cannot see: the key and
// channel names, that the set expires with its last id, and that a refused revoke writes nothing.
func TestRevokeRedisLayout(t *testing.T) {
	t.Parallel()
	rc := testenv.Redis(t)
	s := newStore(t, rc, 0)
	ctx := ctx20(t)
	if s.TTL() != revoke.DefaultTTL || !strings.HasSuffix(s.SetKey(), ":revoked:ids") || !strings.HasSuffix(s.Channel(), ":revoked:events") {
		t.Fatalf("store %s %s %v", s.SetKey(), s.Channel(), s.TTL())
	}
	if err := s.Revoke(ctx, []string{"a", ""}, false, ""); err == nil {
		t.Fatal("a revoke with an empty id was accepted")
	}
	if n, err := rc.Exists(ctx, s.SetKey()).Result(); err != nil || n != 0 {
		t.Errorf("a refused revoke stored something: %d, %v", n, err)
	}
	if err := s.Revoke(ctx, []string{"a", "b"}, false, ""); err != nil {
		t.Fatal(err)
	}
	pttl, err := rc.PTTL(ctx, s.SetKey()).Result()
	if err != nil || pttl <= 0 || pttl > revoke.DefaultTTL {
		t.Errorf("PTTL = %v, %v; want within (0, %v]", pttl, err, revoke.DefaultTTL)
	}
	// Another store on the same prefix (another worker) sees the same ids.
	other := New(rc, strings.TrimSuffix(s.SetKey(), "ids"), 0)
	if ok, err := other.IsRevoked(ctx, "b"); err != nil || !ok {
		t.Errorf("other worker: IsRevoked(b) = %v, %v", ok, err)
	}
}

func TestRevokeExpiry(t *testing.T) {
	t.Parallel()
	rc := testenv.Redis(t)
	clock := &fakeClock{now: time.Now()}
	s := newStore(t, rc, time.Hour, WithClock(clock.Now))
	ctx := ctx20(t)
	if err := s.Revoke(ctx, []string{"old"}, false, ""); err != nil {
		t.Fatal(err)
	}
	clock.Advance(40 * time.Minute)
	if err := s.Revoke(ctx, []string{"new"}, false, ""); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30 * time.Minute) // "old" is 70 minutes old, "new" 30
	for id, want := range map[string]bool{"old": false, "new": true} {
		if got, err := s.IsRevoked(ctx, id); err != nil || got != want {
			t.Errorf("IsRevoked(%s) = %v, %v; want %v", id, got, err, want)
		}
	}
	if got, err := s.AreRevoked(ctx, []string{"old", "new"}); err != nil || !reflect.DeepEqual(got, []bool{false, true}) {
		t.Errorf("AreRevoked = %v, %v", got, err)
	}
	if ids, err := s.List(ctx); err != nil || !reflect.DeepEqual(ids, []string{"new"}) {
		t.Errorf("List = %v, %v", ids, err)
	}
	// The next revoke drops expired ids from the set; revoking again extends an id, never shortens it.
	if err := s.Revoke(ctx, []string{"new"}, false, ""); err != nil {
		t.Fatal(err)
	}
	if n, err := rc.ZCard(ctx, s.SetKey()).Result(); err != nil || n != 1 {
		t.Errorf("ZCARD = %d, %v; the expired id was not removed", n, err)
	}
	clock.Advance(45 * time.Minute)
	if ok, err := s.IsRevoked(ctx, "new"); err != nil || !ok {
		t.Errorf("re-revoked id expired with its first revoke: %v, %v", ok, err)
	}
	short := New(rc, strings.TrimSuffix(s.SetKey(), "ids"), time.Minute, WithClock(clock.Now))
	if err := short.Revoke(ctx, []string{"new"}, false, ""); err != nil {
		t.Fatal(err)
	}
	clock.Advance(10 * time.Minute)
	if ok, err := s.IsRevoked(ctx, "new"); err != nil || !ok {
		t.Errorf("a shorter revoke shortened the expiry: %v, %v", ok, err)
	}
}

func TestRevokeBoundedSize(t *testing.T) {
	t.Parallel()
	rc := testenv.Redis(t)
	clock := &fakeClock{now: time.Now()}
	s := newStore(t, rc, time.Hour, WithMaxSize(3), WithClock(clock.Now))
	ctx := ctx20(t)
	for _, id := range []string{"1", "2", "3", "4"} {
		clock.Advance(time.Second)
		if err := s.Revoke(ctx, []string{id}, false, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Revoke(ctx, []string{"5", "6"}, false, ""); err != nil {
		t.Fatal(err)
	}
	ids, err := s.List(ctx)
	slices.Sort(ids)
	// The oldest revokes (closest to expiry) were evicted first.
	if err != nil || !reflect.DeepEqual(ids, []string{"4", "5", "6"}) {
		t.Fatalf("List = %v, %v; want the 3 newest", ids, err)
	}
}

func TestSubscribeAcrossProcesses(t *testing.T) {
	t.Parallel()
	rc := testenv.Redis(t)
	logs := &testenv.LogBuffer{}
	s := newStore(t, rc, 0, WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	prefix := strings.TrimSuffix(s.SetKey(), "ids")
	ctx, cancel := context.WithCancel(ctx20(t))
	defer cancel()
	events, err := s.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Something else publishing on the channel is reported and skipped.
	if err := rc.Publish(ctx, s.Channel(), `{"hello":1}`).Err(); err != nil {
		t.Fatal(err)
	}
	revokeFromAnotherProcess(t, prefix)
	var got []revoke.Revocation
	for len(got) < 3 {
		select {
		case r := <-events:
			got = append(got, r)
		case <-ctx.Done():
			t.Fatalf("got %+v before the deadline", got)
		}
	}
	for i, want := range []revoke.Revocation{{ID: "x", Terminate: true, Signal: "SIGTERM"}, {ID: "y", Terminate: true, Signal: "SIGTERM"}, {ID: "z"}} {
		g := got[i]
		if g.ID != want.ID || g.Terminate != want.Terminate || g.Signal != want.Signal || time.Until(g.Expires) < revoke.DefaultTTL-time.Minute {
			t.Errorf("revocation %d = %+v, want %+v expiring in ~3h", i, g, want)
		}
	}
	// What the other process revoked is in the shared set too.
	if ok, err := s.AreRevoked(ctx, []string{"x", "y", "z"}); err != nil || !reflect.DeepEqual(ok, []bool{true, true, true}) {
		t.Errorf("AreRevoked after the other process = %v, %v", ok, err)
	}
	if logs.Count("revoke notice ignored", "missing ids") != 1 {
		t.Errorf("the foreign message was not reported:\n%s", logs)
	}
	cancel()
	for range events { // closed once ctx ends
	}
}

func TestUnreachableRedisIsAnError(t *testing.T) {
	t.Parallel()
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer rc.Close()
	s := New(rc, "", 0)
	if s.SetKey() != revoke.DefaultPrefix+"ids" {
		t.Errorf("default key %s", s.SetKey())
	}
	ctx := ctx20(t)
	if err := s.Revoke(ctx, []string{"a"}, false, ""); err == nil {
		t.Error("Revoke succeeded")
	}
	if _, err := s.IsRevoked(ctx, "a"); err == nil {
		t.Error("IsRevoked succeeded")
	}
	if _, err := s.AreRevoked(ctx, []string{"a"}); err == nil {
		t.Error("AreRevoked succeeded")
	}
	if _, err := s.List(ctx); err == nil {
		t.Error("List succeeded")
	}
	if _, err := s.Subscribe(ctx); err == nil {
		t.Error("Subscribe succeeded")
	}
}
