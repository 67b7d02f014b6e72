package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/celery/amqpwire"
	"github.com/forumads/forumads/celery/broker/amqpbroker"
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

// Options configure a [Mailbox] or a [Client]. Zero values mean the defaults.
type Options struct {
	// BrokerURL is Celery's broker_url (amqp://, pyamqp://; several separated by ';' are tried in
	// turn). Required unless Dial is set.
	BrokerURL string
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
	// Dial opens a connection; nil dials BrokerURL through package amqpwire, so headers written
	// by py-amqp never break the connection.
	Dial func(ctx context.Context) (*amqp.Connection, error)
	// MinBackoff and MaxBackoff bound the delay between reconnection attempts (defaults 100ms
	// and 5s).
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
		o.MaxBackoff = 5 * time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Dial == nil {
		if o.BrokerURL == "" {
			return o, errors.New("control: Options: BrokerURL is required (or Dial)")
		}
		urls, err := amqpbroker.ParseURLs(o.BrokerURL)
		if err != nil {
			return o, fmt.Errorf("control: Options: %w", err)
		}
		o.Dial = dialer(urls)
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

// dialer dials the URLs in turn through amqpwire.
func dialer(urls []string) func(ctx context.Context) (*amqp.Connection, error) {
	var next atomic.Uint64
	return func(ctx context.Context) (*amqp.Connection, error) {
		u := urls[(next.Add(1)-1)%uint64(len(urls))]
		props := amqp.NewConnectionProperties()
		props.SetClientConnectionName("celery-control")
		cfg := amqp.Config{
			Heartbeat:  10 * time.Second,
			Locale:     "en_US",
			Properties: props,
			Dial:       amqpwire.Dialer(nil, amqpwire.Options{}),
		}
		type result struct {
			c   *amqp.Connection
			err error
		}
		done := make(chan result, 1)
		go func() {
			c, err := amqp.DialConfig(u, cfg)
			done <- result{c, err}
		}()
		select {
		case r := <-done:
			return r.c, r.err
		case <-ctx.Done():
			go func() {
				if r := <-done; r.c != nil {
					_ = r.c.Close()
				}
			}()
			return nil, context.Cause(ctx)
		}
	}
}

// queueArgs are the arguments kombu gives pidbox queues (expires and message_ttl in seconds
// become integer milliseconds, sent as 'I').
func queueArgs(o Options) amqp.Table {
	return amqp.Table{
		"x-expires":     int32(o.QueueExpires / time.Millisecond),
		"x-message-ttl": int32(o.QueueTTL / time.Millisecond),
	}
}

// declareExchanges declares the request exchange (fanout) and the reply exchange (direct), both
// non-durable and not auto-deleted, exactly as kombu declares them.
func declareExchanges(ch *amqp.Channel, o Options) error {
	if err := ch.ExchangeDeclare(o.Exchange(), "fanout", false, false, false, false, nil); err != nil {
		return fmt.Errorf("declaring exchange %q: %w", o.Exchange(), err)
	}
	if err := ch.ExchangeDeclare(o.ReplyExchange(), "direct", false, false, false, false, nil); err != nil {
		return fmt.Errorf("declaring exchange %q: %w", o.ReplyExchange(), err)
	}
	return nil
}

// backoff waits before the next attempt; false when ctx ended first.
func backoff(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d + time.Duration(rand.Int64N(int64(d)/2+1)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// isRefusal reports whether the broker refused what was asked (a channel or connection exception
// that retrying cannot fix).
func isRefusal(err error) bool {
	var aerr *amqp.Error
	if errors.As(err, &aerr) {
		switch aerr.Code {
		case amqp.NotFound, amqp.AccessRefused, amqp.PreconditionFailed, amqp.ResourceLocked,
			amqp.NotAllowed, amqp.NotImplemented, amqp.CommandInvalid, amqp.SyntaxError:
			return true
		}
	}
	return false
}
