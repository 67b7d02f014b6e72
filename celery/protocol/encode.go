package protocol

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Serializer names for EncodeOptions.Serializer.
const (
	SerializerJSON    = "json"
	SerializerMsgpack = "msgpack"
	SerializerYAML    = "yaml"
)

// EncodeOptions controls EncodeV2.
type EncodeOptions struct {
	// Serializer is "json" (the default when empty), "msgpack" or "yaml".
	Serializer string
	// Compression is "" (none) or "gzip"/"zlib" (a zlib stream with header
	// compression=application/x-gzip, as kombu writes it).
	Compression string
	// Now is the reference time for the expiration property; zero means
	// time.Now().
	Now time.Time
}

// EncodeV2 builds the protocol 2 message a Celery 5.2 client would publish
// for m.
//
// Headers: the 16 headers of a 5.2 client, with lang "go" instead of "py"
// (Python ignores lang); shadow, group, parent_id, eta and expires are null
// when empty; root_id defaults to the id; timelimit is [hard, soft] (a whole
// number is sent as an integer, as Python clients send ints); argsrepr and
// kwargsrepr are computed with ReprArgs/ReprKwargs when empty; eta and expires
// use FormatTime. ExtraHeaders are added, converted to AMQP-friendly types
// (see [Envelope]); they cannot override Celery's own headers.
//
// Properties: content type and encoding of the serializer, correlation_id =
// ID (m.CorrelationID is ignored), reply_to = m.ReplyTo, delivery_mode 2,
// priority (0 when nil), and when Expires is set, expiration = the whole
// milliseconds until Expires (0 when already past), as Celery sets it.
//
// Body: [args, kwargs, embed] written exactly as Python's json.dumps writes
// it (see [PyJSON]); embed always has its four keys. Decoding a Python
// client's JSON message and encoding it again gives the same body bytes.
func EncodeV2(m *TaskMessage, opts EncodeOptions) (Envelope, error) {
	if m == nil {
		return Envelope{}, errors.New("protocol: EncodeV2: nil message")
	}
	if m.ID == "" || m.Task == "" {
		return Envelope{}, errors.New("protocol: EncodeV2: message needs an ID and a Task")
	}
	var contentType, contentEncoding string
	switch opts.Serializer {
	case "", SerializerJSON:
		contentType, contentEncoding = ContentTypeJSON, "utf-8"
	case SerializerMsgpack:
		contentType, contentEncoding = ContentTypeMsgpack, "binary"
	case SerializerYAML:
		contentType, contentEncoding = ContentTypeYAML, "utf-8"
	default:
		return Envelope{}, fmt.Errorf("protocol: EncodeV2: unsupported serializer %q", opts.Serializer)
	}

	body, err := appendBodyV2(nil, m)
	if err != nil {
		return Envelope{}, fmt.Errorf("protocol: EncodeV2: task %s: %w", m.ID, err)
	}
	switch contentType {
	case ContentTypeMsgpack:
		body, err = jsonToMsgpack(body)
	case ContentTypeYAML:
		body, err = jsonToYAML(body)
	}
	if err != nil {
		return Envelope{}, fmt.Errorf("protocol: EncodeV2: task %s: %w", m.ID, err)
	}

	headers := make(map[string]any, 17+len(m.ExtraHeaders))
	for k, v := range m.ExtraHeaders {
		if isCeleryHeader(k) {
			continue
		}
		c, err := encodeHeaderValue(v, 0)
		if err != nil {
			return Envelope{}, fmt.Errorf("protocol: EncodeV2: header %q: %w", k, err)
		}
		headers[k] = c
	}
	rootID := m.RootID
	if rootID == "" {
		rootID = m.ID
	}
	argsRepr := m.ArgsRepr
	if argsRepr == "" {
		argsRepr = ReprArgs(m.Args)
	}
	kwargsRepr := m.KwargsRepr
	if kwargsRepr == "" {
		kwargsRepr = ReprKwargs(m.KwargsOrder, m.Kwargs)
	}
	headers["lang"] = "go"
	headers["task"] = m.Task
	headers["id"] = m.ID
	headers["shadow"] = nullIfEmpty(m.Shadow)
	headers["eta"] = timeHeader(m.ETA)
	headers["expires"] = timeHeader(m.Expires)
	headers["group"] = nullIfEmpty(m.GroupID)
	if m.GroupIndex != nil {
		headers["group_index"] = intHeader(int64(*m.GroupIndex))
	} else {
		headers["group_index"] = nil
	}
	headers["retries"] = intHeader(int64(m.Retries))
	headers["timelimit"] = []any{numberHeader(m.TimeLimit.Hard), numberHeader(m.TimeLimit.Soft)}
	headers["root_id"] = rootID
	headers["parent_id"] = nullIfEmpty(m.ParentID)
	headers["argsrepr"] = argsRepr
	headers["kwargsrepr"] = kwargsRepr
	headers["origin"] = m.Origin
	headers["ignore_result"] = m.IgnoreResult

	if opts.Compression != "" {
		method, out, err := compress(opts.Compression, body)
		if err != nil {
			return Envelope{}, err
		}
		headers["compression"] = method
		body = out
	}

	env := Envelope{
		Body:            body,
		ContentType:     contentType,
		ContentEncoding: contentEncoding,
		Headers:         headers,
		CorrelationID:   m.ID,
		ReplyTo:         m.ReplyTo,
		DeliveryMode:    2,
	}
	if m.Priority != nil {
		env.Priority = *m.Priority
	}
	if m.Expires != nil {
		now := opts.Now
		if now.IsZero() {
			now = time.Now()
		}
		ms := m.Expires.Sub(now).Milliseconds()
		env.Expiration = strconv.FormatInt(max(ms, 0), 10)
	}
	return env, nil
}

// appendBodyV2 writes [args, kwargs, embed] in Python's json.dumps format.
func appendBodyV2(dst []byte, m *TaskMessage) ([]byte, error) {
	if dst == nil {
		n := 96
		for _, a := range m.Args {
			n += len(a) + 2
		}
		for k, v := range m.Kwargs {
			n += len(k) + len(v) + 6
		}
		dst = make([]byte, 0, n)
	}
	var err error
	dst = append(dst, '[')
	if dst, err = appendPyRawList(dst, m.Args); err != nil {
		return dst, fmt.Errorf("args: %w", err)
	}
	dst = append(dst, ", "...)
	if dst, err = appendPyRawObject(dst, m.KwargsOrder, m.Kwargs); err != nil {
		return dst, fmt.Errorf("kwargs: %w", err)
	}
	dst = append(dst, `, {"callbacks": `...)
	if dst, err = appendSignatureList(dst, m.Embed.Callbacks); err != nil {
		return dst, fmt.Errorf("callbacks: %w", err)
	}
	dst = append(dst, `, "errbacks": `...)
	if dst, err = appendSignatureList(dst, m.Embed.Errbacks); err != nil {
		return dst, fmt.Errorf("errbacks: %w", err)
	}
	dst = append(dst, `, "chain": `...)
	if dst, err = appendSignatureList(dst, m.Embed.Chain); err != nil {
		return dst, fmt.Errorf("chain: %w", err)
	}
	dst = append(dst, `, "chord": `...)
	if m.Embed.Chord == nil {
		dst = append(dst, "null"...)
	} else if dst, err = appendSignature(dst, m.Embed.Chord); err != nil {
		return dst, fmt.Errorf("chord: %w", err)
	}
	return append(dst, "}]"...), nil
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func timeHeader(t *time.Time) any {
	if t == nil {
		return nil
	}
	return FormatTime(*t)
}

// numberHeader writes a time limit: nil, an integer when whole, else a float.
func numberHeader(f *float64) any {
	if f == nil {
		return nil
	}
	v := *f
	if v == math.Trunc(v) && v >= math.MinInt64 && v < math.MaxInt64 {
		return intHeader(int64(v))
	}
	return v
}
