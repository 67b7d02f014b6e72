package redisbroker

import (
	"context"
	"fmt"
	"net"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery/broker"
)

// binding is one member of an exchange's binding set.
type binding struct{ set, member string }

// bindingCache remembers the bindings this Broker has added (SADD) since its client last dialed a
// connection, as kombu's maybe_declare remembers declared entities per connection: a publish that
// declares its queue sends the SADD only the first time, and again after any reconnection (a Redis
// restart or a Sentinel failover may have lost the set). go-redis does not say why it dials, so a
// connection added to a pool counts too: it costs one more SADD, nothing else. gen counts the
// dials, so that a SADD sent before one is not remembered after it.
type bindingCache struct {
	gen  uint64
	have map[binding]struct{}
}

// redialHook forgets the remembered bindings whenever the client dials a new connection.
type redialHook struct{ b *Broker }

func (h redialHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err == nil {
			h.b.forgetBindings()
		}
		return c, err
	}
}

func (h redialHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h redialHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// forgetBindings makes the next publish of every queue send its binding again.
func (b *Broker) forgetBindings() {
	b.bindMu.Lock()
	defer b.bindMu.Unlock()
	b.bindings.gen++
	clear(b.bindings.have)
}

// bindingOf records q locally (see declareLocal) and returns the binding member it needs, ok
// false for a queue on the default exchange (it needs none).
func (b *Broker) bindingOf(q broker.Queue) (bd binding, ok bool, err error) {
	if err := b.declareLocal(q); err != nil {
		return binding{}, false, err
	}
	if q.Exchange == "" {
		return binding{}, false, nil
	}
	pattern := ""
	if b.exchangeType(q.Exchange) == "topic" {
		pattern = kombuTopicPattern(q.RoutingKey)
	}
	return binding{b.bindingKey(q.Exchange), b.member(q.RoutingKey, pattern, q.Name)}, true, nil
}

// decl is the binding a publish's declared queue needs: bd nil when it needs none; send when it
// was not sent since gen (the reconnection count read before the publish).
type decl struct {
	bd   *binding
	send bool
	gen  uint64
}

// pending is the binding to send with the publish's first command, or nil.
func (d decl) pending() *binding {
	if d.send {
		return d.bd
	}
	return nil
}

// declFor records q (nil: none) locally and returns its decl.
func (b *Broker) declFor(q *broker.Queue) (decl, error) {
	if q == nil {
		return decl{}, nil
	}
	b.bindMu.Lock()
	gen := b.bindings.gen
	b.bindMu.Unlock()
	bd, ok, err := b.bindingOf(*q)
	if err != nil || !ok {
		return decl{}, err
	}
	b.bindMu.Lock()
	defer b.bindMu.Unlock()
	_, sent := b.bindings.have[bd]
	return decl{bd: &bd, send: !sent, gen: gen}, nil
}

// redialed reports whether the client dialed a connection since d was made.
func (b *Broker) redialed(d decl) bool {
	b.bindMu.Lock()
	defer b.bindMu.Unlock()
	return b.bindings.gen != d.gen
}

// confirm runs after the command d's binding was sent with (d.send) or relied on: it remembers a
// sent binding, unless the client dialed meanwhile; a binding relied on while the client dialed
// (the command may have reached a restarted Redis that lost it) is sent again now, one more
// round trip after a reconnection only.
func (b *Broker) confirm(ctx context.Context, d decl) error {
	if d.bd == nil {
		return nil
	}
	if d.send {
		b.bound(d.bd, d.gen)
		return nil
	}
	if !b.redialed(d) {
		return nil
	}
	b.bindMu.Lock()
	gen := b.bindings.gen
	b.bindMu.Unlock()
	if err := b.rc.SAdd(ctx, d.bd.set, d.bd.member).Err(); err != nil {
		return fmt.Errorf("redisbroker: declaring a binding of %s again after a reconnection: %w", d.bd.set, err)
	}
	b.bound(d.bd, gen)
	return nil
}

// bound remembers that bd was added, unless the client reconnected since gen was read.
func (b *Broker) bound(bd *binding, gen uint64) {
	if bd == nil {
		return
	}
	b.bindMu.Lock()
	defer b.bindMu.Unlock()
	if b.bindings.gen == gen {
		b.bindings.have[*bd] = struct{}{}
	}
}

// routeDecl is route with d's pending binding added in the same round trip, before the
// exchange's set is read, so that the declared queue is among the ones routed to. When the
// binding was relied on and the client dialed meanwhile, it routes again with the binding.
// It returns d as the push that follows should treat it (nothing left to send).
func (b *Broker) routeDecl(ctx context.Context, exchange, routingKey string, d decl) ([]string, decl, error) {
	if exchange == "" || d.bd == nil {
		queues, err := b.route(ctx, exchange, routingKey)
		return queues, d, err
	}
	for {
		var queues []string
		if bd := d.pending(); bd != nil {
			var members *redis.StringSliceCmd
			_, err := b.rc.Pipelined(ctx, func(pipe redis.Pipeliner) error {
				pipe.SAdd(ctx, bd.set, bd.member)
				members = pipe.SMembers(ctx, b.bindingKey(exchange))
				return nil
			})
			if err != nil {
				return nil, d, fmt.Errorf("redisbroker: declaring and reading the bindings of exchange %q: %w", exchange, err)
			}
			b.bound(bd, d.gen)
			return b.match(exchange, routingKey, members.Val()), decl{}, nil
		}
		queues, err := b.route(ctx, exchange, routingKey)
		if err != nil || !b.redialed(d) {
			return queues, decl{}, err
		}
		d.send = true // read from a new connection: the set may have been lost; declare and read again
	}
}

// entry is one message for one list.
type entry struct {
	list string
	raw  []byte
}

// push LPUSHes each entry in one round trip: a single LPUSH (atomic by itself) for one entry and
// no pending binding, else a pipeline with d's pending SADD first, in a MULTI transaction when
// there are several entries; then confirms d.
func (b *Broker) push(ctx context.Context, es []entry, d decl) error {
	bd := d.pending()
	if len(es) == 1 && bd == nil {
		if err := b.rc.LPush(ctx, es[0].list, es[0].raw).Err(); err != nil {
			return err
		}
		return b.confirm(ctx, d)
	}
	cmds := func(pipe redis.Pipeliner) error {
		if bd != nil {
			pipe.SAdd(ctx, bd.set, bd.member)
		}
		for _, e := range es {
			pipe.LPush(ctx, e.list, e.raw)
		}
		return nil
	}
	var err error
	if len(es) > 1 {
		_, err = b.rc.TxPipelined(ctx, cmds)
	} else {
		_, err = b.rc.Pipelined(ctx, cmds)
	}
	if err != nil {
		return err
	}
	return b.confirm(ctx, d)
}
