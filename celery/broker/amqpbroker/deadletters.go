package amqpbroker

// Operators' dead-letter work (broker.DeadLetterQueues): list, replay and purge the messages the
// worker moved to its dead-letter queue (see deadletter.go).
//
// # How messages are read without losing or reordering them
//
// Every call opens a connection of its own (each broker URL tried once, no reconnect: an operator
// wants to hear at once that the broker is down) and reads the dead-letter queue with basic.get and
// manual acknowledgement, on one channel, at most as many messages as the queue held when the call
// started (so messages dead-lettered meanwhile cannot make it loop). A message is acknowledged only
// once what the call does with it is done: replayed and confirmed by the broker, or purged. Every
// other message it read is handed back with a single basic.nack(multiple, requeue) when the call
// ends, and RabbitMQ puts requeued messages back in their original positions; if the process dies
// instead, closing the channel requeues them the same way. So listing changes nothing but the
// messages' redelivered flag, and a consumer of the dead-letter queue (there normally is none)
// would see the messages only while a call holds them.
//
// # Replay
//
// A replayed message goes to its original queue (x-original-queue; for a message RabbitMQ itself
// dead-lettered, the queue in its first x-death entry), or to the queue asked for, through the
// default exchange, so it reaches that one queue whatever the original exchange's bindings. It keeps
// its body, its properties and its headers minus the ones the worker added (x-dead-letter-reason,
// x-original-*, x-dead-lettered-by, x-dead-lettered-at). It is published mandatory, on a channel
// in confirm mode, one message at a time: the dead letter is acknowledged only after the broker
// confirmed the copy and did not return it as unroutable. A message the broker returns (its queue
// does not exist) or nacks, or that has no original queue, stays in the dead-letter queue and
// replay goes on with the next; any other failure (a closed channel or connection) stops replay.
// Either way the error names the messages. A crash between the confirm and the ack can at worst
// leave a message in both queues, never in neither.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/celery/broker"
)

// describe reads what a listing shows from a dead letter's headers and properties
// (broker.DescribeDeadLetter), with what RabbitMQ keeps besides: the message id when there is no
// other id, and the queue and reason of its own first dead-lettering record (x-death).
func describe(headers amqp.Table, p amqp.Delivery) broker.DeadLetterInfo {
	d := broker.DescribeDeadLetter(headers, p.ContentType, p.Body, p.CorrelationId, p.Timestamp)
	d.OriginalQueue = originalQueue(headers)
	if d.ID == "" {
		d.ID = p.MessageId
	}
	if d.Reason == "" {
		if r := xDeathString(headers, "reason"); r != "" {
			d.Reason = "rabbitmq: " + r
		}
	}
	return d
}

// originalQueue is the queue a dead letter came from: x-original-queue (set by the worker), else the
// queue of the first x-death entry (set by RabbitMQ's own dead-lettering).
func originalQueue(h amqp.Table) string {
	if q := broker.HeaderString(h, broker.HeaderOriginalQueue); q != "" {
		return q
	}
	return xDeathString(h, "queue")
}

// xDeathString returns a field of the first entry of RabbitMQ's x-death header.
func xDeathString(h amqp.Table, field string) string {
	deaths, _ := h["x-death"].([]any)
	if len(deaths) == 0 {
		return ""
	}
	first, _ := deaths[0].(amqp.Table)
	return broker.HeaderString(first, field)
}

// withoutDeadLetterHeaders returns a copy of h without the headers the worker added.
func withoutDeadLetterHeaders(h amqp.Table) amqp.Table {
	out := make(amqp.Table, len(h))
	for k, v := range h {
		if !slices.Contains(broker.DeadLetterHeaders, k) {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// republishing is the message replay publishes for the dead letter d.
func republishing(d amqp.Delivery) amqp.Publishing {
	mode := d.DeliveryMode
	if mode == 0 {
		mode = amqp.Persistent
	}
	return amqp.Publishing{
		Headers:         withoutDeadLetterHeaders(d.Headers),
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    mode,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		Expiration:      d.Expiration,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		UserId:          d.UserId,
		AppId:           d.AppId,
		Body:            d.Body,
	}
}

// selection is which messages replay and purge act on.
type selection struct {
	all bool
	ids map[string]bool // wanted ids; true once found
}

func newSelection(sel broker.DeadLetterSelection) (selection, error) {
	if err := sel.Validate(); err != nil {
		return selection{}, err
	}
	s := selection{all: sel.All, ids: map[string]bool{}}
	for _, id := range sel.IDs {
		s.ids[id] = false
	}
	return s, nil
}

// take reports whether the message with id is selected, marking it found.
func (s selection) take(id string) bool {
	if s.all {
		return true
	}
	if _, ok := s.ids[id]; !ok {
		return false
	}
	s.ids[id] = true
	return true
}

// done reports whether every named id was found.
func (s selection) done() bool {
	if s.all {
		return false
	}
	for _, found := range s.ids {
		if !found {
			return false
		}
	}
	return true
}

// missing returns the named ids not found, sorted.
func (s selection) missing() []string {
	var out []string
	for id, found := range s.ids {
		if !found {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// dlq is a connection of its own for one call on one dead-letter queue.
type dlq struct {
	conn  *amqp.Connection
	queue string
}

// openDLQ connects for one dead-letter call: each broker URL is tried once, in turn, through
// amqpwire (b.dialURL), without the reconnect loop of the worker's connection.
func (b *Broker) openDLQ(queue string) (*dlq, error) {
	if queue == "" {
		return nil, errors.New("dead letters: the dead-letter queue name is empty")
	}
	var errs []error
	for range b.urls {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return nil, broker.ErrClosed
		}
		i := b.nextURL % len(b.urls)
		b.nextURL = i + 1
		b.mu.Unlock()
		conn, err := b.dialURL(i) // outside b.mu, bounded by broker_connection_timeout
		if err == nil {
			return &dlq{conn: conn, queue: queue}, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("connecting to the broker: %w", errors.Join(errs...))
}

func (q *dlq) close() { _ = q.conn.Close() }

// visitFunc sees one message; it may acknowledge it (and must report so, as acked). stop ends the
// scan early; an error ends it too and is returned.
type visitFunc func(d amqp.Delivery) (acked, stop bool, err error)

// scan reads up to limit messages (limit <= 0: all the queue held at the start) without
// acknowledging them and calls visit on each, in queue order. Messages visit did not acknowledge
// are requeued, in place, when scan returns (see the file comment).
func (q *dlq) scan(ctx context.Context, limit int, visit visitFunc) (err error) {
	ch, err := q.conn.Channel()
	if err != nil {
		return fmt.Errorf("opening a channel: %w", err)
	}
	defer func() {
		if cerr := ch.Close(); cerr != nil && err == nil && !errors.Is(cerr, amqp.ErrClosed) {
			err = fmt.Errorf("closing the channel: %w", cerr)
		}
	}()
	info, err := ch.QueueDeclarePassive(q.queue, true, false, false, false, nil)
	if err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return fmt.Errorf("%w: %q (no message was ever dead-lettered there?)", broker.ErrNoDeadLetterQueue, q.queue)
		}
		return fmt.Errorf("looking up queue %q: %w", q.queue, err)
	}
	n := info.Messages
	if limit > 0 {
		n = min(n, limit)
	}
	var lastUnacked uint64
	defer func() {
		if lastUnacked == 0 || ch.IsClosed() {
			return // a closed channel has already returned its unacknowledged messages
		}
		if nerr := ch.Nack(lastUnacked, true, true); nerr != nil && err == nil {
			err = fmt.Errorf("returning the messages read to %q: %w", q.queue, nerr)
		}
	}()
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("reading %q: %w", q.queue, context.Cause(ctx))
		}
		d, ok, err := ch.Get(q.queue, false)
		if err != nil {
			return fmt.Errorf("reading %q: %w", q.queue, err)
		}
		if !ok {
			return nil
		}
		unpackHeaders(&d)
		acked, stop, err := visit(d)
		if !acked {
			lastUnacked = d.DeliveryTag
		}
		if err != nil || stop {
			return err
		}
	}
	return nil
}

// ListDeadLetters returns up to limit dead letters of queue (limit <= 0: all), in queue order,
// leaving them in place (see broker.DeadLetterQueues and this file's comment).
func (b *Broker) ListDeadLetters(ctx context.Context, queue string, limit int) ([]broker.DeadLetterInfo, error) {
	q, err := b.openDLQ(queue)
	if err != nil {
		return nil, err
	}
	defer q.close()
	var out []broker.DeadLetterInfo
	err = q.scan(ctx, limit, func(d amqp.Delivery) (bool, bool, error) {
		out = append(out, describe(d.Headers, d))
		return false, false, nil
	})
	return out, err
}

// ReplayDeadLetters republishes the selected dead letters of queue, one at a time, mandatory and
// confirmed, through the default exchange to their original queue or to to; see
// broker.DeadLetterQueues and this file's comment. It returns what it moved, also when it stops
// on an error.
func (b *Broker) ReplayDeadLetters(ctx context.Context, queue string, sel broker.DeadLetterSelection, to string) ([]broker.ReplayedDeadLetter, error) {
	s, err := newSelection(sel)
	if err != nil {
		return nil, err
	}
	if to != "" && to == queue {
		return nil, fmt.Errorf("dead letters: the target queue %q is the dead-letter queue itself", to)
	}
	q, err := b.openDLQ(queue)
	if err != nil {
		return nil, err
	}
	defer q.close()
	pub, err := q.conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("opening a channel: %w", err)
	}
	defer pub.Close()
	if err := pub.Confirm(false); err != nil {
		return nil, fmt.Errorf("enabling publisher confirms: %w", err)
	}
	returns := pub.NotifyReturn(make(chan amqp.Return, 1))
	var (
		done    []broker.ReplayedDeadLetter
		skipped []error // messages left in the queue; replay goes on with the others
	)
	err = q.scan(ctx, 0, func(d amqp.Delivery) (bool, bool, error) {
		info := describe(d.Headers, d)
		if !s.take(info.ID) {
			return false, false, nil
		}
		target := to
		if target == "" {
			target = info.OriginalQueue
		}
		switch target {
		case "":
			skipped = append(skipped, fmt.Errorf("message %s (%s) has no x-original-queue: replay it to a queue named explicitly", info.ID, info.Task))
			return false, false, nil
		case q.queue:
			skipped = append(skipped, fmt.Errorf("message %s (%s) came from %q itself: replay it to a queue named explicitly", info.ID, info.Task, q.queue))
			return false, false, nil
		}
		if err := publishConfirmed(ctx, pub, returns, target, republishing(d)); err != nil {
			err = fmt.Errorf("replaying message %s (%s) to %q: %w", info.ID, info.Task, target, err)
			var refused refusedError
			if errors.As(err, &refused) {
				skipped = append(skipped, err)
				return false, false, nil
			}
			return false, true, err
		}
		if err := d.Ack(false); err != nil {
			return false, true, fmt.Errorf("message %s was replayed to %q but could not be removed from %q (it is now in both): %w",
				info.ID, target, q.queue, err)
		}
		done = append(done, broker.ReplayedDeadLetter{DeadLetterInfo: info, To: target})
		return true, s.done(), nil
	})
	if !s.all && !s.done() {
		skipped = append(skipped, fmt.Errorf("not in %q: %s", q.queue, strings.Join(s.missing(), ", ")))
	}
	if err != nil || len(skipped) > 0 {
		err = fmt.Errorf("%w (every message not replayed stays in %q)", errors.Join(append(skipped, err)...), q.queue)
	}
	return done, err
}

// refusedError is a message the broker returned or nacked: that message stays in the dead-letter
// queue and replay goes on with the next.
type refusedError struct{ msg string }

func (e refusedError) Error() string { return e.msg }

// publishConfirmed publishes msg to queue through the default exchange, mandatory, and waits for
// the broker's confirm; a message returned as unroutable (no such queue) is an error.
func publishConfirmed(ctx context.Context, ch *amqp.Channel, returns <-chan amqp.Return, queue string, msg amqp.Publishing) error {
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, msg)
	if err != nil {
		return fmt.Errorf("publishing: %w", err)
	}
	ok, err := conf.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("waiting for the publish confirm: %w", err)
	}
	// RabbitMQ sends basic.return before the confirm, and amqp091-go hands it over before it
	// processes the confirm, so a return for this message is already here.
	select {
	case r := <-returns:
		if r.ReplyCode == amqp.NoRoute {
			return refusedError{fmt.Sprintf("queue %q does not exist (the broker returned the message: %s)", queue, r.ReplyText)}
		}
		return refusedError{fmt.Sprintf("the broker returned the message: %d %s", r.ReplyCode, r.ReplyText)}
	default:
	}
	if !ok {
		return refusedError{"the broker refused the message (nack)"}
	}
	return nil
}

// PurgeDeadLetters deletes the dead letters of queue whose id is in ids and returns them; the
// others stay in place. The error names the ids not found.
func (b *Broker) PurgeDeadLetters(ctx context.Context, queue string, ids []string) ([]broker.DeadLetterInfo, error) {
	s, err := newSelection(broker.DeadLetterSelection{IDs: ids})
	if err != nil {
		return nil, err
	}
	q, err := b.openDLQ(queue)
	if err != nil {
		return nil, err
	}
	defer q.close()
	var done []broker.DeadLetterInfo
	err = q.scan(ctx, 0, func(d amqp.Delivery) (bool, bool, error) {
		info := describe(d.Headers, d)
		if !s.take(info.ID) {
			return false, false, nil
		}
		if err := d.Ack(false); err != nil {
			return false, true, fmt.Errorf("deleting message %s: %w", info.ID, err)
		}
		done = append(done, info)
		return true, s.done(), nil
	})
	if err == nil && !s.done() {
		err = fmt.Errorf("not in %q: %s", q.queue, strings.Join(s.missing(), ", "))
	}
	return done, err
}

// PurgeAllDeadLetters empties queue (queue.purge) and returns how many messages it deleted.
func (b *Broker) PurgeAllDeadLetters(ctx context.Context, queue string) (int, error) {
	q, err := b.openDLQ(queue)
	if err != nil {
		return 0, err
	}
	defer q.close()
	ch, err := q.conn.Channel()
	if err != nil {
		return 0, fmt.Errorf("opening a channel: %w", err)
	}
	defer ch.Close()
	if _, err := ch.QueueDeclarePassive(q.queue, true, false, false, false, nil); err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return 0, fmt.Errorf("%w: %q", broker.ErrNoDeadLetterQueue, q.queue)
		}
		return 0, fmt.Errorf("dead-letter queue %q: %w", q.queue, err)
	}
	n, err := ch.QueuePurge(q.queue, false)
	if err != nil {
		return 0, fmt.Errorf("purging %q: %w", q.queue, err)
	}
	return n, nil
}

var _ broker.DeadLetterQueues = (*Broker)(nil)
