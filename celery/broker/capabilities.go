package broker

import (
	"context"
	"time"

	"github.com/forumads/forumads/celery/protocol"
)

// Capabilities says what a broker adapter does natively. The worker asks for them instead of
// assuming RabbitMQ, and the conformance suite (package brokertest) tests what an adapter declares
// and skips what it does not.
type Capabilities struct {
	// DelayedDelivery: the adapter implements Parker, moving a message out of its queue and
	// delivering it there again after a delay, so the worker need not hold far-future ETA messages
	// unacknowledged (RabbitMQ: a TTL queue that dead-letters back into the original queue).
	DelayedDelivery bool
	// Priorities: a queue declared with MaxPriority (x-max-priority) delivers higher-priority
	// messages first.
	Priorities bool
	// DeadLetter: the adapter implements DeadLetterer, keeping messages the worker cannot run in a
	// dead-letter queue instead of dropping them.
	DeadLetter bool
	// Fanout: fanout exchanges deliver every message to every bound queue (remote control and
	// events broadcast through them).
	Fanout bool
}

// Headers a dead-lettered message carries besides its own (see DeadLetterer), visible in the
// RabbitMQ management UI and read back when replaying dead letters.
const (
	HeaderDeadLetterReason = "x-dead-letter-reason"
	HeaderOriginalQueue    = "x-original-queue"
	HeaderOriginalExchange = "x-original-exchange"
	HeaderOriginalKey      = "x-original-routing-key"
	HeaderDeadLetteredBy   = "x-dead-lettered-by"
	HeaderDeadLetteredAt   = "x-dead-lettered-at"
)

// DeadLetter says where a message goes that the worker cannot run, and why.
type DeadLetter struct {
	// Queue is the dead-letter queue (worker_dead_letter_queue, default "celery.deadletter").
	Queue string
	// Reason is stored in the HeaderDeadLetterReason header.
	Reason string
	// By names the worker (HeaderDeadLetteredBy); At is when (HeaderDeadLetteredAt).
	By string
	At time.Time
}

// DeadLetterer is implemented by adapters that declare Capabilities.DeadLetter. DeadLetter
// copies d, unchanged but for the dead-letter headers, to dl.Queue and returns once the copy is
// safely stored; it does not settle d (the caller acknowledges it on success and requeues it on
// error, so nothing is lost). A worker whose broker lacks it rejects such a message without
// requeue, which drops it unless the broker dead-letters rejected messages itself.
type DeadLetterer interface {
	DeadLetter(ctx context.Context, d *Delivery, dl DeadLetter) error
}

// Parker is implemented by adapters that declare Capabilities.DelayedDelivery. Park copies d to
// a place from which the broker delivers it to d.Queue again after about delay (rounded to whole
// seconds, at least one), and returns where (for logs) once the copy is safely stored; it does not
// settle d. The worker parks ETA messages further away than worker_eta_park_after; a worker whose
// broker lacks Parker holds them unacknowledged until their ETA instead.
type Parker interface {
	Park(ctx context.Context, d *Delivery, delay time.Duration) (where string, err error)
}

// ConnectionStats is implemented by adapters with a network connection (amqpbroker), for health
// checks and metrics. An adapter without it is always connected and never reconnects.
type ConnectionStats interface {
	// Connected reports whether the adapter has a live connection now.
	Connected() bool
	// Connects counts successful connections (1 after the first connect, +1 per reconnect).
	Connects() int64
}

// Connected reports whether b has a live connection (true for adapters without ConnectionStats).
func Connected(b Broker) bool {
	if cs, ok := b.(ConnectionStats); ok {
		return cs.Connected()
	}
	return true
}

// Reconnects counts b's reconnects after its first connect (0 for adapters without ConnectionStats).
func Reconnects(b Broker) int64 {
	if cs, ok := b.(ConnectionStats); ok {
		return max(cs.Connects()-1, 0)
	}
	return 0
}

// Envelope is the message a DeadLetterer stores for d: d's envelope with d's headers plus the
// Header* dead-letter headers, persistent, and without a per-message TTL (which would let a broker
// drop the dead letter silently).
func (dl DeadLetter) Envelope(d *Delivery) protocol.Envelope {
	h := make(map[string]any, len(d.Headers)+6)
	for k, v := range d.Headers {
		h[k] = v
	}
	h[HeaderDeadLetterReason] = dl.Reason
	h[HeaderOriginalQueue] = d.Queue
	h[HeaderOriginalExchange] = d.Exchange
	h[HeaderOriginalKey] = d.RoutingKey
	h[HeaderDeadLetteredBy] = dl.By
	h[HeaderDeadLetteredAt] = protocol.FormatTime(dl.At.UTC())
	env := d.Envelope
	env.Headers = h
	if env.DeliveryMode == 0 {
		env.DeliveryMode = 2
	}
	env.Expiration = ""
	return env
}
