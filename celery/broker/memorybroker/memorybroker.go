// Package memorybroker is an in-memory broker.Broker (broker_url memory://) for one process: tests
// of code built on package celery that need no RabbitMQ, and programs that run the client and the
// worker side by side.
//
// It models what the worker relies on, with RabbitMQ's semantics: exchanges (the default exchange,
// direct, topic with '*' and '#', fanout) and bindings as declared, queues (re-declaring one with
// other settings is refused), prefetch per Consume call, ack, reject with or without requeue, the
// redelivered flag, messages that return to their queue (at their old place) when their consumer is
// lost (its context ends) or the broker is closed, StopConsuming that stops deliveries but keeps
// acks working, priorities (x-max-priority, higher first), dead-lettering of rejected messages
// (x-dead-letter-exchange and x-dead-letter-routing-key) and the broker.DeadLetterer and
// broker.Parker policies.
//
// It does not model durability (everything is lost with the Broker, and Close loses every
// message), connections shared by several processes, message or queue TTLs (x-message-ttl,
// x-expires, per-message expiration), queue length limits, headers exchanges, publisher
// returns (an unroutable message is dropped, as RabbitMQ does without mandatory) or the x-death
// header. Every Delivery carries Generation 1.
//
// A Broker is the server; Connect gives connections to it (Conn), each closing and stopping only
// its own consumers, and Shared is the process-wide Broker that broker_url memory:// reaches.
package memorybroker

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/forumads/forumads/celery/broker"
)

// Broker is an in-memory message broker. The zero value is not usable; call New. It is safe for
// concurrent use.
type Broker struct {
	mu        sync.Mutex
	closed    bool
	exchanges map[string]*exchange
	queues    map[string]*queue
	consumers map[*consumer]struct{}
	timers    map[*time.Timer]struct{}
	seq       uint64 // orders messages: requeued ones go back to their place
	now       func() time.Time
}

// New returns an empty broker.
func New() *Broker {
	return &Broker{exchanges: map[string]*exchange{}, queues: map[string]*queue{},
		consumers: map[*consumer]struct{}{}, timers: map[*time.Timer]struct{}{}, now: time.Now}
}

type exchange struct {
	kind     string
	bindings []binding
}

type binding struct{ key, queue string }

type queue struct {
	decl        broker.Queue
	args        map[string]any // normalised arguments, compared on re-declaration
	maxPriority int            // 0: priorities ignored
	msgs        []*message     // ready, in delivery order
}

type message struct {
	broker.Publishing
	seq         uint64
	priority    uint8
	redelivered bool
}

// Capabilities: priorities, dead letters (broker.DeadLetterer), delayed delivery (broker.Parker,
// on a timer of this process) and fanout exchanges.
func (b *Broker) Capabilities() broker.Capabilities {
	return broker.Capabilities{DelayedDelivery: true, Priorities: true, DeadLetter: true, Fanout: true}
}

// Declare declares q's exchange (durable, of q.ExchangeType, direct by default), the queue and
// the binding, as kombu does. A queue or exchange that exists with other settings is refused with
// an error, as RabbitMQ refuses it (PRECONDITION_FAILED).
func (b *Broker) Declare(_ context.Context, q broker.Queue) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.declare(q)
}

func (b *Broker) declare(q broker.Queue) error {
	if b.closed {
		return broker.ErrClosed
	}
	if q.Name == "" {
		return errors.New("memorybroker: declaring a queue: empty name")
	}
	if q.Exchange != "" {
		if err := b.declareExchange(q.Exchange, q.ExchangeType); err != nil {
			return err
		}
	}
	args := normalise(q.QueueArguments)
	if q.MaxPriority != nil {
		args["x-max-priority"] = int64(*q.MaxPriority)
	}
	if have, ok := b.queues[q.Name]; ok {
		if !reflect.DeepEqual(have.args, args) {
			return fmt.Errorf("memorybroker: declaring queue %q: it exists with other arguments (%v, not %v)", q.Name, have.args, args)
		}
	} else {
		mp, _ := args["x-max-priority"].(int64)
		if mp < 0 || mp > 255 {
			return fmt.Errorf("memorybroker: declaring queue %q: x-max-priority %d out of range 0..255", q.Name, mp)
		}
		b.queues[q.Name] = &queue{decl: q, args: args, maxPriority: int(mp)}
	}
	if q.Exchange != "" {
		key := q.RoutingKey
		if key == "" {
			key = q.Name
		}
		x := b.exchanges[q.Exchange]
		bd := binding{key: key, queue: q.Name}
		for _, have := range x.bindings {
			if have == bd {
				return nil
			}
		}
		x.bindings = append(x.bindings, bd)
	}
	return nil
}

// DeclareExchange declares an exchange without any queue (events.ExchangeDeclarer): kind is
// direct, topic or fanout ("" = direct). durable and autoDelete are accepted and ignored.
func (b *Broker) DeclareExchange(_ context.Context, name, kind string, durable, autoDelete bool) error {
	if name == "" {
		return errors.New("memorybroker: declaring an exchange: empty name (the default exchange exists already)")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return broker.ErrClosed
	}
	return b.declareExchange(name, kind)
}

func (b *Broker) declareExchange(name, kind string) error {
	if kind == "" {
		kind = "direct"
	}
	switch kind {
	case "direct", "topic", "fanout":
	default:
		return fmt.Errorf("memorybroker: declaring exchange %q: exchange type %q is not supported (direct, topic or fanout)", name, kind)
	}
	if have, ok := b.exchanges[name]; ok {
		if have.kind != kind {
			return fmt.Errorf("memorybroker: declaring exchange %q as %s: it exists as %s", name, kind, have.kind)
		}
		return nil
	}
	b.exchanges[name] = &exchange{kind: kind}
	return nil
}

// normalise turns every integer argument into int64, so that 5 and int32(5) declare the same queue.
func normalise(args map[string]any) map[string]any {
	out := make(map[string]any, len(args))
	for k, v := range args {
		rv := reflect.ValueOf(v)
		switch {
		case rv.CanInt():
			out[k] = rv.Int()
		case rv.CanUint():
			out[k] = int64(rv.Uint())
		default:
			out[k] = v
		}
	}
	return out
}

// Publish routes p to the queues its exchange and routing key select (declaring p.Declare first)
// and returns; a message no queue takes is dropped. Publishing to an exchange that was not declared
// is an error, as in RabbitMQ (NOT_FOUND).
func (b *Broker) Publish(_ context.Context, p broker.Publishing) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.publish(p); err != nil {
		return err
	}
	b.wake()
	return nil
}

// PublishMany publishes ps in order, as one step: consumers see all of them or none.
func (b *Broker) PublishMany(_ context.Context, ps []broker.Publishing) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.wake()
	for i := range ps {
		if err := b.publish(ps[i]); err != nil {
			return fmt.Errorf("publishing message %d of %d: %w", i+1, len(ps), err)
		}
	}
	return nil
}

func (b *Broker) publish(p broker.Publishing) error {
	if b.closed {
		return broker.ErrClosed
	}
	if p.Declare != nil {
		if err := b.declare(*p.Declare); err != nil {
			return err
		}
	}
	targets, err := b.route(p.Exchange, p.RoutingKey)
	if err != nil {
		return err
	}
	for _, q := range targets {
		b.seq++
		m := &message{Publishing: p, seq: b.seq, priority: p.Priority}
		q.insert(m)
	}
	return nil
}

// route returns the queues a message to exchange with key goes to.
func (b *Broker) route(exchange, key string) ([]*queue, error) {
	if exchange == "" {
		if q, ok := b.queues[key]; ok {
			return []*queue{q}, nil
		}
		return nil, nil
	}
	x, ok := b.exchanges[exchange]
	if !ok {
		return nil, fmt.Errorf("memorybroker: publishing: no exchange %q (NOT_FOUND)", exchange)
	}
	var out []*queue
	seen := map[string]bool{}
	for _, bd := range x.bindings {
		if seen[bd.queue] {
			continue
		}
		match := false
		switch x.kind {
		case "fanout":
			match = true
		case "direct":
			match = bd.key == key
		case "topic":
			match = TopicMatch(bd.key, key)
		}
		if q := b.queues[bd.queue]; match && q != nil {
			seen[bd.queue] = true
			out = append(out, q)
		}
	}
	return out, nil
}

// TopicMatch reports whether a topic exchange's binding pattern matches routing key: words are
// separated by '.', '*' stands for exactly one word and '#' for zero or more.
func TopicMatch(pattern, key string) bool {
	return topicMatch(strings.Split(pattern, "."), strings.Split(key, "."))
}

func topicMatch(p, k []string) bool {
	for len(p) > 0 {
		if p[0] == "#" {
			for i := 0; i <= len(k); i++ {
				if topicMatch(p[1:], k[i:]) {
					return true
				}
			}
			return false
		}
		if len(k) == 0 || (p[0] != "*" && p[0] != k[0]) {
			return false
		}
		p, k = p[1:], k[1:]
	}
	return len(k) == 0
}

// insert puts m at its place: higher priority first (when the queue has x-max-priority, priorities
// above it counting as it), then in publishing order.
func (q *queue) insert(m *message) {
	prio := func(x *message) int {
		if q.maxPriority == 0 {
			return 0
		}
		return min(int(x.priority), q.maxPriority)
	}
	i := sort.Search(len(q.msgs), func(i int) bool {
		o := q.msgs[i]
		if prio(o) != prio(m) {
			return prio(o) < prio(m)
		}
		return o.seq > m.seq
	})
	q.msgs = append(q.msgs, nil)
	copy(q.msgs[i+1:], q.msgs[i:])
	q.msgs[i] = m
}

// wake tells every consumer to look for messages; b.mu is held.
func (b *Broker) wake() {
	for c := range b.consumers {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// requeue returns m to queue name with the redelivered flag; b.mu is held. A queue deleted in
// between loses it.
func (b *Broker) requeue(name string, m *message) {
	if q, ok := b.queues[name]; ok {
		m.redelivered = true
		q.insert(m)
	}
}

// deadLetterRejected routes a message rejected without requeue as the queue's
// x-dead-letter-exchange and x-dead-letter-routing-key say (dropped when it has none); b.mu is held.
func (b *Broker) deadLetterRejected(name string, m *message) {
	q, ok := b.queues[name]
	if !ok {
		return
	}
	dlx, ok := q.args["x-dead-letter-exchange"].(string)
	if !ok {
		return
	}
	key := m.RoutingKey
	if k, ok := q.args["x-dead-letter-routing-key"].(string); ok {
		key = k
	}
	targets, err := b.route(dlx, key)
	if err != nil {
		return // RabbitMQ drops it too when the exchange is missing
	}
	for _, t := range targets {
		b.seq++
		t.insert(&message{Publishing: m.Publishing, seq: b.seq, priority: m.priority})
	}
}

// DeadLetter stores dl.Envelope(d) in dl.Queue (declared durable, without arguments, if need be).
// d itself is not settled.
func (b *Broker) DeadLetter(ctx context.Context, d *broker.Delivery, dl broker.DeadLetter) error {
	if dl.Queue == "" {
		return errors.New("memorybroker: dead letter: no dead-letter queue")
	}
	return b.Publish(ctx, broker.Publishing{RoutingKey: dl.Queue, Envelope: dl.Envelope(d), Declare: &broker.Queue{Name: dl.Queue}})
}

// Park keeps a copy of d and publishes it to d.Queue through the default exchange after delay (at
// least one millisecond), on a timer of this process; it returns "memory timer". d itself is not
// settled. Closing the broker drops parked messages.
func (b *Broker) Park(_ context.Context, d *broker.Delivery, delay time.Duration) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return "", broker.ErrClosed
	}
	p := broker.Publishing{RoutingKey: d.Queue, Envelope: d.Envelope}
	var t *time.Timer
	t = time.AfterFunc(max(delay, time.Millisecond), func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.timers[t]; !ok {
			return
		}
		delete(b.timers, t)
		if b.publish(p) == nil {
			b.wake()
		}
	})
	b.timers[t] = struct{}{}
	return "memory timer", nil
}

// Ready returns how many messages wait in queue name, not counting those delivered and not yet
// settled (for tests: RabbitMQ's messages_ready).
func (b *Broker) Ready(name string) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q, ok := b.queues[name]
	if !ok {
		return 0, fmt.Errorf("memorybroker: no queue %q", name)
	}
	return len(q.msgs), nil
}

// Get takes the first ready message of queue name, acknowledged at once (basic.get with no_ack),
// for tests and tools; ok is false when the queue is empty.
func (b *Broker) Get(name string) (p broker.Publishing, redelivered, ok bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q, found := b.queues[name]
	if !found {
		return p, false, false, fmt.Errorf("memorybroker: no queue %q", name)
	}
	if len(q.msgs) == 0 {
		return p, false, false, nil
	}
	m := q.msgs[0]
	q.msgs = q.msgs[1:]
	return m.Publishing, m.redelivered, true, nil
}

// DeleteQueue deletes queue name with its messages and bindings (messages delivered from it and
// not yet settled are lost when they would return to it).
func (b *Broker) DeleteQueue(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.queues, name)
	for _, x := range b.exchanges {
		kept := x.bindings[:0]
		for _, bd := range x.bindings {
			if bd.queue != name {
				kept = append(kept, bd)
			}
		}
		x.bindings = kept
	}
}

// Close ends every consumer, their unsettled messages returning to their queues (and being lost
// with the broker), stops parked messages and makes every later call fail with broker.ErrClosed.
// Closing twice does nothing.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	for t := range b.timers {
		t.Stop()
	}
	b.timers = nil
	cs := make([]*consumer, 0, len(b.consumers))
	for c := range b.consumers {
		cs = append(cs, c)
	}
	b.mu.Unlock()
	for _, c := range cs {
		c.lose()
	}
	return nil
}

var (
	_ broker.Broker         = (*Broker)(nil)
	_ broker.BatchPublisher = (*Broker)(nil)
	_ broker.DeadLetterer   = (*Broker)(nil)
	_ broker.Parker         = (*Broker)(nil)
)
