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
func (b *Broker) Park(ctx context.Context, d *broker.Delivery, delay time.Duration) (string, error) {
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

var (
	_ broker.DeadLetterer    = (*Broker)(nil)
	_ broker.Parker          = (*Broker)(nil)
	_ broker.ConnectionStats = (*Broker)(nil)
)
