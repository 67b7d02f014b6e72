// Package memfanout is an in-memory [fanout.Transport]: exchanges, queues and subscriptions of
// one process, routed as RabbitMQ routes them (fanout, direct, AMQP topic patterns). It lets
// remote control and events run, and their tests run, without a broker: a [control.Mailbox] and
// a [control.Client] on the same Transport talk to each other.
//
// Queues keep messages routed to them while nobody consumes, and drop those older than the
// queue's MessageTTL when they are consumed; a queue is deleted with its last consumer
// (auto-delete), an auto-delete exchange with its last binding. Expires is accepted and not
// enforced: a queue never consumed stays until the Transport is closed. There is no connection
// to lose, so a Subscription ends only by Close, by Transport.Close or when its queue is deleted.
//
// [control.Mailbox]: https://pkg.go.dev/github.com/forumads/forumads/celery/control#Mailbox
// [control.Client]: https://pkg.go.dev/github.com/forumads/forumads/celery/control#Client
package memfanout

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/fanout"
)

// Transport is an in-memory fanout.Transport, safe for concurrent use. The zero value is not
// usable; call New.
type Transport struct {
	now func() time.Time

	mu        sync.Mutex
	closed    bool
	exchanges map[string]exchange
	queues    map[string]*queue
}

type exchange struct {
	kind                string
	durable, autoDelete bool
}

type queue struct {
	q         fanout.Queue // declaration (Exchange and RoutingKey of the first binding)
	bindings  map[binding]bool
	waiting   []item // routed while nobody consumed
	consumers []*subscription
	next      int // round robin among consumers
}

type binding struct{ exchange, key string }

type item struct {
	m  fanout.Message
	at time.Time
}

// New returns an empty Transport.
func New() *Transport {
	return &Transport{now: time.Now, exchanges: map[string]exchange{}, queues: map[string]*queue{}}
}

// Close ends every subscription; later calls return broker.ErrClosed.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	var subs []*subscription
	for _, q := range t.queues {
		subs = append(subs, q.consumers...)
	}
	t.mu.Unlock()
	for _, s := range subs {
		s.end(nil)
	}
	return nil
}

// Capabilities: queues keep messages with their TTL, and consumers are counted.
func (t *Transport) Capabilities() fanout.Capabilities {
	return fanout.Capabilities{QueueTTL: true, ConsumerCount: true}
}

// DeclareExchange declares an exchange of kind direct, fanout or topic ("" = direct); a second
// declaration with other flags is refused, as RabbitMQ refuses it.
func (t *Transport) DeclareExchange(_ context.Context, name, kind string, durable, autoDelete bool) error {
	if name == "" {
		return errors.New("declaring an exchange: empty name (the default exchange exists already)")
	}
	switch kind {
	case "":
		kind = "direct"
	case "direct", "fanout", "topic":
	default:
		return fmt.Errorf("declaring exchange %q: unknown exchange type %q (direct, fanout or topic)", name, kind)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return broker.ErrClosed
	}
	x := exchange{kind: kind, durable: durable, autoDelete: autoDelete}
	if old, ok := t.exchanges[name]; ok && old != x {
		return fmt.Errorf("declaring exchange %q (%s, durable=%v, auto_delete=%v): it exists with other settings (%s, durable=%v, auto_delete=%v)",
			name, kind, durable, autoDelete, old.kind, old.durable, old.autoDelete)
	}
	t.exchanges[name] = x
	return nil
}

// DeclareQueue declares q and binds it; the exchange must exist.
func (t *Transport) DeclareQueue(_ context.Context, q fanout.Queue) (int, error) {
	if q.Name == "" || q.Exchange == "" {
		return 0, fmt.Errorf("declaring a broadcast queue: empty queue (%q) or exchange (%q) name", q.Name, q.Exchange)
	}
	if q.MessageTTL < 0 || q.Expires < 0 {
		return 0, fmt.Errorf("declaring queue %q: negative MessageTTL (%s) or Expires (%s)", q.Name, q.MessageTTL, q.Expires)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return 0, broker.ErrClosed
	}
	if _, ok := t.exchanges[q.Exchange]; !ok {
		return 0, fmt.Errorf("binding queue %q to %q: no such exchange", q.Name, q.Exchange)
	}
	old, ok := t.queues[q.Name]
	if !ok {
		old = &queue{q: q, bindings: map[binding]bool{}}
		t.queues[q.Name] = old
	} else if old.q.MessageTTL != q.MessageTTL || old.q.Expires != q.Expires {
		return 0, fmt.Errorf("declaring queue %q: it exists with other arguments", q.Name)
	}
	old.bindings[binding{q.Exchange, q.RoutingKey}] = true
	return len(old.consumers), nil
}

// Consume subscribes to queue, which must exist; messages that waited in it come first.
func (t *Transport) Consume(_ context.Context, name string) (fanout.Subscription, error) {
	if name == "" {
		return nil, errors.New("consuming: empty queue name")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, broker.ErrClosed
	}
	q, ok := t.queues[name]
	if !ok {
		return nil, fmt.Errorf("consuming %q: no such queue", name)
	}
	s := &subscription{t: t, queue: name, c: make(chan fanout.Message), wake: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	now := t.now()
	for _, it := range q.waiting {
		if q.q.MessageTTL == 0 || now.Sub(it.at) <= q.q.MessageTTL {
			s.buf = append(s.buf, it.m)
		}
	}
	q.waiting = nil
	q.consumers = append(q.consumers, s)
	go s.pump()
	s.notify()
	return s, nil
}

// Publish routes p; an exchange that does not exist is an error (RabbitMQ closes the channel
// with 404 and the confirm never comes).
func (t *Transport) Publish(_ context.Context, p broker.Publishing) error {
	return t.route(p, true)
}

// Send routes p; to an exchange that does not exist it is lost, as with RabbitMQ.
func (t *Transport) Send(_ context.Context, p broker.Publishing) error {
	return t.route(p, false)
}

func (t *Transport) route(p broker.Publishing, strict bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return broker.ErrClosed
	}
	x, ok := t.exchanges[p.Exchange]
	if !ok {
		if strict {
			return fmt.Errorf("publishing: no exchange %q", p.Exchange)
		}
		return nil
	}
	env := p.Envelope
	env.Headers = maps.Clone(p.Headers)
	env.Body = append([]byte(nil), p.Body...)
	m := fanout.Message{Envelope: env, Exchange: p.Exchange, RoutingKey: p.RoutingKey}
	now := t.now()
	for _, q := range t.queues {
		if !q.routes(x.kind, p.Exchange, p.RoutingKey) {
			continue
		}
		if len(q.consumers) == 0 {
			q.waiting = append(q.waiting, item{m, now})
			continue
		}
		s := q.consumers[q.next%len(q.consumers)]
		q.next++
		s.mu.Lock()
		s.buf = append(s.buf, m)
		s.mu.Unlock()
		s.notify()
	}
	return nil
}

// routes reports whether a message to exchange with key reaches q.
func (q *queue) routes(kind, exchange, key string) bool {
	for b := range q.bindings {
		if b.exchange != exchange {
			continue
		}
		switch kind {
		case "fanout":
			return true
		case "direct":
			if b.key == key {
				return true
			}
		case "topic":
			if topicMatch(strings.Split(b.key, "."), strings.Split(key, ".")) {
				return true
			}
		}
	}
	return false
}

// topicMatch matches AMQP topic words: "*" is one word, "#" zero or more.
func topicMatch(pattern, words []string) bool {
	if len(pattern) == 0 {
		return len(words) == 0
	}
	switch pattern[0] {
	case "#":
		for i := 0; i <= len(words); i++ {
			if topicMatch(pattern[1:], words[i:]) {
				return true
			}
		}
		return false
	case "*":
		return len(words) > 0 && topicMatch(pattern[1:], words[1:])
	}
	return len(words) > 0 && words[0] == pattern[0] && topicMatch(pattern[1:], words[1:])
}

// remove drops s from its queue; the last consumer takes the queue (auto-delete), and an
// auto-delete exchange goes with its last binding.
func (t *Transport) remove(s *subscription) {
	t.mu.Lock()
	defer t.mu.Unlock()
	q, ok := t.queues[s.queue]
	if !ok {
		return
	}
	for i, c := range q.consumers {
		if c == s {
			q.consumers = append(q.consumers[:i], q.consumers[i+1:]...)
			break
		}
	}
	if len(q.consumers) > 0 {
		return
	}
	delete(t.queues, s.queue)
	for b := range q.bindings {
		if x, ok := t.exchanges[b.exchange]; ok && x.autoDelete && !t.bound(b.exchange) {
			delete(t.exchanges, b.exchange)
		}
	}
}

func (t *Transport) bound(exchange string) bool {
	for _, q := range t.queues {
		for b := range q.bindings {
			if b.exchange == exchange {
				return true
			}
		}
	}
	return false
}

// subscription is one consumer with an unbounded buffer, so publishing never waits for it.
type subscription struct {
	t     *Transport
	queue string
	c     chan fanout.Message
	wake  chan struct{}
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once

	mu  sync.Mutex
	buf []fanout.Message
	err error
}

func (s *subscription) C() <-chan fanout.Message { return s.c }

func (s *subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *subscription) Close() error {
	s.end(nil)
	return nil
}

func (s *subscription) end(err error) {
	s.once.Do(func() {
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		close(s.stop)
	})
	<-s.done
	s.t.remove(s)
}

func (s *subscription) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *subscription) pump() {
	defer close(s.done)
	defer close(s.c)
	for {
		s.mu.Lock()
		var m fanout.Message
		have := len(s.buf) > 0
		if have {
			m = s.buf[0]
			s.buf[0] = fanout.Message{}
			s.buf = s.buf[1:]
		}
		s.mu.Unlock()
		if !have {
			select {
			case <-s.wake:
				continue
			case <-s.stop:
				return
			}
		}
		select {
		case s.c <- m:
		case <-s.stop:
			return
		}
	}
}

var _ fanout.Transport = (*Transport)(nil)
