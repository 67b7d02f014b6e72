package protocol

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// amqpTable mimics amqp091's named table type, so the decoder's reflection
// path for nested tables is exercised by the fixture tests.
type amqpTable map[string]any

// fixtureMessage is one message of a capture file in /work/shared/fixtures
// (see its README.md).
type fixtureMessage struct {
	File        string
	Index       int
	Properties  fixtureProps               `json:"properties"`
	HeaderTypes map[string]json.RawMessage `json:"header_amqp_types"`
	Body        *string                    `json:"body"`
	BodyB64     string                     `json:"body_b64"`
	BodyDecoded json.RawMessage            `json:"body_decoded"`
}

type fixtureProps struct {
	ContentType     string                     `json:"content_type"`
	ContentEncoding string                     `json:"content_encoding"`
	DeliveryMode    uint8                      `json:"delivery_mode"`
	Priority        *uint8                     `json:"priority"`
	CorrelationID   string                     `json:"correlation_id"`
	ReplyTo         string                     `json:"reply_to"`
	Expiration      string                     `json:"expiration"`
	Headers         map[string]json.RawMessage `json:"headers"`
}

func (f *fixtureMessage) name() string {
	return strings.TrimSuffix(f.File, ".json") + "#" + string(rune('0'+f.Index))
}

// fixtureDir returns /work/shared/fixtures computed from this file's place
// in the tree (CI checks shared/ out beside the repository).
func fixtureDir(tb testing.TB) string {
	tb.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("cannot locate fixtures_test.go")
	}
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "fixtures")
	if _, err := os.Stat(filepath.Join(dir, "README.md")); err != nil {
		tb.Fatalf("Celery fixtures not found at %s (expected shared/fixtures beside the repository): %v", dir, err)
	}
	return dir
}

// loadFixtures returns every message of the task-message fixtures: v1_*.json,
// v2_*.json and beat_interval.json.
func loadFixtures(tb testing.TB) []*fixtureMessage {
	tb.Helper()
	dir := fixtureDir(tb)
	var files []string
	for _, pat := range []string{"v1_*.json", "v2_*.json", "beat_interval.json"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			tb.Fatal(err)
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	if len(files) < 29 {
		tb.Fatalf("found only %d task fixtures in %s", len(files), dir)
	}
	var out []*fixtureMessage
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			tb.Fatal(err)
		}
		var doc struct {
			Messages []*fixtureMessage `json:"messages"`
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			tb.Fatalf("%s: %v", path, err)
		}
		if len(doc.Messages) == 0 {
			tb.Fatalf("%s: no messages", path)
		}
		for i, m := range doc.Messages {
			m.File, m.Index = filepath.Base(path), i
			out = append(out, m)
		}
	}
	return out
}

func fixtureByName(tb testing.TB, name string) *fixtureMessage {
	tb.Helper()
	for _, f := range loadFixtures(tb) {
		if f.name() == name {
			return f
		}
	}
	tb.Fatalf("fixture %s not found", name)
	return nil
}

func (f *fixtureMessage) body(tb testing.TB) []byte {
	tb.Helper()
	if f.Body != nil {
		return []byte(*f.Body)
	}
	b, err := base64.StdEncoding.DecodeString(f.BodyB64)
	if err != nil {
		tb.Fatalf("%s: body_b64: %v", f.name(), err)
	}
	return b
}

// envelope builds the Envelope an amqp091 adapter would hand over for this
// fixture, with header values typed after header_amqp_types.
func (f *fixtureMessage) envelope(tb testing.TB) Envelope {
	tb.Helper()
	p := f.Properties
	env := Envelope{
		Body:            f.body(tb),
		ContentType:     p.ContentType,
		ContentEncoding: p.ContentEncoding,
		CorrelationID:   p.CorrelationID,
		ReplyTo:         p.ReplyTo,
		DeliveryMode:    p.DeliveryMode,
		Expiration:      p.Expiration,
		Headers:         f.headers(tb, true),
	}
	if p.Priority != nil {
		env.Priority = *p.Priority
	}
	return env
}

// headers converts the fixture headers. With named, nested tables get the
// amqpTable type (as amqp091 delivers them); otherwise map[string]any (as
// EncodeV2 produces them).
func (f *fixtureMessage) headers(tb testing.TB, named bool) map[string]any {
	tb.Helper()
	out := make(map[string]any, len(f.Properties.Headers))
	for k, raw := range f.Properties.Headers {
		code, ok := f.HeaderTypes[k]
		if !ok {
			tb.Fatalf("%s: header %q has no type code", f.name(), k)
		}
		v, err := convertTyped(raw, code, named)
		if err != nil {
			tb.Fatalf("%s: header %q: %v", f.name(), k, err)
		}
		out[k] = v
	}
	return out
}

// convertTyped converts a JSON header value according to its type code: a
// JSON string code ("S", "I", "A[V,V]", "F{k:S}") or a JSON object for a
// nested table.
func convertTyped(raw, code json.RawMessage, named bool) (any, error) {
	if bytes.HasPrefix(bytes.TrimSpace(code), []byte("{")) {
		var codes map[string]json.RawMessage
		var vals map[string]json.RawMessage
		if err := json.Unmarshal(code, &codes); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(raw, &vals); err != nil {
			return nil, err
		}
		return convertTable(vals, func(k string) (json.RawMessage, bool) { c, ok := codes[k]; return c, ok }, named)
	}
	var s string
	if err := json.Unmarshal(code, &s); err != nil {
		return nil, err
	}
	tc, rest, err := parseTypeCode(s)
	if err != nil || rest != "" {
		return nil, errTypeCode(s)
	}
	return tc.convert(raw, named)
}

func convertTable(vals map[string]json.RawMessage, code func(string) (json.RawMessage, bool), named bool) (any, error) {
	m := make(map[string]any, len(vals))
	for k, v := range vals {
		c, ok := code(k)
		if !ok {
			return nil, errTypeCode("missing code for " + k)
		}
		x, err := convertTyped(v, c, named)
		if err != nil {
			return nil, err
		}
		m[k] = x
	}
	if named {
		return amqpTable(m), nil
	}
	return m, nil
}

type errTypeCode string

func (e errTypeCode) Error() string { return "bad type code " + string(e) }

// typeCode is a parsed AMQP field type signature.
type typeCode struct {
	letter byte
	items  []typeCode          // 'A'
	fields map[string]typeCode // 'F'
}

func parseTypeCode(s string) (typeCode, string, error) {
	if s == "" {
		return typeCode{}, s, errTypeCode(s)
	}
	switch s[0] {
	case 'A':
		if !strings.HasPrefix(s, "A[") {
			return typeCode{}, s, errTypeCode(s)
		}
		tc := typeCode{letter: 'A'}
		rest := s[2:]
		for !strings.HasPrefix(rest, "]") {
			item, r, err := parseTypeCode(rest)
			if err != nil {
				return tc, r, err
			}
			tc.items = append(tc.items, item)
			rest = strings.TrimPrefix(r, ",")
		}
		return tc, rest[1:], nil
	case 'F':
		if !strings.HasPrefix(s, "F{") {
			return typeCode{}, s, errTypeCode(s)
		}
		tc := typeCode{letter: 'F', fields: map[string]typeCode{}}
		rest := s[2:]
		for !strings.HasPrefix(rest, "}") {
			colon := strings.IndexByte(rest, ':')
			if colon < 0 {
				return tc, rest, errTypeCode(s)
			}
			key := rest[:colon]
			item, r, err := parseTypeCode(rest[colon+1:])
			if err != nil {
				return tc, r, err
			}
			tc.fields[key] = item
			rest = strings.TrimPrefix(r, ",")
		}
		return tc, rest[1:], nil
	default:
		return typeCode{letter: s[0]}, s[1:], nil
	}
}

func (tc typeCode) convert(raw json.RawMessage, named bool) (any, error) {
	if tc.letter == 'V' {
		return nil, nil
	}
	switch tc.letter {
	case 'S', 's':
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	case 't':
		var b bool
		err := json.Unmarshal(raw, &b)
		return b, err
	case 'd', 'f':
		var f float64
		err := json.Unmarshal(raw, &f)
		if tc.letter == 'f' {
			return float32(f), err
		}
		return f, err
	case 'b', 'B', 'U', 'u', 'I', 'i', 'L', 'l':
		var n int64
		if err := json.Unmarshal(raw, &n); err != nil {
			return nil, err
		}
		switch tc.letter {
		case 'b':
			return int8(n), nil
		case 'B':
			return uint8(n), nil
		case 'U':
			return int16(n), nil
		case 'u':
			return uint16(n), nil
		case 'I':
			return int32(n), nil
		case 'i':
			return uint32(n), nil
		default:
			return n, nil
		}
	case 'x':
		var v struct {
			B64 string `json:"$bytes_b64"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		return base64.StdEncoding.DecodeString(v.B64)
	case 'T':
		var v struct {
			DT string `json:"$datetime"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		return time.Parse(time.RFC3339Nano, v.DT)
	case 'A':
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, err
		}
		if len(items) != len(tc.items) {
			return nil, errTypeCode("array length mismatch")
		}
		out := make([]any, len(items))
		for i := range items {
			v, err := tc.items[i].convert(items[i], named)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case 'F':
		var vals map[string]json.RawMessage
		if err := json.Unmarshal(raw, &vals); err != nil {
			return nil, err
		}
		m := make(map[string]any, len(vals))
		for k, v := range vals {
			c, ok := tc.fields[k]
			if !ok {
				return nil, errTypeCode("missing code for " + k)
			}
			x, err := c.convert(v, named)
			if err != nil {
				return nil, err
			}
			m[k] = x
		}
		if named {
			return amqpTable(m), nil
		}
		return m, nil
	}
	return nil, errTypeCode(string(tc.letter))
}

// jsonEqual reports whether two JSON texts hold the same value (numbers
// compared by their decimal text after normalisation, objects as maps).
func jsonEqual(tb testing.TB, a, b []byte) bool {
	tb.Helper()
	return jsonValueEqual(decodeJSONValue(tb, a), decodeJSONValue(tb, b))
}

func decodeJSONValue(tb testing.TB, data []byte) any {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		tb.Fatalf("invalid JSON %q: %v", data, err)
	}
	return v
}
