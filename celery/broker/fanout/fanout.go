// Package fanout is the seam between Celery's broadcast channels and a message broker: the
// remote-control mailbox ("pidbox", package control) and events (package events) talk to the
// broker only through the [Transport] interface declared here, which an adapter implements
// (amqpbroker.Fanout for RabbitMQ; kombu's Redis fanout over PUBLISH/SUBSCRIBE can implement it
// too).
//
// It is a package of its own, not part of [broker.Broker], because a broadcast channel is a
// different thing from a task queue: its queues are private (not durable, deleted with their last
// consumer, with an expiry), its messages are consumed without acknowledgements, and its
// exchanges are fanout (pidbox requests), direct (pidbox replies) or topic (events). Keeping it
// apart lets control and events depend on this leaf package (stdlib, package protocol and the
// [broker.Publishing] type) instead of on amqp091-go.
//
// # Model
//
// An exchange routes a message to every queue bound to it whose binding key matches the routing
// key: all of them for "fanout", equal keys for "direct", AMQP topic patterns for "topic". A
// [Queue] is declared and bound with [Transport.DeclareQueue] and consumed with
// [Transport.Consume], which returns a [Subscription]. [Transport.Publish] waits for the broker's
// confirm (events); [Transport.Send] does not (pidbox requests and replies, as kombu sends them).
//
// # Reconnects
//
// A Transport hides lost connections from the calls that set something up or send: they
// reconnect (with backoff) and try again until their context ends. A [Subscription] does not
// survive a lost connection: its channel C closes and Err says why, and the consumer sets up
// again (declare the exchanges, declare and bind the queue, consume), as the pidbox mailbox does.
// An error from DeclareExchange, DeclareQueue or Consume therefore means the broker refused what
// was asked (an exchange that exists with other flags, a queue that does not exist), the context
// ended, or the transport was closed ([broker.ErrClosed]); retrying the same call cannot help.
//
// # Conformance
//
// Package fanouttest is a test suite every Transport must pass.
package fanout

import (
	"context"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/protocol"
)

// ExchangeDeclarer declares an exchange without any queue: kind is "direct", "fanout", "topic"
// ("" means direct); an adapter may accept more (AMQP's headers and x-… types). Every process
// must declare an exchange with the same flags: RabbitMQ refuses a second declaration that
// differs (406 PRECONDITION_FAILED), and the error says so.
type ExchangeDeclarer interface {
	DeclareExchange(ctx context.Context, name, kind string, durable, autoDelete bool) error
}

// Transport is what control and events need from a broker. Implementations are safe for
// concurrent use. See the package documentation for how they behave across reconnects.
type Transport interface {
	ExchangeDeclarer
	// DeclareQueue declares q (not durable, deleted with its last consumer, with q's message TTL
	// and expiry) and binds it to q.Exchange with q.RoutingKey. It returns how many consumers
	// the queue already had (0 when the adapter cannot tell, see [Capabilities]). Declaring an
	// existing queue with the same settings is not an error.
	DeclareQueue(ctx context.Context, q Queue) (consumers int, err error)
	// Consume starts consuming the queue, without acknowledgements. Messages arrive on the
	// subscription's C in the order the broker delivers them. ctx bounds only the setup.
	Consume(ctx context.Context, queue string) (Subscription, error)
	// Publish sends p and returns once the broker has confirmed it (as [broker.Broker]'s
	// Publish). p.Declare is honoured as Broker.Publish does.
	Publish(ctx context.Context, p broker.Publishing) error
	// Send sends p without waiting for a confirm: it returns once the message is written. A
	// message to an exchange that does not exist is lost, as kombu's pidbox loses it.
	Send(ctx context.Context, p broker.Publishing) error
	// Capabilities says what the adapter does natively.
	Capabilities() Capabilities
}

// Capabilities says what a [Transport] does natively; package fanouttest only checks what is
// declared.
type Capabilities struct {
	// QueueTTL: a declared queue keeps the messages routed to it, even before it is consumed,
	// until they are consumed or older than its MessageTTL (RabbitMQ). Without it (Redis
	// PUBLISH/SUBSCRIBE) only messages sent while the queue is consumed arrive.
	QueueTTL bool
	// ConsumerCount: DeclareQueue reports the consumers a queue already has, so that a pidbox
	// node notices another node with its name.
	ConsumerCount bool
}

// Queue is a private queue of a broadcast channel and its binding, as kombu declares the pidbox
// node and reply queues and the event receiver's queue: not durable, auto-delete, with
// "x-message-ttl" and "x-expires" (as integer milliseconds) when set.
type Queue struct {
	// Name is the queue's name (required).
	Name string
	// Exchange is the exchange the queue is bound to (required; declare it first).
	Exchange string
	// RoutingKey is the binding key: "" for a fanout exchange, the reply's routing key for a
	// direct one, a pattern such as "#" for a topic one.
	RoutingKey string
	// MessageTTL is how long a message may wait in the queue (x-message-ttl); 0 means for ever.
	MessageTTL time.Duration
	// Expires is how long the queue may go unused before the broker deletes it (x-expires); 0
	// means never.
	Expires time.Duration
}

// Message is one message received on a [Subscription].
type Message struct {
	protocol.Envelope
	// Exchange and RoutingKey are where the message was published to.
	Exchange, RoutingKey string
}

// Subscription is a queue being consumed. It ends when Close is called, when the broker cancels
// the consumer (the queue was deleted) or when the connection is lost.
type Subscription interface {
	// C delivers the messages. It is closed when the subscription ends. Read it promptly: there
	// are no acknowledgements, so the broker keeps pushing.
	C() <-chan Message
	// Err is why the subscription ended once C is closed: nil after Close, else the lost
	// connection or the cancelled consumer.
	Err() error
	// Close ends the subscription (the broker then deletes the auto-delete queue) and waits
	// until C is closed. It may be called more than once.
	Close() error
}
