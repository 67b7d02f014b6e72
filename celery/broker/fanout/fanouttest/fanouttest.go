// Package fanouttest is the conformance suite of [fanout.Transport]: every adapter runs [Run]
// against a real broker, as river's driver suite runs against every driver.
//
//	func TestFanoutConformance(t *testing.T) {
//		fanouttest.Run(t, fanouttest.Harness{
//			New: func(t *testing.T) fanout.Transport { return newTransport(t, url) },
//			NewCuttable: func(t *testing.T) (fanout.Transport, func()) {
//				p := tcpproxy.Start(t, host)
//				return newTransport(t, "amqp://guest:guest@"+p.Addr()+"/"), func() { p.Cut() }
//			},
//		})
//	}
//
// The suite checks what control and events rely on: fanout reaches every bound queue, direct and
// topic routing reach only matching queues, message properties and headers arrive as sent,
// refusals are reported (and leave the transport usable), Close ends a subscription, a lost
// connection ends it with an error and setting up again works, and, when the adapter declares
// them in its [fanout.Capabilities], message TTL and consumer counts. Every subtest uses names of
// its own and auto-delete exchanges and queues, so nothing is left on the broker.
package fanouttest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/fanout"
	"github.com/forumads/forumads/celery/protocol"
)

// Harness is what Run needs from an adapter's test.
type Harness struct {
	// New returns a transport for one subtest, on a connection of its own, closed at the
	// subtest's cleanup. Required.
	New func(t *testing.T) fanout.Transport
	// NewCuttable returns a transport and a function that breaks its live connections as a
	// network failure would (internal/tcpproxy's Cut). Required unless NoCut says why not: Run
	// fails when both are empty, so the reconnect test is never left out unnoticed.
	NewCuttable func(t *testing.T) (tr fanout.Transport, cut func())
	// NoCut, with a reason, leaves out the reconnect test for an adapter that has no connection
	// to lose (an in-memory one).
	NoCut string
}

// Run runs the suite as subtests of t.
func Run(t *testing.T, h Harness) {
	if h.New == nil {
		t.Fatal("fanouttest.Run: Harness.New is required")
	}
	s := &suite{h: h}
	t.Run("FanoutReachesEveryBoundQueue", s.fanoutReachesEveryBoundQueue)
	t.Run("DirectReachesOnlyItsQueue", s.directReachesOnlyItsQueue)
	t.Run("TopicRoutesByPattern", s.topicRoutesByPattern)
	t.Run("RefusedDeclarationIsReported", s.refusedDeclarationIsReported)
	t.Run("BadInputIsRefused", s.badInputIsRefused)
	t.Run("CloseEndsSubscription", s.closeEndsSubscription)
	t.Run("QueueTTLExpiresMessages", s.queueTTLExpiresMessages)
	t.Run("ConsumerCount", s.consumerCount)
	switch {
	case h.NewCuttable != nil:
		t.Run("LostConnectionEndsSubscriptionAndSetupWorksAgain", s.reconnect)
	case h.NoCut == "":
		t.Error("fanouttest.Run: Harness.NewCuttable is nil and NoCut gives no reason")
	}
}

type suite struct{ h Harness }

// name is a name unique to this subtest run.
func name(t *testing.T, what string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	n := strings.NewReplacer("/", ".", " ", "_").Replace(t.Name())
	return "fanouttest." + n + "." + what + "." + hex.EncodeToString(b[:])
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// exchange declares an auto-delete exchange of kind for the subtest.
func exchange(t *testing.T, c context.Context, tr fanout.Transport, kind string) string {
	t.Helper()
	x := name(t, kind)
	if err := tr.DeclareExchange(c, x, kind, false, true); err != nil {
		t.Fatalf("DeclareExchange(%s, %s): %v", x, kind, err)
	}
	return x
}

// subscribe declares a queue bound to x with key and consumes it until the subtest ends.
func subscribe(t *testing.T, c context.Context, tr fanout.Transport, x, key string) fanout.Subscription {
	t.Helper()
	q := fanout.Queue{Name: name(t, "q"), Exchange: x, RoutingKey: key, MessageTTL: time.Minute, Expires: time.Minute}
	if _, err := tr.DeclareQueue(c, q); err != nil {
		t.Fatalf("DeclareQueue(%+v): %v", q, err)
	}
	sub, err := tr.Consume(c, q.Name)
	if err != nil {
		t.Fatalf("Consume(%s): %v", q.Name, err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

// next is the next message of sub, failing after 20 s.
func next(t *testing.T, c context.Context, sub fanout.Subscription) fanout.Message {
	t.Helper()
	select {
	case m, ok := <-sub.C():
		if !ok {
			t.Fatalf("subscription ended: %v", sub.Err())
		}
		return m
	case <-c.Done():
		t.Fatal("no message within 20 s")
	}
	return fanout.Message{}
}

// msg is a message as pidbox and events send them, with every header type they use.
func msg(body string) protocol.Envelope {
	return protocol.Envelope{Body: []byte(body), ContentType: "application/json", ContentEncoding: "utf-8",
		DeliveryMode: 1, Headers: map[string]any{"ticket": "t-" + body, "clock": int32(7), "expires": 1795630327.25}}
}

func sameEnvelope(t *testing.T, got fanout.Message, want protocol.Envelope) {
	t.Helper()
	if string(got.Body) != string(want.Body) || got.ContentType != want.ContentType ||
		got.ContentEncoding != want.ContentEncoding || got.DeliveryMode != want.DeliveryMode ||
		!reflect.DeepEqual(got.Headers, want.Headers) {
		t.Errorf("received %q %s/%s mode %d headers %#v\nwant %q %s/%s mode %d headers %#v",
			got.Body, got.ContentType, got.ContentEncoding, got.DeliveryMode, got.Headers,
			want.Body, want.ContentType, want.ContentEncoding, want.DeliveryMode, want.Headers)
	}
}

func (s *suite) fanoutReachesEveryBoundQueue(t *testing.T) {
	t.Parallel()
	c, tr := ctx(t), s.h.New(t)
	x := exchange(t, c, tr, "fanout")
	subs := []fanout.Subscription{subscribe(t, c, tr, x, ""), subscribe(t, c, tr, x, ""), subscribe(t, c, tr, x, "ignored")}
	confirmed, unconfirmed := msg("confirmed"), msg("unconfirmed")
	if err := tr.Publish(c, broker.Publishing{Exchange: x, RoutingKey: "any", Envelope: confirmed}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if err := tr.Send(c, broker.Publishing{Exchange: x, RoutingKey: "other", Envelope: unconfirmed}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	for i, sub := range subs {
		m := next(t, c, sub)
		sameEnvelope(t, m, confirmed)
		if m.Exchange != x || m.RoutingKey != "any" {
			t.Errorf("queue %d: message from %q/%q, want %q/any", i, m.Exchange, m.RoutingKey, x)
		}
		sameEnvelope(t, next(t, c, sub), unconfirmed)
	}
}

func (s *suite) directReachesOnlyItsQueue(t *testing.T) {
	t.Parallel()
	c, tr := ctx(t), s.h.New(t)
	x := exchange(t, c, tr, "direct")
	a, b := subscribe(t, c, tr, x, "a"), subscribe(t, c, tr, x, "b")
	// Sent in this order on one connection: if b1 reached a's queue, it would come between a1
	// and a2 there; if a1 reached b's queue, it would come before b1.
	for _, m := range []struct{ key, body string }{{"a", "a1"}, {"b", "b1"}, {"nobody", "lost"}, {"a", "a2"}} {
		if err := tr.Send(c, broker.Publishing{Exchange: x, RoutingKey: m.key, Envelope: msg(m.body)}); err != nil {
			t.Fatalf("Send to %s: %v", m.key, err)
		}
	}
	for _, want := range []string{"a1", "a2"} {
		if m := next(t, c, a); string(m.Body) != want || m.RoutingKey != "a" {
			t.Fatalf("queue a received %q (key %q), want %q", m.Body, m.RoutingKey, want)
		}
	}
	if m := next(t, c, b); string(m.Body) != "b1" {
		t.Fatalf("queue b received %q first, want b1", m.Body)
	}
}

func (s *suite) topicRoutesByPattern(t *testing.T) {
	t.Parallel()
	c, tr := ctx(t), s.h.New(t)
	x := exchange(t, c, tr, "topic")
	all, tasks := subscribe(t, c, tr, x, "#"), subscribe(t, c, tr, x, "task.*")
	for _, key := range []string{"worker.heartbeat", "task.multi", "task.started"} {
		if err := tr.Publish(c, broker.Publishing{Exchange: x, RoutingKey: key, Envelope: msg(key)}); err != nil {
			t.Fatalf("Publish %s: %v", key, err)
		}
	}
	for _, want := range []string{"worker.heartbeat", "task.multi", "task.started"} {
		if m := next(t, c, all); m.RoutingKey != want {
			t.Fatalf(`"#" received %q, want %q`, m.RoutingKey, want)
		}
	}
	for _, want := range []string{"task.multi", "task.started"} {
		if m := next(t, c, tasks); m.RoutingKey != want {
			t.Fatalf(`"task.*" received %q, want %q`, m.RoutingKey, want)
		}
	}
}

func (s *suite) refusedDeclarationIsReported(t *testing.T) {
	t.Parallel()
	c, tr := ctx(t), s.h.New(t)
	x := exchange(t, c, tr, "fanout")
	// The same exchange with other flags: RabbitMQ says 406, and retrying cannot help.
	err := tr.DeclareExchange(c, x, "fanout", true, true)
	if err == nil {
		t.Fatal("declaring an exchange again with other flags succeeded")
	}
	if c.Err() != nil || !strings.Contains(err.Error(), x) {
		t.Fatalf("refusal %v: not reported at once, or without the exchange's name", err)
	}
	// A queue that does not exist cannot be consumed.
	if _, err := tr.Consume(c, name(t, "missing")); err == nil || c.Err() != nil {
		t.Fatalf("Consume of a missing queue: %v", err)
	}
	// The transport is still usable.
	sub := subscribe(t, c, tr, x, "")
	if err := tr.Send(c, broker.Publishing{Exchange: x, Envelope: msg("after")}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, c, sub); string(m.Body) != "after" {
		t.Fatalf("received %q", m.Body)
	}
}

func (s *suite) badInputIsRefused(t *testing.T) {
	t.Parallel()
	c, tr := ctx(t), s.h.New(t)
	x := exchange(t, c, tr, "direct")
	for _, q := range []fanout.Queue{
		{Exchange: x},
		{Name: name(t, "q")},
		{Name: name(t, "q"), Exchange: x, MessageTTL: -time.Second},
	} {
		if _, err := tr.DeclareQueue(c, q); err == nil {
			t.Errorf("DeclareQueue(%+v) succeeded", q)
		}
	}
	if _, err := tr.Consume(c, ""); err == nil {
		t.Error("Consume of an empty queue name succeeded")
	}
	if err := tr.DeclareExchange(c, "", "fanout", false, true); err == nil {
		t.Error("DeclareExchange with an empty name succeeded")
	}
}

func (s *suite) closeEndsSubscription(t *testing.T) {
	t.Parallel()
	c, tr := ctx(t), s.h.New(t)
	x := exchange(t, c, tr, "fanout")
	sub := subscribe(t, c, tr, x, "")
	if err := tr.Send(c, broker.Publishing{Exchange: x, Envelope: msg("unread")}); err != nil {
		t.Fatal(err)
	}
	// Close must return even though nobody reads C.
	if err := sub.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range sub.C() {
	}
	if err := sub.Err(); err != nil {
		t.Errorf("Err after Close = %v, want nil", err)
	}
	if err := sub.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func (s *suite) queueTTLExpiresMessages(t *testing.T) {
	t.Parallel()
	c, tr := ctx(t), s.h.New(t)
	if !tr.Capabilities().QueueTTL {
		t.Skip("the adapter does not keep messages in declared queues (Capabilities.QueueTTL)")
	}
	x := exchange(t, c, tr, "fanout")
	q := fanout.Queue{Name: name(t, "ttl"), Exchange: x, MessageTTL: 50 * time.Millisecond, Expires: time.Minute}
	if _, err := tr.DeclareQueue(c, q); err != nil {
		t.Fatal(err)
	}
	if err := tr.Publish(c, broker.Publishing{Exchange: x, Envelope: msg("old")}); err != nil {
		t.Fatal(err)
	}
	// Let "old" outlive the queue's TTL while nobody consumes; "new" is consumed in time.
	time.Sleep(4 * q.MessageTTL)
	if err := tr.Publish(c, broker.Publishing{Exchange: x, Envelope: msg("new")}); err != nil {
		t.Fatal(err)
	}
	sub, err := tr.Consume(c, q.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if m := next(t, c, sub); string(m.Body) != "new" {
		t.Fatalf("received %q first: the message older than the queue's TTL was not expired", m.Body)
	}
}

func (s *suite) consumerCount(t *testing.T) {
	t.Parallel()
	c, tr := ctx(t), s.h.New(t)
	if !tr.Capabilities().ConsumerCount {
		t.Skip("the adapter does not count consumers (Capabilities.ConsumerCount)")
	}
	x := exchange(t, c, tr, "fanout")
	q := fanout.Queue{Name: name(t, "q"), Exchange: x, MessageTTL: time.Minute, Expires: time.Minute}
	if n, err := tr.DeclareQueue(c, q); err != nil || n != 0 {
		t.Fatalf("first DeclareQueue = %d, %v; want 0 consumers", n, err)
	}
	sub, err := tr.Consume(c, q.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if n, err := tr.DeclareQueue(c, q); err != nil || n != 1 {
		t.Fatalf("DeclareQueue while consumed = %d, %v; want 1 consumer", n, err)
	}
}

func (s *suite) reconnect(t *testing.T) {
	t.Parallel()
	c := ctx(t)
	tr, cut := s.h.NewCuttable(t)
	x := exchange(t, c, tr, "fanout")
	sub := subscribe(t, c, tr, x, "")
	if err := tr.Publish(c, broker.Publishing{Exchange: x, Envelope: msg("before")}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, c, sub); string(m.Body) != "before" {
		t.Fatalf("received %q", m.Body)
	}
	cut()
	for range sub.C() {
	}
	if err := sub.Err(); err == nil {
		t.Fatal("a subscription ended by a lost connection reports no error")
	}
	// Setting up again reconnects (the auto-delete exchange went with its queue).
	x2 := exchange(t, c, tr, "fanout")
	again := subscribe(t, c, tr, x2, "")
	if err := tr.Send(c, broker.Publishing{Exchange: x2, Envelope: msg("after")}); err != nil {
		t.Fatalf("Send after the cut: %v", err)
	}
	if err := tr.Publish(c, broker.Publishing{Exchange: x2, Envelope: msg("confirmed after")}); err != nil {
		t.Fatalf("Publish after the cut: %v", err)
	}
	for _, want := range []string{"after", "confirmed after"} {
		if m := next(t, c, again); string(m.Body) != want {
			t.Fatalf("received %q, want %q", m.Body, want)
		}
	}
}
