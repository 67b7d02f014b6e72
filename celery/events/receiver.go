package events

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/forumads/forumads/celery/broker/fanout"
)

// ReceiverOptions configure a Receiver. Zero values mean Celery's defaults.
type ReceiverOptions struct {
	// Exchange is the event exchange; "" means "celeryev".
	Exchange string
	// RoutingKey binds the queue; "" means "#" (every event).
	RoutingKey string
	// QueuePrefix names the queue "<prefix>.<uuid>"; "" means "celeryev" (event_queue_prefix).
	QueuePrefix string
	// MessageTTL is the queue's x-message-ttl; 0 means 5 s (event_queue_ttl).
	MessageTTL time.Duration
	// Expires is the queue's x-expires; 0 means 60 s (event_queue_expires).
	Expires time.Duration
	// Clock, when set, is forwarded with every received event's clock, as Celery's receiver does
	// (except for task-sent: clients' clocks are not synchronised).
	Clock *Clock
}

// Received is one event taken from the queue, or a message that could not be decoded.
type Received struct {
	Event Event
	// Err is set, and Event is zero, when (part of) a message could not be decoded: wrong content
	// type, invalid JSON, a bad element of a .multi list. It names what was wrong.
	Err error
	// Multi reports that the event came in a "<group>.multi" list.
	Multi bool
	// The message's routing key, "hostname" header, content type and delivery mode.
	RoutingKey   string
	Hostname     string
	ContentType  string
	DeliveryMode uint8
}

// Receiver consumes events from its own queue, as Celery's EventReceiver does (`celery events`,
// Flower): "celeryev.<uuid>", not durable, auto-delete, x-message-ttl 5000, x-expires 60000, bound
// to the event exchange with "#", consumed without acknowledgements. It is meant for tests and tools.
type Receiver struct {
	sub   fanout.Subscription
	queue string
	c     chan Received
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once

	mu  sync.Mutex
	err error
}

// NewReceiver declares the exchange (topic, durable, as kombu does), the queue and its binding
// through tr, and starts consuming. Events arrive on C once NewReceiver returns. The receiver
// stops when ctx ends, Close is called or the subscription ends (the transport lost its
// connection); then C is closed. The caller keeps tr and closes it after the receiver.
func NewReceiver(ctx context.Context, tr fanout.Transport, o ReceiverOptions) (*Receiver, error) {
	if tr == nil {
		return nil, errors.New("events: NewReceiver: no transport")
	}
	if o.Exchange == "" {
		o.Exchange = DefaultExchange
	}
	if o.RoutingKey == "" {
		o.RoutingKey = "#"
	}
	if o.QueuePrefix == "" {
		o.QueuePrefix = DefaultExchange
	}
	if o.MessageTTL == 0 {
		o.MessageTTL = 5 * time.Second
	}
	if o.Expires == 0 {
		o.Expires = 60 * time.Second
	}
	if o.MessageTTL < 0 || o.Expires < 0 {
		return nil, fmt.Errorf("events: NewReceiver: negative MessageTTL (%s) or Expires (%s)", o.MessageTTL, o.Expires)
	}
	r := &Receiver{queue: o.QueuePrefix + "." + newUUID(), c: make(chan Received, 64),
		stop: make(chan struct{}), done: make(chan struct{})}
	if err := tr.DeclareExchange(ctx, o.Exchange, "topic", true, false); err != nil {
		return nil, fmt.Errorf("events: NewReceiver: %w", err)
	}
	q := fanout.Queue{Name: r.queue, Exchange: o.Exchange, RoutingKey: o.RoutingKey, MessageTTL: o.MessageTTL, Expires: o.Expires}
	if _, err := tr.DeclareQueue(ctx, q); err != nil {
		return nil, fmt.Errorf("events: NewReceiver: %w", err)
	}
	sub, err := tr.Consume(ctx, r.queue)
	if err != nil {
		return nil, fmt.Errorf("events: NewReceiver: %w", err)
	}
	r.sub = sub
	go r.loop(ctx, o)
	return r, nil
}

// Queue is the name of the receiver's queue.
func (r *Receiver) Queue() string { return r.queue }

// C delivers the events in the order they arrive, each event of a .multi list on its own. Read it
// promptly: the broker keeps pushing (there are no acknowledgements), and unread events pile up in
// memory. It is closed when the receiver stops.
func (r *Receiver) C() <-chan Received { return r.c }

// Err is why the receiver stopped: nil after Close or the end of ctx, else why the subscription
// ended (the connection was lost).
func (r *Receiver) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Close stops the receiver and its subscription (RabbitMQ then deletes the queue). It does not
// close the transport.
func (r *Receiver) Close() error {
	r.once.Do(func() { close(r.stop) })
	<-r.done
	return nil
}

func (r *Receiver) loop(ctx context.Context, o ReceiverOptions) {
	defer close(r.done)
	defer close(r.c)
	defer func() { _ = r.sub.Close() }()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.stop:
			return
		case m, ok := <-r.sub.C():
			if !ok {
				err := r.sub.Err()
				if err == nil {
					err = errors.New("the subscription ended")
				}
				r.mu.Lock()
				r.err = fmt.Errorf("events: receiver: %w", err)
				r.mu.Unlock()
				return
			}
			if !r.deliver(ctx, o, m) {
				return
			}
		}
	}
}

// deliver decodes one message and hands its events over; false when the receiver is stopping.
func (r *Receiver) deliver(ctx context.Context, o ReceiverOptions, d fanout.Message) bool {
	base := Received{RoutingKey: d.RoutingKey, ContentType: d.ContentType, DeliveryMode: d.DeliveryMode}
	if h, ok := d.Headers["hostname"].(string); ok {
		base.Hostname = h
	}
	var out []Received
	if d.ContentType != "application/json" {
		bad := base
		bad.Err = fmt.Errorf("events: message with routing key %q: content type %q, want application/json", d.RoutingKey, d.ContentType)
		out = append(out, bad)
	} else {
		evs, multi, err := DecodeBody(d.Body)
		for _, e := range evs {
			if o.Clock != nil && e.Type != TypeTaskSent {
				o.Clock.Forward(e.Clock)
			}
			got := base
			got.Event, got.Multi = e, multi
			out = append(out, got)
		}
		if err != nil {
			bad := base
			bad.Multi = multi
			bad.Err = fmt.Errorf("message with routing key %q: %w", d.RoutingKey, err)
			out = append(out, bad)
		}
	}
	for _, x := range out {
		select {
		case r.c <- x:
		case <-ctx.Done():
			return false
		case <-r.stop:
			return false
		}
	}
	return true
}

// newUUID returns a random (version 4) UUID string.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
