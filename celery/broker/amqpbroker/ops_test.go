package amqpbroker

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/tcpproxy"
	"github.com/forumads/forumads/internal/testenv"
)

func testBroker(t *testing.T, url string) *Broker {
	t.Helper()
	b, err := New(url, Options{ConnectionName: "amqpbroker-ops-test", Logger: slog.New(slog.DiscardHandler),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func directQueue(t *testing.T) broker.Queue {
	t.Helper()
	name := testenv.Name(t, "amqpbroker")
	testenv.DeleteQueuesAtCleanup(t, name)
	return broker.Queue{Name: name, Exchange: name, ExchangeType: "direct", RoutingKey: name}
}

func publish(t *testing.T, ctx context.Context, b *Broker, q broker.Queue, body string, ts time.Time) {
	t.Helper()
	env := protocol.Envelope{Body: []byte(body), ContentType: "text/plain", DeliveryMode: 2}
	if err := b.Publish(ctx, broker.Publishing{Exchange: q.Exchange, RoutingKey: q.RoutingKey, Envelope: env, Timestamp: ts}); err != nil {
		t.Fatal(err)
	}
}

func next(t *testing.T, ctx context.Context, deliveries <-chan *broker.Delivery) *broker.Delivery {
	t.Helper()
	select {
	case d, ok := <-deliveries:
		if !ok {
			t.Fatal("deliveries closed")
		}
		return d
	case <-ctx.Done():
		t.Fatal("no delivery")
	}
	return nil
}

// TestAddAndCancelConsumer changes the consumed queues while consuming: an added queue is
// delivered from, a cancelled one no longer is (its message stays in the queue), and the
// timestamp property goes through.
func TestAddAndCancelConsumer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := testBroker(t, testenv.AMQPURL())
	first, second := directQueue(t), directQueue(t)
	if err := b.AddConsumer(ctx, first); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("AddConsumer before Consume = %v, want ErrClosed", err)
	}
	deliveries, err := b.Consume(ctx, []broker.Queue{first}, 10)
	if err != nil {
		t.Fatal(err)
	}
	// The context of the call only bounds the call: the new consumer lives as long as Consume's.
	addCtx, addCancel := context.WithCancel(ctx)
	if err := b.AddConsumer(addCtx, second); err != nil {
		t.Fatal(err)
	}
	addCancel()
	if err := b.AddConsumer(ctx, second); err != nil {
		t.Fatalf("adding a queue twice: %v", err)
	}
	if got := b.ConsumingQueues(); len(got) != 2 || got[1].Name != second.Name {
		t.Fatalf("consuming %+v", got)
	}
	ts := time.Unix(1795600000, 0)
	publish(t, ctx, b, second, "to second", ts)
	d := next(t, ctx, deliveries)
	if string(d.Body) != "to second" || d.Queue != second.Name || !d.Timestamp.Equal(ts) {
		t.Fatalf("delivery %q from %s at %v", d.Body, d.Queue, d.Timestamp)
	}
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
	found, err := b.CancelConsumer(ctx, second.Name)
	if err != nil || !found {
		t.Fatalf("CancelConsumer = %v, %v", found, err)
	}
	if found, err := b.CancelConsumer(ctx, "nosuch"); err != nil || found {
		t.Errorf("cancelling a queue not consumed = %v, %v", found, err)
	}
	publish(t, ctx, b, second, "stays", time.Time{})
	publish(t, ctx, b, first, "to first", time.Time{})
	d = next(t, ctx, deliveries)
	if string(d.Body) != "to first" || !d.Timestamp.IsZero() {
		t.Fatalf("delivery %q (timestamp %v), want the first queue's", d.Body, d.Timestamp)
	}
	_ = d.Ack()
	conn := testenv.AMQP(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(second.Name, true, false, false, false, nil)
	if err != nil || q.Messages != 1 || q.Consumers != 0 {
		t.Errorf("cancelled queue: %+v, %v; want 1 message, no consumer", q, err)
	}
	// A refused declaration is returned and leaves the consumer alone.
	mp := 3
	bad := second
	bad.MaxPriority = &mp
	bad.Name = second.Name
	if _, err := b.CancelConsumer(ctx, bad.Name); err != nil {
		t.Fatal(err)
	}
	if err := b.AddConsumer(ctx, bad); err == nil || !strings.Contains(err.Error(), "other settings") {
		t.Errorf("AddConsumer with other arguments = %v", err)
	}
	publish(t, ctx, b, first, "still", time.Time{})
	if d := next(t, ctx, deliveries); string(d.Body) != "still" {
		t.Errorf("after a refused add_consumer: %q", d.Body)
	}
	if err := b.StopConsuming(ctx); err != nil {
		t.Fatal(err)
	}
	for range deliveries {
	}
}

// TestCancelEveryQueueThenStop: a consumer with no queue left still stops.
func TestCancelEveryQueueThenStop(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := testBroker(t, testenv.AMQPURL())
	q := directQueue(t)
	deliveries, err := b.Consume(ctx, []broker.Queue{q}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if found, err := b.CancelConsumer(ctx, q.Name); err != nil || !found {
		t.Fatalf("CancelConsumer = %v, %v", found, err)
	}
	if err := b.StopConsuming(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-deliveries:
		if ok {
			t.Fatal("a delivery after cancelling every queue")
		}
	case <-ctx.Done():
		t.Fatal("deliveries not closed after StopConsuming")
	}
}

// TestDeclareExchangeAgainAfterReconnect: an exchange declared with DeclareExchange is declared
// again on the next connection before a publish to it, so an auto-deleted (or lost) exchange comes
// back. The connection goes through a proxy the test cuts.
func TestDeclareExchangeAgainAfterReconnect(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	proxy, url := tcpproxy.StartURL(t, testenv.AMQPURL(), "5672")
	b := testBroker(t, url)
	name := testenv.Name(t, "amqpbroker-x")
	testenv.DeleteQueuesAtCleanup(t, name)
	if err := b.DeclareExchange(ctx, name, "topic", false, false); err != nil {
		t.Fatal(err)
	}
	if !b.Connected() {
		t.Fatal("Connected = false after a declaration")
	}
	if err := b.DeclareExchange(ctx, name, "fanout", false, false); err == nil || !strings.Contains(err.Error(), "other settings") {
		t.Errorf("redeclaring as fanout = %v", err)
	}
	if err := b.DeclareExchange(ctx, name, "nonsense", false, false); err == nil || !strings.Contains(err.Error(), "unknown exchange type") {
		t.Errorf("unknown type = %v", err)
	}
	if err := b.DeclareExchange(ctx, "", "topic", true, false); err == nil {
		t.Error("empty name accepted")
	}
	// Delete the exchange behind the broker's back and cut its connection: the next publish
	// declares it again, else RabbitMQ would refuse it with 404.
	conn := testenv.AMQP(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if err := ch.ExchangeDelete(name, false, false); err != nil {
		t.Fatal(err)
	}
	proxy.Cut()
	testenv.Eventually(t, 30*time.Second, func() bool { return !b.Connected() }, "the broker to see the cut")
	env := protocol.Envelope{Body: []byte("{}"), ContentType: "application/json", DeliveryMode: 1}
	if err := b.Publish(ctx, broker.Publishing{Exchange: name, RoutingKey: "a.b", Envelope: env}); err != nil {
		t.Fatalf("publishing after the reconnect: %v", err)
	}
	if err := ch.ExchangeDeclarePassive(name, "topic", false, false, false, false, nil); err != nil {
		t.Fatalf("the exchange was not declared again: %v", err)
	}
	if b.Connects() < 2 {
		t.Errorf("Connects = %d: the connection was not replaced", b.Connects())
	}
}
