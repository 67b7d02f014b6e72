package amqpbroker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/protocol"
)

// consumer keeps one channel consuming a set of queues, reopening it after a connection loss.
type consumer struct {
	b        *Broker
	queues   []broker.Queue
	out      chan *broker.Delivery
	prefetch atomic.Int64

	mu      sync.Mutex
	ch      *amqp.Channel
	tags    []string
	stopped bool
	stop    chan struct{}
}

// Consume declares the queues, sets the prefetch (global QoS, as Celery does on RabbitMQ) and delivers
// their messages until ctx ends or StopConsuming. A connection loss is repaired in the background;
// deliveries carry the connection generation they came on. The first connect happens before Consume
// returns, so a refused declaration (PRECONDITION_FAILED) is reported at start.
func (b *Broker) Consume(ctx context.Context, queues []broker.Queue, prefetch int) (<-chan *broker.Delivery, error) {
	c := &consumer{b: b, queues: queues, out: make(chan *broker.Delivery, 256), stop: make(chan struct{})}
	c.prefetch.Store(int64(prefetch))
	srcs, gen, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.consumers = append(b.consumers, c)
	b.mu.Unlock()
	go c.run(ctx, srcs, gen)
	return c.out, nil
}

func (c *consumer) open(ctx context.Context) ([]<-chan amqp.Delivery, uint64, error) {
	for {
		conn, gen, err := c.b.connection(ctx)
		if err != nil {
			return nil, 0, err
		}
		srcs, err := c.openOn(conn, gen)
		if err == nil {
			return srcs, gen, nil
		}
		if !c.b.retryable(ctx, err) {
			return nil, 0, err
		}
		c.b.log.Warn("cannot start consuming, retrying", "error", err)
	}
}

func (c *consumer) openOn(conn *amqp.Connection, gen uint64) ([]<-chan amqp.Delivery, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	for _, q := range c.queues {
		if err := declare(ch, q); err != nil {
			_ = ch.Close()
			return nil, err
		}
	}
	if err := ch.Qos(int(c.prefetch.Load()), 0, true); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("setting prefetch: %w", err)
	}
	var srcs []<-chan amqp.Delivery
	var tags []string
	for i, q := range c.queues {
		tag := fmt.Sprintf("%s-%s-%d-%d", c.b.opts.ConnectionName, q.Name, gen, i)
		d, err := ch.Consume(q.Name, tag, false, false, false, false, nil)
		if err != nil {
			_ = ch.Close()
			return nil, fmt.Errorf("consuming %q: %w", q.Name, err)
		}
		srcs = append(srcs, d)
		tags = append(tags, tag)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		_ = ch.Close()
		return nil, errStopped
	}
	c.ch, c.tags = ch, tags
	return srcs, nil
}

var errStopped = errors.New("consumer stopped")

func (c *consumer) run(ctx context.Context, srcs []<-chan amqp.Delivery, gen uint64) {
	defer close(c.out)
	for {
		c.forward(ctx, srcs, gen)
		c.mu.Lock()
		stopped, ch := c.stopped, c.ch
		c.mu.Unlock()
		if stopped || ctx.Err() != nil {
			return
		}
		// A consumer ended without being asked to: the connection or channel was lost, or the server
		// cancelled a consumer (queue deleted). Start over on a fresh channel; what was unacknowledged
		// on the old one goes back to the queues.
		if ch != nil && !ch.IsClosed() {
			_ = ch.Close()
		}
		var err error
		srcs, gen, err = c.open(ctx)
		if err != nil {
			if !errors.Is(err, errStopped) && !errors.Is(err, broker.ErrClosed) && ctx.Err() == nil {
				c.b.log.Error("consuming stopped", "error", err)
			}
			return
		}
		c.b.log.Info("consuming again", "generation", gen)
	}
}

// forward copies deliveries from every queue's consumer to out until one of them ends.
func (c *consumer) forward(ctx context.Context, srcs []<-chan amqp.Delivery, gen uint64) {
	c.mu.Lock()
	ack := newBatchAcker(c.ch)
	c.mu.Unlock()
	defer func() {
		// Settles of this channel's deliveries may still be under way (running acks_late tasks after
		// StopConsuming); the acker ends only with the channel.
		go func() {
			<-ack.ch.NotifyClose(make(chan *amqp.Error, 1))
			ack.stop()
		}()
	}()
	done := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for i, src := range srcs {
		wg.Add(1)
		go func(q string, src <-chan amqp.Delivery) {
			defer wg.Done()
			defer once.Do(func() { close(done) })
			for d := range src {
				ack.delivered(d.DeliveryTag)
				del := &broker.Delivery{
					Envelope:    envelope(&d),
					Queue:       q,
					Exchange:    d.Exchange,
					RoutingKey:  d.RoutingKey,
					Redelivered: d.Redelivered,
					DeliveryTag: d.DeliveryTag,
					Generation:  gen,
					Acker:       acker{a: ack, tag: d.DeliveryTag},
				}
				select {
				case c.out <- del:
				case <-ctx.Done():
					return
				}
			}
		}(c.queues[i].Name, src)
	}
	<-done
	// One consumer ended; make the others end too by closing the channel, unless we are stopping
	// (then every consumer was cancelled and ends by itself).
	c.mu.Lock()
	if !c.stopped && c.ch != nil {
		_ = c.ch.Close()
	}
	c.mu.Unlock()
	wg.Wait()
}

func envelope(d *amqp.Delivery) protocol.Envelope {
	return protocol.Envelope{
		Body:            d.Body,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		Headers:         d.Headers,
		CorrelationID:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		DeliveryMode:    d.DeliveryMode,
		Priority:        d.Priority,
		Expiration:      d.Expiration,
	}
}

func stale(err error) error {
	if errors.Is(err, amqp.ErrClosed) {
		return broker.ErrStaleDelivery
	}
	return err
}

// StopConsuming cancels every consumer of this broker; channels stay open so that running tasks can
// still be acknowledged.
func (b *Broker) StopConsuming(ctx context.Context) error {
	b.mu.Lock()
	cs := b.consumers
	b.mu.Unlock()
	var errs []error
	for _, c := range cs {
		c.mu.Lock()
		c.stopped = true
		ch, tags := c.ch, c.tags
		c.mu.Unlock()
		if ch == nil || ch.IsClosed() {
			continue
		}
		for _, t := range tags {
			if err := ch.Cancel(t, false); err != nil && !errors.Is(err, amqp.ErrClosed) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// SetPrefetch changes the prefetch count of the consuming channels (and of those opened after a reconnect).
func (b *Broker) SetPrefetch(n int) error {
	b.mu.Lock()
	cs := b.consumers
	b.mu.Unlock()
	for _, c := range cs {
		c.prefetch.Store(int64(n))
		c.mu.Lock()
		ch := c.ch
		c.mu.Unlock()
		if ch != nil && !ch.IsClosed() {
			if err := ch.Qos(n, 0, true); err != nil {
				return stale(err)
			}
		}
	}
	return nil
}
