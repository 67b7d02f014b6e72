package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/protocol"
)

// Broker is kombu's Redis transport as a broker.Broker, on a redis.UniversalClient it does not
// own (a plain client for redis://, a failover client for Sentinel). It is safe for concurrent use.
type Broker struct {
	rc   redis.UniversalClient
	opts Options
	log  *slog.Logger

	mu        sync.Mutex
	closed    bool
	closing   chan struct{}
	queues    map[string]broker.Queue // declared through this Broker
	exchanges map[string]string       // exchange name -> type, as declared through this Broker
	consumers map[*consumer]struct{}
	maintain  bool // the maintenance and ack-batching goroutines run
	acks      chan ackReq
	wg        sync.WaitGroup

	bindMu   sync.Mutex
	bindings bindingCache // the bindings sent since the client last dialed
}

// New returns a Broker on rc. The options are validated (see [ParseTransportOptions]); nothing is
// sent to Redis until the first use. It adds a hook to rc that sees each connection rc dials, so
// that a publish re-sends its queue's binding after a reconnection (a hook cannot be removed: use
// one client per Broker).
func New(rc redis.UniversalClient, opts Options) (*Broker, error) {
	if rc == nil {
		return nil, errors.New("redisbroker: no Redis client")
	}
	if c, ok := rc.(*redis.Client); ok && opts.DB == 0 {
		opts.DB = c.Options().DB
	}
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	b := &Broker{rc: rc, opts: opts, log: opts.Logger, closing: make(chan struct{}),
		queues: map[string]broker.Queue{}, exchanges: map[string]string{}, consumers: map[*consumer]struct{}{},
		acks: make(chan ackReq), bindings: bindingCache{have: map[binding]struct{}{}}}
	rc.AddHook(redialHook{b})
	return b, nil
}

// Options returns the options in force (defaults filled in).
func (b *Broker) Options() Options { return b.opts }

// Client is the Redis client the Broker uses.
func (b *Broker) Client() redis.UniversalClient { return b.rc }

// Capabilities: dead letters (broker.DeadLetterer, and x-dead-letter-routing-key on queues
// declared through this Broker) and delayed delivery (broker.Parker, a sorted set that consuming
// Brokers move from). Priorities are kombu's, where a lower number is served first, the opposite
// of RabbitMQ's x-max-priority, so Priorities is not declared; fanout exchanges are PUBLISH
// channels, which reach only subscribers (package fanout's Transport, see [Fanout]), not queues.
func (b *Broker) Capabilities() broker.Capabilities {
	return broker.Capabilities{DeadLetter: true, DelayedDelivery: true}
}

// Declare records q and, for a named exchange, adds kombu's binding member
// ("<routing key><sep><pattern><sep><queue>") to the set "_kombu.binding.<exchange>". Redis
// keeps no queue arguments: re-declaring a queue with other arguments through the same Broker is
// refused (as RabbitMQ refuses it), but another process is not told. Declare always sends the
// SADD; a publish that declares its queue (broker.Publishing.Declare) sends it once per connection.
func (b *Broker) Declare(ctx context.Context, q broker.Queue) error {
	b.bindMu.Lock()
	gen := b.bindings.gen
	b.bindMu.Unlock()
	bd, ok, err := b.bindingOf(q)
	if err != nil || !ok {
		return err
	}
	if err := b.rc.SAdd(ctx, bd.set, bd.member).Err(); err != nil {
		return fmt.Errorf("redisbroker: declaring queue %q: %w", q.Name, err)
	}
	b.bound(&bd, gen)
	return nil
}

func (b *Broker) declareLocal(q broker.Queue) error {
	if q.Name == "" {
		return errors.New("redisbroker: declaring a queue: empty name")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return broker.ErrClosed
	}
	if have, ok := b.queues[q.Name]; ok {
		if !reflect.DeepEqual(normalArgs(have), normalArgs(q)) {
			return fmt.Errorf("redisbroker: declaring queue %q: it was declared with other arguments (%v, not %v)",
				q.Name, normalArgs(have), normalArgs(q))
		}
	} else {
		b.queues[q.Name] = q
	}
	if q.Exchange != "" {
		kind := q.ExchangeType
		if kind == "" {
			kind = "direct"
		}
		if q.Exchange == b.opts.EventExchange {
			kind = "fanout"
		}
		if have, ok := b.exchanges[q.Exchange]; ok && have != kind {
			return fmt.Errorf("redisbroker: exchange %q was declared %s, not %s", q.Exchange, have, kind)
		}
		b.exchanges[q.Exchange] = kind
	}
	return nil
}

func normalArgs(q broker.Queue) map[string]string {
	out := map[string]string{}
	for k, v := range q.QueueArguments {
		out[k] = fmt.Sprint(v)
	}
	if q.MaxPriority != nil {
		out["x-max-priority"] = fmt.Sprint(*q.MaxPriority)
	}
	return out
}

// exchangeType is the type an exchange was declared with here, else kombu's default, direct (the
// event exchange is always fanout on Redis, as Celery makes it).
func (b *Broker) exchangeType(name string) string {
	if name == b.opts.EventExchange {
		return "fanout"
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if k, ok := b.exchanges[name]; ok {
		return k
	}
	return "direct"
}

// route is kombu's _lookup: the queues a message to exchange with routingKey goes to. The default
// exchange ("") routes to the queue named by the key; a named one reads its binding set, matching
// direct keys exactly, topic keys as AMQP does and fanout to every member. A member that is not a
// kombu binding (not three fields, or no queue) is logged and skipped.
func (b *Broker) route(ctx context.Context, exchange, routingKey string) ([]string, error) {
	if exchange == "" {
		if routingKey == "" {
			return nil, nil
		}
		return []string{routingKey}, nil
	}
	members, err := b.rc.SMembers(ctx, b.bindingKey(exchange)).Result()
	if err != nil {
		return nil, fmt.Errorf("redisbroker: reading the bindings of exchange %q: %w", exchange, err)
	}
	return b.match(exchange, routingKey, members), nil
}

// match is the queues of the binding members of exchange that routingKey matches (see route).
func (b *Broker) match(exchange, routingKey string, members []string) []string {
	slices.Sort(members)
	kind := b.exchangeType(exchange)
	var out []string
	for _, m := range members {
		key, _, queue, ok := b.parseMember(m)
		if !ok {
			b.log.Error("redisbroker: a binding names no queue; ignored", "exchange", exchange,
				"set", b.bindingKey(exchange), "member", fmt.Sprintf("%q", m))
			continue
		}
		match := false
		switch kind {
		case "fanout":
			match = true
		case "topic":
			match = topicMatch(key, routingKey)
		default:
			match = key == routingKey
		}
		if match && !slices.Contains(out, queue) {
			out = append(out, queue)
		}
	}
	return out
}

// ErrUnroutable is wrapped when a rejected message's dead-letter exchange routes it nowhere.
var ErrUnroutable = errors.New("no queue is bound for the message")

// unroutable is p with the dead-letter headers saying no queue is bound for it, logged: Publish
// parks such a message in the dead-letter queue (kombu's deadletter_queue option, here always on)
// where kombu would drop it silently.
func (b *Broker) unroutable(p broker.Publishing) broker.Publishing {
	reason := fmt.Sprintf("unroutable: no queue is bound to exchange %q for routing key %q", p.Exchange, p.RoutingKey)
	b.log.Warn("redisbroker: "+reason+"; parked in the dead-letter queue", "dead_letter_queue", b.opts.DeadLetterQueue)
	h := make(map[string]any, len(p.Headers)+5)
	for k, v := range p.Headers {
		h[k] = v
	}
	h[broker.HeaderDeadLetterReason] = reason
	h[broker.HeaderOriginalExchange] = p.Exchange
	h[broker.HeaderOriginalKey] = p.RoutingKey
	h[broker.HeaderDeadLetteredBy] = "redisbroker"
	h[broker.HeaderDeadLetteredAt] = protocol.FormatTime(time.Now().UTC())
	p.Headers = h
	p.Priority = 0
	return p
}

// Publish pushes p (kombu's envelope, a delivery tag of its own per queue) onto the left end of
// every queue it routes to, in the list of its priority, as kombu's _put does; several queues are
// written in one transaction. p.Declare is declared first, its binding sent only the first time
// on the current connections (kombu's maybe_declare), in the same round trip as the message: a
// publish through the default exchange is one round trip, one to a named exchange two (reading
// its bindings, as kombu's _lookup does, then the push). A message to a fanout exchange is
// PUBLISHed on its channel instead (see [Fanout]). While Redis cannot be reached or is no master
// (a Sentinel failover) it retries until ctx ends (see retryTransient).
func (b *Broker) Publish(ctx context.Context, p broker.Publishing) error {
	return b.retryTransient(ctx, "publishing", func() error { return b.publishOnce(ctx, p) })
}

func (b *Broker) publishOnce(ctx context.Context, p broker.Publishing) error {
	if b.isClosed() {
		return broker.ErrClosed
	}
	d, err := b.declFor(p.Declare)
	if err != nil {
		return err
	}
	if p.Exchange != "" && b.exchangeType(p.Exchange) == "fanout" {
		raw, err := b.encode(p, "")
		if err != nil {
			return err
		}
		return b.broadcast(ctx, p, raw, d)
	}
	queues, d, err := b.routeDecl(ctx, p.Exchange, p.RoutingKey, d)
	if err != nil {
		return err
	}
	queues, es, err := b.destinations(p, queues)
	if err != nil {
		return err
	}
	if err := b.push(ctx, es, d); err != nil {
		return fmt.Errorf("redisbroker: publishing to %v: %w", queues, err)
	}
	return nil
}

// destinations are the queues p goes to and its entries for them: the queues it routes to, or,
// when it routes nowhere, the dead-letter queue, with headers saying so (see unroutable).
func (b *Broker) destinations(p broker.Publishing, queues []string) ([]string, []entry, error) {
	if len(queues) == 0 {
		p, queues = b.unroutable(p), []string{b.opts.DeadLetterQueue}
	}
	es, err := b.entries(p, queues)
	return queues, es, err
}

// entries are p encoded for each queue (a delivery tag of its own each), in the list of its
// priority.
func (b *Broker) entries(p broker.Publishing, queues []string) ([]entry, error) {
	es := make([]entry, len(queues))
	for i, q := range queues {
		raw, err := b.encode(p, "")
		if err != nil {
			return nil, err
		}
		es[i] = entry{b.list(q, int(p.Priority)), raw}
	}
	return es, nil
}

// PublishMany publishes every message in one transaction, in order (broker.BatchPublisher);
// each step retries as Publish does. Bindings are sent once per connection, as Publish sends them.
func (b *Broker) PublishMany(ctx context.Context, ps []broker.Publishing) error {
	if b.isClosed() {
		return broker.ErrClosed
	}
	var pushes []entry
	for _, p := range ps {
		d, err := b.declFor(p.Declare)
		if err != nil {
			return err
		}
		if bd := d.pending(); bd != nil {
			if err := b.retryTransient(ctx, "declaring", func() error {
				return b.rc.SAdd(ctx, bd.set, bd.member).Err()
			}); err != nil {
				return fmt.Errorf("redisbroker: declaring queue %q: %w", p.Declare.Name, err)
			}
			b.bound(bd, d.gen)
		}
		if p.Exchange != "" && b.exchangeType(p.Exchange) == "fanout" {
			if err := b.Publish(ctx, p); err != nil {
				return err
			}
			continue
		}
		var queues []string
		if err := b.retryTransient(ctx, "routing", func() (err error) {
			queues, err = b.route(ctx, p.Exchange, p.RoutingKey)
			return err
		}); err != nil {
			return err
		}
		_, es, err := b.destinations(p, queues)
		if err != nil {
			return err
		}
		pushes = append(pushes, es...)
	}
	for len(pushes) > 0 {
		n := min(len(pushes), 1000)
		batch := pushes[:n]
		pushes = pushes[n:]
		if err := b.retryTransient(ctx, "publishing", func() error {
			_, err := b.rc.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
				for _, p := range batch {
					pipe.LPush(ctx, p.list, p.raw)
				}
				return nil
			})
			return err
		}); err != nil {
			return fmt.Errorf("redisbroker: publishing: %w", err)
		}
	}
	return nil
}

// broadcast PUBLISHes raw on the channel of p's fanout exchange, with d's pending binding in the
// same round trip.
func (b *Broker) broadcast(ctx context.Context, p broker.Publishing, raw []byte, d decl) error {
	_, err := b.rc.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		if bd := d.pending(); bd != nil {
			pipe.SAdd(ctx, bd.set, bd.member)
		}
		pipe.Publish(ctx, b.key(b.topic(p.Exchange, p.RoutingKey)), raw)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisbroker: publishing to %s: %w", p.Exchange, err)
	}
	return b.confirm(ctx, d)
}

func (b *Broker) encode(p broker.Publishing, tag string) ([]byte, error) {
	return EncodeMessage(Message{Envelope: p.Envelope, DeliveryTag: tag, Exchange: p.Exchange,
		RoutingKey: p.RoutingKey, Timestamp: p.Timestamp})
}

// topic is kombu's _get_publish_topic: "<prefix><exchange>", with "/<routing key>" when
// fanout_patterns is on and there is a key.
func (b *Broker) topic(exchange, routingKey string) string {
	if routingKey != "" && b.opts.fanoutPatterns() {
		return b.opts.fanoutPrefix() + exchange + "/" + routingKey
	}
	return b.opts.fanoutPrefix() + exchange
}

func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// Close stops every consumer, gives their unacknowledged messages back to their queues (as a kombu
// worker restores its own at shutdown) and stops the maintenance work. It does not close the
// Redis client.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.closing)
	cs := slices.Collect(maps.Keys(b.consumers))
	b.mu.Unlock()
	for _, c := range cs {
		c.lose()
	}
	b.wg.Wait()
	return nil
}

// sleep waits d, reporting false when ctx ends or the Broker closes first.
func (b *Broker) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-b.closing:
		return false
	}
}

var (
	_ broker.Broker         = (*Broker)(nil)
	_ broker.BatchPublisher = (*Broker)(nil)
)
