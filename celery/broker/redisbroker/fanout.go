package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/fanout"
)

// Fanout is kombu's Redis transport as a fanout.Transport, for Celery's remote control and events
// on a Redis broker. A fanout exchange is a PUBLISH channel, "<fanout_prefix><exchange>" or, with
// fanout_patterns and a routing key, "<fanout_prefix><exchange>/<routing key>" (prefix "/<db>."),
// and a queue bound to it is a PSUBSCRIBE to its exchange's channel with the binding key ('#'
// becoming '*'): the pidbox requests (celery.pidbox) and events (celeryev, fanout on Redis as
// Celery makes it) travel that way. A direct or topic exchange (pidbox replies,
// reply.celery.pidbox) routes to lists through its _kombu.binding set, as tasks do, and a queue
// bound to it is read from its lists without acknowledgements. Nothing is kept for a channel
// nobody subscribes to, so Capabilities has neither QueueTTL nor ConsumerCount.
type Fanout struct {
	b *Broker

	mu        sync.Mutex
	exchanges map[string]exchangeDecl
	queues    map[string]fanout.Queue
}

type exchangeDecl struct {
	kind                string
	durable, autoDelete bool
}

// Fanout returns the broadcast transport on b's client; closing b ends it.
func (b *Broker) Fanout() *Fanout {
	return &Fanout{b: b, exchanges: map[string]exchangeDecl{}, queues: map[string]fanout.Queue{}}
}

// Capabilities: PUBLISH/SUBSCRIBE keeps nothing for absent subscribers and counts none.
func (f *Fanout) Capabilities() fanout.Capabilities { return fanout.Capabilities{} }

// DeclareExchange records the exchange's type (direct, fanout or topic; the event exchange is
// fanout whatever kind says). Declaring it again with other flags through this Fanout is refused.
func (f *Fanout) DeclareExchange(_ context.Context, name, kind string, durable, autoDelete bool) error {
	if name == "" {
		return errors.New("redisbroker: declaring an exchange: empty name")
	}
	if kind == "" {
		kind = "direct"
	}
	switch kind {
	case "direct", "fanout", "topic":
	default:
		return fmt.Errorf("redisbroker: exchange %q: type %q is not one kombu's Redis transport has (direct, fanout, topic)", name, kind)
	}
	if name == f.b.opts.EventExchange {
		kind = "fanout"
	}
	d := exchangeDecl{kind, durable, autoDelete}
	f.mu.Lock()
	defer f.mu.Unlock()
	if have, ok := f.exchanges[name]; ok && have != d {
		return fmt.Errorf("redisbroker: exchange %q was declared %+v, not %+v", name, have, d)
	}
	f.exchanges[name] = d
	f.b.mu.Lock()
	f.b.exchanges[name] = kind
	f.b.mu.Unlock()
	return nil
}

// DeclareQueue adds q's binding to "_kombu.binding.<exchange>" (as kombu does for every exchange
// type). It reports 0 consumers: Redis cannot tell.
func (f *Fanout) DeclareQueue(ctx context.Context, q fanout.Queue) (int, error) {
	if q.Name == "" || q.Exchange == "" {
		return 0, fmt.Errorf("redisbroker: declaring queue %q: a queue needs a name and an exchange", q.Name)
	}
	if q.MessageTTL < 0 || q.Expires < 0 {
		return 0, fmt.Errorf("redisbroker: declaring queue %q: negative message TTL or expiry", q.Name)
	}
	f.mu.Lock()
	x, ok := f.exchanges[q.Exchange]
	f.mu.Unlock()
	if !ok {
		return 0, fmt.Errorf("redisbroker: declaring queue %q: exchange %q is not declared", q.Name, q.Exchange)
	}
	pattern := ""
	if x.kind == "topic" {
		pattern = kombuTopicPattern(q.RoutingKey)
	}
	if err := f.b.rc.SAdd(ctx, f.b.bindingKey(q.Exchange), f.b.member(q.RoutingKey, pattern, q.Name)).Err(); err != nil {
		return 0, fmt.Errorf("redisbroker: declaring queue %q: %w", q.Name, err)
	}
	f.mu.Lock()
	f.queues[q.Name] = q
	f.mu.Unlock()
	return 0, nil
}

// Publish sends p: PUBLISH for a fanout exchange, else onto the lists of the queues bound for its
// key. A message no queue is bound for is dropped, as kombu's pidbox drops it.
func (f *Fanout) Publish(ctx context.Context, p broker.Publishing) error {
	b := f.b
	if b.isClosed() {
		return broker.ErrClosed
	}
	d, err := b.declFor(p.Declare)
	if err != nil {
		return err
	}
	raw, err := b.encode(p, "")
	if err != nil {
		return err
	}
	if p.Exchange != "" && b.exchangeType(p.Exchange) == "fanout" {
		return b.broadcast(ctx, p, raw, d)
	}
	queues, d, err := b.routeDecl(ctx, p.Exchange, p.RoutingKey, d)
	if err != nil {
		return err
	}
	if len(queues) == 0 {
		b.log.Debug("redisbroker: a broadcast message routes to no queue; dropped as kombu drops it",
			"exchange", p.Exchange, "routing_key", p.RoutingKey)
		if bd := d.pending(); bd != nil { // the default exchange with no key: declare all the same
			return b.Declare(ctx, *p.Declare)
		}
		return nil
	}
	es := make([]entry, len(queues))
	for i, q := range queues {
		es[i] = entry{b.list(q, int(p.Priority)), raw}
	}
	return b.push(ctx, es, d)
}

// Send is Publish: Redis answers every write, there is no separate confirm to skip.
func (f *Fanout) Send(ctx context.Context, p broker.Publishing) error { return f.Publish(ctx, p) }

// Consume subscribes to a queue declared through this Fanout: PSUBSCRIBE for a fanout exchange
// (the subscription is in place when Consume returns), else reading its lists.
func (f *Fanout) Consume(ctx context.Context, queue string) (fanout.Subscription, error) {
	if queue == "" {
		return nil, errors.New("redisbroker: consuming: empty queue name")
	}
	f.mu.Lock()
	q, ok := f.queues[queue]
	x := f.exchanges[q.Exchange]
	f.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("redisbroker: consuming %q: no such queue declared", queue)
	}
	if f.b.isClosed() {
		return nil, broker.ErrClosed
	}
	s := &subscription{f: f, q: q, c: make(chan fanout.Message, 64), closing: make(chan struct{}), done: make(chan struct{})}
	// Close of the Broker waits for the subscription to remove its binding.
	f.b.mu.Lock()
	if f.b.closed {
		f.b.mu.Unlock()
		return nil, broker.ErrClosed
	}
	f.b.wg.Add(1)
	f.b.mu.Unlock()
	started := false
	defer func() {
		if !started {
			f.b.wg.Done()
		}
	}()
	if x.kind == "fanout" {
		ps := f.b.rc.PSubscribe(ctx, f.patterns(q)...)
		if _, err := ps.Receive(ctx); err != nil {
			_ = ps.Close()
			return nil, fmt.Errorf("redisbroker: subscribing to %s: %w", q.Exchange, err)
		}
		s.ps = ps
		started = true
		go s.listen()
	} else {
		started = true
		go s.poll()
	}
	return s, nil
}

// patterns are the channels a queue bound to a fanout exchange subscribes to. For the event
// exchange (a topic exchange made fanout) they are kombu's: the binding key ('#' as '*') after
// the exchange's channel. For an exchange declared fanout every message counts, whatever its
// key, as AMQP's fanout does: both the bare channel and every "<channel>/<key>".
func (f *Fanout) patterns(q fanout.Queue) []string {
	b := f.b
	if q.Exchange == b.opts.EventExchange {
		return []string{b.key(b.topic(q.Exchange, strings.ReplaceAll(q.RoutingKey, "#", "*")))}
	}
	bare := b.key(b.topic(q.Exchange, ""))
	if !b.opts.fanoutPatterns() {
		return []string{bare}
	}
	return []string{bare, bare + "/*"}
}

type subscription struct {
	f       *Fanout
	q       fanout.Queue
	ps      *redis.PubSub
	c       chan fanout.Message
	closing chan struct{}
	done    chan struct{}
	once    sync.Once
	err     error
}

func (s *subscription) C() <-chan fanout.Message { return s.c }

func (s *subscription) Err() error {
	<-s.done
	return s.err
}

// Close ends the subscription, removes an auto-delete queue's binding and lists (kombu deletes
// its fanout queues on close), and waits until C is closed.
func (s *subscription) Close() error {
	s.once.Do(func() {
		close(s.closing)
		if s.ps != nil {
			_ = s.ps.Close()
		}
	})
	<-s.done
	return nil
}

func (s *subscription) finish(err error) {
	select {
	case <-s.closing:
		err = nil
	default:
	}
	s.err = err
	b := s.f.b
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pattern := ""
	s.f.mu.Lock()
	if s.f.exchanges[s.q.Exchange].kind == "topic" {
		pattern = kombuTopicPattern(s.q.RoutingKey)
	}
	delete(s.f.queues, s.q.Name)
	s.f.mu.Unlock()
	_, _ = b.rc.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.SRem(ctx, b.bindingKey(s.q.Exchange), b.member(s.q.RoutingKey, pattern, s.q.Name))
		pipe.Del(ctx, b.lists(s.q.Name)...)
		return nil
	})
	close(s.c)
	close(s.done)
	b.wg.Done()
}

func (s *subscription) deliver(raw []byte, from string) bool {
	m, err := DecodeMessage(raw)
	if err != nil {
		s.f.b.log.Error("redisbroker: cannot read a broadcast message; skipped", "queue", s.q.Name, "from", from,
			"error", err, "entry", truncate(raw, 256))
		return true
	}
	select {
	case s.c <- fanout.Message{Envelope: m.Envelope, Exchange: m.Exchange, RoutingKey: m.RoutingKey}:
		return true
	case <-s.closing:
		return false
	}
}

func (s *subscription) listen() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.closing:
		case <-s.f.b.closing:
		case <-s.done:
		}
		cancel()
	}()
	for {
		msg, err := s.ps.Receive(ctx)
		if err != nil {
			select {
			case <-s.f.b.closing:
				err = broker.ErrClosed
			default:
			}
			s.finish(fmt.Errorf("redisbroker: subscription to %s ended: %w", s.q.Exchange, err))
			return
		}
		if m, ok := msg.(*redis.Message); ok && !s.deliver([]byte(m.Payload), m.Channel) {
			s.finish(nil)
			return
		}
	}
}

func (s *subscription) poll() {
	b := s.f.b
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := time.Millisecond
	for {
		got := false
		for _, l := range b.lists(s.q.Name) {
			raw, err := b.rc.RPop(ctx, l).Bytes()
			if err == redis.Nil {
				continue
			}
			if err != nil {
				s.finish(fmt.Errorf("redisbroker: reading queue %s: %w", s.q.Name, err))
				return
			}
			got = true
			if !s.deliver(raw, l) {
				s.finish(nil)
				return
			}
			break
		}
		if got {
			wait = time.Millisecond
			continue
		}
		select {
		case <-s.closing:
			s.finish(nil)
			return
		case <-b.closing:
			s.finish(broker.ErrClosed)
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, b.opts.PollInterval)
	}
}

var _ fanout.Transport = (*Fanout)(nil)
