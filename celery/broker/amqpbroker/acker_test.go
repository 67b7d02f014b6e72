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
