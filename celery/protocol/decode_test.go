package protocol

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	testID   = "670bbd4c-e332-4ef2-925a-d4047cb69b11"
	testCorr = "11111111-2222-4333-8444-555555555555"
	v2Body   = `[[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`
)

// v2Env returns a minimal valid v2 envelope; mutate modifies it.
func v2Env(mutate func(env *Envelope)) Envelope {
	env := Envelope{
		Body:            []byte(v2Body),
		ContentType:     ContentTypeJSON,
		ContentEncoding: "utf-8",
		CorrelationID:   testCorr,
		Headers:         map[string]any{"task": "tasks.add", "id": testID},
	}
	if mutate != nil {
		mutate(&env)
	}
	return env
}

// v1Env returns a v1 envelope with the given body.
func v1Env(body string, mutate func(env *Envelope)) Envelope {
	env := Envelope{
		Body:          []byte(body),
		ContentType:   ContentTypeJSON,
		CorrelationID: testCorr,
		Headers:       map[string]any{},
	}
	if mutate != nil {
		mutate(&env)
	}
	return env
}

func zlibBytes(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// bz2Body is v2Body compressed by Python's bz2.compress.
const bz2Body = "QlpoOTFBWSZTWaRTNS4AAA+bgFAEGBAACj5tmgogAFQ1AGgANNBKmJqGh6g9QyKDgh7KRfKnlLYiH3BWh+Se77WpIy1GQqGFNWw7AESeQGBAcl8XckU4UJCkUzUu"

// pyZlibBody is v2Body compressed by Python's zlib.compress (what kombu's
// "gzip" compression sends).
const pyZlibBody = "eJyLjjbSUTCO1VGorgVipeTEnJykxOTsYiUrhbzSnBwdBaXUoiI0keSMxMw8ZG5+UQqUWxsLAApsGfI="

func b64(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestDecodeErrors covers every MessageError kind and checks that the task
// id and name are filled whenever they are knowable.
func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	msgpackOnly, err := NewAccept([]string{"msgpack", "yaml"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		env      Envelope
		accept   Accept
		kind     ErrorKind
		wantID   string
		wantName string
	}{
		{"pickle v2", v2Env(func(e *Envelope) { e.ContentType = ContentTypePickle; e.Body = []byte("\x80\x04.") }), Accept{}, ErrContentDisallowed, testID, "tasks.add"},
		{"yaml v2 with default accept", v2Env(func(e *Envelope) { e.ContentType = ContentTypeYAML }), Accept{}, ErrContentDisallowed, testID, "tasks.add"},
		{"json not in accept", v2Env(nil), msgpackOnly, ErrContentDisallowed, testID, "tasks.add"},
		{"pickle v1 gets correlation id", v1Env("x", func(e *Envelope) { e.ContentType = ContentTypePickle }), Accept{}, ErrContentDisallowed, testCorr, ""},
		{"bad JSON", v2Env(func(e *Envelope) { e.Body = []byte(`[[2, 3], {}`) }), Accept{}, ErrUndecodable, testID, "tasks.add"},
		{"NaN is not JSON here", v2Env(func(e *Envelope) { e.Body = []byte(`[[NaN], {}, null]`) }), Accept{}, ErrUndecodable, testID, "tasks.add"},
		{"invalid UTF-8", v2Env(func(e *Envelope) { e.Body = []byte("[[\"\xc3\x28\"], {}, null]") }), Accept{}, ErrUndecodable, testID, "tasks.add"},
		{"trailing garbage", v2Env(func(e *Envelope) { e.Body = []byte(v2Body + "x") }), Accept{}, ErrUndecodable, testID, "tasks.add"},
		{"unknown compression", v2Env(func(e *Envelope) { e.Headers["compression"] = "application/x-lzma" }), Accept{}, ErrUndecodable, testID, "tasks.add"},
		{"corrupt zlib", v2Env(func(e *Envelope) { e.Headers["compression"] = CompressionZlib }), Accept{}, ErrUndecodable, testID, "tasks.add"},
		{"compression not a string", v2Env(func(e *Envelope) { e.Headers["compression"] = 5 }), Accept{}, ErrUndecodable, testID, "tasks.add"},
		{"bad msgpack", v2Env(func(e *Envelope) { e.ContentType = ContentTypeMsgpack; e.Body = []byte{0x93, 0xc1} }), msgpackOnly, ErrUndecodable, testID, "tasks.add"},
		{"msgpack int key", v2Env(func(e *Envelope) { e.ContentType = ContentTypeMsgpack; e.Body = []byte{0x81, 0x01, 0x02} }), msgpackOnly, ErrUndecodable, testID, "tasks.add"},
		{"yaml int key", v2Env(func(e *Envelope) { e.ContentType = ContentTypeYAML; e.Body = []byte("- []\n- {1: 2}\n- null\n") }), msgpackOnly, ErrUndecodable, testID, "tasks.add"},
		{"invalid v1 JSON", v1Env(`{"task": `, nil), Accept{}, ErrUndecodable, testCorr, ""},
		{"bad eta", v2Env(func(e *Envelope) { e.Headers["eta"] = "tomorrow" }), Accept{}, ErrInvalidTask, testID, "tasks.add"},
		{"eta with 10 fraction digits", v2Env(func(e *Envelope) { e.Headers["eta"] = "2024-01-01T00:00:00.1234567890" }), Accept{}, ErrInvalidTask, testID, "tasks.add"},
		{"expires not a string", v2Env(func(e *Envelope) { e.Headers["expires"] = int32(5) }), Accept{}, ErrInvalidTask, testID, "tasks.add"},
		{"timelimit of one", v2Env(func(e *Envelope) { e.Headers["timelimit"] = []any{int32(1)} }), Accept{}, ErrInvalidTask, testID, "tasks.add"},
		{"timelimit not a list", v2Env(func(e *Envelope) { e.Headers["timelimit"] = "30" }), Accept{}, ErrInvalidTask, testID, "tasks.add"},
		{"timelimit of strings", v2Env(func(e *Envelope) { e.Headers["timelimit"] = []any{"a", nil} }), Accept{}, ErrInvalidTask, testID, "tasks.add"},
		{"retries as string", v2Env(func(e *Envelope) { e.Headers["retries"] = "3" }), Accept{}, ErrInvalidTask, testID, "tasks.add"},
		{"group_index fractional", v2Env(func(e *Envelope) { e.Headers["group_index"] = 1.5 }), Accept{}, ErrInvalidTask, testID, "tasks.add"},
		{"ignore_result not bool", v2Env(func(e *Envelope) { e.Headers["ignore_result"] = "no" }), Accept{}, ErrInvalidTask, testID, "tasks.add"},
		{"root_id not string", v2Env(func(e *Envelope) { e.Headers["root_id"] = 7 }), Accept{}, ErrInvalidTask, testID, "tasks.add"},
		{"task header not a string", v2Env(func(e *Envelope) { e.Headers["task"] = int32(1) }), Accept{}, ErrInvalidTask, testID, ""},
		{"task header empty", v2Env(func(e *Envelope) { e.Headers["task"] = "" }), Accept{}, ErrInvalidTask, testID, ""},
		{"id header missing", v2Env(func(e *Envelope) { delete(e.Headers, "id") }), Accept{}, ErrInvalidTask, testCorr, "tasks.add"},
		{"id header null", v2Env(func(e *Envelope) { e.Headers["id"] = nil }), Accept{}, ErrInvalidTask, testCorr, "tasks.add"},
		{"body of two", v2Env(func(e *Envelope) { e.Body = []byte(`[[], {}]`) }), Accept{}, ErrInvalidTask, testID, "tasks.add"},
		{"body a string", v2Env(func(e *Envelope) { e.Body = []byte(`"x"`) }), Accept{}, ErrInvalidTask, testID, "tasks.add"},
		{"body a dict without args", v2Env(func(e *Envelope) { e.Body = []byte(`{"kwargs": {}}`) }), Accept{}, ErrInvalidTask, testID, "tasks.add"},
		{"args a dict", v2Env(func(e *Envelope) { e.Body = []byte(`[{}, {}, null]`) }), Accept{}, ErrInvalidTask, testID, "tasks.add"},
		{"args null", v2Env(func(e *Envelope) { e.Body = []byte(`[null, {}, null]`) }), Accept{}, ErrInvalidTask, testID, "tasks.add"},
		{"kwargs a list", v2Env(func(e *Envelope) { e.Body = []byte(`[[], [], null]`) }), Accept{}, ErrInvalidTask, testID, "tasks.add"},
		{"embed a list", v2Env(func(e *Envelope) { e.Body = []byte(`[[], {}, []]`) }), Accept{}, ErrInvalidTask, testID, "tasks.add"},
		{"chain not a list", v2Env(func(e *Envelope) { e.Body = []byte(`[[], {}, {"chain": {}}]`) }), Accept{}, ErrInvalidTask, testID, "tasks.add"},
		{"callback not a dict", v2Env(func(e *Envelope) { e.Body = []byte(`[[], {}, {"callbacks": ["tasks.x"]}]`) }), Accept{}, ErrInvalidTask, testID, "tasks.add"},
		{"chord not a dict", v2Env(func(e *Envelope) { e.Body = []byte(`[[], {}, {"chord": 1}]`) }), Accept{}, ErrInvalidTask, testID, "tasks.add"},
		{"hybrid kwargs not mapping", v2Env(func(e *Envelope) { e.Body = []byte(`{"args": [], "kwargs": 1}`) }), Accept{}, ErrInvalidTask, testID, "tasks.add"},
		{"hybrid bad eta in body", v2Env(func(e *Envelope) { e.Body = []byte(`{"args": [], "eta": "x"}`) }), Accept{}, ErrInvalidTask, testID, "tasks.add"},
		{"v1 kwargs not mapping", v1Env(`{"task": "t", "id": "i", "kwargs": []}`, nil), Accept{}, ErrInvalidTask, "i", "t"},
		{"v1 kwargs null", v1Env(`{"task": "t", "id": "i", "kwargs": null}`, nil), Accept{}, ErrInvalidTask, "i", "t"},
		{"v1 args not list", v1Env(`{"task": "t", "id": "i", "args": "x"}`, nil), Accept{}, ErrInvalidTask, "i", "t"},
		{"v1 missing id", v1Env(`{"task": "t"}`, nil), Accept{}, ErrInvalidTask, testCorr, "t"},
		{"v1 task not a string", v1Env(`{"task": 5, "id": "i"}`, nil), Accept{}, ErrInvalidTask, "i", ""},
		{"v1 bad timelimit", v1Env(`{"task": "t", "id": "i", "timelimit": [1, 2, 3]}`, nil), Accept{}, ErrInvalidTask, "i", "t"},
		{"v1 bad expires", v1Env(`{"task": "t", "id": "i", "expires": "2024-99-01T00:00:00"}`, nil), Accept{}, ErrInvalidTask, "i", "t"},
		{"v1 bad callbacks", v1Env(`{"task": "t", "id": "i", "callbacks": {}}`, nil), Accept{}, ErrInvalidTask, "i", "t"},
		{"no content type", v2Env(func(e *Envelope) { e.ContentType = "" }), Accept{}, ErrUnknownMessage, testID, "tasks.add"},
		{"application/data", v1Env(`{"task": "t", "id": "i"}`, func(e *Envelope) { e.ContentType = ContentTypeData }), Accept{}, ErrUnknownMessage, testCorr, ""},
		{"v1 body a list", v1Env(`[1, 2]`, nil), Accept{}, ErrUnknownMessage, testCorr, ""},
		{"v1 dict without task", v1Env(`{"id": "x"}`, nil), Accept{}, ErrUnknownMessage, testCorr, ""},
		{"no headers and empty body", Envelope{ContentType: ContentTypeJSON, Body: []byte("null")}, Accept{}, ErrUnknownMessage, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := Decode(tc.env, tc.accept)
			if m != nil {
				t.Errorf("got a message with the error: %+v", m)
			}
			me := checkMessageError(t, err, tc.kind)
			if me.TaskID != tc.wantID || me.TaskName != tc.wantName {
				t.Errorf("error task = %q %q, want %q %q (%v)", me.TaskID, me.TaskName, tc.wantID, tc.wantName, err)
			}
			if !strings.Contains(err.Error(), tc.kind.Error()) {
				t.Errorf("Error() = %q lacks %q", err.Error(), tc.kind.Error())
			}
		})
	}
}

func TestDecodeCompression(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		method string
		body   []byte
	}{
		{"kombu gzip (zlib) from Python", CompressionZlib, b64(t, pyZlibBody)},
		{"zlib from Go", CompressionZlib, zlibBytes(t, []byte(v2Body))},
		{"bzip2 from Python", CompressionBzip2, b64(t, bz2Body)},
		{"alias zlib", "zlib", zlibBytes(t, []byte(v2Body))},
		{"empty header means none", "", []byte(v2Body)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := v2Env(func(e *Envelope) { e.Headers["compression"] = tc.method; e.Body = tc.body })
			m, err := Decode(env, Accept{})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m.Args, raws("2", "3")) || m.ExtraHeaders != nil {
				t.Errorf("Args = %s, ExtraHeaders = %v", m.Args, m.ExtraHeaders)
			}
		})
	}
}

func TestDecodeHeaderTypes(t *testing.T) {
	t.Parallel()
	eta := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	env := v2Env(func(e *Envelope) {
		e.Headers["id"] = []byte(testID) // AMQP 'x'
		e.Headers["retries"] = uint16(4)
		e.Headers["group_index"] = int8(2)
		e.Headers["eta"] = eta // AMQP 'T'
		e.Headers["expires"] = ""
		e.Headers["timelimit"] = []any{float32(1.5), int64(10)}
		e.Headers["ignore_result"] = nil
		e.Headers["x-table"] = amqpTable{"n": int16(1), "l": []any{amqpTable{"f": float32(0.5)}}}
		e.Headers["x-bytes"] = []byte("raw")
		e.Headers["x-time"] = eta
		e.Headers["stamps"] = amqpTable{}
		e.Priority = 9
	})
	m, err := Decode(env, Accept{})
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != testID || m.Retries != 4 || *m.GroupIndex != 2 || !m.ETA.Equal(eta) || m.Expires != nil {
		t.Errorf("got %+v", m)
	}
	if *m.TimeLimit.Hard != 1.5 || *m.TimeLimit.Soft != 10 || m.IgnoreResult || *m.Priority != 9 {
		t.Errorf("got %+v", m)
	}
	want := map[string]any{
		"x-table": map[string]any{"n": int64(1), "l": []any{map[string]any{"f": 0.5}}},
		"x-bytes": []byte("raw"),
		"x-time":  eta,
		"stamps":  map[string]any{},
	}
	if !reflect.DeepEqual(m.ExtraHeaders, want) {
		t.Errorf("ExtraHeaders = %#v", m.ExtraHeaders)
	}
}

func TestDecodeHybrid(t *testing.T) {
	t.Parallel()
	body := `{"task": "ignored.name", "id": "body-id", "args": [1], "kwargs": {"k": 2},
		"eta": "2030-01-01T00:00:00+00:00", "retries": 2, "utc": false, "argsrepr": "(1,)",
		"callbacks": [{"task": "cb", "args": [], "kwargs": {}, "options": {}, "subtask_type": null, "immutable": false}],
		"chord": null, "group_index": 7}`
	tests := []struct {
		name    string
		headers map[string]any
		check   func(t *testing.T, m *TaskMessage)
	}{
		{"body fields used", map[string]any{"task": "tasks.add"}, func(t *testing.T, m *TaskMessage) {
			if m.ID != "body-id" || m.Retries != 2 || m.ETA == nil || m.UTC || m.ArgsRepr != "(1,)" {
				t.Errorf("got %+v", m)
			}
			if m.GroupIndex != nil { // hybrid_to_proto2 does not read group_index from the body
				t.Errorf("GroupIndex = %v", *m.GroupIndex)
			}
		}},
		{"headers override body", map[string]any{"task": "tasks.add", "id": "hdr-id", "eta": nil, "retries": int32(5)}, func(t *testing.T, m *TaskMessage) {
			if m.ID != "hdr-id" || m.Retries != 5 || m.ETA != nil || m.Task != "tasks.add" {
				t.Errorf("got %+v", m)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := Envelope{Body: []byte(body), ContentType: ContentTypeJSON, Headers: tc.headers}
			m, err := Decode(env, Accept{})
			if err != nil {
				t.Fatal(err)
			}
			if !m.Hybrid || m.Protocol != 2 || !reflect.DeepEqual(m.Args, raws("1")) || string(m.Kwargs["k"]) != "2" {
				t.Errorf("got %+v", m)
			}
			if len(m.Embed.Callbacks) != 1 || m.Embed.Callbacks[0].Task != "cb" || m.Embed.Chain != nil {
				t.Errorf("embed = %+v", m.Embed)
			}
			tc.check(t, m)
		})
	}
}

func TestDecodeV2Variants(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		body  string
		check func(t *testing.T, m *TaskMessage)
	}{
		{"embed null", `[[], {}, null]`, func(t *testing.T, m *TaskMessage) {
			if !reflect.DeepEqual(m.Embed, Embed{}) || m.Args == nil || len(m.Args) != 0 || m.Kwargs != nil {
				t.Errorf("got %+v", m)
			}
		}},
		{"empty chain kept distinct from null", `[[], {}, {"chain": [], "unknown": 1}]`, func(t *testing.T, m *TaskMessage) {
			if m.Embed.Chain == nil || len(m.Embed.Chain) != 0 {
				t.Errorf("Chain = %#v", m.Embed.Chain)
			}
		}},
		{"whitespace and escaped keys", " [ [1 ,2] , {\"\\u0061\" : 1, \"a\": 2, \"b\": 3} , {} ] ", func(t *testing.T, m *TaskMessage) {
			if !reflect.DeepEqual(m.KwargsOrder, []string{"a", "b"}) || string(m.Kwargs["a"]) != "2" {
				t.Errorf("kwargs = %v %v", m.Kwargs, m.KwargsOrder)
			}
		}},
		{"big numbers raw", `[[1e400, 123456789012345678901234567890], {}, null]`, func(t *testing.T, m *TaskMessage) {
			if string(m.Args[0]) != "1e400" || string(m.Args[1]) != "123456789012345678901234567890" {
				t.Errorf("Args = %s", m.Args)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := Decode(v2Env(func(e *Envelope) { e.Body = []byte(tc.body) }), Accept{})
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, m)
		})
	}
}

func TestDecodeV1Defaults(t *testing.T) {
	t.Parallel()
	env := v1Env(`{"task": "t", "id": "i", "group": "g", "utc": false, "timelimit": [null, 5], "shadow": "s"}`,
		func(e *Envelope) { e.Headers["x-custom"] = "v"; e.Headers["task_protocol_note"] = int32(1) })
	m, err := Decode(env, Accept{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Protocol != 1 || m.GroupID != "g" || m.UTC || m.TimeLimit.Hard != nil || *m.TimeLimit.Soft != 5 || m.Shadow != "s" {
		t.Errorf("got %+v", m)
	}
	if m.Args == nil || len(m.Args) != 0 || m.ArgsRepr != "[]" || m.KwargsRepr != "{}" {
		t.Errorf("args = %#v %q %q", m.Args, m.ArgsRepr, m.KwargsRepr)
	}
	if !reflect.DeepEqual(m.ExtraHeaders, map[string]any{"x-custom": "v", "task_protocol_note": int64(1)}) {
		t.Errorf("ExtraHeaders = %v", m.ExtraHeaders)
	}
	// taskset wins over group, as in Celery's proto1_to_proto2.
	m, err = Decode(v1Env(`{"task": "t", "id": "i", "group": "g", "taskset": null}`, nil), Accept{})
	if err != nil || m.GroupID != "" {
		t.Errorf("taskset null: %v %q", err, m.GroupID)
	}
}

// TestDecodeAliasesBody documents that raw values point into the body and
// cannot be grown into it.
func TestDecodeAliasesBody(t *testing.T) {
	t.Parallel()
	env := v2Env(nil)
	m, err := Decode(env, Accept{})
	if err != nil {
		t.Fatal(err)
	}
	if &m.Args[0][0] != &env.Body[2] {
		t.Error("Args[0] does not alias the body")
	}
	grown := append(m.Args[0], '9')
	if string(env.Body) != v2Body || string(grown) != "29" {
		t.Errorf("append wrote into the body: %s", env.Body)
	}
}
