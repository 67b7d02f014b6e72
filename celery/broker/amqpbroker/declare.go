// This file holds topology: declaring queues and exchanges as Celery 5.2 declares them, and the
// conversion of header and argument values to AMQP table values.

package amqpbroker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/celery/broker"
)

// Declare declares q's exchange, the queue and the binding, as kombu does.
func (b *Broker) Declare(ctx context.Context, q broker.Queue) error {
	for {
		conn, gen, err := b.connection(ctx)
		if err != nil {
			return err
		}
		ch, err := conn.Channel()
		if err != nil {
			if b.retryable(ctx, err) {
				continue
			}
			return err
		}
		err = declare(ch, q)
		_ = ch.Close()
		if err == nil {
			b.mu.Lock()
			if b.gen == gen {
				b.declared[q.Name] = true
			}
			b.mu.Unlock()
			return nil
		}
		var aerr *amqp.Error
		if errors.As(err, &aerr) && aerr.Code == amqp.PreconditionFailed {
			return fmt.Errorf("declaring queue %q: %w (it exists with other settings; Celery declares it durable, without arguments unless task_queues says so)", q.Name, err)
		}
		if !b.retryable(ctx, err) {
			return err
		}
	}
}

// invalidQueueError is a queue declaration refused before it reached RabbitMQ (see
// broker.CheckQueueArguments): a configuration error, never retried.
type invalidQueueError struct{ error }

func (e invalidQueueError) Unwrap() error { return e.error }

// exchangeDecl is how DeclareExchange declared an exchange.
type exchangeDecl struct {
	kind                string
	durable, autoDelete bool
}

// DeclareExchange declares an exchange without any queue (events.ExchangeDeclarer): kind is direct,
// topic, fanout, headers or a plugin's x-… type ("" = direct); no arguments, not internal. The
// declaration is remembered and made again on every new connection before the first publish to
// the exchange, so a broker restart that lost a non-durable exchange does not lose what is sent to
// it afterwards. A declaration RabbitMQ refuses (406: the exchange exists with other flags) is
// returned and not remembered.
func (b *Broker) DeclareExchange(ctx context.Context, name, kind string, durable, autoDelete bool) error {
	if name == "" {
		return errors.New("declaring an exchange: empty name (the default exchange exists already)")
	}
	switch {
	case kind == "":
		kind = "direct"
	case kind == "direct", kind == "topic", kind == "fanout", kind == "headers", strings.HasPrefix(kind, "x-"):
	default:
		// RabbitMQ answers an unknown type with a connection error, which would close every channel.
		return fmt.Errorf("declaring exchange %q: unknown exchange type %q (direct, topic, fanout, headers or x-…)", name, kind)
	}
	x := exchangeDecl{kind: kind, durable: durable, autoDelete: autoDelete}
	if err := b.declareExchange(ctx, name, x); err != nil {
		return err
	}
	b.mu.Lock()
	b.exchanges[name] = x
	b.mu.Unlock()
	return nil
}

func (b *Broker) declareExchange(ctx context.Context, name string, x exchangeDecl) error {
	for {
		conn, gen, err := b.connection(ctx)
		if err != nil {
			return err
		}
		ch, err := conn.Channel()
		if err != nil {
			if b.retryable(ctx, err) {
				continue
			}
			return fmt.Errorf("declaring exchange %q: %w", name, err)
		}
		err = ch.ExchangeDeclare(name, x.kind, x.durable, x.autoDelete, false, false, nil)
		_ = ch.Close()
		if err == nil {
			b.mu.Lock()
			if b.gen == gen {
				b.exDone[name] = true
			}
			b.mu.Unlock()
			return nil
		}
		var aerr *amqp.Error
		if errors.As(err, &aerr) && aerr.Code == amqp.PreconditionFailed {
			return fmt.Errorf("declaring exchange %q (%s, durable=%v, auto_delete=%v): %w (it exists with other settings)",
				name, x.kind, x.durable, x.autoDelete, err)
		}
		if !b.retryable(ctx, err) {
			return fmt.Errorf("declaring exchange %q: %w", name, err)
		}
	}
}

func declare(ch *amqp.Channel, q broker.Queue) error {
	if err := broker.CheckQueueArguments(q); err != nil {
		return invalidQueueError{fmt.Errorf("declaring queue %q: %w", q.Name, err)}
	}
	// RabbitMQ drops what it dead-letters to a queue that does not exist: declare the target of
	// a quorum queue's dead-letter routing key through the default exchange first (durable, no
	// arguments, as the worker's own dead-letter queue), where x-delivery-limit sends poison.
	if x, ok := q.QueueArguments[broker.ArgDeadLetterExchange].(string); ok && x == "" && broker.IsQuorum(q) {
		if dlq, _ := q.QueueArguments[broker.ArgDeadLetterRoutingKey].(string); dlq != "" && dlq != q.Name {
			if _, err := ch.QueueDeclare(dlq, true, false, false, false, nil); err != nil {
				return fmt.Errorf("declaring the dead-letter queue %q of queue %q: %w", dlq, q.Name, err)
			}
		}
	}
	args := amqp.Table{}
	for k, v := range q.QueueArguments {
		args[k] = tableValue(v)
	}
	if q.MaxPriority != nil {
		args["x-max-priority"] = int32(*q.MaxPriority)
	}
	if len(args) == 0 {
		args = nil
	}
	if q.Exchange != "" {
		typ := q.ExchangeType
		if typ == "" {
			typ = "direct"
		}
		if err := ch.ExchangeDeclare(q.Exchange, typ, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declaring exchange %q: %w", q.Exchange, err)
		}
	}
	if _, err := ch.QueueDeclare(q.Name, true, false, false, false, args); err != nil {
		return fmt.Errorf("declaring queue %q: %w", q.Name, err)
	}
	if q.Exchange != "" {
		key := q.RoutingKey
		if key == "" {
			key = q.Name
		}
		if err := ch.QueueBind(q.Name, key, q.Exchange, false, nil); err != nil {
			return fmt.Errorf("binding queue %q to %q: %w", q.Name, q.Exchange, err)
		}
	}
	return nil
}

// tableValue converts a configuration or header value to what amqp091-go can write, with integers as
// 32-bit where they fit (py-amqp reads 'I'; amqpwire turns wider ones into py-amqp's 'L').
func tableValue(v any) any {
	switch x := v.(type) {
	case int:
		if x >= -(1<<31-1) && x <= 1<<31-1 {
			return int32(x)
		}
		return int64(x)
	case int64:
		if x >= -(1<<31-1) && x <= 1<<31-1 {
			return int32(x)
		}
		return x
	case uint8:
		return int32(x)
	case uint16:
		return int32(x)
	case uint32:
		return int64(x)
	case int8:
		return int32(x)
	case int16:
		return int32(x)
	case map[string]any:
		t := make(amqp.Table, len(x))
		for k, e := range x {
			t[k] = tableValue(e)
		}
		return t
	case amqp.Table:
		t := make(amqp.Table, len(x))
		for k, e := range x {
			t[k] = tableValue(e)
		}
		return t
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = tableValue(e)
		}
		return out
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out
	}
	return v
}

// Table converts protocol headers to an amqp.Table.
func Table(h map[string]any) amqp.Table {
	if h == nil {
		return nil
	}
	t := make(amqp.Table, len(h))
	for k, v := range h {
		t[k] = tableValue(v)
	}
	return t
}
