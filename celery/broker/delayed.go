package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Native delayed delivery (kombu's native_delayed_delivery, Celery 5.5): 28 levels of topic
// exchange + queue, celery_delayed_27 … celery_delayed_0. The queue of level L holds a message for
// 2^L seconds (x-message-ttl) and then dead-letters it to the exchange of level L-1 (level 0: to
// DelayedDeliveryExchange). A delayed message's routing key starts with its delay in seconds as
// 28 binary digits, most significant first, one word each ("0.0.…1.0.1.<routing key>"); level L
// routes a message whose digit 27-L is 1 into its queue and one whose digit is 0 on to level L-1,
// so the message waits exactly its delay in total. DelayedDeliveryExchange finally routes it on
// "#.<routing key>" to the exchange of its queue, to which the queue is bound with the same key.
const (
	// DelayedDeliveryLevels is how many levels there are (kombu's MAX_NUMBER_OF_BITS_TO_USE).
	DelayedDeliveryLevels = 28
	// DelayedDeliveryExchange is the topic exchange delayed messages leave level 0 through.
	DelayedDeliveryExchange = "celery_delayed_delivery"
	// MaxDelayedDelivery is the longest delay the levels can encode: 2^28-1 seconds (about 8.5 years).
	MaxDelayedDelivery = (1<<DelayedDeliveryLevels - 1) * time.Second
)

// DelayedLevel is the name of level level's exchange and queue: "celery_delayed_<level>".
func DelayedLevel(level int) string { return fmt.Sprintf("celery_delayed_%d", level) }

// DelayedEntryExchange is where a delayed message is published: the top level, celery_delayed_27.
func DelayedEntryExchange() string { return DelayedLevel(DelayedDeliveryLevels - 1) }

// DelayedRoutingKey is kombu's calculate_routing_key: the routing key that makes the levels hold
// a message for countdown seconds and then route it with routingKey. countdown must be 1 …
// 2^28-1 and routingKey not empty.
func DelayedRoutingKey(countdown int64, routingKey string) (string, error) {
	if countdown < 1 {
		return "", errors.New("delayed delivery: countdown must be a positive number of seconds")
	}
	if countdown >= 1<<DelayedDeliveryLevels {
		return "", fmt.Errorf("delayed delivery: countdown %ds is beyond the %d levels (at most %d s)", countdown, DelayedDeliveryLevels, int64(1<<DelayedDeliveryLevels-1))
	}
	if routingKey == "" {
		return "", errors.New("delayed delivery: routing key must be non-empty")
	}
	var b strings.Builder
	b.Grow(2*DelayedDeliveryLevels + len(routingKey))
	for bit := DelayedDeliveryLevels - 1; bit >= 0; bit-- {
		b.WriteByte('0' + byte(countdown>>bit&1))
		b.WriteByte('.')
	}
	b.WriteString(routingKey)
	return b.String(), nil
}

// SplitDelayedRoutingKey undoes DelayedRoutingKey: the delay and the original routing key of a
// message that came through the levels (ok false for any other routing key).
func SplitDelayedRoutingKey(key string) (countdown int64, routingKey string, ok bool) {
	if len(key) < 2*DelayedDeliveryLevels+1 {
		return 0, "", false
	}
	for i := 0; i < DelayedDeliveryLevels; i++ {
		d, dot := key[2*i], key[2*i+1]
		if (d != '0' && d != '1') || dot != '.' {
			return 0, "", false
		}
		countdown = countdown<<1 | int64(d-'0')
	}
	return countdown, key[2*DelayedDeliveryLevels:], true
}

// DelayedDeliveryBindingKey is the binding key kombu binds a queue's exchange to
// DelayedDeliveryExchange with (and the queue to its exchange): "#.<routing key>", or the routing
// key itself when it starts with '#'.
func DelayedDeliveryBindingKey(routingKey string) string {
	if strings.HasPrefix(routingKey, "#") {
		return routingKey
	}
	return "#." + routingKey
}

// DelayedDelivery is implemented by adapters that have native delayed delivery (amqpbroker):
// DeclareDelayedDelivery declares the levels with queues of queueType (classic or quorum) and
// binds queues to DelayedDeliveryExchange, as a Celery 5.5 worker does at startup. A queue on a
// direct exchange (or on the default exchange) cannot be bound, since a direct exchange does not
// match "#.<key>": it is returned in unbound, for the caller to warn about, as kombu does.
type DelayedDelivery interface {
	DeclareDelayedDelivery(ctx context.Context, queueType string, queues []Queue) (unbound []string, err error)
}
