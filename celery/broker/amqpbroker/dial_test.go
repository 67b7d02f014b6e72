package amqpbroker

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/internal/tcpproxy"
	"github.com/forumads/forumads/internal/testenv"
)

// hungNode is a loopback listener that accepts connections and never answers: a RabbitMQ node
// that is up at the TCP level but stuck. accepted receives once per accepted connection.
type hungNode struct {
	ln       net.Listener
	accepted chan struct{}
}

func startHungNode(t *testing.T) *hungNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hungNode{ln: ln, accepted: make(chan struct{}, 64)}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case h.accepted <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
	})
	return h
}

func (h *hungNode) url() string { return "amqp://guest:guest@" + h.ln.Addr().String() + "//" }

// refusedURL is an AMQP URL on a loopback port nothing listens on.
func refusedURL(t *testing.T) string {
	t.Helper()
	return "amqp://guest:secret@" + testenv.FreeAddr(t) + "//"
}

// realURL is the test broker's URL with host:port spelled out, as a list entry.
func realURL(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(testenv.AMQPURL())
	if err != nil {
		t.Fatal(err)
	}
	return u.String()
}

func TestHungNodeIsSkippedAfterBrokerConnectionTimeout(t *testing.T) {
	t.Parallel()
	hung := startHungNode(t)
	second := realURL(t)
	b, err := New(hung.url()+";"+second, Options{ConnectionName: "amqpbroker-hung-node", ConnectionTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	if _, _, err := b.connection(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("connected past a hung first node in %v (amqp091-go's own handshake timeout is 30s)", time.Since(start))
	select {
	case <-hung.accepted:
	default:
		t.Fatal("the hung node was never tried first")
	}
	want, _ := ParseURLs(second)
	if got := b.Redacted(); got != redact(want[0]) {
		t.Fatalf("connected to %s, want the second node %s", got, redact(want[0]))
	}
}

func TestNegotiatedHeartbeatIsBrokerHeartbeat(t *testing.T) {
	t.Parallel()
	// RabbitMQ proposes 60s; the client's lower interval wins, as py-amqp negotiates it.
	for _, tc := range []struct {
		name string
		set  time.Duration
		want time.Duration
	}{
		{"default 120s is lowered to the server's 60s", 0, 60 * time.Second},
		{"7s", 7 * time.Second, 7 * time.Second},
		{"30s", 30 * time.Second, 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := New(testenv.AMQPURL(), Options{ConnectionName: "amqpbroker-heartbeat", Heartbeat: tc.set})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if tc.set == 0 && b.opts.Heartbeat != DefaultHeartbeat {
				t.Fatalf("default heartbeat %v, want %v", b.opts.Heartbeat, DefaultHeartbeat)
			}
			c, _, err := b.connection(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if c.Config.Heartbeat != tc.want {
				t.Fatalf("negotiated heartbeat %v, want %v", c.Config.Heartbeat, tc.want)
			}
		})
	}
}

func TestFirstConnectGivesUpAsConfigured(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		nodes        int
		opts         Options
		wantAttempts int
		wantReason   string
	}{
		{"max retries 3 on one node", 1, Options{MaxRetries: 3}, 4, "broker_connection_max_retries is 3"},
		{"max retries 3 over two nodes", 2, Options{MaxRetries: 3}, 4, "broker_connection_max_retries is 3"},
		{"retry on startup off: each node once", 2, Options{NoRetryOnStartup: true}, 2, "broker_connection_retry_on_startup is off"},
		{"retry on startup off, one node", 1, Options{NoRetryOnStartup: true, MaxRetries: -1}, 1, "broker_connection_retry_on_startup is off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var urls []string
			for range tc.nodes {
				urls = append(urls, refusedURL(t))
			}
			opts := tc.opts
			opts.MinBackoff, opts.MaxBackoff = time.Millisecond, time.Millisecond
			b, err := New(strings.Join(urls, ";"), opts)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			q := broker.Queue{Name: testenv.Name(t, "never"), ExchangeType: "direct"}
			err = b.Declare(context.Background(), q)
			var ce *ConnectError
			if !errors.As(err, &ce) {
				t.Fatalf("Declare = %v, want a *ConnectError", err)
			}
			if ce.Attempts != tc.wantAttempts || ce.Reason != tc.wantReason || strings.Contains(err.Error(), "secret") {
				t.Fatalf("error %q (attempts %d), want %d attempts, %q, no password", err, ce.Attempts, tc.wantAttempts, tc.wantReason)
			}
			if b.retryable(context.Background(), err) {
				t.Fatal("a ConnectError must not be retried")
			}
		})
	}
}

func TestRetryOnStartupReachesTheBrokerOnceItIsUp(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(realURL(t))
	if err != nil {
		t.Fatal(err)
	}
	p := tcpproxy.Start(t, u.Host)
	p.Pause()
	u.Host = p.Addr()
	b, err := New(u.String(), Options{ConnectionName: "amqpbroker-startup-retry", MaxRetries: -1,
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	done := make(chan error, 1)
	go func() {
		_, _, err := b.connection(context.Background())
		done <- err
	}()
	testenv.Eventually(t, 30*time.Second, func() bool { return p.Refused() >= 3 }, "three refused attempts")
	p.Resume()
	if err := <-done; err != nil {
		t.Fatalf("connecting after the broker came up: %v", err)
	}
	if b.Connects() != 1 {
		t.Fatalf("Connects = %d, want 1", b.Connects())
	}
}

func TestSlowDialDoesNotHoldTheBroker(t *testing.T) {
	t.Parallel()
	hung := startHungNode(t)
	b, err := New(hung.url(), Options{ConnectionName: "amqpbroker-slow-dial", ConnectionTimeout: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := b.connection(context.Background())
		done <- err
	}()
	<-hung.accepted // the dial is now waiting for a handshake that never comes
	// These take b.mu: before, the dial held it for its whole duration.
	if b.Connected() {
		t.Fatal("Connected during a dial that has not finished")
	}
	if got := b.Redacted(); !strings.Contains(got, hung.ln.Addr().String()) {
		t.Fatalf("Redacted = %q", got)
	}
	// A second caller waits for the dial in progress and leaves when its context ends.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := b.connection(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("second caller: %v, want context.Canceled", err)
	}
	// Close aborts the hung handshake.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Fatal("the hung dial succeeded")
	}
}

func TestFailoverRotationUnderConcurrentUse(t *testing.T) {
	t.Parallel()
	real, err := url.Parse(realURL(t))
	if err != nil {
		t.Fatal(err)
	}
	p := tcpproxy.Start(t, real.Host)
	viaProxy := *real
	viaProxy.Host = p.Addr()
	q := broker.Queue{Name: testenv.Name(t, "rotation"), ExchangeType: "direct"}
	q.Exchange, q.RoutingKey = q.Name, q.Name
	testenv.DeleteQueuesAtCleanup(t, q.Name)
	b, err := New(refusedURL(t)+";"+viaProxy.String(), Options{ConnectionName: "amqpbroker-rotation",
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const workers, each = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				errs <- b.Publish(ctx, broker.Publishing{Exchange: q.Exchange, RoutingKey: q.RoutingKey, Declare: &q})
				_ = b.Connected()
				_ = b.Redacted()
				if w == 0 && i%10 == 9 {
					p.Cut() // every publisher fails over through the refused node again
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("publish across cuts: %v", err)
		}
	}
	if b.Connects() < 2 {
		t.Fatalf("Connects = %d: the cuts never made the broker fail over", b.Connects())
	}
	conn := testenv.AMQP(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	info, err := ch.QueueDeclarePassive(q.Name, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Publisher confirms: every publish that returned nil is in the queue (a re-publish of an
	// unconfirmed message may add a duplicate).
	if info.Messages < workers*each {
		t.Fatalf("queue holds %d messages, want at least %d", info.Messages, workers*each)
	}
	t.Logf("%d publishes across %d connections, %d messages stored", workers*each, b.Connects(), info.Messages)
}

func TestJitteredStaysWithinTheCap(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{time.Millisecond, 100 * time.Millisecond, time.Second} {
		for range 1000 {
			if j := jittered(d); j < d/2 || j > d {
				t.Fatalf("jittered(%v) = %v, want within [%v, %v]", d, j, d/2, d)
			}
		}
	}
}
