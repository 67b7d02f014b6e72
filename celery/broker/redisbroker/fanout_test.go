package redisbroker_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery/broker/fanout"
	"github.com/forumads/forumads/celery/broker/fanout/fanouttest"
	"github.com/forumads/forumads/celery/broker/redisbroker"
	"github.com/forumads/forumads/internal/tcpproxy"
	"github.com/forumads/forumads/internal/testenv"
)

// TestFanoutConformance runs package fanout's conformance suite on the Redis transport; the
// reconnect case goes through a TCP proxy that cuts the connections.
func TestFanoutConformance(t *testing.T) {
	t.Parallel()
	fanouttest.Run(t, fanouttest.Harness{
		New: func(t *testing.T) fanout.Transport {
			return open(t, redisbroker.Options{VisibilityTimeout: time.Minute}).Fanout()
		},
		NewCuttable: func(t *testing.T) (fanout.Transport, func()) {
			opts, err := redis.ParseURL(testenv.RedisURL())
			if err != nil {
				t.Fatal(err)
			}
			p := tcpproxy.Start(t, opts.Addr)
			opts.Addr = p.Addr()
			opts.DB = testDB
			rc := redis.NewClient(opts)
			t.Cleanup(func() { _ = rc.Close() })
			b, err := redisbroker.New(rc, redisbroker.Options{KeyPrefix: prefix(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close() })
			return b.Fanout(), func() { p.Cut() }
		},
	})
}
