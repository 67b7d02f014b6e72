package sentinelset

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/beat"
	"github.com/forumads/forumads/celery/beat/redisbeat"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/celery/redisconn"
	"github.com/forumads/forumads/celery/revoke/redisrevoke"
	"github.com/forumads/forumads/internal/testenv"
	"github.com/forumads/forumads/internal/wiring"
)

// TestEveryRedisUserThroughSentinel: the result backend (result_backend: sentinel://…), the revoke
// store and beat's store, built by the programs' wiring from the one configuration shape, read and
// write through the Sentinel-named master, on the URL's database, with both passwords.
func TestEveryRedisUserThroughSentinel(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cfg := celery.Config{ResultBackend: set.URL(3), ResultBackendTransportOptions: set.TransportOptions()}
	be, closer, err := wiring.Backend(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	id := "sentinelset-" + testenv.Suffix()
	if err := be.Store(ctx, protocol.ResultMeta{TaskID: id, Status: protocol.StateSuccess, Result: []byte("42")}); err != nil {
		t.Fatalf("store through Sentinel: %v", err)
	}
	got, err := be.Get(ctx, id)
	if err != nil || got.Status != protocol.StateSuccess || string(got.Result) != "42" {
		t.Fatalf("read back through Sentinel: %+v, %v", got, err)
	}
	// The key is on the master the Sentinels name, in database 3.
	master, err := set.Master()
	if err != nil {
		t.Fatal(err)
	}
	direct := redis.NewClient(&redis.Options{Addr: master, Password: Password, DB: 3})
	defer direct.Close()
	if n, err := direct.Exists(ctx, "celery-task-meta-"+id).Result(); err != nil || n != 1 {
		t.Fatalf("celery-task-meta-%s on the master %s db 3: %d, %v", id, master, n, err)
	}
	defer direct.Del(context.Background(), "celery-task-meta-"+id)

	// Revokes and beat take result_backend_transport_options for their own URLs.
	rc, err := wiring.AppRedis(cfg, set.URL(4), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	prefix := "sentinelset:" + testenv.Suffix() + ":"
	rs := redisrevoke.New(rc, prefix+"revoked:", time.Minute)
	if err := rs.Revoke(ctx, []string{id}, false, ""); err != nil {
		t.Fatalf("revoke through Sentinel: %v", err)
	}
	if ok, err := rs.IsRevoked(ctx, id); err != nil || !ok {
		t.Fatalf("IsRevoked through Sentinel: %v, %v", ok, err)
	}
	bs := redisbeat.New(rc, prefix+"beat:", time.Second)
	e := &beat.Entry{Name: "tick", Task: "sentinel.tick", Every: time.Second}
	now := time.Now()
	if _, _, err := bs.Init(ctx, e, now); err != nil {
		t.Fatalf("beat state through Sentinel: %v", err)
	}
	claims, err := bs.ClaimMany(ctx, []beat.SlotClaim{{Name: "tick", Slot: now.Truncate(time.Second)}}, "token")
	if err != nil || len(claims) != 1 || claims[0] == "" {
		t.Fatalf("beat claim through Sentinel: %q, %v", claims, err)
	}
	direct4 := redis.NewClient(&redis.Options{Addr: master, Password: Password, DB: 4})
	defer direct4.Close()
	keys, err := direct4.Keys(ctx, prefix+"*").Result()
	if err != nil || len(keys) < 3 {
		t.Fatalf("keys under %s on the master's db 4: %q, %v", prefix, keys, err)
	}
	direct4.Del(context.Background(), keys...)
}

// TestStartupErrors: what a program reports at start for each Sentinel misconfiguration, checked
// against the real Sentinels.
func TestStartupErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		url       string
		transport map[string]any
		want      string
		noMaster  bool
	}{
		{name: "a master name the Sentinels do not monitor", url: set.URL(0),
			transport: map[string]any{"master_name": "nosuchmaster", "sentinel_kwargs": map[string]any{"password": SentinelPassword}},
			want:      `monitors no master named "nosuchmaster"`, noMaster: true},
		{name: "no sentinel_kwargs password", url: set.URL(0), transport: map[string]any{"master_name": MasterName}, want: "NOAUTH"},
		{name: "a wrong sentinel_kwargs password", url: set.URL(0),
			transport: map[string]any{"master_name": MasterName, "sentinel_kwargs": map[string]any{"password": "wrong"}}, want: "WRONGPASS"},
		{name: "no master_name", url: set.URL(0), want: "master_name"},
		{name: "unknown scheme", url: "redis-sentinel://127.0.0.1:26390", transport: set.TransportOptions(), want: "unknown scheme"},
		{name: "unparsable", url: "sentinel://127.0.0.1:26390/x", transport: set.TransportOptions(), want: "invalid database number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := wiring.RedisSpec(tc.url, tc.transport, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("RedisSpec: %v, want an error saying %q", err, tc.want)
			}
			var nm *redisconn.NoMasterError
			if errors.As(err, &nm) != tc.noMaster {
				t.Errorf("NoMasterError: %v, want %v", errors.As(err, &nm), tc.noMaster)
			}
			if strings.Contains(err.Error(), Password) || strings.Contains(err.Error(), SentinelPassword) {
				t.Errorf("the error shows a password: %v", err)
			}
			// The result backend reports the same, naming its setting.
			_, _, berr := wiring.Backend(celery.Config{ResultBackend: tc.url, ResultBackendTransportOptions: tc.transport})
			if berr == nil || !strings.HasPrefix(berr.Error(), "result_backend: ") ||
				!strings.Contains(berr.Error(), tc.want) && !strings.Contains(berr.Error(), "not supported") {
				t.Errorf("Backend: %v", berr)
			}
		})
	}
	// The master's own password is checked by the master: a wrong one fails the first command.
	spec, err := wiring.RedisSpec(strings.Replace(set.URL(0), Password, "wrong", 1), set.TransportOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rc := spec.WithDefaults().NewClient()
	defer rc.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := rc.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("a wrong master password: %v", err)
	}
}

// TestRedisBrokerThroughSentinel: broker_url sentinel://… with master_name in
// broker_transport_options gives the Redis broker on the Sentinel-named master: a message published
// through it is consumed and acknowledged, and its queue list is on the master, in the URL's database.
func TestRedisBrokerThroughSentinel(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cfg := celery.Config{BrokerURL: set.URL(5), BrokerTransportOptions: set.TransportOptions()}
	b, err := wiring.Broker(cfg, "sentinelset-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, ok := b.(*wiring.RedisBroker); !ok {
		t.Fatalf("broker_url %s gave %T, want the Redis broker", cfg.BrokerURL, b)
	}
	q := broker.Queue{Name: "sentinelset." + testenv.Suffix()}
	if err := b.Declare(ctx, q); err != nil {
		t.Fatalf("declare through Sentinel: %v", err)
	}
	master, err := set.Master()
	if err != nil {
		t.Fatal(err)
	}
	direct := redis.NewClient(&redis.Options{Addr: master, Password: Password, DB: 5})
	defer direct.Close()
	defer func() {
		keys, _ := direct.Keys(context.Background(), "*"+q.Name+"*").Result()
		if len(keys) > 0 {
			direct.Del(context.Background(), keys...)
		}
		bindings, _ := direct.Keys(context.Background(), "_kombu.binding.*").Result()
		for _, set := range bindings {
			members, _ := direct.SMembers(context.Background(), set).Result()
			for _, m := range members {
				if strings.Contains(m, q.Name) {
					direct.SRem(context.Background(), set, m)
				}
			}
		}
	}()
	env := protocol.Envelope{ContentType: "application/json", ContentEncoding: "utf-8", Body: []byte(`[[], {}, {}]`),
		Headers: map[string]any{"id": "sentinelset-" + testenv.Suffix(), "task": "sentinel.tick"}}
	if err := b.Publish(ctx, broker.Publishing{RoutingKey: q.Name, Envelope: env, Declare: &q}); err != nil {
		t.Fatalf("publish through Sentinel: %v", err)
	}
	if n, err := direct.LLen(ctx, q.Name).Result(); err != nil || n != 1 {
		t.Fatalf("list %s on the master %s db 5: %d messages, %v; want 1", q.Name, master, n, err)
	}
	deliveries, err := b.Consume(ctx, []broker.Queue{q}, 1)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-deliveries:
		if d == nil || d.Headers["task"] != "sentinel.tick" {
			t.Fatalf("consumed %+v, want the published message", d)
		}
		if err := d.Ack(); err != nil {
			t.Fatalf("ack through Sentinel: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("nothing consumed through Sentinel")
	}
	if err := b.StopConsuming(ctx); err != nil {
		t.Fatal(err)
	}
	for range deliveries {
	}
}
