package broker

import (
	"fmt"
	"math"
)

// Queue types of the x-queue-type queue argument that Celery workers consume.
const (
	QueueTypeClassic = "classic"
	QueueTypeQuorum  = "quorum"
)

// Queue arguments of RabbitMQ's quorum queues that the adapters and the worker read.
const (
	// ArgQueueType is the queue type (QueueTypeClassic, QueueTypeQuorum).
	ArgQueueType = "x-queue-type"
	// ArgDeliveryLimit is how many times a quorum queue delivers a message before it
	// dead-letters it (or drops it, without a dead-letter target); the count is the message's
	// x-delivery-count header.
	ArgDeliveryLimit = "x-delivery-limit"
	// ArgDeadLetterExchange and ArgDeadLetterRoutingKey are where the broker dead-letters
	// messages ("" exchange: the default one, the routing key naming the queue).
	ArgDeadLetterExchange   = "x-dead-letter-exchange"
	ArgDeadLetterRoutingKey = "x-dead-letter-routing-key"
	// HeaderDeliveryCount is the header a quorum queue adds to a message delivered again.
	HeaderDeliveryCount = "x-delivery-count"
)

// QueueType is q's x-queue-type argument, QueueTypeClassic when it has none.
func QueueType(q Queue) string {
	if t, ok := q.QueueArguments[ArgQueueType].(string); ok && t != "" {
		return t
	}
	return QueueTypeClassic
}

// IsQuorum reports whether q is declared as a quorum queue (x-queue-type quorum), as Celery
// 5.5's detect_quorum_queues reads it.
func IsQuorum(q Queue) bool { return QueueType(q) == QueueTypeQuorum }

// CheckQueueArguments reports queue arguments that cannot work, naming them, before anything is
// declared (RabbitMQ answers some of them by closing the channel): an x-queue-type other than
// classic or quorum, an x-delivery-limit that is not a whole number ≥ 0, an x-delivery-limit on a
// classic queue (which ignores it), a priority on a quorum queue, and dead-letter targets that are
// not strings.
func CheckQueueArguments(q Queue) error {
	if v, ok := q.QueueArguments[ArgQueueType]; ok {
		s, isStr := v.(string)
		if !isStr {
			return fmt.Errorf("queue_arguments %s: want a string (classic or quorum), got %T", ArgQueueType, v)
		}
		switch s {
		case QueueTypeClassic, QueueTypeQuorum:
		default:
			return fmt.Errorf("queue_arguments %s: unknown queue type %q (classic or quorum)", ArgQueueType, s)
		}
	}
	quorum := IsQuorum(q)
	if v, ok := q.QueueArguments[ArgDeliveryLimit]; ok {
		if _, err := wholeNumber(v); err != nil {
			return fmt.Errorf("queue_arguments %s: %w", ArgDeliveryLimit, err)
		}
		if !quorum {
			return fmt.Errorf("queue_arguments %s: only quorum queues count deliveries (add %s: quorum)", ArgDeliveryLimit, ArgQueueType)
		}
	}
	if quorum {
		if _, ok := q.QueueArguments["x-max-priority"]; ok || q.MaxPriority != nil {
			return fmt.Errorf("max_priority: quorum queues have no priorities (x-max-priority)")
		}
	}
	for _, k := range []string{ArgDeadLetterExchange, ArgDeadLetterRoutingKey} {
		if v, ok := q.QueueArguments[k]; ok {
			if _, isStr := v.(string); !isStr {
				return fmt.Errorf("queue_arguments %s: want a string, got %T", k, v)
			}
		}
	}
	return nil
}

// DeliveryLimit is q's x-delivery-limit (ok false when it has none or it is not a number).
func DeliveryLimit(q Queue) (n int64, ok bool) {
	v, has := q.QueueArguments[ArgDeliveryLimit]
	if !has {
		return 0, false
	}
	n, err := wholeNumber(v)
	return n, err == nil
}

// DeliveryCount is a delivery's x-delivery-count header (0 when absent: the first delivery).
func DeliveryCount(headers map[string]any) int64 {
	n, err := wholeNumber(headers[HeaderDeliveryCount])
	if err != nil {
		return 0
	}
	return n
}

// wholeNumber reads an integer queue argument or header as YAML, JSON or AMQP give it.
func wholeNumber(v any) (int64, error) {
	var n int64
	switch x := v.(type) {
	case int:
		n = int64(x)
	case int8:
		n = int64(x)
	case int16:
		n = int64(x)
	case int32:
		n = int64(x)
	case int64:
		n = x
	case uint8:
		n = int64(x)
	case uint16:
		n = int64(x)
	case uint32:
		n = int64(x)
	case float64:
		if x != math.Trunc(x) || math.IsInf(x, 0) || x > math.MaxInt32 || x < math.MinInt32 {
			return 0, fmt.Errorf("want a whole number, got %v", x)
		}
		n = int64(x)
	default:
		return 0, fmt.Errorf("want a whole number, got %T %v", v, v)
	}
	if n < 0 {
		return 0, fmt.Errorf("must be >= 0, got %d", n)
	}
	return n, nil
}
