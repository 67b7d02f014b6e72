package testenv

import (
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Received is one message a Collector took off its queue, with the time it arrived.
type Received struct {
	amqp.Delivery
	At time.Time
}

// Collector reads every message of one queue in the background (auto-ack) until the test ends,
// for tests that check what a publisher (a beat, a client) sent.
type Collector struct {
	mu   sync.Mutex
	msgs []Received
}

// Collect declares queue (durable, as Celery declares task queues) and collects its messages on
// a channel of its own; at cleanup the channel is closed and the reading goroutine has ended.
func Collect(t testing.TB, queue string) *Collector {
	t.Helper()
	ch, err := AMQP(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &Collector{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for d := range deliveries {
			c.mu.Lock()
			c.msgs = append(c.msgs, Received{Delivery: d, At: time.Now()})
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() { _ = ch.Close(); <-done })
	return c
}

// Received returns the messages collected so far, in arrival order.
func (c *Collector) Received() []Received {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Received(nil), c.msgs...)
}

// Deliveries returns the deliveries collected so far, in arrival order.
func (c *Collector) Deliveries() []amqp.Delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]amqp.Delivery, len(c.msgs))
	for i, m := range c.msgs {
		out[i] = m.Delivery
	}
	return out
}
