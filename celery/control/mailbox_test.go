package control

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/amqpbroker"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/tcpproxy"
	"github.com/forumads/forumads/internal/testenv"
)

// rig is a namespace of its own on the real RabbitMQ, with mailboxes and a client in it, all on
// one RabbitMQ transport.
type rig struct {
	t    testing.TB
	ns   string
	logs *testenv.LogBuffer
	opts Options
	tr   *amqpbroker.Fanout
}

func newRig(t testing.TB) *rig {
	t.Helper()
	ns := "gotest-" + testenv.Suffix()
	logs := &testenv.LogBuffer{}
	r := &rig{t: t, ns: ns, logs: logs, opts: Options{
		Namespace:  ns,
		Logger:     slogTo(logs),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	}, tr: newTransport(t, testenv.AMQPURL(), logs)}
	o, _ := r.opts.withDefaults()
	testenv.DeleteQueuesAtCleanup(t, o.Exchange(), o.ReplyExchange())
	return r
}

// newTransport is a RabbitMQ transport on a connection of its own to url, closed at cleanup
// (after the mailboxes started later have stopped).
func newTransport(t testing.TB, url string, logs *testenv.LogBuffer) *amqpbroker.Fanout {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	if logs != nil {
		log = slogTo(logs)
	}
	tr, err := amqpbroker.NewFanout(url, amqpbroker.Options{Logger: log, ConnectionName: "control-test " + t.Name(),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// start runs a mailbox for node on the rig's transport until the test ends and waits until it
// consumes.
func (r *rig) start(node string, opts Options, handlers map[string]Handler) *Mailbox {
	r.t.Helper()
	return r.startOn(r.tr, node, opts, handlers)
}

// startOn is start on another transport.
func (r *rig) startOn(tr *amqpbroker.Fanout, node string, opts Options, handlers map[string]Handler) *Mailbox {
	r.t.Helper()
	mb, err := NewMailbox(node, tr, opts)
	if err != nil {
		r.t.Fatal(err)
	}
	for m, h := range handlers {
		mb.Handle(m, h)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mb.Run(ctx) }()
	r.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			r.t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-mb.Ready():
	case err := <-done:
		r.t.Fatalf("mailbox stopped before consuming: %v", err)
	case <-time.After(20 * time.Second):
		r.t.Fatal("mailbox not consuming after 20s (is RabbitMQ running? scripts/services.sh)")
	}
	return mb
}

func (r *rig) client() *Client {
	r.t.Helper()
	c, err := NewClient(r.tr, r.opts)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = c.Close() })
	return c
}

func pong(context.Context, json.RawMessage) (any, error) { return OK("pong"), nil }

func ctx20(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestBroadcastAgainstRabbitMQ(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	var rateLimits sync.Map
	handlers := func(node string) map[string]Handler {
		return map[string]Handler{
			"ping": pong,
			"rate_limit": func(ctx context.Context, args json.RawMessage) (any, error) {
				a, err := DecodeRateLimitArgs(args)
				if err != nil {
					return nil, err
				}
				if req, ok := RequestFrom(ctx); !ok || req.Method != "rate_limit" {
					t.Errorf("RequestFrom: %+v, %v", req, ok)
				}
				rateLimits.Store(node, a)
				return OK(RateLimitSet), nil
			},
			"fail":  func(context.Context, json.RawMessage) (any, error) { return nil, valueError{"bad value"} },
			"panic": func(context.Context, json.RawMessage) (any, error) { panic("oops") },
		}
	}
	a, b := "celery@a-"+r.ns, "celery@b-"+r.ns
	r.start(a, r.opts, handlers(a))
	r.start(b, r.opts, handlers(b))
	c := r.client()
	ctx := ctx20(t)

	for _, tc := range []struct {
		name        string
		method      string
		args        any
		destination []string
		opts        []BroadcastOption
		want        map[string]string
	}{
		{"ping everyone", "ping", nil, nil, nil, map[string]string{a: `{"ok":"pong"}`, b: `{"ok":"pong"}`}},
		{"ping one", "ping", nil, []string{b}, nil, map[string]string{b: `{"ok":"pong"}`}},
		{"glob", "ping", nil, nil, []BroadcastOption{WithPattern("celery@a-*", MatchGlob)}, map[string]string{a: `{"ok":"pong"}`}},
		{"pcre", "ping", nil, nil, []BroadcastOption{WithPattern("celery@b", MatchPCRE), WithLimit(1)}, map[string]string{b: `{"ok":"pong"}`}},
		{"arguments", "rate_limit", map[string]string{"task_name": "x", "rate_limit": "10/m"}, []string{a},
			nil, map[string]string{a: `{"ok":"new rate limit set successfully"}`}},
		{"unknown command", "nosuch", nil, []string{a}, nil, map[string]string{a: `{"error":"KeyError('nosuch')"}`}},
		{"handler error", "fail", nil, []string{a}, nil, map[string]string{a: `{"error":"ValueError('bad value')"}`}},
		{"handler panic", "panic", nil, []string{b}, nil, map[string]string{b: `{"error":"PanicError('panic: oops')"}`}},
		{"nobody", "ping", nil, []string{"celery@nobody-" + r.ns}, nil, map[string]string{}},
	} {
		timeout := 5 * time.Second
		if tc.destination == nil || tc.name == "nobody" {
			timeout = time.Second // no limit: collect for the whole timeout
		}
		got, err := c.Broadcast(ctx, tc.method, tc.args, tc.destination, timeout, tc.opts...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: replies %s, want %v", tc.name, show(got), tc.want)
			continue
		}
		for node, w := range tc.want {
			if compactJSON(got[node]) != w {
				t.Errorf("%s: %s replied %s, want %s", tc.name, node, got[node], w)
			}
		}
	}
	if v, ok := rateLimits.Load(a); !ok || v.(RateLimitArgs) != (RateLimitArgs{TaskName: "x", RateLimit: "10/m"}) {
		t.Errorf("rate_limit handler saw %v", v)
	}
	if _, ok := rateLimits.Load(b); ok {
		t.Error("rate_limit for node a ran on node b")
	}
}

func TestCastAndBadMessagesAgainstRabbitMQ(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	node := "celery@cast-" + r.ns
	var calls atomic.Int64
	casts := make(chan string, 10)
	r.start(node, r.opts, map[string]Handler{
		"ping": func(ctx context.Context, args json.RawMessage) (any, error) { calls.Add(1); return OK("pong"), nil },
		"note": func(ctx context.Context, args json.RawMessage) (any, error) { casts <- string(args); return nil, nil },
	})
	ctx := ctx20(t)

	// Raw messages a broken client could send: none may stop the mailbox.
	o, _ := r.opts.withDefaults()
	expired, err := EncodeRequest(&Request{Method: "ping", Destination: []string{node}, Expires: float64(time.Now().Add(-time.Minute).Unix())})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []protocol.Envelope{
		{ContentType: "application/json", Body: []byte(`{"method":`)},
		{ContentType: "application/json", Body: []byte(`["ping"]`)},
		{ContentType: "application/x-python-serialize", Body: []byte("\x80\x04K\x01.")},
		{ContentType: "application/json", Body: []byte(`{"method":"ping","destination":"` + node + `"}`)},
		{ContentType: "application/json", Body: []byte(`{"method":"ping"}`), Headers: map[string]any{"clock": "x"}},
		{ContentType: "application/json", Body: expired.Body, Headers: expired.Headers},
	} {
		if err := r.tr.Publish(ctx, broker.Publishing{Exchange: o.Exchange(), Envelope: p}); err != nil {
			t.Fatal(err)
		}
	}
	c := r.client()
	if err := c.Cast(ctx, "note", map[string]int{"n": 1}, []string{node}); err != nil {
		t.Fatal(err)
	}
	select {
	case args := <-casts:
		if args != `{"n":1}` {
			t.Errorf("cast arguments %s", args)
		}
	case <-ctx.Done():
		t.Fatal("cast not handled")
	}
	got, err := c.Broadcast(ctx, "ping", nil, []string{node}, 5*time.Second)
	if err != nil || compactJSON(got[node]) != `{"ok":"pong"}` {
		t.Fatalf("ping after bad messages: %s, %v", show(got), err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("ping ran %d times; the expired and malformed requests must not run", n)
	}
	for _, want := range []string{"not a JSON object", "content type", "destination must be a list", "header clock", "control request expired"} {
		if r.logs.Count(want) == 0 {
			t.Errorf("no log line about %q in\n%s", want, r.logs)
		}
	}
}

func TestMailboxReconnects(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	node := "celery@reconnect-" + r.ns
	proxy, proxied := tcpproxy.StartURL(t, testenv.AMQPURL(), "5672")
	r.startOn(newTransport(t, proxied, r.logs), node, r.opts, map[string]Handler{"ping": pong})
	c := r.client()
	ctx := ctx20(t)
	if got, err := c.Broadcast(ctx, "ping", nil, []string{node}, 5*time.Second); err != nil || len(got) != 1 {
		t.Fatalf("first ping: %s, %v", show(got), err)
	}
	// Drop the mailbox's connection as a broker restart or a network failure would.
	if n := proxy.Cut(); n != 1 {
		t.Fatalf("cut %d connections, want the mailbox's one", n)
	}
	// The mailbox comes back: keep asking until it answers (requests sent while it is away are lost,
	// as they are for a Python worker whose auto-delete queue went away).
	for {
		got, err := c.Broadcast(ctx, "ping", nil, []string{node}, time.Second)
		if err != nil {
			t.Fatalf("ping after reconnect: %v", err)
		}
		if compactJSON(got[node]) == `{"ok":"pong"}` {
			break
		}
	}
	if n := proxy.Accepted(); n < 2 {
		t.Fatalf("%d connections; the mailbox did not reconnect", n)
	}
	if r.logs.Count("reconnecting") == 0 {
		t.Errorf("no reconnect logged:\n%s", r.logs)
	}
}

func TestMailboxRefusedTopologyFailsRun(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	o, _ := r.opts.withDefaults()
	// Someone declared the request exchange with other flags: kombu's declaration gets 406.
	ch, err := testenv.AMQP(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(o.Exchange(), "fanout", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	mb, err := NewMailbox("celery@refused-"+r.ns, r.tr, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	err = mb.Run(ctx20(t))
	var aerr *amqp.Error
	if !errors.As(err, &aerr) || aerr.Code != amqp.PreconditionFailed || !strings.Contains(err.Error(), o.Exchange()) {
		t.Fatalf("Run = %v, want PRECONDITION_FAILED naming %s", err, o.Exchange())
	}
	if err := mb.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("second Run = %v", err)
	}
}

func TestNewMailboxAndClientValidate(t *testing.T) {
	t.Parallel()
	// Never connected: the transport connects on first use.
	tr := newTransport(t, "amqp://127.0.0.1:1/", nil)
	for _, tc := range []struct {
		node string
		opts Options
		want string
	}{
		{"", Options{}, "empty node name"},
		{strings.Repeat("n", 250), Options{}, "longer than 255"},
		{"celery@h", Options{Namespace: strings.Repeat("n", 250)}, "longer than 255"},
	} {
		if _, err := NewMailbox(tc.node, tr, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewMailbox(%q, %+v) = %v, want %q", tc.node, tc.opts, err, tc.want)
		}
	}
	if _, err := NewMailbox("celery@h", nil, Options{}); err == nil || !strings.Contains(err.Error(), "no transport") {
		t.Errorf("NewMailbox without a transport: %v", err)
	}
	if _, err := NewClient(nil, Options{}); err == nil || !strings.Contains(err.Error(), "no transport") {
		t.Errorf("NewClient without a transport: %v", err)
	}
	if _, err := NewClient(tr, Options{Namespace: strings.Repeat("n", 250)}); err == nil {
		t.Error("NewClient with a too long namespace succeeded")
	}
	mb := newTestMailbox(t, "celery@h", nil)
	mb.Handle("ping", pong)
	for _, reg := range []func(){
		func() { mb.Handle("", pong) },
		func() { mb.Handle("x", nil) },
		func() { mb.Handle("ping", pong) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("bad registration did not panic")
				}
			}()
			reg()
		}()
	}
	c, err := NewClient(tr, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The transport retries connecting until the context ends; this one ends soon.
	unreachable, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	for _, tc := range []struct {
		call func() error
		want string
	}{
		{func() error { _, err := c.Broadcast(ctx, "", nil, nil, 0); return err }, "empty method"},
		{func() error { _, err := c.Broadcast(ctx, "x", []int{1}, nil, 0); return err }, "JSON object"},
		{func() error { _, err := c.Broadcast(ctx, "x", make(chan int), nil, 0); return err }, "encoding arguments"},
		{func() error { _, err := c.Broadcast(ctx, "x", nil, nil, 0, WithPattern("(", MatchPCRE)); return err }, "pcre pattern"},
		{func() error { _, err := c.Broadcast(unreachable, "x", nil, nil, 0); return err }, "connecting"},
		{func() error { _ = c.Close(); _, err := c.Broadcast(ctx, "x", nil, nil, 0); return err }, "client closed"},
	} {
		if err := tc.call(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("bad broadcast: %v, want an error containing %q", err, tc.want)
		}
	}
}

// slogTo is a debug-level logger writing to logs.
func slogTo(logs *testenv.LogBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func compactJSON(raw json.RawMessage) string {
	if raw == nil {
		return ""
	}
	return string(compact(raw))
}

func show(m map[string]json.RawMessage) string {
	var b strings.Builder
	for k, v := range m {
		b.WriteString(k + "=" + string(v) + " ")
	}
	return b.String()
}
