package engine

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/memorybroker"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/celery/revoke"
	"github.com/forumads/forumads/celery/revoke/redisrevoke"
	"github.com/forumads/forumads/internal/tcpproxy"
	"github.com/forumads/forumads/internal/testenv"
)

// countingStore is the Redis store (a revoke.Follower) counting its AreRevoked calls.
type countingStore struct {
	*redisrevoke.Store
	asked atomic.Int64
}

func (c *countingStore) AreRevoked(ctx context.Context, ids []string) ([]bool, error) {
	c.asked.Add(1)
	return c.Store.AreRevoked(ctx, ids)
}

// plainStore hides the Follower methods of the store it wraps: a Store that signals no gaps.
type plainStore struct{ revoke.Store }

// noopTasks registers t.noop, which returns null.
type noopTasks struct{}

func (noopTasks) Lookup(name string) (*Task, bool) {
	if name != "t.noop" {
		return nil, false
	}
	return &Task{Name: name, Run: func(context.Context, Call) Outcome { return Outcome{Result: json.RawMessage("null")} }}, true
}

func (noopTasks) Names() []string { return []string{"t.noop"} }

// outcomeMetrics hands over the outcome of every task finished.
type outcomeMetrics struct{ outcomes chan string }

func (outcomeMetrics) TaskReceived(string)                         {}
func (outcomeMetrics) TaskStarted(string, time.Duration)           {}
func (outcomeMetrics) DeadLettered(string)                         {}
func (m outcomeMetrics) TaskFinished(_, o string, _ time.Duration) { m.outcomes <- o }

// revokeWorker is an engine on a memory broker with a revoke store, running until the test ends.
type revokeWorker struct {
	w       *Engine
	br      *memorybroker.Broker
	queue   broker.Queue
	metrics outcomeMetrics
	syncs   chan bool // each change of the engine's synced state
}

func startRevokeWorker(t *testing.T, store revoke.Store) *revokeWorker {
	t.Helper()
	br := memorybroker.New()
	t.Cleanup(func() { _ = br.Close() })
	rw := &revokeWorker{br: br, queue: broker.Queue{Name: testenv.Name(t, "revsync")},
		metrics: outcomeMetrics{outcomes: make(chan string, 16)}, syncs: make(chan bool, 16)}
	w, err := New(Options{Settings: Settings{Concurrency: 1, PrefetchMultiplier: 4}, Tasks: noopTasks{}, Broker: br,
		Queues: []broker.Queue{rw.queue}, Revokes: store, Metrics: rw.metrics, Hostname: "celery@revsync"})
	if err != nil {
		t.Fatal(err)
	}
	w.onSync = func(synced bool) { rw.syncs <- synced }
	rw.w = w
	testenv.RunUntilCleanup(t, "Run", w.Run)
	return rw
}

// run sends a t.noop task with this id and returns its outcome ("success", "revoked").
func (rw *revokeWorker) run(ctx context.Context, t *testing.T, id string) string {
	t.Helper()
	env, err := protocol.EncodeV2(&protocol.TaskMessage{ID: id, Task: "t.noop"}, protocol.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := rw.br.Publish(ctx, broker.Publishing{RoutingKey: rw.queue.Name, Declare: &rw.queue, Envelope: env}); err != nil {
		t.Fatal(err)
	}
	select {
	case o := <-rw.metrics.outcomes:
		return o
	case <-ctx.Done():
		t.Fatalf("task %s did not finish", id)
		return ""
	}
}

// nextSync is the engine's next change of synced state.
func (rw *revokeWorker) nextSync(ctx context.Context, t *testing.T) bool {
	t.Helper()
	select {
	case v := <-rw.syncs:
		return v
	case <-ctx.Done():
		t.Fatal("the engine's synced state did not change")
		return false
	}
}

func revokeCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestRevokesSyncedSkipsTheStore: a worker on a Follower store, once synced, asks the store about
// no batch, yet refuses an id revoked before it started (loaded with the set) and one revoked
// through another store on the prefix (its notice); on a store that signals no gaps it is never
// synced and asks the store, as before.
func TestRevokesSyncedSkipsTheStore(t *testing.T) {
	t.Parallel()
	rc := testenv.Redis(t)
	tests := []struct {
		name     string
		follower bool
	}{
		{"follower", true},
		{"no gap signal", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := revokeCtx(t)
			prefix := "t:" + testenv.Suffix() + ":revoked:"
			counting := &countingStore{Store: redisrevoke.New(rc, prefix, 0)}
			testenv.DeleteKeysAtCleanup(t, rc, counting.SetKey())
			other := redisrevoke.New(rc, prefix, 0)
			if err := other.Revoke(ctx, []string{"before"}, false, ""); err != nil {
				t.Fatal(err)
			}
			var store revoke.Store = counting
			if !tc.follower {
				store = plainStore{counting}
			}
			rw := startRevokeWorker(t, store)
			if tc.follower && !rw.nextSync(ctx, t) {
				t.Fatal("the engine left a synced state it never entered")
			}
			asked := counting.asked.Load()
			if err := other.Revoke(ctx, []string{"after"}, false, ""); err != nil {
				t.Fatal(err)
			}
			if tc.follower {
				// Synced, the worker trusts what it was told: wait for the notice. (Without gap
				// signals it asks the store, whether the notice came or not.)
				testenv.Eventually(t, 20*time.Second, func() bool { return rw.w.revoked.Has("after", time.Now()) }, "the notice of after")
			}
			for id, want := range map[string]string{"before": "revoked", "after": "revoked", "fresh": "success"} {
				if got := rw.run(ctx, t, id); got != want {
					t.Errorf("task %s: %s, want %s", id, got, want)
				}
			}
			calls := counting.asked.Load() - asked
			if tc.follower && calls != 0 {
				t.Errorf("a synced worker asked the store %d times", calls)
			}
			if !tc.follower && (calls == 0 || rw.w.synced.Load()) {
				t.Errorf("a worker on a store without gap signals asked it %d times (synced %v); want asked, never synced", calls, rw.w.synced.Load())
			}
		})
	}
}

// TestRevokesGapResyncs: when the subscription's connection is killed, the worker leaves the
// synced state at once; an id revoked while the subscription is down (its notice lost) is
// refused once the worker is synced again, from the set it reloaded.
func TestRevokesGapResyncs(t *testing.T) {
	t.Parallel()
	rc := testenv.Redis(t)
	ctx := revokeCtx(t)
	proxy, url := tcpproxy.StartURL(t, testenv.RedisURL(), "6379")
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	opts.ClientName = "revsync-" + testenv.Suffix()
	prc := redis.NewClient(opts)
	t.Cleanup(func() { _ = prc.Close() })
	prefix := "t:" + testenv.Suffix() + ":revoked:"
	counting := &countingStore{Store: redisrevoke.New(prc, prefix, 0)}
	testenv.DeleteKeysAtCleanup(t, rc, counting.SetKey())
	other := redisrevoke.New(rc, prefix, 0)

	rw := startRevokeWorker(t, counting)
	if !rw.nextSync(ctx, t) {
		t.Fatal("not synced at start")
	}
	// New connections are refused from now on, so the subscription stays down once killed.
	proxy.Pause()
	id := pubsubClientID(ctx, t, rc, opts.ClientName)
	if err := rc.ClientKillByFilter(ctx, "ID", id).Err(); err != nil {
		t.Fatal(err)
	}
	if rw.nextSync(ctx, t) {
		t.Fatal("synced twice in a row")
	}
	if rw.w.revokesSynced() {
		t.Fatal("revokesSynced after the gap")
	}
	if err := other.Revoke(ctx, []string{"lost"}, false, ""); err != nil {
		t.Fatal(err)
	}
	proxy.Resume()
	if !rw.nextSync(ctx, t) {
		t.Fatal("left the synced state twice in a row")
	}
	asked := counting.asked.Load()
	if got := rw.run(ctx, t, "lost"); got != "revoked" {
		t.Errorf("task revoked during the gap: %s, want revoked", got)
	}
	if got := rw.run(ctx, t, "fresh"); got != "success" {
		t.Errorf("fresh task: %s", got)
	}
	if n := counting.asked.Load() - asked; n != 0 {
		t.Errorf("synced again, the worker asked the store %d times", n)
	}
}

// pubsubClientID is the Redis client id of the subscribed connection named name.
func pubsubClientID(ctx context.Context, t *testing.T, rc *redis.Client, name string) string {
	t.Helper()
	list, err := rc.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(list) {
		fields := map[string]string{}
		for _, f := range strings.Fields(line) {
			k, v, _ := strings.Cut(f, "=")
			fields[k] = v
		}
		if fields["name"] == name && fields["sub"] != "" && fields["sub"] != "0" {
			return fields["id"]
		}
	}
	t.Fatalf("no subscribed client named %s in CLIENT LIST:\n%s", name, list)
	return ""
}

// TestRevokesSyncedOnlyWhileNothingEvicted: a reload is synced only if the memory kept every id
// of the store, and stays so only until the memory evicts an id to make room.
func TestRevokesSyncedOnlyWhileNothingEvicted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		max        int // worker_revoke_max
		stored     int // ids in the store when it is loaded
		added      int // ids revoked here afterwards
		wantLoaded bool
		wantAfter  bool
	}{
		{"room for all", 10, 4, 2, true, true},
		{"full afterwards", 5, 4, 2, true, false},
		{"store larger than memory", 3, 4, 0, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := revokeCtx(t)
			store := revoke.NewMemoryStore(0)
			for i := range tc.stored {
				if err := store.Revoke(ctx, []string{"s" + strconv.Itoa(i)}, false, ""); err != nil {
					t.Fatal(err)
				}
			}
			br := memorybroker.New()
			t.Cleanup(func() { _ = br.Close() })
			w, err := New(Options{Settings: Settings{Concurrency: 1, RevokeMax: tc.max}, Tasks: noopTasks{},
				Broker: br, Revokes: store})
			if err != nil {
				t.Fatal(err)
			}
			if !w.reloadRevokes(ctx, store) {
				t.Fatal("the memory store could not be loaded")
			}
			if got := w.revokesSynced(); got != tc.wantLoaded {
				t.Fatalf("synced after loading %d ids into %d places: %v, want %v", tc.stored, tc.max, got, tc.wantLoaded)
			}
			exp := time.Now().Add(time.Hour)
			for i := range tc.added {
				w.revoked.Add("a"+strconv.Itoa(i), exp)
			}
			if got := w.revokesSynced(); got != tc.wantAfter {
				t.Errorf("synced after %d more ids: %v, want %v", tc.added, got, tc.wantAfter)
			}
		})
	}
}
