// This file holds native delayed delivery (kombu's native_delayed_delivery, Celery 5.5): the
// celery_delayed_27 … celery_delayed_0 levels, the celery_delayed_delivery exchange and the
// bindings of task queues to it, and the per-consumer QoS quorum queues need.

package amqpbroker

import (
	"context"
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/celery/broker"
)

// delayedState remembers that Consume declared native delayed delivery, so a reconnect does not
// declare the 28 levels again.
type delayedState struct {
	mu   sync.Mutex
	done bool
}

// globalQoS is whether a channel consuming queues sets its prefetch globally: yes, as Celery on
// RabbitMQ, unless a queue is a quorum queue (which refuses global QoS) and quorum detection is on.
func (b *Broker) globalQoS(queues []broker.Queue) bool {
	return b.opts.NoQuorumDetection || !anyQuorum(queues)
}

func anyQuorum(queues []broker.Queue) bool {
	for _, q := range queues {
		if broker.IsQuorum(q) {
			return true
		}
	}
	return false
}

// delayedQueueType is broker_native_delayed_delivery_queue_type, quorum by default.
func (b *Broker) delayedQueueType() string {
	if b.opts.DelayedDeliveryQueueType == "" {
		return broker.QueueTypeQuorum
	}
	return b.opts.DelayedDeliveryQueueType
}

// delayedDeliveryOnce declares native delayed delivery on ch and binds queues to it the first
// time Consume opens a channel on queues with a quorum queue (Celery 5.5's DelayedDelivery
// bootstep, included when quorum queues are detected). A queue that cannot be bound (direct
// exchange) is logged, as kombu does.
func (b *Broker) delayedDeliveryOnce(ch *amqp.Channel, queues []broker.Queue) error {
	if b.opts.NoQuorumDetection || !anyQuorum(queues) {
		return nil
	}
	b.delayed.mu.Lock()
	defer b.delayed.mu.Unlock()
	if b.delayed.done {
		return nil
	}
	unbound, err := declareDelayedDelivery(ch, b.delayedQueueType(), queues)
	if err != nil {
		return err
	}
	b.warnUnbound(unbound)
	b.delayed.done = true
	return nil
}

func (b *Broker) warnUnbound(unbound []string) {
	for _, name := range unbound {
		b.log.Warn("native delayed delivery cannot reach this queue: its exchange is a direct exchange, which "+
			"delayed delivery does not support; ETA tasks sent to it are held by the worker until their ETA "+
			"(give the queue a topic exchange, e.g. task_default_exchange_type: topic)", "queue", name)
	}
}

// DeclareDelayedDelivery declares the 28 levels of native delayed delivery with queues of
// queueType ("classic" or "quorum") exactly as kombu 5.5's
// declare_native_delayed_delivery_exchanges_and_queues, and binds each queue to
// celery_delayed_delivery as bind_queue_to_native_delayed_delivery_exchange does (see
// broker.DelayedDelivery). Everything it declares is durable, so declaring it again is harmless.
func (b *Broker) DeclareDelayedDelivery(ctx context.Context, queueType string, queues []broker.Queue) ([]string, error) {
	for {
		conn, _, err := b.connection(ctx)
		if err != nil {
			return nil, err
		}
		ch, err := conn.Channel()
		if err != nil {
			if b.retryable(ctx, err) {
				continue
			}
			return nil, err
		}
		unbound, err := declareDelayedDelivery(ch, queueType, queues)
		_ = ch.Close()
		if err == nil || !b.retryable(ctx, err) {
			return unbound, err
		}
	}
}

// delayedLevelArguments are the arguments of level level's queue, as kombu declares them.
func delayedLevelArguments(level int, queueType string) amqp.Table {
	next := broker.DelayedDeliveryExchange
	if level > 0 {
		next = broker.DelayedLevel(level - 1)
	}
	args := amqp.Table{
		"x-queue-type":           queueType,
		"x-overflow":             "reject-publish",
		"x-message-ttl":          tableValue(int64(1) << level * 1000),
		"x-dead-letter-exchange": next,
	}
	if queueType == broker.QueueTypeQuorum {
		args["x-dead-letter-strategy"] = "at-least-once"
	}
	return args
}

// delayedBindingKeys are kombu's binding keys of level level: the one binding its queue to its
// exchange (the level's digit is 1) and the one binding the next level's exchange to it (the digit
// is 0), each with 27-level leading "*." words.
func delayedBindingKeys(level int) (queueKey, nextKey string) {
	prefix := ""
	for i := 0; i < broker.DelayedDeliveryLevels-1-level; i++ {
		prefix += "*."
	}
	return prefix + "1.#", prefix + "0.#"
}

// delayedOp is one declaration or binding of the delayed-delivery topology, with kombu's names
// for the channel methods and their arguments (the golden test compares them with kombu's).
type delayedOp map[string]any

// delayedTopology is what kombu 5.5's declare_native_delayed_delivery_exchanges_and_queues
// declares, in its order.
func delayedTopology(queueType string) []delayedOp {
	var ops []delayedOp
	for level := broker.DelayedDeliveryLevels - 1; level >= 0; level-- {
		name := broker.DelayedLevel(level)
		key, _ := delayedBindingKeys(level)
		ops = append(ops,
			delayedOp{"op": "exchange_declare", "exchange": name, "type": "topic", "durable": true, "auto_delete": false},
			delayedOp{"op": "queue_declare", "queue": name, "durable": true, "auto_delete": false, "arguments": delayedLevelArguments(level, queueType)},
			delayedOp{"op": "queue_bind", "queue": name, "exchange": name, "routing_key": key})
	}
	for level := broker.DelayedDeliveryLevels - 1; level > 0; level-- {
		_, key := delayedBindingKeys(level)
		ops = append(ops, delayedOp{"op": "exchange_bind", "destination": broker.DelayedLevel(level - 1), "source": broker.DelayedLevel(level), "routing_key": key})
	}
	_, key := delayedBindingKeys(0)
	return append(ops,
		delayedOp{"op": "exchange_declare", "exchange": broker.DelayedDeliveryExchange, "type": "topic", "durable": true, "auto_delete": false},
		delayedOp{"op": "exchange_bind", "destination": broker.DelayedDeliveryExchange, "source": broker.DelayedLevel(0), "routing_key": key})
}

// apply runs op on ch.
func (op delayedOp) apply(ch *amqp.Channel) error {
	str := func(k string) string { s, _ := op[k].(string); return s }
	var err error
	switch op["op"] {
	case "exchange_declare":
		err = ch.ExchangeDeclare(str("exchange"), str("type"), true, false, false, false, nil)
	case "queue_declare":
		_, err = ch.QueueDeclare(str("queue"), true, false, false, false, op["arguments"].(amqp.Table))
		if err != nil {
			err = fmt.Errorf("%w (declared before with another queue type? see broker_native_delayed_delivery_queue_type)", err)
		}
	case "queue_bind":
		err = ch.QueueBind(str("queue"), str("routing_key"), str("exchange"), false, nil)
	case "exchange_bind":
		err = ch.ExchangeBind(str("destination"), str("routing_key"), str("source"), false, nil)
	default:
		err = fmt.Errorf("unknown operation %v", op["op"])
	}
	if err != nil {
		return fmt.Errorf("native delayed delivery: %s %s%s: %w", op["op"], str("exchange"), str("queue")+str("destination"), err)
	}
	return nil
}

func declareDelayedDelivery(ch *amqp.Channel, queueType string, queues []broker.Queue) ([]string, error) {
	if queueType != broker.QueueTypeClassic && queueType != broker.QueueTypeQuorum {
		return nil, fmt.Errorf("native delayed delivery: queue type must be classic or quorum, got %q", queueType)
	}
	for _, op := range delayedTopology(queueType) {
		if err := op.apply(ch); err != nil {
			return nil, err
		}
	}
	var unbound []string
	for _, q := range queues {
		if q.Exchange == "" || q.ExchangeType == "" || q.ExchangeType == "direct" {
			unbound = append(unbound, q.Name)
			continue
		}
		rk := q.RoutingKey
		if rk == "" {
			rk = q.Name
		}
		key := broker.DelayedDeliveryBindingKey(rk)
		if err := ch.ExchangeBind(q.Exchange, key, broker.DelayedDeliveryExchange, false, nil); err != nil {
			return unbound, fmt.Errorf("native delayed delivery: binding exchange %q: %w", q.Exchange, err)
		}
		if err := ch.QueueBind(q.Name, key, q.Exchange, false, nil); err != nil {
			return unbound, fmt.Errorf("native delayed delivery: binding queue %q: %w", q.Name, err)
		}
	}
	return unbound, nil
}

var _ broker.DelayedDelivery = (*Broker)(nil)
