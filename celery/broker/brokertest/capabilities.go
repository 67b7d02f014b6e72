package brokertest

// The cases of optional interfaces and declared capabilities (broker.Capabilities).

import (
	"strconv"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/protocol"
)

// batchOrder: PublishMany delivers every message, in order.
func (s *suite) batchOrder(t *testing.T, b broker.Broker) {
	q := s.queue(t)
	const n = 1200
	ps := make([]broker.Publishing, n)
	for i := range ps {
		ps[i] = msg(q, strconv.Itoa(i))
	}
	if err := b.(broker.BatchPublisher).PublishMany(ctxFor(t), ps); err != nil {
		t.Fatal(err)
	}
	ch := consume(t, ctxFor(t), b, 0, q)
	for i := range n {
		d := recv(t, ch)
		if string(d.Body) != strconv.Itoa(i) {
			t.Fatalf("message %d is %q: order not kept", i, d.Body)
		}
		ack(t, d)
	}
}

// priorities: in a queue with x-max-priority, higher priorities are delivered first, equal ones in
// publishing order, priorities above the maximum counting as the maximum.
func (s *suite) priorities(t *testing.T, b broker.Broker) {
	q := s.queue(t)
	maxp := 5
	q.MaxPriority = &maxp
	for _, m := range []struct {
		body string
		prio uint8
	}{{"low", 1}, {"mid-a", 3}, {"top-a", 5}, {"mid-b", 3}, {"top-b", 9}, {"none", 0}} {
		p := msg(q, m.body)
		p.Priority = m.prio
		publish(t, b, p)
	}
	ch := consume(t, ctxFor(t), b, 0, q)
	for _, want := range []string{"top-a", "top-b", "mid-a", "mid-b", "low", "none"} {
		d := recv(t, ch)
		if string(d.Body) != want {
			t.Fatalf("got %q, want %q", d.Body, want)
		}
		ack(t, d)
	}
}

// fanout: a fanout exchange delivers each message to every bound queue, whatever the key.
func (s *suite) fanout(t *testing.T, b broker.Broker) {
	n := s.names(t, 3)
	qs := []broker.Queue{{Name: n[0], Exchange: n[2], ExchangeType: "fanout", RoutingKey: "x"},
		{Name: n[1], Exchange: n[2], ExchangeType: "fanout", RoutingKey: "y"}}
	for _, q := range qs {
		if err := b.Declare(ctxFor(t), q); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, b, broker.Publishing{Exchange: n[2], RoutingKey: "z", Envelope: protocol.Envelope{Body: []byte("all"), DeliveryMode: 2}})
	for _, q := range qs {
		d := recv(t, consume(t, ctxFor(t), b, 1, q))
		if string(d.Body) != "all" || d.Exchange != n[2] {
			t.Fatalf("queue %s got %q from %q", q.Name, d.Body, d.Exchange)
		}
		ack(t, d)
	}
}

// rejectToDLX: a message rejected without requeue from a queue declared with
// x-dead-letter-exchange and x-dead-letter-routing-key goes where they say.
func (s *suite) rejectToDLX(t *testing.T, b broker.Broker) {
	n := s.names(t, 2)
	dlq := broker.Queue{Name: n[1]}
	q := s.withArgs(broker.Queue{Name: n[0], QueueArguments: map[string]any{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq.Name}})
	if err := b.Declare(ctxFor(t), dlq); err != nil {
		t.Fatal(err)
	}
	publish(t, b, msg(q, "poison"))
	d := recv(t, consume(t, ctxFor(t), b, 1, q))
	if err := d.Reject(false); err != nil {
		t.Fatal(err)
	}
	dl := recv(t, consume(t, ctxFor(t), b, 1, dlq))
	if string(dl.Body) != "poison" {
		t.Fatalf("dead-letter queue got %q", dl.Body)
	}
	ack(t, dl)
}

// deadLetterer: broker.DeadLetterer copies a message to the dead-letter queue with the dead-letter
// headers and its own headers, leaving the original to be acknowledged.
func (s *suite) deadLetterer(t *testing.T, b broker.Broker) {
	dler, ok := b.(broker.DeadLetterer)
	if !ok {
		t.Fatalf("%T declares DeadLetter but does not implement broker.DeadLetterer", b)
	}
	n := s.names(t, 2)
	q := s.withArgs(broker.Queue{Name: n[0]})
	p := msg(q, "cannot run")
	p.Headers = map[string]any{"task": "tasks.x", "id": "42"}
	publish(t, b, p)
	d := recv(t, consume(t, ctxFor(t), b, 1, q))
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := dler.DeadLetter(ctxFor(t), d, broker.DeadLetter{Queue: n[1], Reason: "NotRegistered", By: "w1@h", At: at}); err != nil {
		t.Fatal(err)
	}
	ack(t, d)
	dl := recv(t, consume(t, ctxFor(t), b, 1, broker.Queue{Name: n[1]}))
	want := map[string]string{"task": "tasks.x", "id": "42", broker.HeaderDeadLetterReason: "NotRegistered",
		broker.HeaderOriginalQueue: q.Name, broker.HeaderDeadLetteredBy: "w1@h",
		broker.HeaderDeadLetteredAt: protocol.FormatTime(at)}
	for k, v := range want {
		if got, _ := dl.Headers[k].(string); got != v {
			t.Errorf("dead letter header %s = %v, want %q", k, dl.Headers[k], v)
		}
	}
	if string(dl.Body) != "cannot run" || dl.DeliveryMode != 2 {
		t.Errorf("dead letter body %q delivery mode %d", dl.Body, dl.DeliveryMode)
	}
	ack(t, dl)
}

// delayed: broker.Parker takes a copy of a message and delivers it to its queue again later.
func (s *suite) delayed(t *testing.T, b broker.Broker) {
	pk, ok := b.(broker.Parker)
	if !ok {
		t.Fatalf("%T declares DelayedDelivery but does not implement broker.Parker", b)
	}
	q := s.queue(t)
	publish(t, b, msg(q, "later"))
	ch := consume(t, ctxFor(t), b, 1, q)
	d := recv(t, ch)
	where, err := pk.Park(ctxFor(t), d, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if s.a.Names != nil && where != "" {
		s.a.Names(t, where)
	}
	ack(t, d)
	back := recv(t, ch)
	if string(back.Body) != "later" || back.Queue != q.Name {
		t.Fatalf("parked message came back as %q in %q", back.Body, back.Queue)
	}
	ack(t, back)
}
