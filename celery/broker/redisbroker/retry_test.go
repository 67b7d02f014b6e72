package redisbroker_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery/broker/redisbroker"
	"github.com/forumads/forumads/internal/testenv"
)

// outage is a loopback TCP relay to the tests' Redis that can be taken down (its listener and
// every connection closed) and brought back on the same port: a Redis that goes away for a
// while, as a master does during a Sentinel failover.
type outage struct {
	t      *testing.T
	addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
	wg    sync.WaitGroup
}

func newOutage(t *testing.T) *outage {
	t.Helper()
	opts, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	o := &outage{t: t, target: opts.Addr}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.addr = ln.Addr().String()
	o.serve(ln)
	t.Cleanup(func() { o.down(); o.wg.Wait() })
	return o
}

func (o *outage) serve(ln net.Listener) {
	o.mu.Lock()
	o.ln = ln
	o.mu.Unlock()
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r, err := net.Dial("tcp", o.target)
			if err != nil {
				_ = c.Close()
				continue
			}
			o.mu.Lock()
			o.conns = append(o.conns, c, r)
			o.mu.Unlock()
			o.wg.Add(2)
			go func() { defer o.wg.Done(); _, _ = io.Copy(r, c); _ = r.Close() }()
			go func() { defer o.wg.Done(); _, _ = io.Copy(c, r); _ = c.Close() }()
		}
	}()
}

// down refuses new connections and cuts the open ones.
func (o *outage) down() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ln != nil {
		_ = o.ln.Close()
		o.ln = nil
	}
	for _, c := range o.conns {
		_ = c.Close()
	}
	o.conns = nil
}

// up listens on the same port again.
func (o *outage) up() {
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		o.t.Errorf("listening on %s again: %v", o.addr, err)
		return
	}
	o.serve(ln)
}

// TestPublishAndAckWaitForRedis: a publish made while Redis cannot be reached (connections cut,
// then refused) goes through once Redis answers again, and so does an ack; the message is there
// exactly once. A publish whose context ends during the outage returns the connection error.
func TestPublishAndAckWaitForRedis(t *testing.T) {
	t.Parallel()
	o := newOutage(t)
	opts, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	// No retries of go-redis's own (commands, dials): the broker's are tested.
	opts.Addr, opts.DB, opts.MaxRetries, opts.DialerRetries = o.addr, testDB, -1, 1
	rc := redis.NewClient(opts)
	t.Cleanup(func() { _ = rc.Close() })
	p := prefix(t)
	var l logs
	b, err := redisbroker.New(rc, redisbroker.Options{KeyPrefix: p, Logger: l.logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	q := "outage"
	deliveries := mustConsume(t, b, q, 1)
	direct := client(t)

	o.down()
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = b.Publish(short, plain(q, "given up"))
	var ne net.Error
	if !errors.As(err, &ne) {
		t.Fatalf("a publish during the outage with a 300 ms context: %v, want the connection error", err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Publish(ctx(t), plain(q, "waited")) }()
	time.Sleep(500 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("the publish returned during the outage: %v", err)
	default:
	}
	o.up()
	if err := <-done; err != nil {
		t.Fatalf("the publish after Redis came back: %v", err)
	}
	d := recv(t, deliveries)
	if string(d.Body) != "waited" {
		t.Fatalf("got %q, want the message published during the outage", d.Body)
	}
	o.down()
	acked := make(chan error, 1)
	go func() { acked <- d.Ack() }()
	time.Sleep(300 * time.Millisecond)
	o.up()
	if err := <-acked; err != nil {
		t.Fatalf("the ack made during an outage: %v", err)
	}
	if n, _ := direct.HLen(ctx(t), p+"unacked").Result(); n != 0 {
		t.Errorf("%d entries left in the unacked hash after the ack", n)
	}
	if n, _ := direct.LLen(ctx(t), p+q).Result(); n != 0 {
		t.Errorf("%d messages left in the queue (the one that gave up must not be there either)", n)
	}
	// Both waited by retrying (not by go-redis's dialling outlasting the outage).
	for _, what := range []string{"publishing", "acknowledging"} {
		if n := len(l.records(t, "WARN", "redisbroker: "+what+" failed; retrying")); n == 0 {
			t.Errorf("no WARN record of %s retried", what)
		}
		if n := len(l.records(t, "INFO", "redisbroker: "+what+" went through after retrying")); n != 1 {
			t.Errorf("%d INFO records of %s going through after retrying, want 1", n, what)
		}
	}
}
