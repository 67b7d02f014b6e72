package events

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/celery/amqpwire"
	"github.com/forumads/forumads/celery/broker/amqpbroker"
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
	// ConnectionName is shown in the RabbitMQ management UI.
	ConnectionName string
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
	conn  *amqp.Connection
	queue string
	c     chan Received
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once

	mu  sync.Mutex
	err error
}

// NewReceiver connects to brokerURL (Celery's broker_url; the first of several ';'-separated URLs),
// declares the exchange (topic, durable, as kombu does), the queue and its binding, and starts
// consuming. Events arrive on C once NewReceiver returns. The receiver stops when ctx ends, Close is
// called or the connection is lost; then C is closed.
func NewReceiver(ctx context.Context, brokerURL string, o ReceiverOptions) (*Receiver, error) {
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
	urls, err := amqpbroker.ParseURLs(brokerURL)
	if err != nil {
		return nil, fmt.Errorf("events: NewReceiver: %w", err)
	}
	props := amqp.NewConnectionProperties()
	if o.ConnectionName != "" {
		props.SetClientConnectionName(o.ConnectionName)
	}
	conn, err := amqp.DialConfig(urls[0], amqp.Config{
		Heartbeat: 10 * time.Second, Locale: "en_US", Properties: props,
		Dial: amqpwire.Dialer(nil, amqpwire.Options{}),
	})
	if err != nil {
		return nil, fmt.Errorf("events: NewReceiver: connecting: %w", err)
	}
	r := &Receiver{conn: conn, queue: o.QueuePrefix + "." + newUUID(), c: make(chan Received, 64),
		stop: make(chan struct{}), done: make(chan struct{})}
	deliveries, err := r.setup(o)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("events: NewReceiver: %w", err)
	}
	go r.loop(ctx, o, deliveries)
	return r, nil
}

func (r *Receiver) setup(o ReceiverOptions) (<-chan amqp.Delivery, error) {
	ch, err := r.conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.ExchangeDeclare(o.Exchange, "topic", true, false, false, false, nil); err != nil {
		return nil, fmt.Errorf("declaring exchange %q: %w", o.Exchange, err)
	}
	args := amqp.Table{"x-message-ttl": int32(o.MessageTTL.Milliseconds()), "x-expires": int32(o.Expires.Milliseconds())}
	if _, err := ch.QueueDeclare(r.queue, false, true, false, false, args); err != nil {
		return nil, fmt.Errorf("declaring queue %q: %w", r.queue, err)
	}
	if err := ch.QueueBind(r.queue, o.RoutingKey, o.Exchange, false, nil); err != nil {
		return nil, fmt.Errorf("binding queue %q to %q: %w", r.queue, o.Exchange, err)
	}
	d, err := ch.Consume(r.queue, "", true, false, false, false, nil)
	if err != nil {
		return nil, fmt.Errorf("consuming %q: %w", r.queue, err)
	}
	return d, nil
}

// Queue is the name of the receiver's queue.
func (r *Receiver) Queue() string { return r.queue }

// C delivers the events in the order they arrive, each event of a .multi list on its own. Read it
// promptly: the broker keeps pushing (there are no acknowledgements), and unread events pile up in
// memory. It is closed when the receiver stops.
func (r *Receiver) C() <-chan Received { return r.c }

// Err is why the receiver stopped: nil after Close or the end of ctx, else the connection error.
func (r *Receiver) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Close stops the receiver and closes its connection (RabbitMQ then deletes the queue).
func (r *Receiver) Close() error {
	r.once.Do(func() { close(r.stop) })
	<-r.done
	return nil
}

func (r *Receiver) loop(ctx context.Context, o ReceiverOptions, deliveries <-chan amqp.Delivery) {
	defer close(r.done)
	defer close(r.c)
	defer func() { _ = r.conn.Close() }()
	closed := r.conn.NotifyClose(make(chan *amqp.Error, 1))
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.stop:
			return
		case d, ok := <-deliveries:
			if !ok {
				err := error(errors.New("events: receiver: the broker closed the consumer"))
				select {
				case cerr, ok := <-closed:
					if ok && cerr != nil {
						err = fmt.Errorf("events: receiver: connection lost: %w", cerr)
					}
				default:
				}
				r.mu.Lock()
				r.err = err
				r.mu.Unlock()
				return
			}
			if !r.deliver(ctx, o, d) {
				return
			}
		}
	}
}

// deliver decodes one message and hands its events over; false when the receiver is stopping.
func (r *Receiver) deliver(ctx context.Context, o ReceiverOptions, d amqp.Delivery) bool {
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
