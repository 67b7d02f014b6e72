package memorybroker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/forumads/forumads/celery/broker"
)

// Operators' dead-letter work (broker.DeadLetterQueues) on the memory broker. Each call works on
// the queue's ready messages under the broker's lock, so it sees exactly what the queue held when
// it started, and a replayed message leaves the dead-letter queue in the same step that puts it
// in its target queue: it moves exactly once. Messages delivered to a consumer and not yet
// settled are not seen (as basic.get does not see them on RabbitMQ).

// describe reads what a listing shows from a dead letter (broker.DescribeDeadLetter; this broker
// keeps no x-death of its own).
func describe(m *message) broker.DeadLetterInfo {
	return broker.DescribeDeadLetter(m.Headers, m.ContentType, m.Body, m.CorrelationID, m.Timestamp)
}

// deadLetterQueue returns queue name for a dead-letter call; b.mu is held.
func (b *Broker) deadLetterQueue(name string) (*queue, error) {
	if b.closed {
		return nil, broker.ErrClosed
	}
	q, ok := b.queues[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q (no message was ever dead-lettered there?)", broker.ErrNoDeadLetterQueue, name)
	}
	return q, nil
}

// ListDeadLetters returns up to limit ready messages of queue (limit <= 0: all), in queue order,
// leaving them in place.
func (b *Broker) ListDeadLetters(_ context.Context, queue string, limit int) ([]broker.DeadLetterInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q, err := b.deadLetterQueue(queue)
	if err != nil {
		return nil, err
	}
	var out []broker.DeadLetterInfo
	for i, m := range q.msgs {
		if limit > 0 && i == limit {
			break
		}
		out = append(out, describe(m))
	}
	return out, nil
}

// ReplayDeadLetters moves the selected messages of queue to their original queue, or to to,
// without the dead-letter headers (see broker.DeadLetterQueues). A message whose target queue does
// not exist, or that has none, stays in place; the error names it.
func (b *Broker) ReplayDeadLetters(_ context.Context, queue string, sel broker.DeadLetterSelection, to string) ([]broker.ReplayedDeadLetter, error) {
	if err := sel.Validate(); err != nil {
		return nil, err
	}
	if to != "" && to == queue {
		return nil, fmt.Errorf("dead letters: the target queue %q is the dead-letter queue itself", to)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	q, err := b.deadLetterQueue(queue)
	if err != nil {
		return nil, err
	}
	found := map[string]bool{}
	var (
		done    []broker.ReplayedDeadLetter
		skipped []error
		kept    []*message
	)
	for _, m := range q.msgs {
		info := describe(m)
		if !sel.All && !slices.Contains(sel.IDs, info.ID) {
			kept = append(kept, m)
			continue
		}
		found[info.ID] = true
		target := to
		if target == "" {
			target = info.OriginalQueue
		}
		tq, ok := b.queues[target]
		switch {
		case target == "":
			skipped = append(skipped, fmt.Errorf("message %s (%s) has no x-original-queue: replay it to a queue named explicitly", info.ID, info.Task))
		case target == queue:
			skipped = append(skipped, fmt.Errorf("message %s (%s) came from %q itself: replay it to a queue named explicitly", info.ID, info.Task, queue))
		case !ok:
			skipped = append(skipped, fmt.Errorf("replaying message %s (%s) to %q: queue %q does not exist", info.ID, info.Task, target, target))
		}
		if target == "" || target == queue || !ok {
			kept = append(kept, m)
			continue
		}
		p := m.Publishing
		p.Exchange, p.RoutingKey, p.Declare = "", target, nil
		p.Headers = map[string]any{}
		for k, v := range m.Headers {
			if !slices.Contains(broker.DeadLetterHeaders, k) {
				p.Headers[k] = v
			}
		}
		if p.DeliveryMode == 0 {
			p.DeliveryMode = 2
		}
		b.seq++
		tq.insert(&message{Publishing: p, seq: b.seq, priority: p.Priority})
		done = append(done, broker.ReplayedDeadLetter{DeadLetterInfo: info, To: target})
	}
	q.msgs = kept
	if len(done) > 0 {
		b.wake()
	}
	var missing []string
	for _, id := range sel.IDs {
		if !found[id] && !slices.Contains(missing, id) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		skipped = append(skipped, fmt.Errorf("not in %q: %s", queue, strings.Join(missing, ", ")))
	}
	if len(skipped) > 0 {
		return done, fmt.Errorf("%w (every message not replayed stays in %q)", errors.Join(skipped...), queue)
	}
	return done, nil
}

// PurgeDeadLetters deletes the ready messages of queue whose id is in ids and returns them; the
// error names the ids not found.
func (b *Broker) PurgeDeadLetters(_ context.Context, queue string, ids []string) ([]broker.DeadLetterInfo, error) {
	if err := (broker.DeadLetterSelection{IDs: ids}).Validate(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	q, err := b.deadLetterQueue(queue)
	if err != nil {
		return nil, err
	}
	found := map[string]bool{}
	var (
		done []broker.DeadLetterInfo
		kept []*message
	)
	for _, m := range q.msgs {
		info := describe(m)
		if !slices.Contains(ids, info.ID) {
			kept = append(kept, m)
			continue
		}
		found[info.ID] = true
		done = append(done, info)
	}
	q.msgs = kept
	var missing []string
	for _, id := range ids {
		if !found[id] && !slices.Contains(missing, id) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return done, fmt.Errorf("not in %q: %s", queue, strings.Join(missing, ", "))
	}
	return done, nil
}

// PurgeAllDeadLetters deletes every ready message of queue and returns how many.
func (b *Broker) PurgeAllDeadLetters(_ context.Context, queue string) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q, err := b.deadLetterQueue(queue)
	if err != nil {
		return 0, err
	}
	n := len(q.msgs)
	q.msgs = nil
	return n, nil
}

// ListDeadLetters is Broker.ListDeadLetters.
func (c *Conn) ListDeadLetters(ctx context.Context, queue string, limit int) ([]broker.DeadLetterInfo, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	return c.b.ListDeadLetters(ctx, queue, limit)
}

// ReplayDeadLetters is Broker.ReplayDeadLetters.
func (c *Conn) ReplayDeadLetters(ctx context.Context, queue string, sel broker.DeadLetterSelection, to string) ([]broker.ReplayedDeadLetter, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	return c.b.ReplayDeadLetters(ctx, queue, sel, to)
}

// PurgeDeadLetters is Broker.PurgeDeadLetters.
func (c *Conn) PurgeDeadLetters(ctx context.Context, queue string, ids []string) ([]broker.DeadLetterInfo, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	return c.b.PurgeDeadLetters(ctx, queue, ids)
}

// PurgeAllDeadLetters is Broker.PurgeAllDeadLetters.
func (c *Conn) PurgeAllDeadLetters(ctx context.Context, queue string) (int, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	return c.b.PurgeAllDeadLetters(ctx, queue)
}

var (
	_ broker.DeadLetterQueues = (*Broker)(nil)
	_ broker.DeadLetterQueues = (*Conn)(nil)
)
