package redisbroker

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/forumads/forumads/celery/protocol"
)

// Message is one message as kombu 5.2's Redis transport keeps it in a list: a JSON object with
// "body" (base64 text when properties.body_encoding is "base64", else the body itself),
// "content-type", "content-encoding", "headers" and "properties" (correlation_id, reply_to,
// delivery_mode, delivery_info {exchange, routing_key, redelivered}, priority, body_encoding,
// delivery_tag).
type Message struct {
	protocol.Envelope
	// DeliveryTag is kombu's delivery tag (a UUID string), the message's field in the unacked hash
	// and its member of the unacked_index sorted set.
	DeliveryTag string
	// Exchange and RoutingKey are properties.delivery_info: where the message was published.
	Exchange, RoutingKey string
	// Redelivered is properties.delivery_info.redelivered, set by kombu when it restores a
	// message.
	Redelivered bool
	// Timestamp is properties.timestamp (whole seconds; the Go client sets it, Celery does not).
	Timestamp time.Time
}

// ErrNotEnvelope is wrapped by [DecodeMessage] when an entry is not a kombu envelope.
var ErrNotEnvelope = errors.New("not a kombu envelope")

type wireMessage struct {
	Body            *string         `json:"body"`
	ContentEncoding *string         `json:"content-encoding"`
	ContentType     *string         `json:"content-type"`
	Headers         json.RawMessage `json:"headers"`
	Properties      *wireProps      `json:"properties"`
}

type wireProps struct {
	CorrelationID any             `json:"correlation_id,omitempty"`
	ReplyTo       any             `json:"reply_to,omitempty"`
	DeliveryMode  any             `json:"delivery_mode,omitempty"`
	DeliveryInfo  *wireDelivery   `json:"delivery_info"`
	Priority      any             `json:"priority"`
	BodyEncoding  *string         `json:"body_encoding"`
	DeliveryTag   any             `json:"delivery_tag"`
	Expiration    any             `json:"expiration,omitempty"`
	Timestamp     any             `json:"timestamp,omitempty"`
	Extra         json.RawMessage `json:"-"`
}

type wireDelivery struct {
	Exchange    any  `json:"exchange"`
	RoutingKey  any  `json:"routing_key"`
	Redelivered bool `json:"redelivered,omitempty"`
}

// DecodeMessage reads one list entry. An entry that is not a JSON object with properties and a
// string delivery tag is an error wrapping ErrNotEnvelope; a body that is not the base64 its
// body_encoding says, or headers that are not an object, are errors too.
func DecodeMessage(raw []byte) (Message, error) {
	var w wireMessage
	if err := json.Unmarshal(raw, &w); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrNotEnvelope, err)
	}
	if w.Properties == nil {
		return Message{}, fmt.Errorf("%w: no properties", ErrNotEnvelope)
	}
	p := w.Properties
	tag, ok := p.DeliveryTag.(string)
	if !ok || tag == "" {
		return Message{}, fmt.Errorf("%w: no delivery_tag in its properties", ErrNotEnvelope)
	}
	m := Message{DeliveryTag: tag}
	if w.Body != nil {
		body := []byte(*w.Body)
		if p.BodyEncoding != nil && *p.BodyEncoding != "" {
			if *p.BodyEncoding != "base64" {
				return Message{}, fmt.Errorf("body_encoding %q: only base64 is known", *p.BodyEncoding)
			}
			dec, err := base64.StdEncoding.DecodeString(*w.Body)
			if err != nil {
				return Message{}, fmt.Errorf("body: bad base64: %v", err)
			}
			body = dec
		}
		m.Body = body
	}
	if w.ContentType != nil {
		m.ContentType = *w.ContentType
	}
	if w.ContentEncoding != nil {
		m.ContentEncoding = *w.ContentEncoding
	}
	if len(w.Headers) > 0 && string(w.Headers) != "null" {
		h, err := decodeHeaders(w.Headers)
		if err != nil {
			return Message{}, err
		}
		m.Headers = h
	}
	m.CorrelationID, _ = p.CorrelationID.(string)
	m.ReplyTo, _ = p.ReplyTo.(string)
	if f, ok := p.DeliveryMode.(float64); ok && f >= 0 && f <= 255 {
		m.DeliveryMode = uint8(f)
	}
	if f, ok := p.Priority.(float64); ok {
		m.Priority = uint8(max(0, min(f, 255)))
	}
	switch e := p.Expiration.(type) {
	case string:
		m.Expiration = e
	case float64:
		m.Expiration = strconv.FormatFloat(e, 'f', -1, 64)
	}
	if f, ok := p.Timestamp.(float64); ok && f > 0 && f < 1e12 {
		m.Timestamp = time.Unix(int64(f), 0).UTC()
	}
	if d := p.DeliveryInfo; d != nil {
		m.Exchange, _ = d.Exchange.(string)
		m.RoutingKey, _ = d.RoutingKey.(string)
		m.Redelivered = d.Redelivered
	}
	return m, nil
}

// decodeHeaders reads the headers object with the protocol package's types: whole numbers as
// int32 when they fit, else int64, other numbers as float64, objects as map[string]any.
func decodeHeaders(raw json.RawMessage) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var h map[string]any
	if err := d.Decode(&h); err != nil {
		return nil, fmt.Errorf("headers: not a JSON object: %v", err)
	}
	for k, v := range h {
		h[k] = numbers(v)
	}
	return h, nil
}

func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			if n >= math.MinInt32 && n <= math.MaxInt32 {
				return int32(n)
			}
			return n
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = numbers(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = numbers(x[k])
		}
	}
	return v
}

// outMessage is the envelope as kombu writes it, fields in kombu's order.
type outMessage struct {
	Body            string         `json:"body"`
	ContentEncoding *string        `json:"content-encoding"`
	ContentType     *string        `json:"content-type"`
	Headers         map[string]any `json:"headers"`
	Properties      outProps       `json:"properties"`
}

type outProps struct {
	CorrelationID string      `json:"correlation_id,omitempty"`
	ReplyTo       string      `json:"reply_to,omitempty"`
	DeliveryMode  uint8       `json:"delivery_mode,omitempty"`
	DeliveryInfo  outDelivery `json:"delivery_info"`
	Priority      uint8       `json:"priority"`
	BodyEncoding  string      `json:"body_encoding"`
	DeliveryTag   string      `json:"delivery_tag"`
	Expiration    string      `json:"expiration,omitempty"`
	Timestamp     int64       `json:"timestamp,omitempty"`
}

type outDelivery struct {
	Exchange   string `json:"exchange"`
	RoutingKey string `json:"routing_key"`
}

// EncodeMessage writes m as kombu's Redis transport does (body base64, a new delivery tag when
// m has none). Header values must be what JSON can carry (no NaN or infinity).
func EncodeMessage(m Message) ([]byte, error) {
	if m.DeliveryTag == "" {
		m.DeliveryTag = newTag()
	}
	o := outMessage{Body: base64.StdEncoding.EncodeToString(m.Body), Headers: jsonHeaders(m.Headers),
		Properties: outProps{CorrelationID: m.CorrelationID, ReplyTo: m.ReplyTo, DeliveryMode: m.DeliveryMode,
			DeliveryInfo: outDelivery{Exchange: m.Exchange, RoutingKey: m.RoutingKey}, Priority: m.Priority,
			BodyEncoding: "base64", DeliveryTag: m.DeliveryTag, Expiration: m.Expiration}}
	if m.ContentType != "" {
		o.ContentType = &m.ContentType
	}
	if m.ContentEncoding != "" {
		o.ContentEncoding = &m.ContentEncoding
	}
	if !m.Timestamp.IsZero() {
		o.Properties.Timestamp = m.Timestamp.Unix()
	}
	var buf bytes.Buffer
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(false)
	if err := e.Encode(o); err != nil {
		return nil, fmt.Errorf("redisbroker: encoding the message: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// jsonHeaders converts what JSON cannot carry as it is: []byte becomes text, time.Time Celery's
// ISO 8601, nested maps of other key types are left to encoding/json.
func jsonHeaders(h map[string]any) map[string]any {
	out := make(map[string]any, len(h))
	for k, v := range h {
		out[k] = jsonValue(v)
	}
	return out
}

func jsonValue(v any) any {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case time.Time:
		return protocol.FormatTime(x)
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = jsonValue(x[i])
		}
		return out
	case map[string]any:
		return jsonHeaders(x)
	}
	return v
}

// markRedelivered returns raw with headers.redelivered and properties.delivery_info.redelivered
// set, as kombu's _do_restore_message does, and a new delivery tag (kombu keeps the old one: then a
// worker that still holds the message after its visibility timeout could acknowledge, and so erase,
// the unacked record of the worker that took it next); everything else is kept as it was.
func markRedelivered(raw []byte) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotEnvelope, err)
	}
	set := func(obj json.RawMessage, key string, v json.RawMessage) (json.RawMessage, error) {
		var m map[string]json.RawMessage
		if len(obj) > 0 && string(obj) != "null" {
			if err := json.Unmarshal(obj, &m); err != nil {
				return nil, err
			}
		}
		if m == nil {
			m = map[string]json.RawMessage{}
		}
		m[key] = v
		return marshal(m)
	}
	var err error
	if h, ok := top["headers"]; ok && string(h) != "null" {
		if top["headers"], err = set(h, "redelivered", json.RawMessage("true")); err != nil {
			return nil, fmt.Errorf("headers: %v", err)
		}
	}
	var props map[string]json.RawMessage
	if err := json.Unmarshal(top["properties"], &props); err != nil || props == nil {
		return nil, fmt.Errorf("%w: properties: %v", ErrNotEnvelope, err)
	}
	if props["delivery_tag"], err = json.Marshal(newTag()); err != nil {
		return nil, err
	}
	if props["delivery_info"], err = set(props["delivery_info"], "redelivered", json.RawMessage("true")); err != nil {
		return nil, fmt.Errorf("delivery_info: %v", err)
	}
	if top["properties"], err = marshal(props); err != nil {
		return nil, err
	}
	return marshal(top)
}

func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// unackedEntry reads a field of the unacked hash: kombu's [payload, exchange, routing_key].
func unackedEntry(raw []byte) (payload []byte, exchange, routingKey string, err error) {
	var parts []json.RawMessage
	if err := json.Unmarshal(raw, &parts); err != nil || len(parts) != 3 {
		return nil, "", "", fmt.Errorf("unacked entry is not [message, exchange, routing_key]: %v", err)
	}
	if json.Unmarshal(parts[1], &exchange) != nil || json.Unmarshal(parts[2], &routingKey) != nil {
		return nil, "", "", errors.New("unacked entry: exchange and routing key are not strings")
	}
	return parts[0], exchange, routingKey, nil
}

// newTag is a random UUID (version 4), as kombu's delivery tags are.
func newTag() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
