package amqpbroker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/fanout"
)

// Fanout is the RabbitMQ implementation of fanout.Transport, the broadcast channels of Celery's
// remote control and events, on a Broker's connection (reconnected with the Broker's backoff).
// Queues are declared not durable and auto-delete with integer-millisecond x-message-ttl and
// x-expires, each subscription consumes on a channel of its own with no_ack, and Send publishes
// without waiting for the confirm, exactly as kombu does for pidbox and events.
type Fanout struct {
	b     *Broker
	owned bool
}

// Fanout returns the broadcast transport on b's connection. b's owner closes b; Close of the
// returned Fanout does nothing.
func (b *Broker) Fanout() *Fanout { return &Fanout{b: b} }

// NewFanout returns a broadcast transport on a connection of its own to brokerURL (Celery's
// broker_url, see New), closed by Close. No connection is made until the first use.
func NewFanout(brokerURL string, opts Options) (*Fanout, error) {
	b, err := New(brokerURL, opts)
	if err != nil {
		return nil, err
	}
	return &Fanout{b: b, owned: true}, nil
}

// Broker is the Broker whose connection f uses (for Connects, Connected and Redacted).
func (f *Fanout) Broker() *Broker { return f.b }

// Close closes the connection when f made it (NewFanout); a Fanout of Broker.Fanout leaves the
// Broker open.
func (f *Fanout) Close() error {
	if f.owned {
		return f.b.Close()
	}
	return nil
}

// Capabilities: RabbitMQ keeps messages in declared queues with their TTL and counts consumers.
func (f *Fanout) Capabilities() fanout.Capabilities {
	return fanout.Capabilities{QueueTTL: true, ConsumerCount: true}
}

// DeclareExchange declares an exchange as Broker.DeclareExchange does (remembered, and declared
// again on a new connection before the next publish to it).
func (f *Fanout) DeclareExchange(ctx context.Context, name, kind string, durable, autoDelete bool) error {
	return f.b.DeclareExchange(ctx, name, kind, durable, autoDelete)
}

// Publish sends p and waits for its confirm, as Broker.Publish does.
func (f *Fanout) Publish(ctx context.Context, p broker.Publishing) error { return f.b.Publish(ctx, p) }

// fanoutArgs are the queue arguments of q as kombu sends them: integer milliseconds, 'I' when
// they fit in 32 bits.
func fanoutArgs(q fanout.Queue) amqp.Table {
	args := amqp.Table{}
	if q.Expires > 0 {
		args["x-expires"] = tableValue(int64(q.Expires / time.Millisecond))
	}
	if q.MessageTTL > 0 {
		args["x-message-ttl"] = tableValue(int64(q.MessageTTL / time.Millisecond))
	}
	if len(args) == 0 {
		return nil
	}
	return args
}

// DeclareQueue declares q (durable=false, exclusive=false, auto_delete=true, with its TTL and
// expiry) and binds it, on a channel of its own, retrying across a lost connection.
func (f *Fanout) DeclareQueue(ctx context.Context, q fanout.Queue) (int, error) {
	if q.Name == "" || q.Exchange == "" {
		return 0, fmt.Errorf("declaring a broadcast queue: empty queue (%q) or exchange (%q) name", q.Name, q.Exchange)
	}
	if q.MessageTTL < 0 || q.Expires < 0 {
		return 0, fmt.Errorf("declaring queue %q: negative MessageTTL (%s) or Expires (%s)", q.Name, q.MessageTTL, q.Expires)
	}
	for {
		conn, _, err := f.b.connection(ctx)
		if err != nil {
			return 0, err
		}
		ch, err := conn.Channel()
		if err != nil {
			if f.b.retryable(ctx, err) {
				continue
			}
			return 0, fmt.Errorf("declaring queue %q: %w", q.Name, err)
		}
		var consumers int
		dq, err := ch.QueueDeclare(q.Name, false, true, false, false, fanoutArgs(q))
		if err != nil {
			err = fmt.Errorf("declaring queue %q: %w", q.Name, err)
		} else {
			consumers = dq.Consumers
			if err = ch.QueueBind(q.Name, q.RoutingKey, q.Exchange, false, nil); err != nil {
				err = fmt.Errorf("binding queue %q to %q: %w", q.Name, q.Exchange, err)
			}
		}
		_ = ch.Close()
		if err == nil {
			return consumers, nil
		}
		if !f.b.retryable(ctx, err) {
			return 0, err
		}
	}
}

// Consume consumes queue with no_ack on a channel of its own, retrying across a lost connection
// until the consumer is registered.
func (f *Fanout) Consume(ctx context.Context, queue string) (fanout.Subscription, error) {
	if queue == "" {
		return nil, errors.New("consuming: empty queue name")
	}
	for {
		conn, _, err := f.b.connection(ctx)
		if err != nil {
			return nil, err
		}
		ch, err := conn.Channel()
		if err != nil {
			if f.b.retryable(ctx, err) {
				continue
			}
			return nil, fmt.Errorf("consuming %q: %w", queue, err)
		}
		closed := ch.NotifyClose(make(chan *amqp.Error, 1))
		deliveries, err := ch.Consume(queue, "", true, false, false, false, nil)
		if err != nil {
			_ = ch.Close()
			if f.b.retryable(ctx, err) {
				continue
			}
			return nil, fmt.Errorf("consuming %q: %w", queue, err)
		}
		s := &subscription{ch: ch, c: make(chan fanout.Message), stop: make(chan struct{}), done: make(chan struct{})}
		go s.pump(deliveries, closed)
		return s, nil
	}
}

// Send publishes p on the connection's publishing channel without waiting for the confirm,
// retrying across a lost connection until the message is written or ctx ends.
func (f *Fanout) Send(ctx context.Context, p broker.Publishing) error {
	for {
		if err := f.b.ensureTopology(ctx, &p); err != nil {
			return err
		}
		ch, _, err := f.b.publisher(ctx)
		if err != nil {
			if f.b.retryable(ctx, err) {
				continue
			}
			return err
		}
		err = ch.PublishWithContext(ctx, p.Exchange, p.RoutingKey, false, false, amqpPublishing(&p))
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("publishing: %w", context.Cause(ctx))
		}
		if !f.b.retryable(ctx, err) {
			return fmt.Errorf("publishing: %w", err)
		}
	}
}

// subscription is one consumer on its own channel.
type subscription struct {
	ch   *amqp.Channel
	c    chan fanout.Message
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu  sync.Mutex
	err error
}

func (s *subscription) C() <-chan fanout.Message { return s.c }

func (s *subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *subscription) Close() error {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	return nil
}

// pump hands the deliveries over until the consumer ends, then records why and closes C.
func (s *subscription) pump(deliveries <-chan amqp.Delivery, closed <-chan *amqp.Error) {
	defer close(s.done)
	defer close(s.c)
	defer func() { _ = s.ch.Close() }()
	for {
		select {
		case <-s.stop:
			return
		case d, ok := <-deliveries:
			if !ok {
				s.ended(closed)
				return
			}
			unpackHeaders(&d)
			m := fanout.Message{Exchange: d.Exchange, RoutingKey: d.RoutingKey, Envelope: envelope(&d)}
			select {
			case s.c <- m:
			case <-s.stop:
				return
			}
		}
	}
}

// ended records why the deliveries stopped: amqp091-go reports a channel's or its connection's
// error to the channel's close listeners before it closes the consumers.
func (s *subscription) ended(closed <-chan *amqp.Error) {
	var err error
	select {
	case <-s.stop:
	case e, ok := <-closed:
		if ok && e != nil {
			err = fmt.Errorf("connection lost: %w", e)
		} else {
			err = errors.New("the channel closed")
		}
	default:
		err = errors.New("the broker cancelled the consumer (was the queue deleted?)")
	}
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

var _ fanout.Transport = (*Fanout)(nil)
