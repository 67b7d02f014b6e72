package redisbroker

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/protocol"
)

// ackTag removes h from the unacked hash and index, as kombu's QoS.ack does; acks that arrive
// together are sent in one transaction (see ackBatcher). If the hash no longer has it, its
// visibility timeout passed and someone restored it: the message will run again, and the caller
// is told (broker.ErrStaleDelivery).
func (b *Broker) ackTag(ctx context.Context, h *held) error {
	req := ackReq{tag: h.kombuTag, done: make(chan ackResult, 1)}
	select {
	case b.acks <- req:
	case <-b.closing:
		return b.ackNow(ctx, []ackReq{req})
	case <-ctx.Done():
		return ctx.Err()
	}
	var r ackResult
	select {
	case r = <-req.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if r.err != nil {
		return fmt.Errorf("redisbroker: ack of %s: %w", h.kombuTag, r.err)
	}
	if !r.removed {
		return fmt.Errorf("redisbroker: ack of %s from %s: %w (it was restored to its queue after its visibility timeout)",
			h.kombuTag, h.queue, broker.ErrStaleDelivery)
	}
	return nil
}

type ackReq struct {
	tag  string
	done chan ackResult
}

type ackResult struct {
	removed bool
	err     error
}

// ackBatcher sends the acks waiting in b.acks in one MULTI (ZREM + HDEL each) until the Broker
// closes; it runs beside the maintenance loop.
func (b *Broker) ackBatcher() {
	defer b.wg.Done()
	for {
		var batch []ackReq
		select {
		case r := <-b.acks:
			batch = append(batch, r)
		case <-b.closing:
			return
		}
	more:
		for len(batch) < 512 {
			select {
			case r := <-b.acks:
				batch = append(batch, r)
			default:
				break more
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = b.ackNow(ctx, batch)
		cancel()
	}
}

// ackNow sends the acks of batch in one transaction and answers each request; while Redis cannot
// be reached it retries (see retryTransient) until ctx ends.
func (b *Broker) ackNow(ctx context.Context, batch []ackReq) error {
	dels := make([]*redis.IntCmd, len(batch))
	err := b.retryTransient(ctx, "acknowledging", func() error {
		_, err := b.rc.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			for i, r := range batch {
				pipe.ZRem(ctx, b.key(b.opts.UnackedIndexKey), r.tag)
				dels[i] = pipe.HDel(ctx, b.key(b.opts.UnackedKey), r.tag)
			}
			return nil
		})
		return err
	})
	for i, r := range batch {
		res := ackResult{err: err}
		if err == nil {
			res.removed = dels[i].Val() == 1
		}
		r.done <- res
	}
	return err
}

// targets are the lists a message held from queue, published to exchange with key, goes back to:
// kombu's _lookup of its exchange and routing key, else (nothing bound any more) the queue it was
// taken from, so that nothing is lost where kombu would drop it.
func (b *Broker) targets(ctx context.Context, h *held, pri int) []string {
	queues, err := b.route(ctx, h.exchange, h.key)
	if err != nil || len(queues) == 0 {
		if h.queue == "" {
			return nil
		}
		if err == nil && h.exchange != "" {
			b.log.Warn("redisbroker: restoring a message whose exchange binds no queue for its key; it goes back to the queue it came from",
				"exchange", h.exchange, "routing_key", h.key, "queue", h.queue, "delivery_tag", h.kombuTag)
		}
		queues = []string{h.queue}
	}
	out := make([]string, len(queues))
	for i, q := range queues {
		out[i] = b.list(q, pri)
	}
	return out
}

// restoreTag gives h back (see restoreScript): to the head of its queue, or with tail (reject with
// requeue, kombu's leftmost) to the tail. It reports whether this call restored it.
func (b *Broker) restoreTag(ctx context.Context, h *held, tail bool) (bool, error) {
	payload, err := markRedelivered(h.payload)
	pri := 0
	if err == nil {
		if m, derr := DecodeMessage(payload); derr == nil {
			pri = int(m.Priority)
		}
	} else {
		payload = h.payload
	}
	to := b.targets(ctx, h, pri)
	if len(to) == 0 {
		// kombu would drop it (its _lookup finds nothing): park it instead, saying why.
		b.log.Error("redisbroker: a message to restore routes to no queue; parked in the dead-letter queue",
			"exchange", h.exchange, "routing_key", h.key, "delivery_tag", h.kombuTag, "dead_letter_queue", b.opts.DeadLetterQueue)
		to = []string{b.key(b.opts.DeadLetterQueue)}
		if m, derr := DecodeMessage(payload); derr == nil {
			if m.Headers == nil {
				m.Headers = map[string]any{}
			}
			m.Headers[broker.HeaderDeadLetterReason] = fmt.Sprintf("no queue is bound to exchange %q for routing key %q", h.exchange, h.key)
			m.Headers[broker.HeaderOriginalExchange] = h.exchange
			m.Headers[broker.HeaderOriginalKey] = h.key
			m.Headers[broker.HeaderDeadLetteredBy] = "redisbroker"
			m.Headers[broker.HeaderDeadLetteredAt] = protocol.FormatTime(time.Now().UTC())
			if re, eerr := EncodeMessage(m); eerr == nil {
				payload = re
			}
		}
	}
	keys := append([]string{b.key(b.opts.UnackedKey), b.key(b.opts.UnackedIndexKey)}, to...)
	end := "right"
	if tail {
		end = "left"
	}
	n, err := restoreScript.Run(ctx, b.rc, keys, h.kombuTag, payload, end).Int()
	if err != nil {
		b.log.Error("redisbroker: cannot restore a message; it stays in the unacked hash until its visibility timeout",
			"delivery_tag", h.kombuTag, "queue", h.queue, "error", err)
		return false, fmt.Errorf("redisbroker: restoring %s: %w", h.kombuTag, err)
	}
	return n == 1, nil
}

// rejectTag settles a rejection without requeue: to the queue's x-dead-letter-routing-key (via
// x-dead-letter-exchange) when the queue was declared with one through this Broker, else dropped,
// as kombu drops it.
func (b *Broker) rejectTag(ctx context.Context, h *held) error {
	b.mu.Lock()
	q := b.queues[h.queue]
	b.mu.Unlock()
	dlKey, hasKey := q.QueueArguments["x-dead-letter-routing-key"].(string)
	dlEx, hasEx := q.QueueArguments["x-dead-letter-exchange"].(string)
	if !hasKey && !hasEx {
		return b.ackTag(ctx, h)
	}
	if !hasKey {
		dlKey = h.key
	}
	queues, err := b.route(ctx, dlEx, dlKey)
	if err != nil {
		return err
	}
	if len(queues) == 0 {
		return fmt.Errorf("redisbroker: dead-lettering %s: exchange %q routes key %q nowhere: %w", h.kombuTag, dlEx, dlKey, ErrUnroutable)
	}
	keys := []string{b.key(b.opts.UnackedKey), b.key(b.opts.UnackedIndexKey)}
	for _, dq := range queues {
		keys = append(keys, b.list(dq, 0))
	}
	n, err := restoreScript.Run(ctx, b.rc, keys, h.kombuTag, h.payload, "left").Int()
	if err != nil {
		return fmt.Errorf("redisbroker: dead-lettering %s: %w", h.kombuTag, err)
	}
	if n == 0 {
		return fmt.Errorf("redisbroker: dead-lettering %s: %w", h.kombuTag, broker.ErrStaleDelivery)
	}
	return nil
}

// quarantineKey is the list where takeScript puts entries that are not kombu envelopes until
// they are wrapped and moved to the dead-letter queue.
func (b *Broker) quarantineKey() string { return b.key(b.opts.DeadLetterQueue + ".unreadable") }

// parkUnreadable wraps an entry that cannot be read in an envelope (the entry as its body, the
// reason and its queue in the dead-letter headers) at the tail of the dead-letter queue, and in the
// same transaction removes it from where it waited: the unacked hash (tag) or the quarantine list.
// It is logged; on failure it stays where it is (quarantine or unacked, restored later), never lost.
func (b *Broker) parkUnreadable(ctx context.Context, raw []byte, queue, tag, reason string) {
	now := time.Now().UTC()
	env := protocol.Envelope{Body: raw, ContentType: "application/octet-stream", ContentEncoding: "binary", DeliveryMode: 2,
		Headers: map[string]any{
			broker.HeaderDeadLetterReason: "unreadable entry: " + reason,
			broker.HeaderOriginalQueue:    queue,
			broker.HeaderDeadLetteredBy:   "redisbroker",
			broker.HeaderDeadLetteredAt:   protocol.FormatTime(now),
		}}
	wrapped, err := EncodeMessage(Message{Envelope: env, RoutingKey: b.opts.DeadLetterQueue, Timestamp: now})
	if err == nil {
		_, err = b.rc.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.LPush(ctx, b.key(b.opts.DeadLetterQueue), wrapped)
			if tag != "" {
				pipe.ZRem(ctx, b.key(b.opts.UnackedIndexKey), tag)
				pipe.HDel(ctx, b.key(b.opts.UnackedKey), tag)
			} else {
				pipe.LRem(ctx, b.quarantineKey(), 1, raw)
			}
			return nil
		})
	}
	where := b.opts.DeadLetterQueue
	if err != nil {
		where = b.quarantineKey()
		if tag != "" {
			where = b.opts.UnackedKey
		}
	}
	b.log.Error("redisbroker: a list entry cannot be read; parked for an operator", "queue", queue, "reason", reason,
		"parked_in", where, "entry", truncate(raw, 256), "error", err)
}

// sweepQuarantine moves what an earlier take left in the quarantine list (the process died
// between the two steps) to the dead-letter queue.
func (b *Broker) sweepQuarantine(ctx context.Context) {
	items, err := b.rc.LRange(ctx, b.quarantineKey(), 0, 99).Result()
	if err != nil {
		return
	}
	for _, it := range items {
		b.parkUnreadable(ctx, []byte(it), "", "", "not a kombu envelope (found in the quarantine list)")
	}
}

func tagOf(raw []byte) string {
	var w struct {
		Properties struct {
			DeliveryTag any `json:"delivery_tag"`
		} `json:"properties"`
	}
	_ = json.Unmarshal(raw, &w)
	s, _ := w.Properties.DeliveryTag.(string)
	return s
}

func truncate(raw []byte, n int) string {
	if len(raw) <= n {
		return strconv.Quote(string(raw))
	}
	return strconv.Quote(string(raw[:n])) + "…"
}

// DeadLetter copies d, with the dead-letter headers (broker.DeadLetter.Envelope), to the tail of
// the list dl.Queue (broker.DeadLetterer); d is not settled.
func (b *Broker) DeadLetter(ctx context.Context, d *broker.Delivery, dl broker.DeadLetter) error {
	if dl.Queue == "" {
		return fmt.Errorf("redisbroker: dead-lettering: no dead-letter queue")
	}
	raw, err := EncodeMessage(Message{Envelope: dl.Envelope(d), RoutingKey: dl.Queue, Timestamp: d.Timestamp})
	if err != nil {
		return err
	}
	if err := b.rc.LPush(ctx, b.key(dl.Queue), raw).Err(); err != nil {
		return fmt.Errorf("redisbroker: dead-lettering to %s: %w", dl.Queue, err)
	}
	return nil
}

// delayedKey is the sorted set of parked messages (broker.Parker).
func (b *Broker) delayedKey() string { return b.key("_forumads.delayed") }

// Park copies d (a new delivery tag) to the sorted set "_forumads.delayed" scored by when it is
// due; a consuming Broker moves it to the head of its queue's list then (broker.Parker). d is
// not settled. Parked messages need a Go worker consuming to come back: a kombu worker does not
// read the set.
func (b *Broker) Park(ctx context.Context, d *broker.Delivery, delay time.Duration) (string, error) {
	delay = max(delay.Round(time.Second), time.Second)
	raw, err := EncodeMessage(Message{Envelope: d.Envelope, Exchange: d.Exchange, RoutingKey: d.RoutingKey, Timestamp: d.Timestamp})
	if err != nil {
		return "", err
	}
	list := b.list(d.Queue, int(d.Priority))
	member := strconv.Itoa(len(list)) + ":" + list + string(raw)
	due := float64(time.Now().Add(delay).UnixMilli()) / 1000
	if err := b.rc.ZAdd(ctx, b.delayedKey(), redis.Z{Score: due, Member: member}).Err(); err != nil {
		return "", fmt.Errorf("redisbroker: parking a message of %s: %w", d.Queue, err)
	}
	return b.opts.KeyPrefix + "_forumads.delayed", nil
}

var (
	_ broker.DeadLetterer = (*Broker)(nil)
	_ broker.Parker       = (*Broker)(nil)
)
