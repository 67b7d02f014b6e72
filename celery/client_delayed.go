package celery

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/forumads/forumads/celery/broker"
)

// delayedRoutes remembers, per target queue, that the client declared native delayed delivery for
// it (or warned that it cannot have it).
type delayedRoutes struct {
	mu   sync.Mutex
	done map[string]bool
}

// viaDelayedDelivery rewrites pub, a task message with an ETA, to go through native delayed
// delivery as Celery 5.5's send_task does when quorum queues are configured: published to
// celery_delayed_27 with the delay (whole seconds, at least 1) encoded in the routing key (the
// target queue is still declared before publishing), so
// RabbitMQ holds it and no worker keeps it unacknowledged. It does so only when the client's
// broker has native delayed delivery, a configured queue is a quorum queue (Config.QuorumQueues)
// and the target queue's exchange is not direct (direct exchanges cannot take delayed delivery:
// the message is then published as usual, and a warning logged once per queue). Before the first
// delayed message to a queue the client declares the levels and binds the queue, so the message
// is routable even before a worker has started.
func (c *Client) viaDelayedDelivery(ctx context.Context, pub *broker.Publishing, eta time.Time, now time.Time) error {
	dd, ok := c.br.(broker.DelayedDelivery)
	if !ok || !c.cfg.QuorumQueues() || pub.Declare == nil {
		return nil
	}
	delay := eta.Sub(now)
	if delay < time.Second {
		return nil // due now (Celery: int(countdown) > 0); the worker runs it at its ETA
	}
	q := *pub.Declare
	if pub.Exchange == "" || q.ExchangeType == "" || q.ExchangeType == "direct" {
		c.delayed.mu.Lock()
		warned := c.delayed.done[q.Name]
		if c.delayed.done == nil {
			c.delayed.done = map[string]bool{}
		}
		c.delayed.done[q.Name] = true
		c.delayed.mu.Unlock()
		if !warned {
			slog.Warn("direct exchanges are not supported with native delayed delivery: ETA tasks to this queue "+
				"are held by the worker until their ETA (use a topic exchange, e.g. task_default_exchange_type: topic)",
				"queue", q.Name, "exchange", pub.Exchange)
		}
		return nil
	}
	key, err := broker.DelayedRoutingKey(int64(delay/time.Second), pub.RoutingKey)
	if err != nil {
		return err
	}
	c.delayed.mu.Lock()
	defer c.delayed.mu.Unlock()
	if !c.delayed.done[q.Name] {
		qt := c.cfg.BrokerNativeDelayedDeliveryQueueType
		if qt == "" {
			qt = broker.QueueTypeQuorum
		}
		// The target queue first: binding it needs it to exist.
		if err := c.br.Declare(ctx, q); err != nil {
			return err
		}
		if _, err := dd.DeclareDelayedDelivery(ctx, qt, []broker.Queue{q}); err != nil {
			return fmt.Errorf("native delayed delivery: %w", err)
		}
		if c.delayed.done == nil {
			c.delayed.done = map[string]bool{}
		}
		c.delayed.done[q.Name] = true
	}
	pub.Exchange = broker.DelayedEntryExchange()
	pub.RoutingKey = key
	return nil
}
