package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/fanout"
	"github.com/forumads/forumads/celery/protocol"
)

// DefaultExchange is the exchange Celery publishes events to (event_exchange).
const DefaultExchange = "celeryev"

// Defaults of Options.
const (
	DefaultBufferSize     = 10000
	DefaultBatchLimit     = 100
	DefaultPublishTimeout = 10 * time.Second
)

// Publisher is what a Dispatcher publishes through: a [fanout.Transport] (amqpbroker.Fanout for
// RabbitMQ), or any [broker.Broker]. Publish must wait for the broker's confirm.
type Publisher interface {
	Publish(ctx context.Context, p broker.Publishing) error
}

// ExchangeDeclarer is implemented by publishers that can declare an exchange without a queue
// (every [fanout.Transport], and amqpbroker.Broker). The Dispatcher declares its exchange with it
// before its first publish, and again after a failed one: topic, durable, not auto-delete, no
// arguments (kombu's Exchange defaults, so Python's own declaration never fails with 406). With
// a publisher that does not implement it the exchange is not declared: it must exist.
type ExchangeDeclarer = fanout.ExchangeDeclarer

// Options configure a Dispatcher.
type Options struct {
	// Hostname is the node name events are sent as ("celery@host"), also the "hostname" message
	// header. Required.
	Hostname string
	// Exchange is the topic exchange events go to; "" means "celeryev". Tests use their own.
	Exchange string
	// Enabled turns task events (group "task") on from the start, as `celery worker -E` does.
	// Other groups (worker-*, custom) are always sent. See EnableTaskEvents.
	Enabled bool
	// Clock is the node's Lamport clock, shared with the control mailbox; nil means a new one.
	Clock *Clock
	// Logger receives publishing errors; nil means slog.Default().
	Logger *slog.Logger
	// BufferSize bounds the events waiting to be published; when it is full the oldest waiting
	// event is dropped (and counted) so that Send never waits. 0 means DefaultBufferSize.
	BufferSize int
	// BatchLimit is the most task events sent in one "task.multi" message (a JSON list, as the
	// prefork worker sends them). 0 means DefaultBatchLimit; 1 turns batching off, so that every
	// event goes alone with its own routing key (task.received, task.succeeded, ...).
	BatchLimit int
	// PublishTimeout bounds one publish (with its confirm); events of a publish that fails are
	// counted as failed and logged. 0 means DefaultPublishTimeout.
	PublishTimeout time.Duration
	// PID is the "pid" field; 0 means os.Getpid().
	PID int
	// Now is the clock for timestamps and utcoffset; nil means time.Now.
	Now func() time.Time
}

// Stats counts what a Dispatcher did with the events it was given.
type Stats struct {
	Sent     uint64 // events published (confirmed by the broker)
	Messages uint64 // messages published (a .multi message holds several events)
	Dropped  uint64 // events dropped: the buffer was full (the oldest went), or sent after Close
	Failed   uint64 // events lost because publishing failed (or they could not be encoded)
}

// Dispatcher publishes Celery events without ever blocking its caller: Send stamps the event and
// puts it in a bounded buffer; one goroutine publishes from there, task events batched into
// "task.multi" lists. It is safe for concurrent use.
type Dispatcher struct {
	br       Publisher
	o        Options
	clock    *Clock
	log      *slog.Logger
	exchange string

	taskEvents atomic.Bool

	mu      sync.Mutex
	ring    []Event // circular buffer of waiting events
	head, n int
	closed  bool

	notify  chan struct{} // a token when events were added
	closing chan struct{} // closed by Close
	done    chan struct{} // closed when the publishing goroutine returns
	ctx     context.Context
	cancel  context.CancelFunc

	declared bool // only touched by the publishing goroutine

	sent, messages, dropped, failed atomic.Uint64
}

// NewDispatcher starts a dispatcher publishing through br, which the caller keeps and closes
// after the dispatcher. Call Close to flush and stop it.
func NewDispatcher(br Publisher, o Options) (*Dispatcher, error) {
	if br == nil {
		return nil, errors.New("events: NewDispatcher: no broker (publisher)")
	}
	if o.Hostname == "" {
		return nil, errors.New("events: NewDispatcher: Options.Hostname (the node name) is required")
	}
	if o.BufferSize < 0 || o.BatchLimit < 0 || o.PublishTimeout < 0 {
		return nil, fmt.Errorf("events: NewDispatcher: negative BufferSize (%d), BatchLimit (%d) or PublishTimeout (%s)",
			o.BufferSize, o.BatchLimit, o.PublishTimeout)
	}
	if o.Exchange == "" {
		o.Exchange = DefaultExchange
	}
	if o.Clock == nil {
		o.Clock = new(Clock)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.BufferSize == 0 {
		o.BufferSize = DefaultBufferSize
	}
	if o.BatchLimit == 0 {
		o.BatchLimit = DefaultBatchLimit
	}
	if o.PublishTimeout == 0 {
		o.PublishTimeout = DefaultPublishTimeout
	}
	if o.PID == 0 {
		o.PID = os.Getpid()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Dispatcher{
		br: br, o: o, clock: o.Clock, exchange: o.Exchange,
		log:    o.Logger.With("component", "events", "exchange", o.Exchange),
		ring:   make([]Event, o.BufferSize),
		notify: make(chan struct{}, 1), closing: make(chan struct{}), done: make(chan struct{}),
		ctx: ctx, cancel: cancel,
	}
	d.taskEvents.Store(o.Enabled)
	go d.run()
	return d, nil
}

// Hostname is the node name the dispatcher sends as.
func (d *Dispatcher) Hostname() string { return d.o.Hostname }

// Clock is the dispatcher's Lamport clock.
func (d *Dispatcher) Clock() *Clock { return d.clock }

// EnableTaskEvents turns task events on (the enable_events control command). It reports whether
// they were off: Celery replies "task events enabled", else "task events already enabled".
func (d *Dispatcher) EnableTaskEvents() bool { return !d.taskEvents.Swap(true) }

// DisableTaskEvents turns task events off (the disable_events control command). It reports whether
// they were on: Celery replies "task events disabled", else "task events already disabled".
func (d *Dispatcher) DisableTaskEvents() bool { return d.taskEvents.Swap(false) }

// TaskEventsEnabled reports whether task events are sent.
func (d *Dispatcher) TaskEventsEnabled() bool { return d.taskEvents.Load() }

// Stats returns the counters so far.
func (d *Dispatcher) Stats() Stats {
	return Stats{Sent: d.sent.Load(), Messages: d.messages.Load(), Dropped: d.dropped.Load(), Failed: d.failed.Load()}
}

// Send stamps e with the node's hostname, utcoffset, pid, the next clock value and, unless set, the
// current time, and queues it for publishing. It never blocks. It returns false, and sends nothing,
// for a task event while task events are disabled (the clock is then not advanced, as in Celery)
// and after Close (the event is counted as dropped). e.Fields must not be modified afterwards.
func (d *Dispatcher) Send(e Event) bool {
	if e.Group() == GroupTask && !d.taskEvents.Load() {
		return false
	}
	now := d.o.Now()
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		d.dropped.Add(1)
		return false
	}
	// Stamped under the lock so that the buffer's order is the clock's order.
	e.Hostname = d.o.Hostname
	e.UTCOffset = UTCOffset(now)
	e.PID = d.o.PID
	e.Clock = d.clock.Tick()
	if e.Timestamp == 0 {
		e.Timestamp = float64(now.Unix()) + float64(now.Nanosecond())/1e9
	}
	size := len(d.ring)
	if d.n == size {
		d.ring[d.head] = Event{}
		d.head = (d.head + 1) % size
		d.n--
		d.dropped.Add(1)
	}
	d.ring[(d.head+d.n)%size] = e
	d.n++
	d.mu.Unlock()
	select {
	case d.notify <- struct{}{}:
	default:
	}
	return true
}

// Close stops accepting events and waits until every queued event was published or ctx ends; then
// the publishing in progress is abandoned and the events still waiting are counted as dropped.
// It returns an error saying how many events were lost that way. Close does not close the broker.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		close(d.closing)
	}
	d.mu.Unlock()
	select {
	case <-d.done:
		d.cancel()
		return nil
	case <-ctx.Done():
	}
	d.cancel()
	<-d.done
	d.mu.Lock()
	lost := d.n
	d.n = 0
	clear(d.ring)
	d.mu.Unlock()
	if lost > 0 {
		d.dropped.Add(uint64(lost))
		return fmt.Errorf("events: close: %d events not published: %w", lost, context.Cause(ctx))
	}
	return nil
}

// run is the publishing goroutine.
func (d *Dispatcher) run() {
	defer close(d.done)
	var batch []Event
	for {
		if d.ctx.Err() != nil {
			return
		}
		batch = d.take(batch[:0])
		if len(batch) == 0 {
			d.mu.Lock()
			closed := d.closed && d.n == 0
			d.mu.Unlock()
			if closed {
				return
			}
			select {
			case <-d.notify:
			case <-d.closing:
			case <-d.ctx.Done():
			}
			continue
		}
		d.publish(batch)
		clear(batch)
	}
}

// take moves the next message's events from the buffer to batch: one event, or consecutive task
// events up to BatchLimit when batching.
func (d *Dispatcher) take(batch []Event) []Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	size := len(d.ring)
	for d.n > 0 && len(batch) < d.o.BatchLimit {
		e := &d.ring[d.head]
		if len(batch) > 0 && (d.o.BatchLimit == 1 || e.Group() != GroupTask) {
			break
		}
		batch = append(batch, *e)
		*e = Event{}
		d.head = (d.head + 1) % size
		d.n--
		if d.o.BatchLimit == 1 || batch[0].Group() != GroupTask {
			break
		}
	}
	return batch
}

// publish sends one message: a single event, or task events as a "task.multi" list.
func (d *Dispatcher) publish(batch []Event) {
	multi := d.o.BatchLimit > 1 && batch[0].Group() == GroupTask
	var body []byte
	n := 0
	if multi {
		body = append(body, '[')
	}
	for i := range batch {
		mark := len(body)
		if n > 0 {
			body = append(body, ", "...)
		}
		var err error
		if body, err = batch[i].AppendJSON(body); err != nil {
			body = body[:mark]
			d.failed.Add(1)
			d.log.Error("dropping an event that cannot be encoded", "type", batch[i].Type, "error", err)
			continue
		}
		n++
	}
	if n == 0 {
		return
	}
	key := batch[0].RoutingKey()
	if multi {
		body = append(body, ']')
		key = batch[0].Group() + ".multi"
	}
	ctx, cancel := context.WithTimeout(d.ctx, d.o.PublishTimeout)
	defer cancel()
	if !d.declared {
		if err := d.declare(ctx); err != nil {
			d.failed.Add(uint64(n))
			d.log.Warn("events lost: cannot declare the event exchange", "node", d.o.Hostname, "events", n, "error", err)
			return
		}
		d.declared = true
	}
	err := d.br.Publish(ctx, broker.Publishing{
		Exchange: d.exchange, RoutingKey: key,
		Envelope: protocol.Envelope{
			Body: body, ContentType: "application/json", ContentEncoding: "utf-8",
			Headers: map[string]any{"hostname": d.o.Hostname}, DeliveryMode: 1,
		},
	})
	if err != nil {
		// The exchange may have been deleted (a 404 closes the channel): declare it again next time.
		d.declared = false
		d.failed.Add(uint64(n))
		d.log.Warn("events lost: publishing failed", "node", d.o.Hostname, "events", n, "routing_key", key, "error", err)
		return
	}
	d.sent.Add(uint64(n))
	d.messages.Add(1)
}

// declare declares the event exchange as kombu does: topic, durable, not auto-delete. A
// publisher that cannot declare a bare exchange is assumed to have it.
func (d *Dispatcher) declare(ctx context.Context) error {
	if x, ok := d.br.(ExchangeDeclarer); ok {
		return x.DeclareExchange(ctx, d.exchange, "topic", true, false)
	}
	return nil
}

// UTCOffset is Celery's utcoffset field for the time t: the offset of t's zone from UTC in whole
// hours west of UTC, rounded down as Python's time.timezone // 3600 is.
func UTCOffset(t time.Time) int {
	_, east := t.Zone()
	west := -east
	q := west / 3600
	if west%3600 != 0 && west < 0 {
		q--
	}
	return q
}
