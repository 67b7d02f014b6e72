package protocol

import (
	"encoding/json"
	"time"
)

// Envelope is one AMQP message as a broker adapter hands it over, or as it must
// be published. The package never talks to a broker itself.
//
// On decode, Headers may hold what amqp091-go produces: nested tables of any
// map type with string keys (such as amqp.Table), []any arrays, any integer
// type, float32/float64, bool, string, []byte (AMQP 'x'), time.Time (AMQP 'T')
// and nil. [EncodeV2] produces only string, bool, int32 (|v| <= 2^31-1), int64
// (beyond that), float64, nil, []any and map[string]any, which py-amqp reads
// back as str, bool, int, float, None, list and dict.
type Envelope struct {
	Body            []byte
	ContentType     string // "" counts as application/data (raw bytes)
	ContentEncoding string
	// Headers are the AMQP application headers (see above for the types).
	Headers       map[string]any
	CorrelationID string // the task id for task messages
	ReplyTo       string // the client's oid; only the rpc result backend uses it
	DeliveryMode  uint8  // 2 = persistent, 1 = transient
	Priority      uint8
	Expiration    string // per-message TTL in ms as a decimal string, "" = none
	AppID         string // the app_id property (apply_async(app_id=...)); "" = none
}

// TaskMessage is one Celery task message, protocol 1 or 2, in a broker-neutral
// form.
//
// Args, Kwargs values and the signatures in Embed hold raw JSON. After [Decode]
// they may alias Envelope.Body, so the body must not be modified while the
// message is in use.
type TaskMessage struct {
	// Protocol is 1 or 2 as decoded. EncodeV2 always writes protocol 2.
	Protocol int
	// ID is the task id (header id, or the v1 body's id).
	ID string
	// Task is the registered task name.
	Task string
	// Shadow overrides the task name in logs and events ("" = none).
	Shadow string
	// Args are the positional arguments, each one JSON value.
	Args []json.RawMessage
	// Kwargs are the keyword arguments. A nil map means none.
	Kwargs map[string]json.RawMessage
	// KwargsOrder is the key order as received, so re-encoding and repr keep
	// it. Keys missing from it are written after it, sorted. May be nil.
	KwargsOrder []string
	// Embed holds the callbacks, errbacks, remaining chain and chord body.
	Embed Embed
	// ETA is the earliest execution time; nil runs the task at once.
	ETA *time.Time
	// Expires is the time after which the task is revoked; nil = never.
	Expires *time.Time
	// Retries counts the retries so far (0 for the first run).
	Retries int
	// TimeLimit is the hard and soft time limit.
	TimeLimit TimeLimit
	// RootID is the id of the first task of the workflow ("" = ID).
	RootID string
	// ParentID is the id of the task that published this one.
	ParentID string
	// GroupID is the group this task belongs to ("" = none).
	GroupID string
	// GroupIndex is the position in the group or chord header; may be nil.
	GroupIndex *int
	// Origin is the sender's node name (e.g. "gen123@host").
	Origin string
	// IgnoreResult tells the worker not to store a SUCCESS result.
	IgnoreResult bool
	// ArgsRepr and KwargsRepr are the display forms sent in the argsrepr and
	// kwargsrepr headers. EncodeV2 computes them with ReprArgs/ReprKwargs when
	// empty.
	ArgsRepr   string
	KwargsRepr string
	// ExtraHeaders are the headers that are not Celery's own (custom headers
	// given with apply_async(headers=...), and the 5.3+ stamping headers
	// replaced_task_nesting, stamped_headers and stamps). Decode normalises
	// their values: integers become int64, float32 float64, tables
	// map[string]any, arrays []any; []byte and time.Time stay.
	ExtraHeaders map[string]any
	// CorrelationID and ReplyTo are the AMQP properties as received. EncodeV2
	// always sets correlation_id to ID and reply_to to ReplyTo.
	CorrelationID string
	ReplyTo       string
	// Priority is the AMQP priority property; nil means absent. An Envelope
	// cannot tell an absent priority from 0, so Decode reports nil for 0.
	Priority *uint8
	// UTC is the v1 body's "utc" flag (true by default and for v2).
	UTC bool
	// Hybrid marks a message with v2 headers and a v1-style dict body.
	Hybrid bool
}

// Embed holds the canvas parts of a v2 body's third element.
type Embed struct {
	// Callbacks are the link signatures, applied on success. nil is JSON null.
	Callbacks []Signature
	// Errbacks are the link_error signatures, applied on failure.
	Errbacks []Signature
	// Chain holds the remaining chain steps in reverse order: the last
	// element runs next. nil is JSON null, an empty slice is [].
	Chain []Signature
	// Chord is the chord body for a chord header member.
	Chord *Signature
}

// TimeLimit is the `timelimit` header, on the wire [hard, soft] in seconds.
// A nil field means no limit.
type TimeLimit struct {
	Hard *float64
	Soft *float64
}
