package amqpbroker

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/protocol"
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

// TestPublishManyAcrossAConnectionLoss: the connection is cut while a batch is in flight; every
// message still reaches the queue (some may be there twice: at least once, never lost).
func TestPublishManyAcrossAConnectionLoss(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	proxy, url := startProxy(t)
	b := testBroker(t, url)
	q := directQueue(t)
	q.Exchange, q.RoutingKey = "", ""
	const n = 3000
	done := make(chan error, 1)
	go func() { done <- b.PublishMany(ctx, numbered(q, n)) }()
	for b.Connects() == 0 || !b.Connected() {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(5 * time.Millisecond)
	proxy.Cut()
	if err := <-done; err != nil {
		t.Fatalf("PublishMany across a cut connection: %v", err)
	}
	seen := map[string]int{}
	for _, body := range drain(t, q.Name) {
		seen[body]++
	}
	for i := range n {
		if seen[strconv.Itoa(i)] == 0 {
			t.Fatalf("message %d lost", i)
		}
	}
	t.Logf("connects %d, %d distinct messages, %d duplicates", b.Connects(), len(seen), func() int {
		d := 0
		for _, k := range seen {
			d += k - 1
		}
		return d
	}())
}
