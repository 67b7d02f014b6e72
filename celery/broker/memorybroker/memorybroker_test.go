package memorybroker_test

import (
	"errors"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/brokertest"
	"github.com/forumads/forumads/celery/broker/memorybroker"
	"github.com/forumads/forumads/celery/protocol"
)

func TestConformance(t *testing.T) {
	brokertest.Run(t, brokertest.Adapter{Open: func(*testing.T) broker.Broker { return memorybroker.New() }})
}

// TestConformanceConn runs the suite on connections of one Broker, which share its queues (so the
// CloseReturnsUnacked case runs too).
func TestConformanceConn(t *testing.T) {
	srv := memorybroker.New()
	t.Cleanup(func() { _ = srv.Close() })
	brokertest.Run(t, brokertest.Adapter{Open: func(*testing.T) broker.Broker { return srv.Connect() }, Shared: true})
}

func TestTopicMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, key string
		want         bool
	}{
		{"a.b", "a.b", true},
		{"a.*", "a.b", true},
		{"a.*", "a.b.c", false},
		{"a.*", "a", false},
		{"a.#", "a", true},
		{"a.#", "a.b.c", true},
		{"#", "", true},
		{"#", "x.y", true},
		{"*.b.#", "a.b", true},
		{"*.b.#", "b", false},
		{"#.c", "a.b.c", true},
		{"#.c", "a.b", false},
		{"a.#.c", "a.c", true},
	} {
		if got := memorybroker.TopicMatch(tc.pattern, tc.key); got != tc.want {
			t.Errorf("TopicMatch(%q, %q) = %v, want %v", tc.pattern, tc.key, got, tc.want)
		}
	}
}

func env(body string) protocol.Envelope { return protocol.Envelope{Body: []byte(body)} }

// TestCloseEndsEverything: after Close the consumers' channels are closed, their deliveries are
// stale, and every call reports broker.ErrClosed.
func TestCloseEndsEverything(t *testing.T) {
	t.Parallel()
	b := memorybroker.New()
	q := broker.Queue{Name: "q"}
	if err := b.Publish(t.Context(), broker.Publishing{RoutingKey: "q", Declare: &q, Envelope: env("x")}); err != nil {
		t.Fatal(err)
	}
	ch, err := b.Consume(t.Context(), []broker.Queue{q}, 0)
	if err != nil {
		t.Fatal(err)
	}
	d := <-ch
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-ch; ok {
		t.Fatal("a delivery after Close")
	}
	if err := d.Ack(); !errors.Is(err, broker.ErrStaleDelivery) {
		t.Fatalf("ack after Close: %v", err)
	}
	if err := b.Publish(t.Context(), broker.Publishing{RoutingKey: "q"}); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	if _, err := b.Consume(t.Context(), nil, 0); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Consume after Close: %v", err)
	}
	if err := b.Declare(t.Context(), q); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Declare after Close: %v", err)
	}
	if _, err := b.Park(t.Context(), d, time.Second); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Park after Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestAddAndCancelConsumer: a queue added to a running Consume is delivered from; a cancelled one
// no longer is, and add_consumer without a consumer is refused.
func TestAddAndCancelConsumer(t *testing.T) {
	t.Parallel()
	b := memorybroker.New()
	defer b.Close()
	a, extra := broker.Queue{Name: "a"}, broker.Queue{Name: "extra"}
	if err := b.AddConsumer(t.Context(), extra); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("AddConsumer with nothing consuming: %v", err)
	}
	ch, err := b.Consume(t.Context(), []broker.Queue{a}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AddConsumer(t.Context(), extra); err != nil {
		t.Fatal(err)
	}
	if got := b.ConsumingQueues(); len(got) != 2 || got[1].Name != "extra" {
		t.Fatalf("consuming %v", got)
	}
	_ = b.Publish(t.Context(), broker.Publishing{RoutingKey: "extra", Envelope: env("1")})
	if d := <-ch; string(d.Body) != "1" || d.Queue != "extra" {
		t.Fatalf("got %q from %q", d.Body, d.Queue)
	}
	if found, err := b.CancelConsumer(t.Context(), "extra"); !found || err != nil {
		t.Fatalf("CancelConsumer: %v %v", found, err)
	}
	_ = b.Publish(t.Context(), broker.Publishing{RoutingKey: "extra", Envelope: env("2")})
	_ = b.Publish(t.Context(), broker.Publishing{RoutingKey: "a", Envelope: env("3")})
	if d := <-ch; string(d.Body) != "3" {
		t.Fatalf("a cancelled queue was still consumed: got %q", d.Body)
	}
	if n, _ := b.Ready("extra"); n != 1 {
		t.Fatalf("extra holds %d ready messages, want 1", n)
	}
}

// TestBadInput: bad declarations and publishes get clear errors.
func TestBadInput(t *testing.T) {
	t.Parallel()
	b := memorybroker.New()
	defer b.Close()
	ctx := t.Context()
	big := 300
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"empty queue name", b.Declare(ctx, broker.Queue{})},
		{"headers exchange", b.Declare(ctx, broker.Queue{Name: "h", Exchange: "hx", ExchangeType: "headers"})},
		{"priority out of range", b.Declare(ctx, broker.Queue{Name: "p", MaxPriority: &big})},
		{"unknown exchange", b.Publish(ctx, broker.Publishing{Exchange: "nope", RoutingKey: "k"})},
		{"negative prefetch", b.SetPrefetch(-1)},
		{"empty exchange name", b.DeclareExchange(ctx, "", "fanout", true, false)},
	} {
		if tc.err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if err := b.DeclareExchange(ctx, "x", "fanout", true, false); err != nil {
		t.Fatal(err)
	}
	if err := b.DeclareExchange(ctx, "x", "topic", true, false); err == nil {
		t.Error("re-declaring an exchange with another type succeeded")
	}
	if _, err := b.Ready("missing"); err == nil {
		t.Error("Ready of a missing queue: no error")
	}
}
