// Package broker is the seam between Celery's worker and client and a message broker: the queue
// model, a delivered message with its acknowledger, and the Broker interface an adapter implements
// (see package amqpbroker for RabbitMQ, memorybroker for one process), what an adapter can do
// natively (Capabilities) and the optional interfaces that go with it (DeadLetterer, Parker).
package broker

import (
	"context"
	"errors"
	"time"

	"github.com/forumads/forumads/celery/protocol"
)

// Queue is a queue declaration shaped like kombu's Queue: the queue, the exchange it is bound to and
// the binding key. Celery declares queues durable and exchanges durable, with no arguments unless
// configured; every client and worker must declare a queue identically or RabbitMQ refuses the second
// declaration with PRECONDITION_FAILED.
type Queue struct {
	Name           string         `yaml:"name"`
	Exchange       string         `yaml:"exchange"`
	ExchangeType   string         `yaml:"exchange_type"`
	RoutingKey     string         `yaml:"routing_key"`
	QueueArguments map[string]any `yaml:"queue_arguments"`
	MaxPriority    *int           `yaml:"max_priority"`
}

// Delivery is one message handed to a consumer.
type Delivery struct {
	protocol.Envelope
	Queue       string // the queue it was consumed from
	Exchange    string // delivery_info exchange ("" = default exchange)
	RoutingKey  string // delivery_info routing_key
	Redelivered bool
	DeliveryTag uint64
	// Generation identifies the broker connection the message came on. When that connection is lost
	// the broker redelivers every unacknowledged message, so a consumer drops what it still holds from
	// an older generation instead of running it twice.
	Generation uint64
	// Timestamp is the AMQP timestamp property (whole seconds; zero when the sender set none). The
	// Go client sets it; Python Celery does not.
	Timestamp time.Time
	// HeaderError, when not empty, says why the adapter could not read the message's headers
	// (amqpbroker: py-amqp wrote a field type it cannot parse; the headers then hold the adapter's
	// marker in their place). The worker dead-letters such a message.
	HeaderError string
	Acker       Acknowledger
}

// Ack acknowledges the message.
func (d *Delivery) Ack() error { return d.Acker.Ack() }

// Reject rejects the message; with requeue the broker delivers it again.
func (d *Delivery) Reject(requeue bool) error { return d.Acker.Reject(requeue) }

// Acknowledger settles one delivery.
type Acknowledger interface {
	Ack() error
	Reject(requeue bool) error
}

// DeferredAcker is implemented by acknowledgers that can queue an ack and send it with others
// (amqpbroker: one basic.ack with multiple=true for many deliveries). The worker uses it for
// acks_late, once the task has run and its result is stored: AckDeferred returns before the ack
// is written, so it must not be used where the ack has to precede something (the early ack
// before a task starts). The adapter writes a queued ack without delay, and before it closes the
// channel or the connection on purpose; an ack lost with a dropped connection means the message
// is delivered again, as any acks_late message whose ack did not reach the broker.
type DeferredAcker interface {
	AckDeferred()
}

// AckAfterRun acknowledges a message whose task has run: deferred when the acknowledger can
// (DeferredAcker), else at once (Ack's error is returned).
func (d *Delivery) AckAfterRun() error {
	if da, ok := d.Acker.(DeferredAcker); ok {
		da.AckDeferred()
		return nil
	}
	return d.Acker.Ack()
}

// Publishing is a message to publish.
type Publishing struct {
	Exchange   string
	RoutingKey string
	protocol.Envelope
	// Declare, when set, is declared (once per connection) before publishing, as Celery's client declares
	// the target queue before sending to it.
	Declare *Queue
	// Timestamp, unless zero, is sent as the AMQP timestamp property (whole seconds), from which a
	// worker measures how long the message waited in its queue.
	Timestamp time.Time
}

// BatchPublisher is implemented by brokers that can publish several messages and wait for their
// confirms together (amqpbroker does). PublishMany returns once every message is confirmed; the
// messages keep their order in the queue.
type BatchPublisher interface {
	PublishMany(ctx context.Context, ps []Publishing) error
}

// Broker is what the worker and the client need from a message broker.
type Broker interface {
	// Consume delivers messages from the queues, across reconnects, until ctx ends or StopConsuming
	// is called; then the returned channel is closed. prefetch 0 means unlimited.
	Consume(ctx context.Context, queues []Queue, prefetch int) (<-chan *Delivery, error)
	// StopConsuming cancels the consumers (warm shutdown) but keeps the channel open for acks.
	StopConsuming(ctx context.Context) error
	// SetPrefetch changes the consuming channel's prefetch count.
	SetPrefetch(n int) error
	// Publish sends a message and returns once the broker has confirmed it.
	Publish(ctx context.Context, p Publishing) error
	// Declare declares a queue with its exchange and binding.
	Declare(ctx context.Context, q Queue) error
	// Close closes the connection; unacknowledged messages return to their queues.
	Close() error
	// Capabilities says what the adapter does natively (see Capabilities); it does not change
	// over the adapter's life.
	Capabilities() Capabilities
}

// ErrStaleDelivery is returned when settling a delivery whose connection was lost: the broker has
// already put the message back in its queue.
var ErrStaleDelivery = errors.New("broker: delivery belongs to a lost connection")

// ErrAlreadySettled is returned when a delivery is acknowledged or rejected a second time; nothing
// is sent to the broker (a bug in the caller, reported rather than allowed to close the channel).
var ErrAlreadySettled = errors.New("broker: the delivery was already acknowledged or rejected")

// ErrClosed is returned by a closed broker.
var ErrClosed = errors.New("broker: closed")
