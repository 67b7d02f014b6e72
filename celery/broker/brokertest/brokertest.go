// Package brokertest is the conformance suite of package broker: the behaviour the worker and the
// client rely on, which every broker adapter must show. An adapter's tests call Run with a way to
// open the adapter:
//
//	func TestConformance(t *testing.T) {
//		brokertest.Run(t, brokertest.Adapter{Open: func(t *testing.T) broker.Broker { return memorybroker.New() }})
//	}
//
// Subtests for a capability the adapter does not declare (broker.Capabilities) are skipped with
// t.Skip saying so; everything else is required. Each subtest opens its own broker, uses queue and
// exchange names of its own, and waits for deliveries without a time limit of its own (the test's
// deadline, or 2 minutes, bounds a subtest that hangs): nothing is asserted about speed.
package brokertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/protocol"
)

// Adapter is the broker adapter under test.
type Adapter struct {
	// Open returns a new broker (a new connection, for a server). The suite closes it.
	Open func(t *testing.T) broker.Broker
	// Names, if set, is called with every queue and exchange name a subtest uses, before it uses
	// them; an adapter on a server registers their deletion at t's cleanup.
	Names func(t *testing.T, names ...string)
	// Shared says that brokers returned by Open reach the same queues (a server), which the
	// "CloseReturnsUnacked" subtest needs; an in-process adapter whose brokers are independent leaves
	// it false and that subtest is skipped.
	Shared bool
	// QueueArguments, if set, are given to every task queue a subtest declares, to run the suite
	// against another queue type (amqpbroker: x-queue-type quorum). Subtests of what such queues
	// do not have are skipped saying so: Priorities (quorum queues have none).
	QueueArguments map[string]any
}

type suite struct {
	a Adapter
}

type subtest struct {
	name string
	// needs names a capability the subtest tests; it is skipped when the adapter lacks it.
	needs func(broker.Capabilities, broker.Broker) (bool, string)
	run   func(s *suite, t *testing.T, b broker.Broker)
	// shared: the subtest needs two brokers reaching the same queues (Adapter.Shared).
	shared bool
	// classicOnly: the subtest is skipped when Adapter.QueueArguments makes quorum queues.
	classicOnly bool
}

// Run runs the conformance suite against a, each case as a parallel subtest.
func Run(t *testing.T, a Adapter) {
	if a.Open == nil {
		t.Fatal("brokertest: Adapter.Open is nil")
	}
	s := &suite{a: a}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := a.Open(t)
			t.Cleanup(func() { _ = b.Close() })
			if tc.shared && !a.Shared {
				t.Skip("the adapter's brokers do not share queues (Adapter.Shared is false)")
			}
			if tc.classicOnly && broker.IsQuorum(broker.Queue{QueueArguments: a.QueueArguments}) {
				t.Skip("quorum queues do not have this (see Adapter.QueueArguments)")
			}
			if tc.needs != nil {
				if ok, why := tc.needs(b.Capabilities(), b); !ok {
					t.Skip(why)
				}
			}
			tc.run(s, t, b)
		})
	}
}

func declared(what string, has func(broker.Capabilities) bool) func(broker.Capabilities, broker.Broker) (bool, string) {
	return func(c broker.Capabilities, _ broker.Broker) (bool, string) {
		return has(c), "the adapter does not declare " + what + " in its Capabilities"
	}
}

var cases = []subtest{
	{name: "AtLeastOnceInOrder", run: (*suite).atLeastOnceInOrder},
	{name: "RequeueWhenConsumerLost", run: (*suite).requeueWhenConsumerLost},
	{name: "CloseReturnsUnacked", run: (*suite).closeReturnsUnacked, shared: true},
	{name: "RejectRequeue", run: (*suite).rejectRequeue},
	{name: "SettleTwice", run: (*suite).settleTwice},
	{name: "PrefetchLimit", run: (*suite).prefetchLimit},
	{name: "SetPrefetch", run: (*suite).setPrefetch},
	{name: "StopConsumingKeepsAcks", run: (*suite).stopConsumingKeepsAcks},
	{name: "DirectAndTopicRouting", run: (*suite).directAndTopicRouting},
	{name: "RedeclareWithOtherArgumentsFails", run: (*suite).redeclareFails},
	{name: "BatchPublisherOrder", run: (*suite).batchOrder,
		needs: func(_ broker.Capabilities, b broker.Broker) (bool, string) {
			_, ok := b.(broker.BatchPublisher)
			return ok, "the adapter does not implement broker.BatchPublisher"
		}},
	{name: "Priorities", run: (*suite).priorities, classicOnly: true, needs: declared("Priorities", func(c broker.Capabilities) bool { return c.Priorities })},
	{name: "Fanout", run: (*suite).fanout, needs: declared("Fanout", func(c broker.Capabilities) bool { return c.Fanout })},
	{name: "RejectToDeadLetterQueue", run: (*suite).rejectToDLX, needs: declared("DeadLetter", func(c broker.Capabilities) bool { return c.DeadLetter })},
	{name: "DeadLetterer", run: (*suite).deadLetterer, needs: declared("DeadLetter", func(c broker.Capabilities) bool { return c.DeadLetter })},
	{name: "DelayedDelivery", run: (*suite).delayed, needs: declared("DelayedDelivery", func(c broker.Capabilities) bool { return c.DelayedDelivery })},
}

// names returns n fresh names for this subtest, reported to Adapter.Names.
func (s *suite) names(t *testing.T, n int) []string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	base := strings.ToLower(strings.NewReplacer("/", ".", " ", "-", "#", "").Replace(t.Name()))
	if len(base) > 60 {
		base = base[len(base)-60:]
	}
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("brokertest.%s.%s.%d", base, hex.EncodeToString(b[:]), i)
	}
	if s.a.Names != nil {
		s.a.Names(t, out...)
	}
	return out
}

func (s *suite) queue(t *testing.T) broker.Queue {
	return s.withArgs(broker.Queue{Name: s.names(t, 1)[0]})
}

// withArgs returns q with Adapter.QueueArguments added to its own arguments.
func (s *suite) withArgs(q broker.Queue) broker.Queue {
	if len(s.a.QueueArguments) == 0 {
		return q
	}
	args := make(map[string]any, len(q.QueueArguments)+len(s.a.QueueArguments))
	for k, v := range s.a.QueueArguments {
		args[k] = v
	}
	for k, v := range q.QueueArguments {
		args[k] = v
	}
	q.QueueArguments = args
	return q
}

func ctxFor(t *testing.T) context.Context {
	ctx := t.Context()
	if _, ok := t.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
		t.Cleanup(cancel)
	}
	return ctx
}

func msg(q broker.Queue, body string) broker.Publishing {
	d := q
	return broker.Publishing{RoutingKey: q.Name, Declare: &d,
		Envelope: protocol.Envelope{Body: []byte(body), ContentType: "text/plain", DeliveryMode: 2}}
}

func publish(t *testing.T, b broker.Broker, p broker.Publishing) {
	t.Helper()
	if err := b.Publish(ctxFor(t), p); err != nil {
		t.Fatalf("publishing %q: %v", p.Body, err)
	}
}

func consume(t *testing.T, ctx context.Context, b broker.Broker, prefetch int, qs ...broker.Queue) <-chan *broker.Delivery {
	t.Helper()
	ch, err := b.Consume(ctx, qs, prefetch)
	if err != nil {
		t.Fatalf("consuming: %v", err)
	}
	return ch
}

// recv waits for the next delivery; it fails the test if the channel closes or the test's time runs out.
func recv(t *testing.T, ch <-chan *broker.Delivery) *broker.Delivery {
	t.Helper()
	select {
	case d, ok := <-ch:
		if !ok {
			t.Fatal("the delivery channel closed while a message was expected")
		}
		return d
	case <-ctxFor(t).Done():
		t.Fatal("no delivery before the test's deadline")
	}
	return nil
}

// closed waits until ch is closed, failing on a delivery.
func closed(t *testing.T, ch <-chan *broker.Delivery) {
	t.Helper()
	select {
	case d, ok := <-ch:
		if ok {
			t.Fatalf("delivery %q after the consumer ended", d.Body)
		}
	case <-ctxFor(t).Done():
		t.Fatal("the delivery channel was not closed before the test's deadline")
	}
}

func ack(t *testing.T, d *broker.Delivery) {
	t.Helper()
	if err := d.Ack(); err != nil {
		t.Fatalf("ack of %q: %v", d.Body, err)
	}
}

// atLeastOnceInOrder: every message published arrives, in publishing order; acknowledged ones are
// not delivered again (a new consumer's first message is one published afterwards).
func (s *suite) atLeastOnceInOrder(t *testing.T, b broker.Broker) {
	q := s.queue(t)
	const n = 50
	for i := range n {
		publish(t, b, msg(q, strconv.Itoa(i)))
	}
	ctx, cancel := context.WithCancel(ctxFor(t))
	ch := consume(t, ctx, b, 0, q)
	for i := range n {
		d := recv(t, ch)
		if string(d.Body) != strconv.Itoa(i) || d.Redelivered || d.Queue != q.Name {
			t.Fatalf("delivery %d: body %q redelivered=%v queue %q; want %d, first delivery, from %s", i, d.Body, d.Redelivered, d.Queue, i, q.Name)
		}
		ack(t, d)
	}
	cancel()
	closed(t, ch)
	publish(t, b, msg(q, "after"))
	ch = consume(t, ctxFor(t), b, 0, q)
	if d := recv(t, ch); string(d.Body) != "after" {
		t.Fatalf("an acknowledged message came back: %q", d.Body)
	}
}

// requeueWhenConsumerLost: what a consumer held unacknowledged when its context ended goes back to
// the queue, to the next consumer, marked redelivered; settling the old delivery reports
// broker.ErrStaleDelivery.
func (s *suite) requeueWhenConsumerLost(t *testing.T, b broker.Broker) {
	q := s.queue(t)
	publish(t, b, msg(q, "held"))
	ctx, cancel := context.WithCancel(ctxFor(t))
	ch := consume(t, ctx, b, 1, q)
	old := recv(t, ch)
	cancel()
	closed(t, ch)
	ch = consume(t, ctxFor(t), b, 1, q)
	d := recv(t, ch)
	if string(d.Body) != "held" || !d.Redelivered {
		t.Fatalf("after the consumer was lost got %q redelivered=%v, want %q redelivered", d.Body, d.Redelivered, "held")
	}
	if err := old.Ack(); !errors.Is(err, broker.ErrStaleDelivery) {
		t.Fatalf("ack of a delivery of a lost consumer: %v, want ErrStaleDelivery", err)
	}
	ack(t, d)
}

// closeReturnsUnacked: closing a broker returns its unacknowledged messages to their queue, where
// another broker gets them.
func (s *suite) closeReturnsUnacked(t *testing.T, b broker.Broker) {
	q := s.queue(t)
	publish(t, b, msg(q, "held"))
	ch := consume(t, ctxFor(t), b, 1, q)
	recv(t, ch)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	other := s.a.Open(t)
	t.Cleanup(func() { _ = other.Close() })
	d := recv(t, consume(t, ctxFor(t), other, 1, q))
	if string(d.Body) != "held" || !d.Redelivered {
		t.Fatalf("after Close got %q redelivered=%v, want %q redelivered", d.Body, d.Redelivered, "held")
	}
	ack(t, d)
	if err := b.Publish(ctxFor(t), msg(q, "late")); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Publish on a closed broker: %v, want ErrClosed", err)
	}
}

// rejectRequeue: a message rejected with requeue is delivered again, marked redelivered, and the
// message behind it is not disturbed. (RabbitMQ puts a requeued message back at its place "if
// possible"; with a global prefetch it may deliver the next one first, so the order of the two is
// not part of the contract.)
func (s *suite) rejectRequeue(t *testing.T, b broker.Broker) {
	q := s.queue(t)
	publish(t, b, msg(q, "first"))
	publish(t, b, msg(q, "second"))
	ch := consume(t, ctxFor(t), b, 1, q)
	d := recv(t, ch)
	if string(d.Body) != "first" {
		t.Fatalf("got %q first", d.Body)
	}
	if err := d.Reject(true); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for range 2 {
		d = recv(t, ch)
		if _, dup := got[string(d.Body)]; dup {
			t.Fatalf("%q delivered twice", d.Body)
		}
		got[string(d.Body)] = d.Redelivered
		ack(t, d)
	}
	if re, ok := got["first"]; !ok || !re {
		t.Fatalf("after reject(requeue): %v, want first redelivered", got)
	}
	if re, ok := got["second"]; !ok || re {
		t.Fatalf("after reject(requeue): %v, want second delivered once, not redelivered", got)
	}
}

// settleTwice: acknowledging or rejecting a delivery a second time reports broker.ErrAlreadySettled
// and does not disturb the consumer (the next message still arrives and can be acknowledged).
func (s *suite) settleTwice(t *testing.T, b broker.Broker) {
	q := s.queue(t)
	publish(t, b, msg(q, "a"))
	publish(t, b, msg(q, "b"))
	ch := consume(t, ctxFor(t), b, 1, q)
	d := recv(t, ch)
	ack(t, d)
	if err := d.Ack(); !errors.Is(err, broker.ErrAlreadySettled) {
		t.Fatalf("second ack: %v, want ErrAlreadySettled", err)
	}
	if err := d.Reject(true); !errors.Is(err, broker.ErrAlreadySettled) {
		t.Fatalf("reject after ack: %v, want ErrAlreadySettled", err)
	}
	d = recv(t, ch)
	if string(d.Body) != "b" || d.Redelivered {
		t.Fatalf("next delivery %q redelivered=%v, want %q", d.Body, d.Redelivered, "b")
	}
	ack(t, d)
}

// prefetchLimit: a consumer with prefetch 2 holds two unacknowledged messages and no more: a second
// consumer of the queue gets all the others, in order.
func (s *suite) prefetchLimit(t *testing.T, b broker.Broker) {
	q := s.queue(t)
	for i := range 6 {
		publish(t, b, msg(q, strconv.Itoa(i)))
	}
	limited := consume(t, ctxFor(t), b, 2, q)
	first, second := recv(t, limited), recv(t, limited)
	if string(first.Body) != "0" || string(second.Body) != "1" {
		t.Fatalf("the limited consumer got %q, %q; want 0, 1", first.Body, second.Body)
	}
	other := consume(t, ctxFor(t), b, 0, q)
	for i := 2; i < 6; i++ {
		d := recv(t, other)
		if string(d.Body) != strconv.Itoa(i) {
			t.Fatalf("the second consumer got %q, want %d: the first held more than its prefetch", d.Body, i)
		}
		ack(t, d)
	}
	ack(t, first)
	ack(t, second)
}

// setPrefetch: raising the prefetch lets a consumer that holds its limit receive more.
func (s *suite) setPrefetch(t *testing.T, b broker.Broker) {
	q := s.queue(t)
	publish(t, b, msg(q, "0"))
	publish(t, b, msg(q, "1"))
	ch := consume(t, ctxFor(t), b, 1, q)
	d0 := recv(t, ch)
	if err := b.SetPrefetch(2); err != nil {
		t.Fatal(err)
	}
	d1 := recv(t, ch)
	if string(d0.Body) != "0" || string(d1.Body) != "1" {
		t.Fatalf("got %q, %q; want 0, 1", d0.Body, d1.Body)
	}
	ack(t, d0)
	ack(t, d1)
}

// stopConsumingKeepsAcks: after StopConsuming the delivery channel closes, and what was delivered
// can still be acknowledged (it is not delivered again).
func (s *suite) stopConsumingKeepsAcks(t *testing.T, b broker.Broker) {
	q := s.queue(t)
	publish(t, b, msg(q, "running"))
	ch := consume(t, ctxFor(t), b, 1, q)
	d := recv(t, ch)
	if err := b.StopConsuming(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	closed(t, ch)
	ack(t, d)
	publish(t, b, msg(q, "after"))
	if d := recv(t, consume(t, ctxFor(t), b, 1, q)); string(d.Body) != "after" {
		t.Fatalf("a message acknowledged after StopConsuming came back: %q", d.Body)
	} else {
		ack(t, d)
	}
}

// directAndTopicRouting: a direct exchange routes on the exact key; a topic exchange matches '*'
// (one word) and '#' (zero or more words); the default exchange routes on the queue name.
func (s *suite) directAndTopicRouting(t *testing.T, b broker.Broker) {
	n := s.names(t, 5)
	direct := s.withArgs(broker.Queue{Name: n[0], Exchange: n[3], ExchangeType: "direct", RoutingKey: "k1"})
	star := s.withArgs(broker.Queue{Name: n[1], Exchange: n[4], ExchangeType: "topic", RoutingKey: "a.*"})
	hash := s.withArgs(broker.Queue{Name: n[2], Exchange: n[4], ExchangeType: "topic", RoutingKey: "a.#"})
	for _, q := range []broker.Queue{direct, star, hash} {
		if err := b.Declare(ctxFor(t), q); err != nil {
			t.Fatal(err)
		}
	}
	to := func(x, key, body string) {
		publish(t, b, broker.Publishing{Exchange: x, RoutingKey: key, Envelope: protocol.Envelope{Body: []byte(body), DeliveryMode: 2}})
	}
	to(n[3], "k2", "wrong key")
	to(n[3], "k1", "direct")
	to(n[4], "a.b.c", "deep")
	to(n[4], "a", "bare")
	to(n[4], "a.b", "one word")
	to("", n[0], "default exchange")
	for _, tc := range []struct {
		q    broker.Queue
		want []string
	}{
		{direct, []string{"direct", "default exchange"}},
		{star, []string{"one word"}},
		{hash, []string{"deep", "bare", "one word"}},
	} {
		ch := consume(t, ctxFor(t), b, 0, tc.q)
		for _, w := range tc.want {
			d := recv(t, ch)
			if string(d.Body) != w {
				t.Fatalf("queue bound with %q got %q, want %q", tc.q.RoutingKey, d.Body, w)
			}
			ack(t, d)
		}
	}
}

// redeclareFails: declaring an existing queue with other arguments is refused with an error, and
// the broker goes on working.
func (s *suite) redeclareFails(t *testing.T, b broker.Broker) {
	q := s.queue(t)
	if err := b.Declare(ctxFor(t), q); err != nil {
		t.Fatal(err)
	}
	other := q
	other.QueueArguments = map[string]any{"x-max-length": 10}
	if err := b.Declare(ctxFor(t), other); err == nil {
		t.Fatal("re-declaring a queue with other arguments succeeded")
	}
	publish(t, b, msg(q, "still works"))
	d := recv(t, consume(t, ctxFor(t), b, 1, q))
	if string(d.Body) != "still works" {
		t.Fatalf("got %q", d.Body)
	}
	ack(t, d)
}
