package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// fuzzContentTypes are indexed by a fuzzed byte.
var fuzzContentTypes = []string{ContentTypeJSON, ContentTypeMsgpack, ContentTypeYAML, "", ContentTypePickle}

func fuzzAccept(tb testing.TB) Accept {
	tb.Helper()
	a, err := NewAccept([]string{"json", "msgpack", "yaml"})
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func contentTypeIndex(ct string) uint8 {
	for i, c := range fuzzContentTypes {
		if c == ct {
			return uint8(i)
		}
	}
	return 0
}

// checkRoundTrip encodes a decoded message as v2 JSON, decodes it again and
// asserts nothing changed.
func checkRoundTrip(t *testing.T, m *TaskMessage) {
	t.Helper()
	env, err := EncodeV2(m, EncodeOptions{})
	if err != nil {
		t.Fatalf("EncodeV2 of a decoded message: %v", err)
	}
	body, err := appendBodyV2(nil, m)
	if err != nil || !bytes.Equal(body, env.Body) {
		t.Fatalf("body mismatch: %v", err)
	}
	m2, err := Decode(env, Accept{})
	if err != nil {
		t.Fatalf("decode of re-encoded message: %v\n%s", err, env.Body)
	}
	body2, err := appendBodyV2(nil, m2)
	if err != nil || !bytes.Equal(body2, env.Body) {
		t.Fatalf("re-encoded body changed:\n%s\n%s", body2, env.Body)
	}
	sameTime := func(a, b *time.Time) bool {
		if a == nil || b == nil {
			return a == b
		}
		return b.Equal(a.Truncate(time.Microsecond))
	}
	sameFloat := func(a, b *float64) bool { return (a == nil && b == nil) || (a != nil && b != nil && *a == *b) }
	if m2.ID != m.ID || m2.Task != m.Task || m2.Shadow != m.Shadow || m2.Retries != m.Retries ||
		m2.GroupID != m.GroupID || m2.ParentID != m.ParentID || m2.Origin != m.Origin || m2.IgnoreResult != m.IgnoreResult ||
		!sameTime(m.ETA, m2.ETA) || !sameTime(m.Expires, m2.Expires) ||
		!sameFloat(m.TimeLimit.Hard, m2.TimeLimit.Hard) || !sameFloat(m.TimeLimit.Soft, m2.TimeLimit.Soft) ||
		(m.GroupIndex == nil) != (m2.GroupIndex == nil) || (m.GroupIndex != nil && *m.GroupIndex != *m2.GroupIndex) {
		t.Fatalf("fields changed:\n%+v\n%+v", m, m2)
	}
	if (m.RootID != "" && m2.RootID != m.RootID) || (m.RootID == "" && m2.RootID != m.ID) {
		t.Fatalf("root_id %q -> %q", m.RootID, m2.RootID)
	}
	if (m.ArgsRepr != "" && m2.ArgsRepr != m.ArgsRepr) || (m.ArgsRepr == "" && m2.ArgsRepr != ReprArgs(m.Args)) {
		t.Fatalf("argsrepr %q -> %q", m.ArgsRepr, m2.ArgsRepr)
	}
}

// checkDecodeError asserts the error is a *MessageError of a defined kind
// carrying the expected task id and name.
func checkDecodeError(t *testing.T, err error, wantID, wantName string) {
	t.Helper()
	var me *MessageError
	if !errors.As(err, &me) {
		t.Fatalf("untyped error %T: %v", err, err)
	}
	if me.Kind < ErrContentDisallowed || me.Kind > ErrUnknownMessage || !errors.Is(err, me.Kind) {
		t.Fatalf("bad kind %d: %v", me.Kind, err)
	}
	if me.TaskID != wantID || (wantName != "" && me.TaskName != wantName) {
		t.Fatalf("error task %q %q, want %q %q: %v", me.TaskID, me.TaskName, wantID, wantName, err)
	}
}

func FuzzDecodeV2(f *testing.F) {
	for _, fx := range loadFixtures(f) {
		if strings.HasPrefix(fx.File, "v1_") {
			continue
		}
		h := fx.Properties.Headers
		eta, expires := "", ""
		_ = json.Unmarshal(h["eta"], &eta)
		_ = json.Unmarshal(h["expires"], &expires)
		f.Add(fx.body(f), contentTypeIndex(fx.Properties.ContentType), eta, expires, int64(0), false)
	}
	f.Add([]byte(`{"args": [1], "kwargs": {"a": 1}, "callbacks": [{"task": "x"}], "eta": "2024-01-01T00:00:00Z"}`), uint8(0), "", "", int64(-1), false)
	f.Add([]byte(`[[1e400, -0, 1.50], {"a": "\ud800", "a": 2}, {"chain": [], "chord": {"task": "c", "chord_size": 2}}]`), uint8(0), "2024-01-01T00:00:00.5+0530", "x", int64(1)<<40, false)
	f.Add(zlibBytes(f, []byte(v2Body)), uint8(0), "", "", int64(0), true)
	f.Add(b64(f, bz2Body), uint8(0), "", "", int64(0), true)
	accept := fuzzAccept(f)
	f.Fuzz(func(t *testing.T, body []byte, ct uint8, eta, expires string, retries int64, compressed bool) {
		const id, name = "fuzz-id", "fuzz.task"
		headers := map[string]any{"task": name, "id": id, "x-extra": eta, "retries": retries}
		if eta != "" {
			headers["eta"] = eta
		}
		if expires != "" {
			headers["expires"] = expires
		}
		if compressed { // the body is taken as compressed data, to fuzz the decompressors
			headers["compression"] = CompressionZlib
			if bytes.HasPrefix(body, []byte("BZh")) {
				headers["compression"] = CompressionBzip2
			}
		}
		env := Envelope{
			Body: body, ContentType: fuzzContentTypes[int(ct)%len(fuzzContentTypes)],
			Headers: headers, CorrelationID: "corr",
		}
		m, err := Decode(env, accept)
		if err != nil {
			checkDecodeError(t, err, id, name)
			return
		}
		if m.ID != id || m.Task != name || m.Protocol != 2 || m.ExtraHeaders["x-extra"] != eta {
			t.Fatalf("got %+v", m)
		}
		checkRoundTrip(t, m)
	})
}

func FuzzDecodeV1(f *testing.F) {
	for _, fx := range loadFixtures(f) {
		f.Add(fx.body(f), contentTypeIndex(fx.Properties.ContentType))
	}
	f.Add([]byte(`{"task": "t", "id": "i", "args": [], "taskset": "g", "timelimit": [1.5, null], "utc": false}`), uint8(0))
	f.Add([]byte(`{"task": "t", "id": "i", "kwargs": []}`), uint8(0))
	f.Add([]byte("task: t\nid: i\nargs: [1, 2.5, yes]\nkwargs: {k: &a [1]}\nchord: null\nx: *a\n"), uint8(2))
	f.Add([]byte{0x83, 0xa4, 't', 'a', 's', 'k', 0xa1, 't', 0xa2, 'i', 'd', 0xa1, 'i', 0xa4, 'a', 'r', 'g', 's', 0x91, 0xcb, 0, 0, 0, 0, 0, 0, 0, 1}, uint8(1))
	accept := fuzzAccept(f)
	f.Fuzz(func(t *testing.T, body []byte, ct uint8) {
		env := Envelope{Body: body, ContentType: fuzzContentTypes[int(ct)%len(fuzzContentTypes)], CorrelationID: "corr"}
		m, err := Decode(env, accept)
		if err != nil {
			var me *MessageError
			if !errors.As(err, &me) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			wantID := "corr"
			if me.Kind == ErrInvalidTask && me.TaskID != "corr" {
				wantID = me.TaskID // the body's own id, once the body decoded
			}
			checkDecodeError(t, err, wantID, "")
			return
		}
		if m.Protocol != 1 || m.ID == "" || m.Task == "" || m.ArgsRepr != safeReprArgs(m.Args, 0, false) {
			t.Fatalf("got %+v", m)
		}
		checkRoundTrip(t, m)
	})
}

// celery52Time is the shape Celery 5.2's own ISO-8601 regex parses exactly
// (six fraction digits or none, offset ±HH:MM).
var celery52Time = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?[+-]\d{2}:\d{2}$`)

func FuzzParseTime(f *testing.F) {
	for _, fx := range loadFixtures(f) {
		for _, k := range []string{"eta", "expires"} {
			var s string
			if json.Unmarshal(fx.Properties.Headers[k], &s) == nil && s != "" {
				f.Add(s)
			}
		}
	}
	for _, s := range []string{"2024-05-01T12:00:00Z", "2024-05-01 12:00:00.1234567-0530", "2024-02-29T23:59:59.999999999+23:59", "2024-05-01T12:00", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := ParseTime(s)
		if err != nil {
			var pe *time.ParseError
			if !errors.As(err, &pe) || pe.Value != s {
				t.Fatalf("error %T %v is not a *time.ParseError for the input", err, err)
			}
			return
		}
		out := FormatTime(tm)
		if !celery52Time.MatchString(out) {
			t.Fatalf("FormatTime(%q) = %q: not readable by Celery 5.2", s, out)
		}
		back, err := ParseTime(out)
		if err != nil {
			t.Fatalf("ParseTime(FormatTime) %q: %v", out, err)
		}
		_, off1 := tm.Zone()
		_, off2 := back.Zone()
		if !back.Equal(tm.Truncate(time.Microsecond)) || off1 != off2 {
			t.Fatalf("%q -> %v -> %q -> %v", s, tm, out, back)
		}
	})
}

func FuzzPyJSON(f *testing.F) {
	for _, fx := range loadFixtures(f) {
		if fx.Properties.ContentType == ContentTypeJSON {
			f.Add(fx.body(f))
		}
	}
	for _, s := range []string{`{"a": 1, "a": [1E5, -0, "\u00FC\ud800"]}`, `"\ud83d\ude80\/"`, `1e400`, ` [ ] `, `{"\u0061": 1, "a": 2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := PyJSON(json.RawMessage(data))
		if !json.Valid(data) {
			if err == nil {
				t.Fatalf("PyJSON accepted invalid JSON %q", data)
			}
			return
		}
		if err != nil {
			if utf8.Valid(data) && !strings.Contains(err.Error(), "nesting too deep") {
				t.Fatalf("PyJSON(%q): %v", data, err)
			}
			return
		}
		for _, c := range out {
			if c >= 0x7f || (c < 0x20 && c != ' ') {
				t.Fatalf("output is not printable ASCII: %q", out)
			}
		}
		if !json.Valid(out) || !jsonEqual(t, data, out) {
			t.Fatalf("PyJSON(%q) = %q changes the value", data, out)
		}
		again, err := PyJSON(json.RawMessage(out))
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("PyJSON is not idempotent: %q -> %q (%v)", out, again, err)
		}
	})
}

func FuzzSignature(f *testing.F) {
	for _, fx := range loadFixtures(f) {
		m, err := Decode(fx.envelope(f), Accept{})
		if err != nil {
			continue
		}
		sigs := append(append(append([]Signature{}, m.Embed.Callbacks...), m.Embed.Errbacks...), m.Embed.Chain...)
		if m.Embed.Chord != nil {
			sigs = append(sigs, *m.Embed.Chord)
		}
		for _, s := range sigs {
			b, err := s.MarshalJSON()
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte(`{"task": "t", "chord_size": 2, "extra": null, "kwargs": {"b": 1, "a": 2}, "immutable": null}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s Signature
		if err := s.UnmarshalJSON(data); err != nil {
			return
		}
		b1, err := s.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON of an unmarshalled signature: %v", err)
		}
		if !json.Valid(b1) {
			t.Fatalf("invalid JSON %q", b1)
		}
		var s2 Signature
		if err := s2.UnmarshalJSON(b1); err != nil {
			t.Fatalf("Unmarshal(Marshal) %q: %v", b1, err)
		}
		b2, err := s2.MarshalJSON()
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("round trip changed %q -> %q (%v)", b1, b2, err)
		}
		if s2.Task != s.Task || s2.Immutable != s.Immutable || s2.SubtaskType != s.SubtaskType || len(s2.Args) != len(s.Args) {
			t.Fatalf("fields changed: %+v -> %+v", s, s2)
		}
	})
}
