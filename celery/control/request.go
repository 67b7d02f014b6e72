package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/forumads/forumads/celery/protocol"
)

// ErrMalformed is wrapped by every error [DecodeRequest] returns: the message is not a pidbox
// request a node can act on. A [Mailbox] logs such a message and drops it without replying, as a
// Python worker does with a request it cannot decode.
var ErrMalformed = errors.New("control: malformed request")

// ReplyTo is where a request wants its replies: the reply exchange and the client's routing key
// (its oid).
type ReplyTo struct {
	Exchange   string `json:"exchange"`
	RoutingKey string `json:"routing_key"`
}

// Request is one remote-control request as kombu's Mailbox publishes it on the fanout exchange
// (body {"method", "arguments", "destination", "pattern", "matcher", "ticket", "reply_to"},
// headers {"clock", "expires"}).
type Request struct {
	// Method is the command name ("ping", "revoke", ...).
	Method string
	// Arguments is the command's keyword arguments, always a JSON object ("{}" when the request
	// had none).
	Arguments json.RawMessage
	// Destination lists the node names that should act; nil means every node.
	Destination []string
	// Pattern and Matcher, both set, select nodes by name when Destination is nil (see
	// [MatchGlob] and [MatchPCRE]).
	Pattern, Matcher string
	// Ticket identifies the request's replies (their "ticket" header).
	Ticket string
	// ReplyTo is nil when the sender wants no reply (kombu's cast).
	ReplyTo *ReplyTo
	// Clock is the sender's Lamport clock (header "clock"; 0 when absent).
	Clock uint64
	// Expires is the unix time in seconds after which the request is void (header "expires",
	// time() + timeout); 0 means never.
	Expires float64

	match func(node string) bool
}

// Expired reports whether the request's expiry time has passed at now.
func (r *Request) Expired(now time.Time) bool {
	return r.Expires > 0 && float64(now.UnixNano())/1e9 > r.Expires
}

// ExpiresAt is Expires as a time; ok is false when the request never expires.
func (r *Request) ExpiresAt() (t time.Time, ok bool) {
	if r.Expires <= 0 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(r.Expires)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// For reports whether node should act on the request, as kombu's Node.handle_message decides:
// with a destination, only the nodes it lists; else, with both a pattern and a matcher, the nodes
// whose name matches; else every node.
func (r *Request) For(node string) bool {
	if len(r.Destination) > 0 {
		for _, d := range r.Destination {
			if d == node {
				return true
			}
		}
		return false
	}
	if r.Pattern != "" && r.Matcher != "" {
		match := r.match
		if match == nil { // built by hand, not decoded
			var err error
			if match, err = compileMatcher(r.Pattern, r.Matcher); err != nil {
				return false
			}
		}
		return match(node)
	}
	return true
}

// DecodeRequest decodes a pidbox request from a delivered message. The body must be a JSON object
// (content type application/json, UTF-8) whose "method" is a non-empty string. The other members
// follow Python's truthiness, as kombu reads them: a missing, null or otherwise empty
// "arguments", "destination", "pattern", "matcher", "ticket" or "reply_to" counts as absent. When
// present, "arguments" must be an object, "destination" a list of strings, "pattern" and "matcher"
// strings naming a known matcher (and, for pcre, a pattern that compiles), "ticket" a string and
// "reply_to" an object with string "exchange" and "routing_key". Members kombu does not know are
// ignored. Headers "clock" and "expires" must be numbers when present (null and 0 mean absent).
// Every error wraps [ErrMalformed] and names the part that is wrong.
func DecodeRequest(env protocol.Envelope) (*Request, error) {
	if err := checkContent(env); err != nil {
		return nil, err
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(env.Body, &body); err != nil || body == nil {
		return nil, malformed("body is not a JSON object: %s", excerpt(env.Body))
	}
	r := &Request{Arguments: json.RawMessage("{}")}
	method, ok := body["method"]
	if !ok {
		return nil, malformed("no method")
	}
	if err := json.Unmarshal(method, &r.Method); err != nil || r.Method == "" {
		return nil, malformed("method must be a non-empty string, got %s", excerpt(method))
	}
	if raw, ok := present(body, "arguments"); ok {
		if raw[0] != '{' {
			return nil, malformed("%s: arguments must be an object, got %s", r.Method, excerpt(raw))
		}
		r.Arguments = compact(raw)
	}
	if raw, ok := present(body, "destination"); ok {
		if raw[0] != '[' {
			return nil, malformed("%s: destination must be a list of node names, got %s", r.Method, excerpt(raw))
		}
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, malformed("%s: destination must be a list of node names, got %s", r.Method, excerpt(raw))
		}
		for _, it := range items {
			var node string
			if it[0] != '"' || json.Unmarshal(it, &node) != nil {
				return nil, malformed("%s: destination must hold node names (strings), got %s", r.Method, excerpt(it))
			}
			r.Destination = append(r.Destination, node)
		}
	}
	var err error
	if r.Pattern, err = optString(body, "pattern"); err != nil {
		return nil, malformed("%s: %v", r.Method, err)
	}
	if r.Matcher, err = optString(body, "matcher"); err != nil {
		return nil, malformed("%s: %v", r.Method, err)
	}
	if r.Pattern != "" && r.Matcher != "" {
		if r.match, err = compileMatcher(r.Pattern, r.Matcher); err != nil {
			return nil, malformed("%s: %v", r.Method, err)
		}
	}
	if r.Ticket, err = optString(body, "ticket"); err != nil {
		return nil, malformed("%s: %v", r.Method, err)
	}
	if raw, ok := present(body, "reply_to"); ok {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil || m == nil {
			return nil, malformed("%s: reply_to must be an object, got %s", r.Method, excerpt(raw))
		}
		rt := &ReplyTo{}
		for _, f := range []struct {
			name string
			dst  *string
		}{{"exchange", &rt.Exchange}, {"routing_key", &rt.RoutingKey}} {
			v, ok := m[f.name]
			if !ok || json.Unmarshal(v, f.dst) != nil || bytes.Equal(v, []byte("null")) {
				return nil, malformed("%s: reply_to.%s must be a string, got %s", r.Method, f.name, excerpt(v))
			}
		}
		r.ReplyTo = rt
	}
	if r.Clock, err = headerClock(env.Headers["clock"]); err != nil {
		return nil, malformed("%s: header clock: %v", r.Method, err)
	}
	if r.Expires, err = headerExpires(env.Headers["expires"]); err != nil {
		return nil, malformed("%s: header expires: %v", r.Method, err)
	}
	return r, nil
}

// EncodeRequest is what kombu's Mailbox._publish sends for r: the body with Python's json.dumps
// formatting (members in kombu's order; ticket and reply_to only when ReplyTo is set) and the
// headers clock and expires (0 when the request never expires).
func EncodeRequest(r *Request) (protocol.Envelope, error) {
	if r.Method == "" {
		return protocol.Envelope{}, errors.New("control: encoding request: empty method")
	}
	args := r.Arguments
	if len(trimJSONSpace(args)) == 0 {
		args = json.RawMessage("{}")
	} else if a := trimJSONSpace(args); a[0] != '{' || !json.Valid(a) {
		return protocol.Envelope{}, fmt.Errorf("control: encoding request %s: arguments must be a JSON object, got %s", r.Method, excerpt(a))
	}
	obj := []member{
		{"method", r.Method},
		{"arguments", args},
		{"destination", nilIfEmpty(r.Destination)},
		{"pattern", nilIfEmptyString(r.Pattern)},
		{"matcher", nilIfEmptyString(r.Matcher)},
	}
	if r.ReplyTo != nil {
		obj = append(obj, member{"ticket", nilIfEmptyString(r.Ticket)},
			member{"reply_to", []member{{"exchange", r.ReplyTo.Exchange}, {"routing_key", r.ReplyTo.RoutingKey}}})
	}
	body, err := encodeObject(obj)
	if err != nil {
		return protocol.Envelope{}, fmt.Errorf("control: encoding request %s: %w", r.Method, err)
	}
	var expires any = int32(0)
	if r.Expires > 0 {
		expires = r.Expires
	}
	return protocol.Envelope{
		Body:            body,
		ContentType:     "application/json",
		ContentEncoding: "utf-8",
		DeliveryMode:    2,
		Headers:         map[string]any{"clock": headerInt(r.Clock), "expires": expires},
	}, nil
}

// member is one member of a JSON object whose order matters.
type member struct {
	key   string
	value any
}

// encodeObject writes members in order with Python's json.dumps formatting.
func encodeObject(members []member) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(m.key)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		var v []byte
		switch x := m.value.(type) {
		case []member:
			v, err = encodeObject(x)
		case json.RawMessage:
			v, err = x, nil
		default:
			v, err = json.Marshal(x)
		}
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return protocol.PyJSON(json.RawMessage(b.Bytes()))
}

func nilIfEmpty(s []string) any {
	if len(s) == 0 {
		return nil
	}
	return s
}

func nilIfEmptyString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// headerInt is an integer header value as py-amqp writes it: 'I' when it fits in 32 bits, else 64.
func headerInt(v uint64) any {
	if v <= math.MaxInt32 {
		return int32(v)
	}
	return int64(min(v, math.MaxInt64))
}

func checkContent(env protocol.Envelope) error {
	if ct := strings.ToLower(strings.TrimSpace(env.ContentType)); ct != "application/json" {
		return malformed("content type %q is not application/json (pidbox accepts JSON only)", env.ContentType)
	}
	switch strings.ToLower(env.ContentEncoding) {
	case "", "utf-8", "utf8":
	default:
		return malformed("content encoding %q is not utf-8", env.ContentEncoding)
	}
	if c, ok := env.Headers["compression"]; ok && c != nil {
		return malformed("compressed control messages (%v) are not supported", c)
	}
	if !utf8.Valid(env.Body) {
		return malformed("body is not valid UTF-8")
	}
	return nil
}

// present returns body[key] unless it is missing or falsy in Python's sense (null, false, 0, "",
// [] or {}).
func present(body map[string]json.RawMessage, key string) (json.RawMessage, bool) {
	raw, ok := body[key]
	if !ok {
		return nil, false
	}
	raw = trimJSONSpace(raw)
	if falsy(raw) {
		return nil, false
	}
	return raw, true
}

// falsy reports whether the JSON value is false in Python: null, false, 0, 0.0, "", [] or {}.
func falsy(raw []byte) bool {
	if len(raw) == 0 {
		return true
	}
	switch raw[0] {
	case 'n', 'f':
		return true
	case '"':
		return len(raw) == 2
	case '[', '{':
		return len(trimJSONSpace(raw[1:len(raw)-1])) == 0
	case 't':
		return false
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err == nil {
		return f == 0
	}
	return false
}

// optString reads an optional string member: absent or falsy gives "".
func optString(body map[string]json.RawMessage, key string) (string, error) {
	raw, ok := present(body, key)
	if !ok {
		return "", nil
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", fmt.Errorf("%s must be a string, got %s", key, excerpt(raw))
	}
	return s, nil
}

// headerClock reads the clock header: a number (floats are truncated, negative numbers count as
// 0, values beyond AMQP's signed 64 bits as the largest), nil or absent meaning 0.
func headerClock(v any) (uint64, error) {
	f, ok, err := headerNumber(v)
	if err != nil || !ok {
		return 0, err
	}
	switch {
	case f <= 0:
		return 0, nil
	case f >= math.MaxInt64:
		return math.MaxInt64, nil
	}
	return uint64(f), nil
}

// headerExpires reads the expires header: a unix time in seconds; nil, absent or 0 means never.
func headerExpires(v any) (float64, error) {
	f, ok, err := headerNumber(v)
	if err != nil || !ok {
		return 0, err
	}
	if f < 0 {
		return 0, fmt.Errorf("negative time %v", f)
	}
	return f, nil
}

func headerNumber(v any) (float64, bool, error) {
	switch x := v.(type) {
	case nil:
		return 0, false, nil
	case int8:
		return float64(x), true, nil
	case int16:
		return float64(x), true, nil
	case int32:
		return float64(x), true, nil
	case int64:
		return float64(x), true, nil
	case int:
		return float64(x), true, nil
	case uint8:
		return float64(x), true, nil
	case uint16:
		return float64(x), true, nil
	case uint32:
		return float64(x), true, nil
	case uint64:
		return float64(x), true, nil
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return 0, false, fmt.Errorf("not a finite number: %v", x)
		}
		return float64(x), true, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, false, fmt.Errorf("not a finite number: %v", x)
		}
		return x, true, nil
	}
	return 0, false, fmt.Errorf("not a number: %T %v", v, v)
}

func compact(raw []byte) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return json.RawMessage(raw)
	}
	return json.RawMessage(b.Bytes())
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// excerpt is raw for an error message, cut to 120 bytes.
func excerpt(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	if len(raw) > 120 {
		return string(raw[:120]) + "..."
	}
	return string(raw)
}
