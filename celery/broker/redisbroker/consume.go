package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/forumads/forumads/celery/broker"
)

// consumer is one Consume call: its prefetch, and the messages it took and has not settled.
type consumer struct {
	b        *Broker
	names    []string
	out      chan *broker.Delivery
	wake     chan struct{}
	done     chan struct{} // closed on StopConsuming or loss: no more deliveries
	doneOnce sync.Once
	stopCtx  func() bool

	mu       sync.Mutex
	prefetch int
	held     map[uint64]*held
	tag      uint64
	next     int // the queue looked at first, so every queue gets its turn
	stopped  bool
	lost     bool

	// id names the consumer's take receipt (see takeScript); token is the token of its next take
	// and pending says the take with it returned an error (its reply may have been lost, so the
	// next take, or endTakes, replays it). Only run touches token and pending.
	id      string
	token   uint64
	pending bool
}

// outBuffer is the room of a consumer's delivery channel: a batch taken in one script run reaches
// the engine's intake together (one revoke lookup for all of them, their acks batched), where an
// unbuffered channel handed them over one at a time. What the buffer holds is held, as any delivery:
// the prefetch bounds it.
const outBuffer = 256

// held is a message taken (recorded in the unacked hash) and not settled yet.
type held struct {
	kombuTag string
	queue    string
	exchange string
	key      string
	payload  []byte // the list entry as taken
}

// Consume records the queues' bindings and delivers their messages: each is taken from its list
// and recorded in kombu's unacked hash and unacked_index in one atomic step (see takeScript), the
// lists read in kombu's order (priority steps, then the queues taking turns), at most prefetch
// unsettled at a time (0 = unlimited). When ctx ends or the Broker is closed, what is unsettled
// goes back to the head of its queue marked redelivered and settling it reports
// broker.ErrStaleDelivery; StopConsuming ends the deliveries but keeps settling possible.
func (b *Broker) Consume(ctx context.Context, queues []broker.Queue, prefetch int) (<-chan *broker.Delivery, error) {
	if prefetch < 0 {
		return nil, fmt.Errorf("redisbroker: consuming: negative prefetch %d", prefetch)
	}
	if len(queues) == 0 {
		return nil, errors.New("redisbroker: consuming: no queues")
	}
	c := &consumer{b: b, out: make(chan *broker.Delivery, outBuffer), wake: make(chan struct{}, 1), done: make(chan struct{}),
		prefetch: prefetch, held: map[uint64]*held{}, id: newTag()}
	for _, q := range queues {
		if err := b.Declare(ctx, q); err != nil {
			return nil, err
		}
		c.names = append(c.names, q.Name)
	}
	b.sweepQuarantine(ctx)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, broker.ErrClosed
	}
	b.consumers[c] = struct{}{}
	b.wg.Add(1) // run
	if !b.maintain {
		b.maintain = true
		b.wg.Add(2)
		go b.maintenance()
		go b.ackBatcher()
	}
	b.mu.Unlock()
	c.stopCtx = context.AfterFunc(ctx, c.lose)
	go c.run()
	return c.out, nil
}

func (c *consumer) run() {
	b := c.b
	defer b.wg.Done()
	defer close(c.out)
	defer c.endTakes()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.done:
		case <-b.closing:
		}
		cancel()
	}()
	wait := time.Millisecond
	failures := 0
	for {
		n := c.room()
		if n == 0 {
			select {
			case <-c.wake:
				continue
			case <-c.done:
				return
			}
		}
		ds, err := c.take(ctx, n, false)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			if failures == 1 || failures%100 == 0 {
				b.log.Warn("redisbroker: cannot take messages, retrying", "queues", c.names, "error", err, "failures", failures)
			}
			if !b.sleep(ctx, min(time.Duration(failures)*100*time.Millisecond, 5*time.Second)) {
				return
			}
			continue
		}
		if failures > 0 {
			b.log.Info("redisbroker: taking messages again", "queues", c.names)
			failures = 0
		}
		if len(ds) == 0 {
			select {
			case <-c.wake:
			case <-c.done:
				return
			case <-time.After(wait):
			}
			wait = min(wait*2, b.opts.PollInterval)
			continue
		}
		wait = time.Millisecond
		for i, d := range ds {
			select {
			case c.out <- d:
			case <-c.done:
				for _, rest := range ds[i:] {
					c.untake(rest.DeliveryTag)
				}
				return
			}
		}
	}
}

// room is how many messages the consumer may take now: 0 when stopped or at its prefetch.
func (c *consumer) room() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped || c.lost {
		return 0
	}
	if c.prefetch == 0 {
		return 64
	}
	room := max(c.prefetch-len(c.held), 0)
	if len(c.held) > 0 && room < max(1, c.prefetch/4) {
		return 0 // take in batches: wait until a quarter of the prefetch is free (settling wakes us)
	}
	return room
}

// receiptKey is the consumer's take receipt (see takeScript).
func (c *consumer) receiptKey() string { return c.b.key("_forumads.take." + c.id) }

// take runs takeScript over the consumer's lists with the consumer's token and turns what it took
// into deliveries; entries that cannot be read are parked in the dead-letter queue. The token
// advances only when the script answered: a take that returned an error is sent again with the
// same token, and the script then replays what the first run took instead of taking more (its
// reply may have been lost after it ran). A replay may hand out a little more than the room n when
// the prefetch was lowered meanwhile. With giveBack, what it took goes back to its queues instead
// of being held (endTakes).
func (c *consumer) take(ctx context.Context, n int, giveBack bool) ([]*broker.Delivery, error) {
	b := c.b
	c.mu.Lock()
	order := make([]string, 0, len(c.names))
	for i := range c.names {
		order = append(order, c.names[(c.next+i)%len(c.names)])
	}
	c.next = (c.next + 1) % len(c.names)
	c.mu.Unlock()
	keys := []string{b.key(b.opts.UnackedKey), b.key(b.opts.UnackedIndexKey), b.quarantineKey(), c.receiptKey()}
	for _, s := range b.opts.PrioritySteps {
		for _, q := range order {
			keys = append(keys, b.list(q, s))
		}
	}
	now := strconv.FormatFloat(float64(time.Now().UnixMicro())/1e6, 'f', 6, 64)
	expire := max(b.opts.VisibilityTimeout.Milliseconds(), 1)
	res, err := takeScript.Run(ctx, b.rc, keys, now, n, strconv.FormatUint(c.token, 10), expire).StringSlice()
	if err != nil {
		c.pending = true
		return nil, err
	}
	c.pending = false
	c.token++
	var out []*broker.Delivery
	for i := 0; i+2 < len(res); i += 3 {
		list, raw, taken := res[i], []byte(res[i+1]), res[i+2] == "1"
		queue := b.queueOfList(list)
		if !taken {
			b.parkUnreadable(ctx, raw, queue, "", "not a kombu envelope (no JSON object with properties.delivery_tag)")
			continue
		}
		m, err := DecodeMessage(raw)
		if err != nil {
			b.parkUnreadable(ctx, raw, queue, tagOf(raw), err.Error())
			continue
		}
		h := &held{kombuTag: m.DeliveryTag, queue: queue, exchange: m.Exchange, key: m.RoutingKey, payload: raw}
		c.mu.Lock()
		if c.lost || giveBack {
			c.mu.Unlock()
			b.restoreTag(ctx, h, false)
			continue
		}
		c.tag++
		tag := c.tag
		c.held[tag] = h
		c.mu.Unlock()
		out = append(out, &broker.Delivery{Envelope: m.Envelope, Queue: queue, Exchange: m.Exchange,
			RoutingKey: m.RoutingKey, Redelivered: m.Redelivered, DeliveryTag: tag, Generation: 1,
			Timestamp: m.Timestamp, Acker: acker{c: c, tag: tag}})
	}
	return out, nil
}

// endTakes is run's last step (no take follows): when the last take returned an error, what it
// may have taken all the same is replayed (a take of nothing with its token, see takeScript) and
// given back to its queues, rather than left in the unacked hash until the visibility timeout;
// then the receipt is deleted. Both are best effort: Redis may be what failed.
func (c *consumer) endTakes() {
	b := c.b
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c.pending {
		if _, err := c.take(ctx, 0, true); err != nil {
			b.log.Warn("redisbroker: cannot replay a failed take at the consumer's end; what it took, if anything, stays in the unacked hash until its visibility timeout",
				"queues", c.names, "error", err)
		}
	}
	if err := b.rc.Del(ctx, c.receiptKey()).Err(); err != nil {
		b.log.Debug("redisbroker: cannot delete the take receipt; it expires", "key", c.receiptKey(), "error", err)
	}
}

// untake gives back a message taken but never handed out (the consumer stopped meanwhile).
func (c *consumer) untake(tag uint64) {
	c.mu.Lock()
	h, ok := c.held[tag]
	delete(c.held, tag)
	c.mu.Unlock()
	if ok {
		c.b.restoreTag(context.Background(), h, false)
	}
}

func (c *consumer) closeDone() { c.doneOnce.Do(func() { close(c.done) }) }

// lose ends the consumer as a lost connection does: its unsettled messages go back to the head of
// their queues, marked redelivered.
func (c *consumer) lose() {
	c.mu.Lock()
	if c.lost {
		c.mu.Unlock()
		return
	}
	c.lost = true
	hs := c.held
	c.held = map[uint64]*held{}
	c.mu.Unlock()
	c.closeDone()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, h := range hs {
		c.b.restoreTag(ctx, h, false)
	}
	b := c.b
	b.mu.Lock()
	delete(b.consumers, c)
	b.mu.Unlock()
	c.stopCtx()
}

// settle acknowledges or rejects delivery tag.
func (c *consumer) settle(tag uint64, ack, requeue bool) error {
	c.mu.Lock()
	if c.lost {
		c.mu.Unlock()
		return broker.ErrStaleDelivery
	}
	h, ok := c.held[tag]
	if !ok {
		c.mu.Unlock()
		return broker.ErrAlreadySettled
	}
	delete(c.held, tag)
	c.mu.Unlock()
	defer c.poke()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := c.b
	switch {
	case ack:
		return b.ackTag(ctx, h)
	case requeue:
		if ok, err := b.restoreTag(ctx, h, true); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("redisbroker: requeue of %s: %w (its visibility timeout passed and it was restored)", h.kombuTag, broker.ErrStaleDelivery)
		}
		return nil
	default:
		return b.rejectTag(ctx, h)
	}
}

func (c *consumer) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// acker settles one delivery of a consumer.
type acker struct {
	c   *consumer
	tag uint64
}

func (a acker) Ack() error                { return a.c.settle(a.tag, true, false) }
func (a acker) Reject(requeue bool) error { return a.c.settle(a.tag, false, requeue) }

// StopConsuming ends the deliveries of every Consume call (their channels close); what they hold
// stays settleable until their context ends or the Broker is closed.
func (b *Broker) StopConsuming(context.Context) error {
	b.mu.Lock()
	var cs []*consumer
	for c := range b.consumers {
		cs = append(cs, c)
	}
	b.mu.Unlock()
	for _, c := range cs {
		c.mu.Lock()
		c.stopped = true
		c.mu.Unlock()
		c.closeDone()
	}
	return nil
}

// SetPrefetch changes the prefetch of every Consume call (0 = unlimited).
func (b *Broker) SetPrefetch(n int) error {
	if n < 0 {
		return fmt.Errorf("redisbroker: negative prefetch %d", n)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return broker.ErrClosed
	}
	for c := range b.consumers {
		c.mu.Lock()
		c.prefetch = n
		c.mu.Unlock()
		c.poke()
	}
	return nil
}

// heldTags are the kombu tags every consumer holds now (for the visibility refresh).
func (b *Broker) heldTags() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for c := range b.consumers {
		c.mu.Lock()
		for _, h := range c.held {
			out = append(out, h.kombuTag)
		}
		c.mu.Unlock()
	}
	return out
}
