package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery/broker"
)

// The operators' dead-letter API (broker.DeadLetterQueues) on Redis: a dead-letter queue is a
// list of kombu envelopes (its priority lists too), read from its head (the right end). Reading
// never takes anything out; replay and purge remove exactly the entry they act on.

// deadEntry is one entry of a dead-letter queue with what a listing shows of it.
type deadEntry struct {
	list string
	raw  string
	info broker.DeadLetterInfo
	msg  Message
	ok   bool // raw is a kombu envelope
}

// exists reports whether queue was declared through this Broker or has a list in Redis.
func (b *Broker) exists(ctx context.Context, queue string) (bool, error) {
	b.mu.Lock()
	_, declared := b.queues[queue]
	b.mu.Unlock()
	if declared {
		return true, nil
	}
	n, err := b.rc.Exists(ctx, b.lists(queue)...).Result()
	return n > 0, err
}

// snapshot reads every entry of queue, in queue order; a missing queue wraps ErrNoDeadLetterQueue.
func (b *Broker) snapshot(ctx context.Context, queue string, limit int) ([]deadEntry, error) {
	ok, err := b.exists(ctx, queue)
	if err != nil {
		return nil, fmt.Errorf("redisbroker: reading %s: %w", queue, err)
	}
	if !ok {
		return nil, fmt.Errorf("redisbroker: %s: %w", queue, broker.ErrNoDeadLetterQueue)
	}
	var out []deadEntry
	for _, l := range b.lists(queue) {
		raws, err := b.rc.LRange(ctx, l, 0, -1).Result()
		if err != nil {
			return nil, fmt.Errorf("redisbroker: reading %s: %w", queue, err)
		}
		for i := len(raws) - 1; i >= 0; i-- {
			e := deadEntry{list: l, raw: raws[i]}
			if m, err := DecodeMessage([]byte(raws[i])); err == nil {
				e.msg, e.ok = m, true
				e.info = broker.DescribeDeadLetter(m.Headers, m.ContentType, m.Body, m.CorrelationID, m.Timestamp)
			} else {
				e.info = broker.DeadLetterInfo{Reason: "not a kombu envelope: " + err.Error(), BodyBytes: len(raws[i])}
			}
			out = append(out, e)
			if limit > 0 && len(out) == limit {
				return out, nil
			}
		}
	}
	return out, nil
}

// ListDeadLetters returns up to limit dead letters of queue (limit <= 0: all), in queue order.
func (b *Broker) ListDeadLetters(ctx context.Context, queue string, limit int) ([]broker.DeadLetterInfo, error) {
	es, err := b.snapshot(ctx, queue, limit)
	if err != nil {
		return nil, err
	}
	out := make([]broker.DeadLetterInfo, len(es))
	for i, e := range es {
		out[i] = e.info
	}
	return out, nil
}

// moveScript removes ARGV[1] (once, nearest the head) from the list KEYS[1] and, only if it was
// there, pushes ARGV[2] onto the tail of KEYS[2]: a replayed message moves exactly once.
var moveScript = redis.NewScript(`
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 1 then
  redis.call('LPUSH', KEYS[2], ARGV[2])
  return 1
end
return 0
`)

// ReplayDeadLetters moves the selected dead letters of queue, without the dead-letter headers, to
// the tail of their original queue (or of to), each in one atomic step.
func (b *Broker) ReplayDeadLetters(ctx context.Context, queue string, sel broker.DeadLetterSelection, to string) ([]broker.ReplayedDeadLetter, error) {
	if err := sel.Validate(); err != nil {
		return nil, err
	}
	if to == queue {
		return nil, fmt.Errorf("redisbroker: replaying %s to itself", queue)
	}
	es, err := b.snapshot(ctx, queue, 0)
	if err != nil {
		return nil, err
	}
	var done []broker.ReplayedDeadLetter
	var problems []string
	found := map[string]bool{}
	for _, e := range es {
		if !sel.All && !slices.Contains(sel.IDs, e.info.ID) {
			continue
		}
		found[e.info.ID] = true
		target := to
		if target == "" {
			target = e.info.OriginalQueue
		}
		switch ok, err := b.exists(ctx, target); {
		case !e.ok:
			problems = append(problems, fmt.Sprintf("an entry of %d bytes is not a kombu envelope", e.info.BodyBytes))
			continue
		case target == "":
			problems = append(problems, fmt.Sprintf("%s has no original queue", e.info.ID))
			continue
		case target == queue:
			problems = append(problems, fmt.Sprintf("%s came from %s itself", e.info.ID, queue))
			continue
		case err != nil:
			return done, fmt.Errorf("redisbroker: replaying %s: %w", e.info.ID, err)
		case !ok:
			problems = append(problems, fmt.Sprintf("%s: queue %s does not exist", e.info.ID, target))
			continue
		}
		m := e.msg
		for _, h := range broker.DeadLetterHeaders {
			delete(m.Headers, h)
		}
		m.DeliveryTag, m.Exchange, m.RoutingKey, m.Redelivered = "", "", target, false
		raw, err := EncodeMessage(m)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", e.info.ID, err))
			continue
		}
		moved, err := moveScript.Run(ctx, b.rc, []string{e.list, b.list(target, int(m.Priority))}, e.raw, raw).Int()
		if err != nil {
			return done, fmt.Errorf("redisbroker: replaying %s: %w", e.info.ID, err)
		}
		if moved == 0 {
			problems = append(problems, fmt.Sprintf("%s left %s meanwhile", e.info.ID, queue))
			continue
		}
		done = append(done, broker.ReplayedDeadLetter{DeadLetterInfo: e.info, To: target})
	}
	for _, id := range sel.IDs {
		if !found[id] {
			problems = append(problems, fmt.Sprintf("%s is not in %s", id, queue))
		}
	}
	if len(problems) > 0 {
		return done, errors.New("redisbroker: not replayed: " + strings.Join(problems, "; "))
	}
	return done, nil
}

// PurgeDeadLetters deletes the dead letters of queue whose ID is in ids and returns them.
func (b *Broker) PurgeDeadLetters(ctx context.Context, queue string, ids []string) ([]broker.DeadLetterInfo, error) {
	if len(ids) == 0 {
		return nil, errors.New("redisbroker: purge: no ids given")
	}
	es, err := b.snapshot(ctx, queue, 0)
	if err != nil {
		return nil, err
	}
	var done []broker.DeadLetterInfo
	found := map[string]bool{}
	for _, e := range es {
		if !slices.Contains(ids, e.info.ID) {
			continue
		}
		n, err := b.rc.LRem(ctx, e.list, -1, e.raw).Result()
		if err != nil {
			return done, fmt.Errorf("redisbroker: purging %s: %w", e.info.ID, err)
		}
		if n == 1 {
			found[e.info.ID] = true
			done = append(done, e.info)
		}
	}
	var missing []string
	for _, id := range ids {
		if !found[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return done, fmt.Errorf("redisbroker: not in %s: %s", queue, strings.Join(missing, ", "))
	}
	return done, nil
}

// PurgeAllDeadLetters deletes every entry of queue and returns how many there were.
func (b *Broker) PurgeAllDeadLetters(ctx context.Context, queue string) (int, error) {
	if _, err := b.snapshot(ctx, queue, 1); err != nil {
		return 0, err
	}
	var lens []*redis.IntCmd
	_, err := b.rc.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, l := range b.lists(queue) {
			lens = append(lens, pipe.LLen(ctx, l))
		}
		pipe.Del(ctx, b.lists(queue)...)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("redisbroker: purging %s: %w", queue, err)
	}
	n := 0
	for _, c := range lens {
		n += int(c.Val())
	}
	return n, nil
}

var _ broker.DeadLetterQueues = (*Broker)(nil)
