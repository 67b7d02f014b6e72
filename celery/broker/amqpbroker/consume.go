package amqpbroker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/celery/amqpwire"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/protocol"
)

// consumer keeps one channel consuming a set of queues, reopening it after a connection loss. The
// set can change while it runs (AddConsumer, CancelConsumer: Celery's add_consumer and
// cancel_consumer control commands); a reopened channel consumes the set as it is then.
type consumer struct {
	b        *Broker
	ctx      context.Context // Consume's: sources added later live as long as it
	out      chan *broker.Delivery
	prefetch atomic.Int64
	global   atomic.Bool // the channel's QoS is global (false: per consumer, for quorum queues)
	// reMu serialises reconsume; applied is the per-consumer prefetch the live consumers got.
	reMu    sync.Mutex
	applied int64

	mu       sync.Mutex
	queues   []broker.Queue
	ch       *amqp.Channel
	tags     map[string]string // queue name -> consumer tag on ch
	sess     *session          // the channel's forwarding, nil between channels
	seq      int               // makes consumer tags unique
	stopped  bool
	stop     chan struct{} // closed by StopConsuming
	stopOnce sync.Once
}

// session forwards the deliveries of one channel. Its sources are added while it runs; one that
// ends without having been cancelled on purpose ends the session (the channel is then replaced).
type session struct {
	gen       uint64
	ack       *batchAcker
	failed    chan struct{} // closed when a source ended unexpectedly
	failOnce  sync.Once
	wg        sync.WaitGroup
	closing   bool            // set under consumer.mu before wg.Wait: no source is added after
	cancelled map[string]bool // consumer tags cancelled on purpose
}

// Consume declares the queues, sets the prefetch (global QoS, as Celery does on RabbitMQ, or per
// consumer when a queue is a quorum queue, as Celery 5.5 does) and, for quorum queues, declares
// native delayed delivery and binds the queues to it (see Options.DelayedDeliveryQueueType); it delivers
// their messages until ctx ends or StopConsuming. A connection loss is repaired in the background;
// deliveries carry the connection generation they came on. The first connect happens before Consume
// returns, so a refused declaration (PRECONDITION_FAILED) is reported at start.
func (b *Broker) Consume(ctx context.Context, queues []broker.Queue, prefetch int) (<-chan *broker.Delivery, error) {
	c := &consumer{b: b, ctx: ctx, queues: append([]broker.Queue(nil), queues...), out: make(chan *broker.Delivery, 256),
		stop: make(chan struct{}), tags: map[string]string{}}
	c.prefetch.Store(int64(prefetch))
	srcs, gen, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.consumers = append(b.consumers, c)
	b.mu.Unlock()
	go c.run(ctx, srcs, gen)
	return c.out, nil
}

// source is one queue's consumer on the channel.
type source struct {
	queue, tag string
	d          <-chan amqp.Delivery
}

func (c *consumer) open(ctx context.Context) ([]source, uint64, error) {
	for {
		conn, gen, err := c.b.connection(ctx)
		if err != nil {
			return nil, 0, err
		}
		srcs, err := c.openOn(conn, gen)
		if err == nil {
			return srcs, gen, nil
		}
		if !c.b.retryable(ctx, err) {
			return nil, 0, err
		}
		c.b.log.Warn("cannot start consuming, retrying", "error", err)
	}
}

func (c *consumer) openOn(conn *amqp.Connection, gen uint64) ([]source, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	queues := append([]broker.Queue(nil), c.queues...)
	c.mu.Unlock()
	for _, q := range queues {
		if err := declare(ch, q); err != nil {
			_ = ch.Close()
			return nil, err
		}
	}
	if err := c.b.delayedDeliveryOnce(ch, queues); err != nil {
		_ = ch.Close()
		return nil, err
	}
	global := c.b.globalQoS(queues)
	if err := ch.Qos(int(c.prefetch.Load()), 0, global); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("setting prefetch: %w", err)
	}
	if !global && !c.global.Load() && c.b.qosLogged.CompareAndSwap(false, true) {
		c.b.log.Info("global QoS is disabled: a consumed queue is a quorum queue; the prefetch count is set per consumer")
	}
	c.global.Store(global)
	c.reMu.Lock()
	c.applied = c.prefetch.Load()
	c.reMu.Unlock()
	var srcs []source
	tags := map[string]string{}
	for _, q := range queues {
		tag := c.nextTag(q.Name, gen)
		d, err := ch.Consume(q.Name, tag, false, false, false, false, nil)
		if err != nil {
			_ = ch.Close()
			return nil, fmt.Errorf("consuming %q: %w", q.Name, err)
		}
		srcs = append(srcs, source{queue: q.Name, tag: tag, d: d})
		tags[q.Name] = tag
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		_ = ch.Close()
		return nil, errStopped
	}
	c.ch, c.tags = ch, tags
	return srcs, nil
}

func (c *consumer) nextTag(queue string, gen uint64) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	return fmt.Sprintf("%s-%s-%d-%d", c.b.opts.ConnectionName, queue, gen, c.seq)
}

var errStopped = errors.New("consumer stopped")

func (c *consumer) run(ctx context.Context, srcs []source, gen uint64) {
	defer close(c.out)
	// Reopening ends with ctx or StopConsuming: a warm shutdown stops consuming while Consume's
	// context lives on (acks_late tasks still settle on the channel), and must not wait for a
	// broker that is down.
	openCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-c.stop:
		case <-openCtx.Done():
		}
		cancel()
	}()
	for {
		c.forward(ctx, srcs, gen)
		c.mu.Lock()
		stopped, ch := c.stopped, c.ch
		c.mu.Unlock()
		if stopped || ctx.Err() != nil {
			return
		}
		// A consumer ended without being asked to: the connection or channel was lost, or the server
		// cancelled a consumer (queue deleted). Start over on a fresh channel; what was unacknowledged
		// on the old one goes back to the queues.
		if ch != nil && !ch.IsClosed() {
			_ = ch.Close()
		}
		var err error
		srcs, gen, err = c.open(openCtx)
		if err != nil {
			if !errors.Is(err, errStopped) && !errors.Is(err, broker.ErrClosed) && openCtx.Err() == nil {
				c.b.log.Error("consuming stopped", "error", err)
			}
			return
		}
		c.b.log.Info("consuming again", "generation", gen)
	}
}

// forward copies deliveries from every queue's consumer to out until one of them ends unexpectedly,
// the channel closes, StopConsuming is called or ctx ends.
func (c *consumer) forward(ctx context.Context, srcs []source, gen uint64) {
	c.mu.Lock()
	ch := c.ch
	s := &session{gen: gen, ack: c.b.newAcker(ch, int(c.prefetch.Load())), failed: make(chan struct{}), cancelled: map[string]bool{}}
	c.sess = s
	for _, src := range srcs {
		c.startSource(ctx, s, src)
	}
	c.mu.Unlock()
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	defer func() {
		// Settles of this channel's deliveries may still be under way (running acks_late tasks after
		// StopConsuming); the acker ends only with the channel.
		go func() {
			<-s.ack.ch.NotifyClose(make(chan *amqp.Error, 1))
			c.b.dropAcker(s.ack)
		}()
	}()
	select {
	case <-s.failed:
	case <-closed:
	case <-c.stop:
	case <-ctx.Done():
	}
	// Make the other consumers end too by closing the channel, unless we are stopping (then every
	// consumer was cancelled and ends by itself, and the channel stays open for acknowledgements).
	c.mu.Lock()
	s.closing = true
	c.sess = nil
	ch, stopped := c.ch, c.stopped
	tags := make([]string, 0, len(c.tags))
	for _, tag := range c.tags {
		tags = append(tags, tag)
		s.cancelled[tag] = true
	}
	c.mu.Unlock()
	if !stopped && ch != nil {
		if ctx.Err() != nil && !ch.IsClosed() {
			// Ending on purpose: cancel the consumers before closing the channel. basic.cancel is a
			// round trip that a quorum queue answers after the acknowledgements sent before it, so
			// none of them is lost to the close (which would deliver those messages again).
			for _, tag := range tags {
				_ = ch.Cancel(tag, false)
			}
		}
		// Deferred acks still queued go out before the channel closes, or their messages would be
		// delivered again.
		flushCtx, cancel := context.WithTimeout(context.Background(), flushTimeout)
		s.ack.flush(flushCtx)
		cancel()
		_ = ch.Close()
	}
	s.wg.Wait()
}

// startSource forwards one queue's deliveries; c.mu is held.
func (c *consumer) startSource(ctx context.Context, s *session, src source) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for d := range src.d {
			s.ack.delivered(d.DeliveryTag)
			unpackHeaders(&d)
			del := &broker.Delivery{
				Envelope:    envelope(&d),
				Queue:       src.queue,
				Exchange:    d.Exchange,
				RoutingKey:  d.RoutingKey,
				Redelivered: d.Redelivered,
				DeliveryTag: d.DeliveryTag,
				Generation:  s.gen,
				Timestamp:   d.Timestamp,
				HeaderError: headerError(d.Headers),
				Acker:       acker{a: s.ack, tag: d.DeliveryTag},
			}
			select {
			case c.out <- del:
			case <-ctx.Done():
				return
			}
		}
		c.mu.Lock()
		onPurpose := s.cancelled[src.tag] && !c.stopped
		c.mu.Unlock()
		if !onPurpose {
			s.failOnce.Do(func() { close(s.failed) })
		}
	}()
}

// AddConsumer starts consuming q on the channels of every Consume call of this broker (the worker
// has one), after declaring it on a channel of its own so that a refused declaration (406) is
// returned without closing the consuming channel. The queue stays in the set across reconnects.
// Adding a queue already consumed does nothing. ErrClosed is returned when no Consume is running.
func (b *Broker) AddConsumer(ctx context.Context, q broker.Queue) error {
	if q.Name == "" {
		return errors.New("add_consumer: empty queue name")
	}
	b.mu.Lock()
	cs := b.consumers
	b.mu.Unlock()
	if len(cs) == 0 {
		return fmt.Errorf("add_consumer %q: the broker is not consuming: %w", q.Name, broker.ErrClosed)
	}
	if err := b.Declare(ctx, q); err != nil {
		return fmt.Errorf("add_consumer %q: %w", q.Name, err)
	}
	for _, c := range cs {
		if err := c.add(q); err != nil {
			return fmt.Errorf("add_consumer %q: %w", q.Name, err)
		}
	}
	return nil
}

func (c *consumer) add(q broker.Queue) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return errStopped
	}
	for _, have := range c.queues {
		if have.Name == q.Name {
			return nil
		}
	}
	c.queues = append(c.queues, q)
	s := c.sess
	if s == nil || s.closing || c.ch == nil || c.ch.IsClosed() {
		return nil // the next channel consumes it
	}
	c.seq++
	tag := fmt.Sprintf("%s-%s-%d-%d", c.b.opts.ConnectionName, q.Name, s.gen, c.seq)
	d, err := c.ch.Consume(q.Name, tag, false, false, false, false, nil)
	if err != nil {
		// The channel is gone (the queue was deleted in between, or the connection dropped); the
		// session ends and the next channel consumes the whole set again.
		return nil
	}
	c.tags[q.Name] = tag
	c.startSource(c.ctx, s, source{queue: q.Name, tag: tag, d: d})
	return nil
}

// CancelConsumer stops consuming the queue named name (Celery's cancel_consumer) and removes it
// from the set consumed after a reconnect. Messages already delivered stay with the consumer, to be
// settled as usual. It reports whether the queue was being consumed.
func (b *Broker) CancelConsumer(ctx context.Context, name string) (bool, error) {
	b.mu.Lock()
	cs := b.consumers
	b.mu.Unlock()
	found := false
	var errs []error
	for _, c := range cs {
		ok, err := c.cancel(name)
		found = found || ok
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return found, fmt.Errorf("cancel_consumer %q: %w", name, err)
	}
	return found, nil
}

func (c *consumer) cancel(name string) (bool, error) {
	c.mu.Lock()
	found := false
	kept := c.queues[:0]
	for _, q := range c.queues {
		if q.Name == name {
			found = true
			continue
		}
		kept = append(kept, q)
	}
	c.queues = kept
	tag, live := c.tags[name]
	delete(c.tags, name)
	ch, s := c.ch, c.sess
	if live && s != nil {
		s.cancelled[tag] = true
	}
	c.mu.Unlock()
	if !found || !live || ch == nil || ch.IsClosed() {
		return found, nil
	}
	if err := ch.Cancel(tag, false); err != nil && !errors.Is(err, amqp.ErrClosed) {
		return found, err
	}
	return found, nil
}

// ConsumingQueues lists the queues consumed now (by every Consume call), in the order added.
func (b *Broker) ConsumingQueues() []broker.Queue {
	b.mu.Lock()
	cs := b.consumers
	b.mu.Unlock()
	var out []broker.Queue
	seen := map[string]bool{}
	for _, c := range cs {
		c.mu.Lock()
		for _, q := range c.queues {
			if !seen[q.Name] {
				seen[q.Name] = true
				out = append(out, q)
			}
		}
		c.mu.Unlock()
	}
	return out
}

// unpackHeaders turns d's packed headers table (every connection of a Broker is dialled with
// amqpwire.Options.PackHeaders) back into the table amqp091-go would have decoded. Packed bytes
// that are not a table (never expected: the wrapper packs only tables it walked) become the
// wrapper's undecodable-headers marker, so the message is dead-lettered with the reason.
func unpackHeaders(d *amqp.Delivery) {
	h, err := amqpwire.UnpackHeaders(d.Headers, decimal)
	if err != nil {
		h = amqp.Table{amqpwire.UndecodableHeader: err.Error()}
	}
	d.Headers = h
}

// decimal is amqp091-go's value of an AMQP decimal field.
func decimal(scale uint8, value int32) amqp.Decimal { return amqp.Decimal{Scale: scale, Value: value} }

// envelope is d as the broker package's Envelope; d's headers are unpacked (unpackHeaders).
func envelope(d *amqp.Delivery) protocol.Envelope {
	return protocol.Envelope{
		Body:            d.Body,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		Headers:         d.Headers,
		CorrelationID:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		DeliveryMode:    d.DeliveryMode,
		Priority:        d.Priority,
		Expiration:      d.Expiration,
		AppID:           d.AppId,
	}
}

func stale(err error) error {
	if errors.Is(err, amqp.ErrClosed) {
		return broker.ErrStaleDelivery
	}
	return err
}

// StopConsuming cancels every consumer of this broker; channels stay open so that running tasks can
// still be acknowledged.
func (b *Broker) StopConsuming(ctx context.Context) error {
	b.mu.Lock()
	cs := b.consumers
	b.mu.Unlock()
	var errs []error
	for _, c := range cs {
		c.mu.Lock()
		c.stopped = true
		ch, tags := c.ch, c.tags
		c.tags = map[string]string{}
		c.mu.Unlock()
		c.stopOnce.Do(func() { close(c.stop) })
		if ch == nil || ch.IsClosed() {
			continue
		}
		for _, t := range tags {
			if err := ch.Cancel(t, false); err != nil && !errors.Is(err, amqp.ErrClosed) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// reconsume replaces every consumer of ch by a new one (per-consumer QoS takes a new prefetch
// only for consumers started after it).
func (c *consumer) reconsume(ch *amqp.Channel, n int) error {
	c.reMu.Lock()
	defer c.reMu.Unlock()
	if c.applied == 0 || (n != 0 && int64(n) <= c.applied) {
		return nil // unlimited already, or not larger
	}
	if err := ch.Qos(n, 0, false); err != nil {
		return err
	}
	c.applied = int64(n)
	c.mu.Lock()
	s := c.sess
	if s == nil || s.closing || c.ch != ch || c.stopped {
		c.mu.Unlock()
		return nil // a new channel is being opened, with the new prefetch
	}
	old := make(map[string]string, len(c.tags))
	for q, tag := range c.tags {
		old[q] = tag
		s.cancelled[tag] = true
	}
	queues := append([]broker.Queue(nil), c.queues...)
	c.mu.Unlock()
	for _, tag := range old {
		if err := ch.Cancel(tag, false); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess != s || s.closing || c.stopped {
		return nil
	}
	for _, q := range queues {
		if _, was := old[q.Name]; !was {
			continue
		}
		c.seq++
		tag := fmt.Sprintf("%s-%s-%d-%d", c.b.opts.ConnectionName, q.Name, s.gen, c.seq)
		d, err := ch.Consume(q.Name, tag, false, false, false, false, nil)
		if err != nil {
			return err // the channel is gone: the session ends and the next channel consumes everything
		}
		c.tags[q.Name] = tag
		c.startSource(c.ctx, s, source{queue: q.Name, tag: tag, d: d})
	}
	return nil
}

// SetPrefetch changes the prefetch count of the consuming channels (and of those opened after a
// reconnect); on a channel with per-consumer QoS (quorum queues) it restarts the consumers, so the
// new count applies to them.
func (b *Broker) SetPrefetch(n int) error {
	b.mu.Lock()
	cs := b.consumers
	b.mu.Unlock()
	for _, c := range cs {
		c.prefetch.Store(int64(n))
		c.mu.Lock()
		ch := c.ch
		c.mu.Unlock()
		if ch != nil && !ch.IsClosed() {
			if !c.global.Load() {
				// Per-consumer QoS applies to consumers started after it (quorum queues): set it,
				// then start each queue's consumer again on the same channel. What the old
				// consumers delivered stays unacknowledged on the channel, to be settled as usual.
				// Only a larger prefetch is applied (a smaller one waits for the next channel), so
				// the worker's steps while it holds ETA tasks do not restart consumers every time.
				if err := c.reconsume(ch, n); err != nil {
					return stale(err)
				}
				continue
			}
			if err := ch.Qos(n, 0, true); err != nil {
				return stale(err)
			}
		}
	}
	return nil
}
