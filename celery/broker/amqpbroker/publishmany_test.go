package amqpbroker

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/tcpproxy"
	"github.com/forumads/forumads/internal/testenv"
)

func numbered(q broker.Queue, n int) []broker.Publishing {
	ps := make([]broker.Publishing, n)
	for i := range ps {
		ps[i] = broker.Publishing{RoutingKey: q.Name, Declare: &q,
			Envelope: protocol.Envelope{Body: []byte(strconv.Itoa(i)), ContentType: "text/plain", DeliveryMode: 2}}
	}
	return ps
}

// drain reads the queue with basic.get until it is empty and returns the bodies in order.
func drain(t *testing.T, queue string) []string {
	t.Helper()
	ch, err := testenv.AMQP(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	var out []string
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		out = append(out, string(d.Body))
	}
}

// TestPublishManyKeepsOrder: more messages than one confirm window arrive, all of them, in order,
// in a queue PublishMany declared itself.
func TestPublishManyKeepsOrder(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := testBroker(t, testenv.AMQPURL())
	q := directQueue(t)
	q.Exchange, q.RoutingKey = "", ""
	const n = 2*publishWindow + 37
	if err := b.PublishMany(ctx, numbered(q, n)); err != nil {
		t.Fatal(err)
	}
	got := drain(t, q.Name)
	if len(got) != n {
		t.Fatalf("%d messages in the queue, want %d", len(got), n)
	}
	for i, body := range got {
		if body != strconv.Itoa(i) {
			t.Fatalf("message %d is %q: order not kept", i, body)
		}
	}
}

// TestPublishManyAcrossAConnectionLoss: the connection is cut while a batch is in flight, before
// any of its confirms can have come (the proxy drops what the client sends from the start of the
// batch, so RabbitMQ sees none of the first window); PublishMany reconnects, publishes the batch
// again, and the queue ends up with every message exactly once, in order.
func TestPublishManyAcrossAConnectionLoss(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	proxy, url := tcpproxy.StartURL(t, testenv.AMQPURL(), "5672")
	b := testBroker(t, url)
	q := directQueue(t)
	q.Exchange, q.RoutingKey = "", ""
	if err := b.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	// Open the confirm channel first (a message to no queue is confirmed and dropped), so the
	// batch's own frames are the first thing the proxy swallows.
	if err := b.Publish(ctx, broker.Publishing{RoutingKey: q.Name + ".nowhere"}); err != nil {
		t.Fatal(err)
	}
	before := b.Connects()
	proxy.DropUpstream(true)
	const n = 3000
	done := make(chan error, 1)
	go func() { done <- b.PublishMany(ctx, numbered(q, n)) }()
	// Every message frame set is over 64 bytes: wait until the whole first window was written (and
	// swallowed); with nothing reaching RabbitMQ no confirm can come, so the batch is in flight.
	for proxy.Dropped() < publishWindow*64 {
		select {
		case err := <-done:
			t.Fatalf("PublishMany returned (%v) before its messages could reach RabbitMQ", err)
		case <-ctx.Done():
			t.Fatalf("the batch was not written: %d bytes", proxy.Dropped())
		case <-time.After(time.Millisecond):
		}
	}
	select {
	case err := <-done:
		t.Fatalf("PublishMany returned (%v) with no confirm possible", err)
	default:
	}
	// Pause, so no reconnect gets through while the proxy still swallows; then cut and let it through.
	proxy.Pause()
	if cut := proxy.Cut(); cut != 1 {
		t.Fatalf("cut %d connections, want the broker's one", cut)
	}
	proxy.DropUpstream(false)
	proxy.Resume()
	if err := <-done; err != nil {
		t.Fatalf("PublishMany across a cut connection: %v", err)
	}
	if got := b.Connects(); got <= before {
		t.Fatalf("connects %d after the cut, %d before: PublishMany did not reconnect", got, before)
	}
	got := drain(t, q.Name)
	if len(got) != n {
		t.Fatalf("%d messages in the queue, want %d (none of the swallowed window reached RabbitMQ)", len(got), n)
	}
	for i, body := range got {
		if body != strconv.Itoa(i) {
			t.Fatalf("message %d is %q: lost or reordered", i, body)
		}
	}
}

// TestPublishRepublishesWhenNoConfirmComes: RabbitMQ never sees a publish (the proxy swallows its
// frames), so its confirm can never come, while the connection stays up. After ConfirmTimeout the
// broker drops that channel, publishes again on a fresh one and returns; the queue holds the
// message exactly once and the drop is logged. Without the timeout the publish would wait for
// the missing confirm until its context ended.
func TestPublishRepublishesWhenNoConfirmComes(t *testing.T) {
	t.Parallel()
	for _, many := range []bool{false, true} {
		t.Run(map[bool]string{false: "Publish", true: "PublishMany"}[many], func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			proxy, url := tcpproxy.StartURL(t, testenv.AMQPURL(), "5672")
			var logs testenv.LogBuffer
			b, err := New(url, Options{ConnectionName: "amqpbroker-confirm-test", Logger: slog.New(slog.NewTextHandler(&logs, nil)),
				MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, ConfirmTimeout: 500 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close() })
			q := directQueue(t)
			q.Exchange, q.RoutingKey = "", ""
			if err := b.Declare(ctx, q); err != nil {
				t.Fatal(err)
			}
			// Open the confirm channel first, so the test's frames are the only ones swallowed.
			if err := b.Publish(ctx, broker.Publishing{RoutingKey: q.Name + ".nowhere"}); err != nil {
				t.Fatal(err)
			}
			before := b.Connects()
			ps := numbered(q, 1)
			proxy.DropUpstream(true)
			done := make(chan error, 1)
			go func() {
				if many {
					done <- b.PublishMany(ctx, ps)
				} else {
					done <- b.Publish(ctx, ps[0])
				}
			}()
			// The whole message is written (and swallowed) once the dropped count stops growing.
			for last := int64(-1); ; {
				n := proxy.Dropped()
				if n > 0 && n == last {
					break
				}
				last = n
				select {
				case err := <-done:
					t.Fatalf("the publish returned (%v) before its message could reach RabbitMQ", err)
				case <-ctx.Done():
					t.Fatalf("the message was not written: %d bytes", n)
				case <-time.After(50 * time.Millisecond):
				}
			}
			proxy.DropUpstream(false)
			if err := <-done; err != nil {
				t.Fatalf("a publish whose confirm never came: %v", err)
			}
			if got := drain(t, q.Name); len(got) != 1 || got[0] != "0" {
				t.Fatalf("queue holds %q, want the message once", got)
			}
			if b.Connects() != before {
				t.Errorf("the broker reconnected (%d -> %d connects): only the channel should have been replaced", before, b.Connects())
			}
			if logs.Count("no publisher confirm in time") == 0 {
				t.Errorf("the dropped channel was not logged:\n%s", logs.String())
			}
		})
	}
}
