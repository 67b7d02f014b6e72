package amqpbroker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/testenv"
)

// TestBatchedAcksNeverSettleAHeldDelivery acks 59 of 60 deliveries from many goroutines while one
// (a "held ETA" message) stays unsettled and two are rejected: the multiple acks must cover neither,
// so after the connection closes exactly the held message is back in the queue.
func TestBatchedAcksNeverSettleAHeldDelivery(t *testing.T) {
	t.Parallel()
	q := broker.Queue{Name: testenv.Name(t, "acker")}
	testenv.DeleteQueuesAtCleanup(t, q.Name)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := New(testenv.AMQPURL(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 60
	for i := 0; i < n; i++ {
		env := protocol.Envelope{Body: []byte(fmt.Sprint(i)), DeliveryMode: 2}
		if err := b.Publish(ctx, broker.Publishing{RoutingKey: q.Name, Envelope: env, Declare: &q}); err != nil {
			t.Fatal(err)
		}
	}
	deliveries, err := b.Consume(ctx, []broker.Queue{q}, 100)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		d := <-deliveries
		switch string(d.Body) {
		case "10": // held: never settled
		case "20", "40":
			wg.Add(1)
			go func() { defer wg.Done(); errs <- d.Reject(false) }()
		default:
			wg.Add(1)
			go func() { defer wg.Done(); errs <- d.Ack() }()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("settling: %v", err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	ch, err := testenv.AMQP(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		m, ok, err := ch.Get(q.Name, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			if len(got) > 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		got = append(got, string(m.Body))
	}
	if len(got) != 1 || got[0] != "10" {
		t.Fatalf("after close the queue holds %v, want exactly the unsettled message [10]", got)
	}
}

// TestSettleAfterChannelLossIsStale: settling a delivery of a closed channel reports ErrStaleDelivery
// instead of blocking.
func TestSettleAfterChannelLossIsStale(t *testing.T) {
	t.Parallel()
	conn := testenv.AMQP(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	a := newBatchAcker(ch)
	a.delivered(1)
	_ = ch.Close()
	done := make(chan error, 1)
	go func() { done <- (acker{a: a, tag: 1}).Ack() }()
	go func() {
		<-ch.NotifyClose(make(chan *amqp.Error, 1))
		a.stop()
	}()
	select {
	case err := <-done:
		if err != broker.ErrStaleDelivery {
			t.Fatalf("ack on a closed channel: %v, want ErrStaleDelivery", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ack on a closed channel blocked")
	}
}

// TestMultipleAckWaitsForUnregisteredLowerTags: one channel consumes two queues, so delivery 1 (of
// queue A) can still be on its way through A's goroutine when delivery 2 (of queue B) is acked. The
// ack of 2 must not be a multiple ack covering 1: the worker has not seen 1 yet, and its own ack
// later would be a second one (RabbitMQ closes the channel: "unknown delivery tag 1").
func TestMultipleAckWaitsForUnregisteredLowerTags(t *testing.T) {
	t.Parallel()
	qa, qb := testenv.Name(t, "acker-a"), testenv.Name(t, "acker-b")
	testenv.DeleteQueuesAtCleanup(t, qa, qb)
	conn := testenv.AMQP(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{qa, qb} {
		if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if err := ch.Publish("", q, false, false, amqp.Publishing{Body: []byte(q)}); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until both messages are in their queues, then take them on one channel: tag 1 from A,
	// tag 2 from B.
	for _, q := range []string{qa, qb} {
		testenv.Eventually(t, 10*time.Second, func() bool {
			st, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			return st.Messages == 1
		}, "queue %s to hold its message", q)
	}
	cch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	closed := cch.NotifyClose(make(chan *amqp.Error, 1))
	m1, ok1, err1 := cch.Get(qa, false)
	m2, ok2, err2 := cch.Get(qb, false)
	if err1 != nil || err2 != nil || !ok1 || !ok2 || m1.DeliveryTag != 1 || m2.DeliveryTag != 2 {
		t.Fatalf("setup: %v %v %v %v tags %d %d", err1, err2, ok1, ok2, m1.DeliveryTag, m2.DeliveryTag)
	}
	a := newBatchAcker(cch)
	defer a.stop()
	a.delivered(2) // B's goroutine registers first
	if err := (acker{a: a, tag: 2}).Ack(); err != nil {
		t.Fatal(err)
	}
	a.delivered(1) // then A's
	if err := (acker{a: a, tag: 1}).Ack(); err != nil {
		t.Fatal(err)
	}
	// A channel error arrives asynchronously: a round trip on the channel flushes it.
	if _, err := cch.QueueDeclarePassive(qa, false, false, false, false, nil); err != nil {
		t.Fatalf("the channel was closed by the broker: %v", err)
	}
	select {
	case e := <-closed:
		t.Fatalf("the channel was closed: %v", e)
	default:
	}
	if err := (acker{a: a, tag: 1}).Ack(); err != broker.ErrAlreadySettled {
		t.Fatalf("a second ack of tag 1: %v, want ErrAlreadySettled", err)
	}
}
