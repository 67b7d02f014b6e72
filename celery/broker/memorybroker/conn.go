package memorybroker

import (
	"context"
	"time"

	"github.com/forumads/forumads/celery/broker"
)

// Conn is one client's view of a Broker, as a connection is of a RabbitMQ server: it publishes to
// and consumes from the Broker's queues, but StopConsuming, SetPrefetch, add/cancel_consumer and
// Close act on its own consumers only, and Close returns what they hold unacknowledged to the
// queues, where other connections get it. A worker and a client in one process each take a Conn
// of the same Broker. It is safe for concurrent use.
type Conn struct {
	b      *Broker
	closed bool // under b.mu
}

// Connect returns a new connection to b.
func (b *Broker) Connect() *Conn { return &Conn{b: b} }

var shared = New()

// Shared is the process-wide Broker that broker_url memory:// connects to (as kombu's memory
// transport is one per process), so that a client and a worker wired from the same configuration
// reach the same queues.
func Shared() *Broker { return shared }

func (c *Conn) check() error {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	if c.closed {
		return broker.ErrClosed
	}
	return nil
}

// Capabilities are the Broker's.
func (c *Conn) Capabilities() broker.Capabilities { return c.b.Capabilities() }

// Consume is Broker.Consume on this connection.
func (c *Conn) Consume(ctx context.Context, queues []broker.Queue, prefetch int) (<-chan *broker.Delivery, error) {
	return c.b.consume(ctx, c, queues, prefetch)
}

// StopConsuming ends the deliveries of this connection's Consume calls (see Broker.StopConsuming).
func (c *Conn) StopConsuming(context.Context) error { return c.b.stopConsuming(c) }

// SetPrefetch changes the prefetch of this connection's Consume calls.
func (c *Conn) SetPrefetch(n int) error {
	if err := c.check(); err != nil {
		return err
	}
	return c.b.setPrefetch(c, n)
}

// Publish is Broker.Publish.
func (c *Conn) Publish(ctx context.Context, p broker.Publishing) error {
	if err := c.check(); err != nil {
		return err
	}
	return c.b.Publish(ctx, p)
}

// PublishMany is Broker.PublishMany.
func (c *Conn) PublishMany(ctx context.Context, ps []broker.Publishing) error {
	if err := c.check(); err != nil {
		return err
	}
	return c.b.PublishMany(ctx, ps)
}

// Declare is Broker.Declare.
func (c *Conn) Declare(ctx context.Context, q broker.Queue) error {
	if err := c.check(); err != nil {
		return err
	}
	return c.b.Declare(ctx, q)
}

// DeclareExchange is Broker.DeclareExchange.
func (c *Conn) DeclareExchange(ctx context.Context, name, kind string, durable, autoDelete bool) error {
	if err := c.check(); err != nil {
		return err
	}
	return c.b.DeclareExchange(ctx, name, kind, durable, autoDelete)
}

// DeadLetter is Broker.DeadLetter.
func (c *Conn) DeadLetter(ctx context.Context, d *broker.Delivery, dl broker.DeadLetter) error {
	if err := c.check(); err != nil {
		return err
	}
	return c.b.DeadLetter(ctx, d, dl)
}

// Park is Broker.Park.
func (c *Conn) Park(ctx context.Context, d *broker.Delivery, delay time.Duration) (string, error) {
	if err := c.check(); err != nil {
		return "", err
	}
	return c.b.Park(ctx, d, delay)
}

// AddConsumer has this connection's running Consume calls consume q too.
func (c *Conn) AddConsumer(_ context.Context, q broker.Queue) error {
	if err := c.check(); err != nil {
		return err
	}
	return c.b.addConsumer(c, q)
}

// CancelConsumer stops this connection's consumers consuming queue name.
func (c *Conn) CancelConsumer(_ context.Context, name string) (bool, error) {
	return c.b.cancelConsumer(c, name), nil
}

// ConsumingQueues lists the queues this connection consumes now.
func (c *Conn) ConsumingQueues() []broker.Queue { return c.b.consumingQueues(c) }

// Close ends this connection's consumers, their unacknowledged messages returning to their queues,
// and makes its later calls fail with broker.ErrClosed; the Broker and other connections go on.
// Closing twice does nothing.
func (c *Conn) Close() error {
	b := c.b
	b.mu.Lock()
	if c.closed {
		b.mu.Unlock()
		return nil
	}
	c.closed = true
	var cs []*consumer
	for k := range b.consumers {
		if k.owner == c {
			cs = append(cs, k)
		}
	}
	b.mu.Unlock()
	for _, k := range cs {
		k.lose()
	}
	return nil
}

var (
	_ broker.Broker         = (*Conn)(nil)
	_ broker.BatchPublisher = (*Conn)(nil)
	_ broker.DeadLetterer   = (*Conn)(nil)
	_ broker.Parker         = (*Conn)(nil)
)
