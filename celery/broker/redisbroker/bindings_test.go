package redisbroker_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/redisbroker"
	"github.com/forumads/forumads/internal/testenv"
)

// tally counts what a client sends: round trips (one per command sent alone, one per pipeline or
// transaction) and commands by name, leaving out the handshake of a new connection.
type tally struct {
	mu    sync.Mutex
	trips int
	cmds  map[string]int
}

var handshake = map[string]bool{"hello": true, "client": true, "select": true, "auth": true, "ping": true}

func (c *tally) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *tally) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.count([]redis.Cmder{cmd})
		return next(ctx, cmd)
	}
}

func (c *tally) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.count(cmds)
		return next(ctx, cmds)
	}
}

func (c *tally) count(cmds []redis.Cmder) {
	c.mu.Lock()
	defer c.mu.Unlock()
	counted := false
	for _, cmd := range cmds {
		if handshake[cmd.Name()] {
			continue
		}
		c.cmds[cmd.Name()]++
		counted = true
	}
	if counted {
		c.trips++
	}
}

// take returns the round trips and commands counted since the last take.
func (c *tally) take() (int, map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	trips, cmds := c.trips, c.cmds
	c.trips, c.cmds = 0, map[string]int{}
	return trips, cmds
}

// countedBroker is a Broker on the test's prefix with a client of its own, named name (so that the
// test can find its connections), whose commands are tallied.
func countedBroker(t *testing.T, name string) (*redisbroker.Broker, *tally) {
	t.Helper()
	opts, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	opts.DB, opts.ClientName = testDB, name
	rc := redis.NewClient(opts)
	t.Cleanup(func() { _ = rc.Close() })
	c := &tally{cmds: map[string]int{}}
	rc.AddHook(c)
	b, err := redisbroker.New(rc, redisbroker.Options{KeyPrefix: prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, c
}

// killConnections closes, from the server's side, every connection of the client named name, as a
// Redis restart or a failover closes them.
func killConnections(t *testing.T, name string) {
	t.Helper()
	admin := client(t)
	list, err := admin.ClientList(ctx(t)).Result()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, line := range strings.Split(list, "\n") {
		var id string
		named := false
		for _, f := range strings.Fields(line) {
			k, v, _ := strings.Cut(f, "=")
			switch {
			case k == "id":
				id = v
			case k == "name" && v == name:
				named = true
			}
		}
		if named && id != "" {
			if err := admin.Do(ctx(t), "CLIENT", "KILL", "ID", id).Err(); err != nil {
				t.Fatal(err)
			}
			killed++
		}
	}
	if killed == 0 {
		t.Fatalf("no connection of client %s to kill", name)
	}
}

// TestPublishSendsBindingOncePerConnection: a publish that declares its queue sends the queue's
// binding (SADD) the first time only, in the same round trip as the message (a publish through
// the default exchange is one round trip, one to a named exchange two: its bindings, then the
// push), and sends it again after the client's connections were closed and the binding set lost
// (a Redis restart without persistence); every message reaches the queue.
func TestPublishSendsBindingOncePerConnection(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name               string
		exchange, key      string // published with
		queueExchange      string // the declared queue's exchange
		sadds, tripsPerMsg int    // for the first three publishes
	}{
		{name: "default_exchange_queue_with_exchange", key: "q", queueExchange: "qx", sadds: 1, tripsPerMsg: 1},
		{name: "default_exchange_queue_without_exchange", key: "q", sadds: 0, tripsPerMsg: 1},
		{name: "named_direct_exchange", exchange: "qx", key: "rk", queueExchange: "qx", sadds: 1, tripsPerMsg: 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			clientName := "rbtest-bind-" + testenv.Suffix()
			b, tl := countedBroker(t, clientName)
			q := broker.Queue{Name: "q", Exchange: c.queueExchange, RoutingKey: c.key}
			p := plain(q.Name, "x")
			p.Exchange, p.RoutingKey, p.Declare = c.exchange, c.key, &q
			// go-redis dials a connection of its own for commands sent alone and for pipelines; a
			// dial re-sends a binding relied on, so both are dialed before counting.
			if _, err := b.Client().Pipelined(ctx(t), func(p redis.Pipeliner) error { p.Ping(ctx(t)); return nil }); err != nil {
				t.Fatal(err)
			}
			if err := b.Client().Ping(ctx(t)).Err(); err != nil {
				t.Fatal(err)
			}
			tl.take()
			for range 3 {
				if err := b.Publish(ctx(t), p); err != nil {
					t.Fatal(err)
				}
			}
			trips, cmds := tl.take()
			if cmds["sadd"] != c.sadds || trips != 3*c.tripsPerMsg || cmds["lpush"] != 3 || cmds["multi"] != 0 {
				t.Errorf("three publishes sent %v in %d round trips; want %d sadd, 3 lpush, no multi, in %d round trips",
					cmds, trips, c.sadds, 3*c.tripsPerMsg)
			}

			set := b.Options().KeyPrefix + "_kombu.binding." + c.queueExchange
			if c.queueExchange != "" {
				if err := b.Client().Del(ctx(t), set).Err(); err != nil {
					t.Fatal(err)
				}
			}
			killConnections(t, clientName)
			tl.take()
			if err := b.Publish(ctx(t), p); err != nil {
				t.Fatal(err)
			}
			if _, cmds := tl.take(); cmds["sadd"] != c.sadds {
				t.Errorf("the publish after a reconnection sent %v; want %d sadd", cmds, c.sadds)
			}
			if c.queueExchange != "" {
				members, err := b.Client().SMembers(ctx(t), set).Result()
				if err != nil || len(members) != 1 || !strings.HasSuffix(members[0], redisbroker.DefaultSep+"q") {
					t.Errorf("after the reconnection the binding set is %q (%v); want the queue's binding", members, err)
				}
			}
			if n, err := b.Client().LLen(ctx(t), b.Options().KeyPrefix+"q").Result(); err != nil || n != 4 {
				t.Errorf("the queue holds %d messages (%v); want 4", n, err)
			}
		})
	}
}

// BenchmarkPublishDeclared publishes one small message with its queue declared, through the
// default exchange, as the Go client does: declare_every_time is the old way (SADD, then the
// push: two round trips) as the baseline of the same run; once_per_connection is Publish's
// (the binding sent once, then one LPUSH per message). Round trips per publish are reported.
func BenchmarkPublishDeclared(b *testing.B) {
	for _, every := range []bool{true, false} {
		name := "once_per_connection"
		if every {
			name = "declare_every_time"
		}
		b.Run(name, func(b *testing.B) {
			opts, err := redis.ParseURL(testenv.RedisURL())
			if err != nil {
				b.Fatal(err)
			}
			opts.DB = testDB
			rc := redis.NewClient(opts)
			defer rc.Close()
			tl := &tally{cmds: map[string]int{}}
			rc.AddHook(tl)
			br, err := redisbroker.New(rc, redisbroker.Options{KeyPrefix: prefix(b)})
			if err != nil {
				b.Fatal(err)
			}
			defer br.Close()
			q := broker.Queue{Name: "bench", Exchange: "bench", RoutingKey: "bench"}
			p := plain(q.Name, "x")
			ctx := context.Background()
			tl.take()
			b.ResetTimer()
			for range b.N {
				if every {
					if err := br.Declare(ctx, q); err != nil {
						b.Fatal(err)
					}
				} else {
					p.Declare = &q
				}
				if err := br.Publish(ctx, p); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			trips, _ := tl.take()
			b.ReportMetric(float64(trips)/float64(b.N), "round-trips/op")
		})
	}
}
