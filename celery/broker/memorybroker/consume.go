package memorybroker

import (
	"context"
	"fmt"
	"maps"
	"sync"

	"github.com/forumads/forumads/celery/broker"
)

// consumer is one Consume call: like an AMQP channel, it has its own prefetch and delivery tags,
// and what it holds unsettled returns to the queues when it is lost.
type consumer struct {
	b        *Broker
	owner    *Conn // nil for the Broker's own Consume calls
	out      chan *broker.Delivery
	wake     chan struct{} // a token: look for messages again
	done     chan struct{} // closed once stopped or lost: no more deliveries
	doneOnce sync.Once
	stopCtx  func() bool

	// under b.mu
	queues   []broker.Queue
	prefetch int
	unacked  map[uint64]pending
	tag      uint64
	next     int // the queue to look at first, so that every queue gets its turn
	stopped  bool
	lost     bool
}

// pending is a delivered message not settled yet.
type pending struct {
	queue       string
	m           *message
	redelivered bool // the message's flag before this delivery
}

// Consume declares the queues and delivers their messages, taking turns between the queues, with
// at most prefetch unsettled at a time (0 = unlimited), until ctx ends (then what is unsettled goes
// back to its queues, marked redelivered, and settling it reports broker.ErrStaleDelivery),
// StopConsuming is called or the broker is closed; then the channel is closed.
func (b *Broker) Consume(ctx context.Context, queues []broker.Queue, prefetch int) (<-chan *broker.Delivery, error) {
	return b.consume(ctx, nil, queues, prefetch)
}

func (b *Broker) consume(ctx context.Context, owner *Conn, queues []broker.Queue, prefetch int) (<-chan *broker.Delivery, error) {
	if prefetch < 0 {
		return nil, fmt.Errorf("memorybroker: consuming: negative prefetch %d", prefetch)
	}
	b.mu.Lock()
	if b.closed || (owner != nil && owner.closed) {
		b.mu.Unlock()
		return nil, broker.ErrClosed
	}
	for _, q := range queues {
		if err := b.declare(q); err != nil {
			b.mu.Unlock()
			return nil, err
		}
	}
	c := &consumer{b: b, owner: owner, out: make(chan *broker.Delivery), wake: make(chan struct{}, 1), done: make(chan struct{}),
		queues: append([]broker.Queue(nil), queues...), prefetch: prefetch, unacked: map[uint64]pending{}}
	b.consumers[c] = struct{}{}
	b.mu.Unlock()
	c.stopCtx = context.AfterFunc(ctx, c.lose)
	go c.run()
	return c.out, nil
}

func (c *consumer) run() {
	defer close(c.out)
	for {
		d := c.take()
		if d == nil {
			select {
			case <-c.wake:
				continue
			case <-c.done:
				return
			}
		}
		select {
		case c.out <- d:
		case <-c.done:
			c.untake(d.DeliveryTag)
			return
		}
	}
}

// take removes the next message from the consumer's queues and registers it as unsettled; nil
// when there is none or the prefetch is used up.
func (c *consumer) take() *broker.Delivery {
	b := c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if c.stopped || c.lost || (c.prefetch > 0 && len(c.unacked) >= c.prefetch) {
		return nil
	}
	n := len(c.queues)
	for k := range n {
		i := (c.next + k) % n
		name := c.queues[i].Name
		q, ok := b.queues[name]
		if !ok || len(q.msgs) == 0 {
			continue
		}
		m := q.msgs[0]
		q.msgs = q.msgs[1:]
		c.next = (i + 1) % n
		c.tag++
		c.unacked[c.tag] = pending{queue: name, m: m, redelivered: m.redelivered}
		env := m.Envelope
		env.Headers = maps.Clone(m.Headers)
		return &broker.Delivery{
			Envelope:    env,
			Queue:       name,
			Exchange:    m.Exchange,
			RoutingKey:  m.RoutingKey,
			Redelivered: m.redelivered,
			DeliveryTag: c.tag,
			Generation:  1,
			Timestamp:   m.Timestamp.Truncate(1e9),
			Acker:       acker{c: c, tag: c.tag},
		}
	}
	return nil
}

// untake puts back a message taken but never handed out (the consumer stopped meanwhile), with
// the flags it had.
func (c *consumer) untake(tag uint64) {
	b := c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := c.unacked[tag]
	if !ok {
		return // lost: already back in its queue
	}
	delete(c.unacked, tag)
	if q, ok := b.queues[p.queue]; ok {
		p.m.redelivered = p.redelivered
		q.insert(p.m)
	}
	b.wake()
}

func (c *consumer) closeDone() { c.doneOnce.Do(func() { close(c.done) }) }

// lose ends the consumer as a closed channel ends: its unsettled messages go back to their queues.
func (c *consumer) lose() {
	b := c.b
	b.mu.Lock()
	if c.lost {
		b.mu.Unlock()
		return
	}
	c.lost = true
	delete(b.consumers, c)
	for tag, p := range c.unacked {
		b.requeue(p.queue, p.m)
		delete(c.unacked, tag)
	}
	b.wake()
	b.mu.Unlock()
	c.closeDone()
	c.stopCtx()
}

// settle acknowledges or rejects delivery tag.
func (c *consumer) settle(tag uint64, ack, requeue bool) error {
	b := c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if c.lost {
		return broker.ErrStaleDelivery
	}
	p, ok := c.unacked[tag]
	if !ok {
		return broker.ErrAlreadySettled
	}
	delete(c.unacked, tag)
	switch {
	case ack:
	case requeue:
		b.requeue(p.queue, p.m)
	default:
		b.deadLetterRejected(p.queue, p.m)
	}
	b.wake()
	return nil
}

// acker settles one delivery of a consumer.
type acker struct {
	c   *consumer
	tag uint64
}

func (a acker) Ack() error                { return a.c.settle(a.tag, true, false) }
func (a acker) Reject(requeue bool) error { return a.c.settle(a.tag, false, requeue) }

// StopConsuming ends the deliveries of every Consume call (their channels close) but keeps their
// unsettled messages settleable; those not settled return to their queues when the Consume
// context ends or the broker is closed.
func (b *Broker) StopConsuming(context.Context) error { return b.stopConsuming(nil) }

func (b *Broker) stopConsuming(owner *Conn) error {
	b.mu.Lock()
	var cs []*consumer
	for c := range b.consumers {
		if c.owner != owner {
			continue
		}
		c.stopped = true
		cs = append(cs, c)
	}
	b.mu.Unlock()
	for _, c := range cs {
		c.closeDone()
	}
	return nil
}

// SetPrefetch changes the prefetch of every Consume call (0 = unlimited).
func (b *Broker) SetPrefetch(n int) error { return b.setPrefetch(nil, n) }

func (b *Broker) setPrefetch(owner *Conn, n int) error {
	if n < 0 {
		return fmt.Errorf("memorybroker: negative prefetch %d", n)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return broker.ErrClosed
	}
	for c := range b.consumers {
		if c.owner == owner {
			c.prefetch = n
		}
	}
	b.wake()
	return nil
}

// AddConsumer declares q and has every running Consume call consume it too (the add_consumer
// control command); a queue already consumed is not added twice. broker.ErrClosed is returned when
// nothing consumes.
func (b *Broker) AddConsumer(_ context.Context, q broker.Queue) error { return b.addConsumer(nil, q) }

func (b *Broker) addConsumer(owner *Conn, q broker.Queue) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.declare(q); err != nil {
		return fmt.Errorf("add_consumer %q: %w", q.Name, err)
	}
	added := false
	for c := range b.consumers {
		if c.stopped || c.owner != owner {
			continue
		}
		added = true
		if !hasQueue(c.queues, q.Name) {
			c.queues = append(c.queues, q)
		}
	}
	if !added {
		return fmt.Errorf("add_consumer %q: the broker is not consuming: %w", q.Name, broker.ErrClosed)
	}
	b.wake()
	return nil
}

// CancelConsumer stops consuming queue name (the cancel_consumer control command); messages
// already delivered stay with their consumer. It reports whether the queue was consumed.
func (b *Broker) CancelConsumer(_ context.Context, name string) (bool, error) {
	return b.cancelConsumer(nil, name), nil
}

func (b *Broker) cancelConsumer(owner *Conn, name string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	found := false
	for c := range b.consumers {
		if c.owner != owner {
			continue
		}
		kept := c.queues[:0]
		for _, q := range c.queues {
			if q.Name == name {
				found = true
				continue
			}
			kept = append(kept, q)
		}
		c.queues = kept
		c.next = 0
	}
	return found
}

// ConsumingQueues lists the queues consumed now by running Consume calls.
func (b *Broker) ConsumingQueues() []broker.Queue { return b.consumingQueues(nil) }

func (b *Broker) consumingQueues(owner *Conn) []broker.Queue {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []broker.Queue
	for c := range b.consumers {
		if c.stopped || c.owner != owner {
			continue
		}
		for _, q := range c.queues {
			if !hasQueue(out, q.Name) {
				out = append(out, q)
			}
		}
	}
	return out
}

func hasQueue(qs []broker.Queue, name string) bool {
	for _, q := range qs {
		if q.Name == name {
			return true
		}
	}
	return false
}
