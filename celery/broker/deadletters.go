package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// DeadLetterInfo describes one message of a dead-letter queue, as an operator lists it. What the
// message does not say stays empty.
type DeadLetterInfo struct {
	// ID is the task id: the protocol-2 "id" header, else a protocol-1 JSON body's "id", else the
	// correlation id, else the message id.
	ID string `json:"id"`
	// Task is the task name ("task" header, else a protocol-1 JSON body's "task").
	Task string `json:"task"`
	// Reason is HeaderDeadLetterReason; for a message the broker dead-lettered by itself (RabbitMQ:
	// x-death), "rabbitmq: " and the broker's reason.
	Reason string `json:"reason"`
	// OriginalQueue is the queue the message came from (HeaderOriginalQueue, else the queue of the
	// broker's own first dead-lettering record); replay sends the message back there.
	OriginalQueue      string `json:"original_queue"`
	OriginalExchange   string `json:"original_exchange"`
	OriginalRoutingKey string `json:"original_routing_key"`
	// DeadLetteredAt is HeaderDeadLetteredAt as written, else the message's timestamp (RFC 3339).
	DeadLetteredAt string `json:"dead_lettered_at"`
	DeadLetteredBy string `json:"dead_lettered_by"`
	ContentType    string `json:"content_type"`
	BodyBytes      int    `json:"body_bytes"`
}

// ReplayedDeadLetter is one message ReplayDeadLetters moved, and the queue it went to.
type ReplayedDeadLetter struct {
	DeadLetterInfo
	To string `json:"to"`
}

// DeadLetterSelection names the messages ReplayDeadLetters acts on: every message (All), or those
// whose DeadLetterInfo.ID is in IDs. Exactly one of the two must be given.
type DeadLetterSelection struct {
	All bool
	IDs []string
}

// Validate reports a selection that names no message, or names them both ways.
func (s DeadLetterSelection) Validate() error {
	switch {
	case s.All && len(s.IDs) > 0:
		return errors.New("dead letters: select either by ids or all, not both")
	case !s.All && len(s.IDs) == 0:
		return errors.New("dead letters: no message selected (give ids or all)")
	}
	return nil
}

// ErrNoDeadLetterQueue is wrapped by the DeadLetterQueues methods when the dead-letter queue does
// not exist (no message was ever dead-lettered there).
var ErrNoDeadLetterQueue = errors.New("dead-letter queue does not exist")

// DeadLetterQueues is implemented by adapters that let an operator inspect, replay and purge a
// dead-letter queue (the queue DeadLetterer writes to); amqpbroker does. Its guarantees:
//
//   - Nothing is lost or reordered by reading. Each call reads at most the messages the queue held
//     when it started (messages dead-lettered meanwhile cannot make it loop), in queue order, and
//     gives every message it does not remove back to its place in the queue, also when the call
//     fails or the process dies.
//   - Each replayed message moves exactly once: its copy is published to its target queue and
//     confirmed by the broker (and not returned as unroutable) before the dead letter is removed.
//     A crash between the two can at worst leave the message in both queues, never in neither.
//   - A replayed message keeps its body, its properties and its headers minus the Header*
//     dead-letter headers, and reaches that one queue whatever the original exchange's bindings.
//
// Queue names the dead-letter queue; a missing queue is an error wrapping ErrNoDeadLetterQueue.
type DeadLetterQueues interface {
	// ListDeadLetters returns up to limit dead letters (limit <= 0: all), in queue order, leaving
	// them in the queue.
	ListDeadLetters(ctx context.Context, queue string, limit int) ([]DeadLetterInfo, error)
	// ReplayDeadLetters moves the selected dead letters to their OriginalQueue, or to to when it is
	// not empty (to must not be queue). A message without an original queue, or whose original
	// queue is queue itself, or that the broker refuses (its target queue does not exist), stays in
	// queue and replay goes on with the next; a lost channel or connection stops it. It returns the
	// messages it moved, also with an error, which names every message not moved (and every
	// selected id not found).
	ReplayDeadLetters(ctx context.Context, queue string, sel DeadLetterSelection, to string) ([]ReplayedDeadLetter, error)
	// PurgeDeadLetters deletes the dead letters whose ID is in ids and returns them; the error
	// names the ids not found.
	PurgeDeadLetters(ctx context.Context, queue string, ids []string) ([]DeadLetterInfo, error)
	// PurgeAllDeadLetters deletes every message of the dead-letter queue and returns how many.
	PurgeAllDeadLetters(ctx context.Context, queue string) (int, error)
}

// DeadLetterHeaders are the headers a DeadLetterer adds to a dead letter (see [DeadLetter.Envelope]);
// a replay removes them.
var DeadLetterHeaders = []string{HeaderDeadLetterReason, HeaderOriginalQueue, HeaderOriginalExchange,
	HeaderOriginalKey, HeaderDeadLetteredBy, HeaderDeadLetteredAt}

// DescribeDeadLetter reads what a listing shows of a dead letter from its headers and properties: the
// id and task from the protocol-2 headers, else from a protocol-1 JSON body, else the id from the
// correlation id; the dead-letter headers as the worker wrote them, and the timestamp when
// HeaderDeadLetteredAt is missing. Adapters add what their broker keeps besides (RabbitMQ: x-death,
// the message id).
func DescribeDeadLetter(headers map[string]any, contentType string, body []byte, correlationID string, timestamp time.Time) DeadLetterInfo {
	d := DeadLetterInfo{
		ID:                 HeaderString(headers, "id"),
		Task:               HeaderString(headers, "task"),
		Reason:             HeaderString(headers, HeaderDeadLetterReason),
		OriginalQueue:      HeaderString(headers, HeaderOriginalQueue),
		OriginalExchange:   HeaderString(headers, HeaderOriginalExchange),
		OriginalRoutingKey: HeaderString(headers, HeaderOriginalKey),
		DeadLetteredAt:     HeaderString(headers, HeaderDeadLetteredAt),
		DeadLetteredBy:     HeaderString(headers, HeaderDeadLetteredBy),
		ContentType:        contentType,
		BodyBytes:          len(body),
	}
	if (d.ID == "" || d.Task == "") && strings.Contains(contentType, "json") {
		var v1 struct {
			ID   any `json:"id"`
			Task any `json:"task"`
		}
		if json.Unmarshal(body, &v1) == nil {
			if s, ok := v1.ID.(string); ok && d.ID == "" {
				d.ID = s
			}
			if s, ok := v1.Task.(string); ok && d.Task == "" {
				d.Task = s
			}
		}
	}
	if d.ID == "" {
		d.ID = correlationID
	}
	if d.DeadLetteredAt == "" && !timestamp.IsZero() {
		d.DeadLetteredAt = timestamp.UTC().Format(time.RFC3339)
	}
	return d
}

// HeaderString returns a header as text: strings as they are, []byte as text, other scalars
// formatted; tables, arrays (of any adapter's map and slice types) and a missing header give "".
func HeaderString(h map[string]any, key string) string {
	switch v := h[key].(type) {
	case nil:
		return ""
	case string:
		return v
	case []byte:
		return string(v)
	default:
		if k := reflect.ValueOf(v).Kind(); k == reflect.Map || k == reflect.Slice || k == reflect.Array {
			return ""
		}
		return fmt.Sprint(v)
	}
}
