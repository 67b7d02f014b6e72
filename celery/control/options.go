package control

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/forumads/forumads/celery/broker/fanout"
)

// DefaultNamespace is Celery's control_exchange: the exchanges are "celery.pidbox" and
// "reply.celery.pidbox".
const DefaultNamespace = "celery"

// Defaults of Celery 5.2's control settings.
const (
	// DefaultQueueTTL is control_queue_ttl: requests wait at most this long in a node queue
	// (x-message-ttl).
	DefaultQueueTTL = 300 * time.Second
	// DefaultQueueExpires is control_queue_expires: a node or reply queue without consumers is
	// deleted after this long (x-expires).
	DefaultQueueExpires = 10 * time.Second
)

// Options configure a [Mailbox] or a [Client]. Zero values mean the defaults. The broker comes
// as the [fanout.Transport] given to [NewMailbox] or [NewClient] (amqpbroker.NewFanout for
// RabbitMQ).
type Options struct {
	// Namespace is Celery's control_exchange (default "celery"): requests go to the fanout
	// exchange "<namespace>.pidbox", replies to the direct exchange "reply.<namespace>.pidbox",
	// and a node listens on the queue "<node>.<namespace>.pidbox". Python's CLI uses the default;
	// tests may isolate themselves with another.
	Namespace string
	// QueueTTL and QueueExpires are control_queue_ttl and control_queue_expires (defaults
	// [DefaultQueueTTL], [DefaultQueueExpires]). Every node must declare its queue with the same
	// values or RabbitMQ refuses the declaration.
	QueueTTL, QueueExpires time.Duration
	// Clock is the node's Lamport clock (nil = a new one); share the one events use.
	Clock *Clock
	// Logger receives what the mailbox does (default slog.Default()).
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the delay before a mailbox sets up again after its
	// subscription ended (defaults 100ms and 1s, so a worker answers `celery inspect ping` about
	// a second after its broker is back); the transport has its own backoff for reconnecting.
	MinBackoff, MaxBackoff time.Duration
	// Now is the clock used to expire requests (default time.Now).
	Now func() time.Time
}

// withDefaults fills in the defaults and checks the options.
func (o Options) withDefaults() (Options, error) {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.QueueTTL <= 0 {
		o.QueueTTL = DefaultQueueTTL
	}
	if o.QueueExpires <= 0 {
		o.QueueExpires = DefaultQueueExpires
	}
	if o.Clock == nil {
		o.Clock = &Clock{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if len(o.Exchange()) > 255 || len(o.ReplyExchange()) > 255 {
		return o, fmt.Errorf("control: Options: namespace %q makes exchange names longer than 255 bytes", o.Namespace)
	}
	return o, nil
}

// Exchange is the fanout exchange requests are published to, "<namespace>.pidbox".
func (o Options) Exchange() string { return o.ns() + ".pidbox" }

// ReplyExchange is the direct exchange replies are published to, "reply.<namespace>.pidbox".
func (o Options) ReplyExchange() string { return "reply." + o.ns() + ".pidbox" }

// NodeQueue is the queue of node, "<node>.<namespace>.pidbox".
func (o Options) NodeQueue(node string) string { return node + "." + o.ns() + ".pidbox" }

func (o Options) ns() string {
	if o.Namespace == "" {
		return DefaultNamespace
	}
	return o.Namespace
}

// queue is the declaration of a node's or a reply queue, with the TTL and expiry kombu gives
// pidbox queues.
func (o Options) queue(name, exchange, routingKey string) fanout.Queue {
	return fanout.Queue{Name: name, Exchange: exchange, RoutingKey: routingKey,
		MessageTTL: o.QueueTTL, Expires: o.QueueExpires}
}

// declareExchanges declares the request exchange (fanout) and the reply exchange (direct), both
// non-durable and not auto-deleted, exactly as kombu declares them.
func declareExchanges(ctx context.Context, tr fanout.Transport, o Options) error {
	// The transport's errors name the exchange.
	if err := tr.DeclareExchange(ctx, o.Exchange(), "fanout", false, false); err != nil {
		return err
	}
	return tr.DeclareExchange(ctx, o.ReplyExchange(), "direct", false, false)
}

// DefaultMaxBackoff is the longest a mailbox waits before setting up again.
const DefaultMaxBackoff = time.Second

// jittered is a random delay in [d/2, d]: spread so that the nodes of a cluster do not all come
// back at once, and never above d (the cap).
func jittered(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// backoff waits before the next attempt (jittered(d)); false when ctx ended first.
func backoff(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(jittered(d))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
