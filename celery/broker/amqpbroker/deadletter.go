package amqpbroker

import (
	"context"
	"fmt"
	"time"

	"github.com/forumads/forumads/celery/amqpwire"
	"github.com/forumads/forumads/celery/broker"
)

// Capabilities: RabbitMQ parks messages in TTL queues, honours x-max-priority, keeps dead letters
// in a queue of their own and has fanout exchanges.
func (b *Broker) Capabilities() broker.Capabilities {
	return broker.Capabilities{DelayedDelivery: true, Priorities: true, DeadLetter: true, Fanout: true}
}

// headerError is the reason package amqpwire put in place of a headers table it could not read.
func headerError(h map[string]any) string {
	reason, _ := h[amqpwire.UndecodableHeader].(string)
	return reason
}

// DeadLetter publishes dl.Envelope(d) (d with the broker.Header* dead-letter headers, persistent,
// without a per-message TTL, which would make RabbitMQ drop the dead letter silently) to dl.Queue,
// declared durable and without arguments, through the default exchange, and waits for the confirm.
// d itself is not settled.
func (b *Broker) DeadLetter(ctx context.Context, d *broker.Delivery, dl broker.DeadLetter) error {
	env := dl.Envelope(d)
	return b.Publish(ctx, broker.Publishing{RoutingKey: dl.Queue, Envelope: env, Declare: &broker.Queue{Name: dl.Queue}})
}

// ParkQueue is the TTL queue Park uses for messages of queue parked for delay: "<queue>.eta-park-<s>s",
// s being delay in whole seconds (at least 1).
func ParkQueue(queue string, delay time.Duration) (name string, secs int) {
	secs = max(int(delay/time.Second), 1)
	return fmt.Sprintf("%s.eta-park-%ds", queue, secs), secs
}

// Park publishes a copy of d, persistent, to the TTL queue ParkQueue(d.Queue, delay), declared with
// x-message-ttl and dead-lettering to d.Queue through the default exchange, so RabbitMQ delivers it
// back to d.Queue when the TTL expires; it waits for the confirm and returns the TTL queue's name.
// d itself is not settled.
//
// A message of a consumed quorum queue on a non-direct exchange, once Consume declared native
// delayed delivery, is parked there instead (published to celery_delayed_27 with the delay in its
// routing key): replicated like the queue itself, where a TTL queue would live on one node.
func (b *Broker) Park(ctx context.Context, d *broker.Delivery, delay time.Duration) (string, error) {
	if where, ok, err := b.parkDelayed(ctx, d, delay); ok {
		return where, err
	}
	name, secs := ParkQueue(d.Queue, delay)
	q := broker.Queue{Name: name, QueueArguments: map[string]any{
		"x-message-ttl":             int32(secs * 1000),
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": d.Queue,
	}}
	env := d.Envelope
	if env.DeliveryMode == 0 {
		env.DeliveryMode = 2
	}
	return name, b.Publish(ctx, broker.Publishing{RoutingKey: name, Envelope: env, Declare: &q})
}

// parkDelayed parks d through native delayed delivery when its queue can take it (see Park); ok
// is false when it cannot.
func (b *Broker) parkDelayed(ctx context.Context, d *broker.Delivery, delay time.Duration) (string, bool, error) {
	b.delayed.mu.Lock()
	declared := b.delayed.done
	b.delayed.mu.Unlock()
	if !declared {
		return "", false, nil
	}
	for _, q := range b.ConsumingQueues() {
		if q.Name != d.Queue || !broker.IsQuorum(q) || q.Exchange == "" || q.ExchangeType == "" || q.ExchangeType == "direct" {
			continue
		}
		rk := q.RoutingKey
		if rk == "" {
			rk = q.Name
		}
		key, err := broker.DelayedRoutingKey(max(int64(delay/time.Second), 1), rk)
		if err != nil {
			return "", false, nil // beyond the levels: a TTL queue takes it
		}
		env := d.Envelope
		if env.DeliveryMode == 0 {
			env.DeliveryMode = 2
		}
		where := broker.DelayedEntryExchange()
		return where, true, b.Publish(ctx, broker.Publishing{Exchange: where, RoutingKey: key, Envelope: env})
	}
	return "", false, nil
}

var (
	_ broker.DeadLetterer    = (*Broker)(nil)
	_ broker.Parker          = (*Broker)(nil)
	_ broker.ConnectionStats = (*Broker)(nil)
)
