package amqpbroker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/testenv"
)

// TestDelayedTopologyMatchesKombu compares the 28 levels this adapter declares with what kombu
// 5.5's declare_native_delayed_delivery_exchanges_and_queues asks of a channel, recorded by
// testdata/gen_kombu55_delayed.py: the same exchanges, queues, arguments (TTLs, dead-letter
// chain, overflow, queue type) and binding keys, in the same order.
func TestDelayedTopologyMatchesKombu(t *testing.T) {
	t.Parallel()
	for _, qt := range []string{broker.QueueTypeQuorum, broker.QueueTypeClassic} {
		t.Run(qt, func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile("testdata/kombu55_delayed_" + qt + ".json")
			if err != nil {
				t.Fatal(err)
			}
			var want []map[string]any
			if err := json.Unmarshal(data, &want); err != nil {
				t.Fatal(err)
			}
			raw, err := json.Marshal(delayedTopology(qt))
			if err != nil {
				t.Fatal(err)
			}
			var got []map[string]any
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d operations, kombu %d", len(got), len(want))
			}
			for i := range want {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Errorf("operation %d:\n got %v\nwant %v", i, got[i], want[i])
				}
			}
		})
	}
}

// quorumQueue is a quorum queue of its own on a topic exchange of its own, deleted at cleanup.
func quorumQueue(t *testing.T, extra map[string]any) broker.Queue {
	name := testenv.Name(t, "amqpbroker.quorum")
	args := map[string]any{broker.ArgQueueType: broker.QueueTypeQuorum}
	for k, v := range extra {
		args[k] = v
	}
	testenv.DeleteQueuesAtCleanup(t, name)
	return broker.Queue{Name: name, Exchange: name, ExchangeType: "topic", RoutingKey: name, QueueArguments: args}
}

func quietBroker(t *testing.T, url string, opts Options) *Broker {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ConnectionName == "" {
		opts.ConnectionName = "amqpbroker-quorum-test"
	}
	b, err := New(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestConsumeQuorumQueueDeclaresDelayedDelivery: consuming a quorum queue works (per-consumer
// QoS: global QoS is refused by quorum queues), declares native delayed delivery and binds the
// queue, so a message published to celery_delayed_27 with kombu's routing key for 3 s arrives no
// earlier than 3 s later (and within 3 s more: RabbitMQ expires the head of a TTL queue when due).
func TestConsumeQuorumQueueDeclaresDelayedDelivery(t *testing.T) {
	t.Parallel()
	q := quorumQueue(t, nil)
	b := quietBroker(t, testenv.AMQPURL(), Options{})
	ctx := testCtx(t, time.Minute)
	ch, err := b.Consume(ctx, []broker.Queue{q}, 4)
	if err != nil {
		t.Fatalf("consuming a quorum queue: %v", err)
	}
	key, err := broker.DelayedRoutingKey(3, q.RoutingKey)
	if err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	if err := b.Publish(ctx, broker.Publishing{Exchange: broker.DelayedEntryExchange(), RoutingKey: key,
		Envelope: protocol.Envelope{Body: []byte("later"), DeliveryMode: 2}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, broker.Publishing{Exchange: q.Exchange, RoutingKey: q.RoutingKey,
		Envelope: protocol.Envelope{Body: []byte("now"), DeliveryMode: 2}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"now", "later"} {
		select {
		case d := <-ch:
			waited := time.Since(sent)
			if string(d.Body) != want {
				t.Fatalf("got %q, want %q", d.Body, want)
			}
			if want == "later" {
				if waited < 3*time.Second {
					t.Fatalf("the 3 s delayed message arrived after %v", waited)
				}
				if waited > 6*time.Second {
					t.Fatalf("the 3 s delayed message arrived after %v (bound 6 s)", waited)
				}
				if d.RoutingKey != key {
					t.Errorf("delivered with routing key %q, want the delayed key %q", d.RoutingKey, key)
				}
			}
			if err := d.Ack(); err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatalf("no %q message", want)
		}
	}
}

// TestQueueArgumentsRefusedBeforeDeclaring: a queue type RabbitMQ does not have for Celery, or an
// x-delivery-limit that is not a number, is a clear error from Consume and Declare at once (not a
// retry loop, not a channel closed by RabbitMQ), and nothing is declared.
func TestQueueArgumentsRefusedBeforeDeclaring(t *testing.T) {
	t.Parallel()
	b := quietBroker(t, testenv.AMQPURL(), Options{})
	for _, tc := range []struct {
		name string
		args map[string]any
		want string
	}{
		{"unknown queue type", map[string]any{broker.ArgQueueType: "mirrored"}, `unknown queue type "mirrored"`},
		{"delivery limit not a number", map[string]any{broker.ArgQueueType: "quorum", broker.ArgDeliveryLimit: "ten"}, "x-delivery-limit: want a whole number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := quorumQueue(t, nil)
			q.QueueArguments = tc.args
			ctx := testCtx(t, 20*time.Second)
			if _, err := b.Consume(ctx, []broker.Queue{q}, 1); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Consume: %v, want an error saying %q", err, tc.want)
			}
			if err := b.Declare(ctx, q); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Declare: %v, want an error saying %q", err, tc.want)
			}
			if ctx.Err() != nil {
				t.Fatal("the refusal was retried until the deadline")
			}
			ch := testenv.AMQP(t)
			c, err := ch.Channel()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.QueueDeclarePassive(q.Name, true, false, false, false, nil); err == nil {
				t.Fatalf("queue %s was declared", q.Name)
			}
		})
	}
}

// syncBuffer is a log sink for several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestFailoverListSkipsAnUnreachableNode: with a broker_url list whose first node cannot be
// reached, the broker logs that node and connects to the next one at once (no backoff between
// nodes of the list), and logs which node it is on.
func TestFailoverListSkipsAnUnreachableNode(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	bad := "amqp://guest:guest@127.0.0.1:1//"
	b := quietBroker(t, bad+";"+testenv.AMQPURL(), Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), MinBackoff: 5 * time.Second})
	q := quorumQueue(t, nil)
	start := time.Now()
	if err := b.Declare(testCtx(t, 30*time.Second), q); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d >= 5*time.Second {
		t.Errorf("connecting took %v: the next node was tried only after the backoff", d)
	}
	out := logs.String()
	if !strings.Contains(out, "cannot connect to broker") || !strings.Contains(out, "127.0.0.1:1") {
		t.Errorf("the unreachable node is not logged:\n%s", out)
	}
	if !strings.Contains(out, `msg="connected to broker"`) || !strings.Contains(out, "broker="+redact(b.urls[1])) {
		t.Errorf("the node connected to is not logged:\n%s", out)
	}
	if got := b.Redacted(); got != redact(b.urls[1]) {
		t.Errorf("Redacted() = %q, want the live node %q", got, redact(b.urls[1]))
	}
}

// mgmtGet fetches one message from queue through the RabbitMQ management HTTP API (what an
// operator sees in the UI's "Get messages"), requeueing it.
func mgmtGet(t *testing.T, base, queue string) []map[string]any {
	t.Helper()
	body := strings.NewReader(`{"count":10,"ackmode":"ack_requeue_true","encoding":"auto","truncate":50000}`)
	req, err := http.NewRequest("POST", base+"/api/queues/%2F/"+url.PathEscape(queue)+"/get", body)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("guest", "guest")
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("the RabbitMQ management API is required at %s: %v", base, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("management API: %s: %s", resp.Status, data)
	}
	var msgs []map[string]any
	if err := json.Unmarshal(data, &msgs); err != nil {
		t.Fatalf("management API: %v: %s", err, data)
	}
	return msgs
}

// TestPoisonMessageEndsInDeadLetterQueue: a quorum queue with x-delivery-limit 2 and a dead-letter
// target (declared by the adapter) delivers a message whose consumer dies every time (its
// connection closes without an acknowledgement, as when the worker process is killed) three times,
// then RabbitMQ moves it to the dead-letter queue, where the management API shows its task id and
// the reason (x-death: delivery_limit).
func TestPoisonMessageEndsInDeadLetterQueue(t *testing.T) {
	t.Parallel()
	dlq := testenv.Name(t, "amqpbroker.poison.dlq")
	testenv.DeleteQueuesAtCleanup(t, dlq)
	q := quorumQueue(t, map[string]any{broker.ArgDeliveryLimit: 2, broker.ArgDeadLetterExchange: "", broker.ArgDeadLetterRoutingKey: dlq})
	pub := quietBroker(t, testenv.AMQPURL(), Options{})
	ctx := testCtx(t, time.Minute)
	if err := pub.Publish(ctx, broker.Publishing{Exchange: q.Exchange, RoutingKey: q.RoutingKey, Declare: &q,
		Envelope: protocol.Envelope{Body: []byte("[[], {}, {}]"), ContentType: "application/json", DeliveryMode: 2,
			Headers: map[string]any{"id": "poison-1", "task": "tests.kill_worker"}}}); err != nil {
		t.Fatal(err)
	}
	var counts []int64
	for attempt := 0; attempt < 6; attempt++ {
		b, err := New(testenv.AMQPURL(), Options{Logger: slog.New(slog.DiscardHandler), ConnectionName: fmt.Sprintf("poison-%d", attempt)})
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		ch, err := b.Consume(cctx, []broker.Queue{q}, 1)
		if err != nil {
			cancel()
			_ = b.Close()
			t.Fatal(err)
		}
		var got *broker.Delivery
		select {
		case got = <-ch:
		case <-cctx.Done():
		}
		_ = b.Close() // dies holding it
		cancel()
		for range ch {
		}
		if got == nil {
			break
		}
		counts = append(counts, broker.DeliveryCount(got.Headers))
	}
	if want := []int64{0, 1, 2}; !reflect.DeepEqual(counts, want) {
		t.Fatalf("deliveries with x-delivery-count %v, want %v (limit 2: three deliveries, then dead-lettered)", counts, want)
	}
	var msgs []map[string]any
	testenv.Eventually(t, 10*time.Second, func() bool { msgs = mgmtGet(t, "http://127.0.0.1:15672", dlq); return len(msgs) == 1 },
		"the poison message is not in the dead-letter queue %s", dlq)
	props, _ := msgs[0]["properties"].(map[string]any)
	headers, _ := props["headers"].(map[string]any)
	if headers["id"] != "poison-1" {
		t.Errorf("dead letter's id header %v, want poison-1 (headers %v)", headers["id"], headers)
	}
	deaths, _ := headers["x-death"].([]any)
	if len(deaths) == 0 {
		t.Fatalf("no x-death header: %v", headers)
	}
	death, _ := deaths[0].(map[string]any)
	if death["reason"] != "delivery_limit" || death["queue"] != q.Name {
		t.Errorf("x-death %v, want reason delivery_limit from %s", death, q.Name)
	}
}

// TestParkQuorumMessageThroughDelayedDelivery: parking a message of a consumed quorum queue (on a
// topic exchange) goes through native delayed delivery, replicated, instead of a TTL queue on one
// node: Park reports celery_delayed_27 and the copy comes back to the queue no earlier than the
// delay.
func TestParkQuorumMessageThroughDelayedDelivery(t *testing.T) {
	t.Parallel()
	q := quorumQueue(t, nil)
	b := quietBroker(t, testenv.AMQPURL(), Options{})
	ctx := testCtx(t, time.Minute)
	ch, err := b.Consume(ctx, []broker.Queue{q}, 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, broker.Publishing{Exchange: q.Exchange, RoutingKey: q.RoutingKey,
		Envelope: protocol.Envelope{Body: []byte("eta"), DeliveryMode: 2, Headers: map[string]any{"id": "park-1"}}}); err != nil {
		t.Fatal(err)
	}
	d := <-ch
	parked := time.Now()
	where, err := b.Park(ctx, d, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if where != broker.DelayedEntryExchange() {
		t.Fatalf("parked in %q, want native delayed delivery (%s)", where, broker.DelayedEntryExchange())
	}
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
	select {
	case back := <-ch:
		if waited := time.Since(parked); waited < 2*time.Second || string(back.Body) != "eta" || back.Headers["id"] != "park-1" {
			t.Fatalf("got %q (id %v) back after %v, want the parked message after at least 2s", back.Body, back.Headers["id"], waited)
		}
		_ = back.Ack()
	case <-ctx.Done():
		t.Fatal("the parked message did not come back")
	}
}
