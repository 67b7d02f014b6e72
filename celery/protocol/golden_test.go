package protocol

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// jsonFixture reports whether the fixture is a JSON task message (the
// serializer fixtures are tested separately).
func jsonFixture(f *fixtureMessage) bool {
	return f.Properties.ContentType == ContentTypeJSON
}

func hdrStr(tb testing.TB, f *fixtureMessage, key string) string {
	tb.Helper()
	raw, ok := f.Properties.Headers[key]
	if !ok {
		tb.Fatalf("%s: no header %q", f.name(), key)
	}
	var s *string
	if err := json.Unmarshal(raw, &s); err != nil {
		tb.Fatalf("%s: header %q: %v", f.name(), key, err)
	}
	if s == nil {
		return ""
	}
	return *s
}

// TestDecodeFixtures decodes every captured JSON task message and compares
// each decoded field with the capture.
func TestDecodeFixtures(t *testing.T) {
	t.Parallel()
	for _, f := range loadFixtures(t) {
		if !jsonFixture(f) {
			continue
		}
		t.Run(f.name(), func(t *testing.T) {
			t.Parallel()
			m, err := Decode(f.envelope(t), Accept{})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if m.CorrelationID != f.Properties.CorrelationID || m.ReplyTo != f.Properties.ReplyTo {
				t.Errorf("properties: got %q/%q", m.CorrelationID, m.ReplyTo)
			}
			if f.Properties.Priority != nil && *f.Properties.Priority != 0 {
				if m.Priority == nil || *m.Priority != *f.Properties.Priority {
					t.Errorf("Priority = %v, want %d", m.Priority, *f.Properties.Priority)
				}
			} else if m.Priority != nil {
				t.Errorf("Priority = %d, want nil", *m.Priority)
			}
			var body any
			if err := json.Unmarshal(f.BodyDecoded, &body); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(f.File, "v1_") {
				checkV1Fixture(t, f, m)
			} else {
				checkV2Fixture(t, f, m)
			}
		})
	}
}

func checkV2Fixture(t *testing.T, f *fixtureMessage, m *TaskMessage) {
	t.Helper()
	if m.Protocol != 2 || m.Hybrid {
		t.Errorf("Protocol = %d, Hybrid = %v", m.Protocol, m.Hybrid)
	}
	strs := map[string]string{
		"id": m.ID, "task": m.Task, "shadow": m.Shadow, "group": m.GroupID, "root_id": m.RootID,
		"parent_id": m.ParentID, "argsrepr": m.ArgsRepr, "kwargsrepr": m.KwargsRepr, "origin": m.Origin,
	}
	for k, got := range strs {
		if want := hdrStr(t, f, k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	h := f.headers(t, false)
	if want := int(h["retries"].(int32)); m.Retries != want {
		t.Errorf("Retries = %d, want %d", m.Retries, want)
	}
	if want, _ := h["group_index"].(int32); (h["group_index"] == nil) != (m.GroupIndex == nil) ||
		(m.GroupIndex != nil && *m.GroupIndex != int(want)) {
		t.Errorf("GroupIndex = %v, want %v", m.GroupIndex, h["group_index"])
	}
	if m.IgnoreResult != h["ignore_result"].(bool) {
		t.Errorf("IgnoreResult = %v", m.IgnoreResult)
	}
	tl := h["timelimit"].([]any)
	for i, got := range []*float64{m.TimeLimit.Hard, m.TimeLimit.Soft} {
		switch want := tl[i].(type) {
		case nil:
			if got != nil {
				t.Errorf("timelimit[%d] = %v, want nil", i, *got)
			}
		case int32:
			if got == nil || *got != float64(want) {
				t.Errorf("timelimit[%d] = %v, want %d", i, got, want)
			}
		}
	}
	for _, tc := range []struct {
		key string
		got *time.Time
	}{{"eta", m.ETA}, {"expires", m.Expires}} {
		want := hdrStr(t, f, tc.key)
		switch {
		case want == "" && tc.got != nil:
			t.Errorf("%s = %v, want none", tc.key, tc.got)
		case want != "" && tc.got == nil:
			t.Errorf("%s missing, want %s", tc.key, want)
		case want != "" && FormatTime(*tc.got) != want:
			t.Errorf("%s = %s, want %s", tc.key, FormatTime(*tc.got), want)
		}
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(f.BodyDecoded, &parts); err != nil || len(parts) != 3 {
		t.Fatalf("body_decoded: %v", err)
	}
	if got := mustPyJSON(t, m.Args); !jsonEqual(t, got, parts[0]) {
		t.Errorf("Args = %s, want %s", got, parts[0])
	}
	kw, err := appendPyRawObject(nil, m.KwargsOrder, m.Kwargs)
	if err != nil || !jsonEqual(t, kw, parts[1]) {
		t.Errorf("Kwargs = %s (%v), want %s", kw, err, parts[1])
	}
	embed, err := appendBodyV2(nil, &TaskMessage{Embed: m.Embed})
	if err != nil {
		t.Fatal(err)
	}
	var embedParts []json.RawMessage
	if err := json.Unmarshal(embed, &embedParts); err != nil || !jsonEqual(t, embedParts[2], parts[2]) {
		t.Errorf("Embed = %s, want %s", embedParts[2], parts[2])
	}
	// Celery's own argsrepr/kwargsrepr must come out of ReprArgs/ReprKwargs
	// (beat sends the args list, so its argsrepr is a list repr).
	if f.File != "beat_interval.json" {
		if got := ReprArgs(m.Args); got != m.ArgsRepr {
			t.Errorf("ReprArgs = %q, header %q", got, m.ArgsRepr)
		}
	} else if got := safeReprArgs(m.Args, ReprMaxSize, false); got != m.ArgsRepr && ReprArgs(m.Args) != m.ArgsRepr {
		t.Errorf("list saferepr = %q, header %q", got, m.ArgsRepr)
	}
	if got := ReprKwargs(m.KwargsOrder, m.Kwargs); got != m.KwargsRepr {
		t.Errorf("ReprKwargs = %q, header %q", got, m.KwargsRepr)
	}
}

func checkV1Fixture(t *testing.T, f *fixtureMessage, m *TaskMessage) {
	t.Helper()
	var body map[string]json.RawMessage
	if err := json.Unmarshal(f.BodyDecoded, &body); err != nil {
		t.Fatal(err)
	}
	str := func(k string) string {
		var s *string
		if err := json.Unmarshal(body[k], &s); err != nil {
			t.Fatalf("body %s: %v", k, err)
		}
		if s == nil {
			return ""
		}
		return *s
	}
	if m.Protocol != 1 || m.ID != str("id") || m.Task != str("task") || m.GroupID != str("taskset") || !m.UTC {
		t.Errorf("got protocol %d id %q task %q group %q utc %v", m.Protocol, m.ID, m.Task, m.GroupID, m.UTC)
	}
	if m.ExtraHeaders != nil {
		t.Errorf("ExtraHeaders = %v, want none", m.ExtraHeaders)
	}
	if got := mustPyJSON(t, m.Args); !jsonEqual(t, got, body["args"]) {
		t.Errorf("Args = %s, want %s", got, body["args"])
	}
	kw, _ := appendPyRawObject(nil, m.KwargsOrder, m.Kwargs)
	if !jsonEqual(t, kw, body["kwargs"]) {
		t.Errorf("Kwargs = %s, want %s", kw, body["kwargs"])
	}
	cb, _ := appendSignatureList(nil, m.Embed.Callbacks)
	if !jsonEqual(t, cb, body["callbacks"]) {
		t.Errorf("Callbacks = %s, want %s", cb, body["callbacks"])
	}
	for _, tc := range []struct {
		key string
		got *time.Time
	}{{"eta", m.ETA}, {"expires", m.Expires}} {
		if want := str(tc.key); (want == "") != (tc.got == nil) || (tc.got != nil && FormatTime(*tc.got) != want) {
			t.Errorf("%s = %v, want %q", tc.key, tc.got, want)
		}
	}
	if m.ArgsRepr != safeReprArgs(m.Args, 0, false) || !strings.HasPrefix(m.ArgsRepr, "[") {
		t.Errorf("ArgsRepr = %q", m.ArgsRepr)
	}
}

// TestDecodeFixtureDetails pins down fields of particular captures.
func TestDecodeFixtureDetails(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fixture string
		check   func(t *testing.T, m *TaskMessage)
	}{
		{"v2_options#0", func(t *testing.T, m *TaskMessage) {
			if *m.TimeLimit.Hard != 30 || *m.TimeLimit.Soft != 20 || m.Shadow != "custom.shadow.name" || !m.IgnoreResult {
				t.Errorf("got %+v", m)
			}
		}},
		{"v2_chain#0", func(t *testing.T, m *TaskMessage) {
			c := m.Embed.Chain
			if len(c) != 2 || c[1].Task != "tasks.add" || c[0].Task != "tasks.mul" {
				t.Fatalf("chain = %+v", c)
			}
			if got := string(c[1].Options["task_id"]); got != `"bdd92549-38d1-41d9-b2f4-1556dffb89d3"` {
				t.Errorf("next step task_id = %s", got)
			}
			if string(c[1].Args[0]) != "4" || c[1].Immutable || c[1].SubtaskType != "" {
				t.Errorf("next step = %+v", c[1])
			}
		}},
		{"v2_chord#1", func(t *testing.T, m *TaskMessage) {
			if m.GroupIndex == nil || *m.GroupIndex != 1 || m.GroupID != "c0c9e446-f9f5-41e4-bb43-6ca912e1887e" {
				t.Errorf("group = %q/%v", m.GroupID, m.GroupIndex)
			}
			if m.Embed.Chord == nil || m.Embed.Chord.Task != "tasks.xsum" || len(m.Embed.Chord.Args) != 0 {
				t.Errorf("chord = %+v", m.Embed.Chord)
			}
		}},
		{"v2_group#2", func(t *testing.T, m *TaskMessage) {
			if m.GroupIndex != nil || m.GroupID != "370ff7a1-a433-4479-bc97-c1d4e3200e70" {
				t.Errorf("group = %q/%v", m.GroupID, m.GroupIndex)
			}
		}},
		{"v2_eta_offset#0", func(t *testing.T, m *TaskMessage) {
			want := time.Date(2030, 1, 2, 1, 4, 5, 0, time.UTC)
			if _, off := m.ETA.Zone(); !m.ETA.Equal(want) || off != 7200 {
				t.Errorf("ETA = %v", m.ETA)
			}
		}},
		{"v2_eta#0", func(t *testing.T, m *TaskMessage) {
			if !m.ETA.Equal(time.Date(2030, 1, 2, 3, 4, 5, 678901000, time.UTC)) || m.ETA.Location() != time.UTC {
				t.Errorf("ETA = %v", m.ETA)
			}
		}},
		{"v2_retries#0", func(t *testing.T, m *TaskMessage) {
			if m.Retries != 3 {
				t.Errorf("Retries = %d", m.Retries)
			}
		}},
		{"v2_priority#0", func(t *testing.T, m *TaskMessage) {
			if m.Priority == nil || *m.Priority != 7 {
				t.Errorf("Priority = %v", m.Priority)
			}
		}},
		{"v2_custom_headers#0", func(t *testing.T, m *TaskMessage) {
			want := map[string]any{
				"x-tenant": "acme", "x-big": int64(1 << 40), "x-small": int64(7), "x-float": 1.5,
				"x-bool": true, "x-none": nil, "x-list": []any{int64(1), "a", nil}, "x-dict": map[string]any{"k": "v"},
			}
			if !reflect.DeepEqual(m.ExtraHeaders, want) {
				t.Errorf("ExtraHeaders = %#v", m.ExtraHeaders)
			}
		}},
		{"v2_kwargs_unicode_nested#0", func(t *testing.T, m *TaskMessage) {
			if !reflect.DeepEqual(m.KwargsOrder, []string{"name", "nested", "big", "neg", "empty"}) {
				t.Errorf("KwargsOrder = %v", m.KwargsOrder)
			}
			if string(m.Kwargs["big"]) != "9007199254740993" || len(m.Args) != 0 || m.Args == nil {
				t.Errorf("big = %s, args = %#v", m.Kwargs["big"], m.Args)
			}
			var name string
			if err := json.Unmarshal(m.Kwargs["name"], &name); err != nil || name != "Zoë Ünïcødé — 日本語 🚀" {
				t.Errorf("name = %q (%v)", name, err)
			}
		}},
		{"v2_link_link_error#0", func(t *testing.T, m *TaskMessage) {
			if len(m.Embed.Callbacks) != 1 || m.Embed.Callbacks[0].Task != "tasks.mul" ||
				len(m.Embed.Errbacks) != 1 || m.Embed.Errbacks[0].Task != "tasks.on_error" || m.Embed.Chain != nil {
				t.Errorf("embed = %+v", m.Embed)
			}
		}},
		{"v2_worker_link_error#0", func(t *testing.T, m *TaskMessage) {
			if m.GroupID == "" || string(m.Args[0]) != `"473708b9-effd-4e20-b4ec-d5756c39cb0d"` ||
				m.ParentID != "473708b9-effd-4e20-b4ec-d5756c39cb0d" {
				t.Errorf("got %+v", m)
			}
		}},
		{"v2_worker_chain_next_step#0", func(t *testing.T, m *TaskMessage) {
			if m.Priority != nil || len(m.Embed.Chain) != 1 || m.RootID != "03ed75d0-9988-4f2c-ad5c-ce760fd541c5" {
				t.Errorf("got %+v", m)
			}
		}},
		{"v1_plain_args#0", func(t *testing.T, m *TaskMessage) {
			if m.Protocol != 1 || m.ArgsRepr != "[2, 3]" || m.KwargsRepr != "{}" || len(m.Args) != 2 {
				t.Errorf("got %+v", m)
			}
		}},
		{"v1_eta_expires_kwargs#0", func(t *testing.T, m *TaskMessage) {
			if !m.ETA.Equal(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) || m.Expires == nil ||
				string(m.Kwargs["a"]) != `"\u00fc"` || m.KwargsRepr != "{'a': 'ü'}" {
				t.Errorf("got %+v", m)
			}
		}},
		{"v1_chain_link#0", func(t *testing.T, m *TaskMessage) {
			if len(m.Embed.Callbacks) != 1 || m.Embed.Callbacks[0].Task != "tasks.mul" ||
				string(m.Embed.Callbacks[0].Args[0]) != "10" || m.Embed.Chain != nil {
				t.Errorf("embed = %+v", m.Embed)
			}
		}},
		{"beat_interval#2", func(t *testing.T, m *TaskMessage) {
			if m.Expires == nil || *m.Priority != 5 || string(m.Kwargs["msg"]) != `"from beat"` {
				t.Errorf("got %+v", m)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.fixture, func(t *testing.T) {
			t.Parallel()
			f := fixtureByName(t, tc.fixture)
			m, err := Decode(f.envelope(t), Accept{})
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, m)
		})
	}
}

// TestReencodeFixtures: decoding a Python client's v2 JSON message and
// encoding it again gives the same body bytes, the same headers (lang aside)
// and the same properties.
func TestReencodeFixtures(t *testing.T) {
	t.Parallel()
	for _, f := range loadFixtures(t) {
		if !jsonFixture(f) || strings.HasPrefix(f.File, "v1_") {
			continue
		}
		t.Run(f.name(), func(t *testing.T) {
			t.Parallel()
			m, err := Decode(f.envelope(t), Accept{})
			if err != nil {
				t.Fatal(err)
			}
			opts := EncodeOptions{}
			if f.Properties.Expiration != "" {
				// Reconstruct the client's clock from expires - expiration.
				ms, err := time.ParseDuration(f.Properties.Expiration + "ms")
				if err != nil {
					t.Fatal(err)
				}
				opts.Now = m.Expires.Add(-ms)
			}
			env, err := EncodeV2(m, opts)
			if err != nil {
				t.Fatal(err)
			}
			if want := f.body(t); !bytes.Equal(env.Body, want) {
				t.Errorf("body differs:\n got %s\nwant %s", env.Body, want)
			}
			want := f.headers(t, false)
			want["lang"] = "go"
			if !reflect.DeepEqual(env.Headers, want) {
				for k := range want {
					if !reflect.DeepEqual(env.Headers[k], want[k]) {
						t.Errorf("header %q = %#v, want %#v", k, env.Headers[k], want[k])
					}
				}
				t.Errorf("headers differ: got %d keys, want %d", len(env.Headers), len(want))
			}
			p := f.Properties
			var prio uint8
			if p.Priority != nil {
				prio = *p.Priority
			}
			if env.ContentType != p.ContentType || env.ContentEncoding != p.ContentEncoding ||
				env.CorrelationID != p.CorrelationID || env.ReplyTo != p.ReplyTo ||
				env.DeliveryMode != p.DeliveryMode || env.Priority != prio || env.Expiration != p.Expiration {
				t.Errorf("properties = %+v, want %+v", env, p)
			}
		})
	}
}

// TestBigIntSurvives: the int beyond 2^53 in v2_kwargs_unicode_nested keeps
// its exact digits through decode and encode.
func TestBigIntSurvives(t *testing.T) {
	t.Parallel()
	f := fixtureByName(t, "v2_kwargs_unicode_nested#0")
	m, err := Decode(f.envelope(t), Accept{})
	if err != nil {
		t.Fatal(err)
	}
	env, err := EncodeV2(m, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(env.Body, []byte(`"big": 9007199254740993,`)) {
		t.Errorf("body lost the big int: %s", env.Body)
	}
	m2, err := Decode(env, Accept{})
	if err != nil {
		t.Fatal(err)
	}
	if string(m2.Kwargs["big"]) != "9007199254740993" {
		t.Errorf("big = %s", m2.Kwargs["big"])
	}
}

func TestSerializerFixtures(t *testing.T) {
	t.Parallel()
	all, err := NewAccept([]string{"json", "msgpack", "yaml"})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("pickle is never decoded", func(t *testing.T) {
		t.Parallel()
		f := fixtureByName(t, "v2_serializer_pickle#0")
		withPickleMIME, err := NewAccept([]string{"json", "application/x-custom"})
		if err != nil {
			t.Fatal(err)
		}
		for _, acc := range []Accept{{}, all, withPickleMIME} {
			_, err := Decode(f.envelope(t), acc)
			me := checkMessageError(t, err, ErrContentDisallowed)
			if me.TaskID != "6e758032-de15-4fcb-9bca-ec71bb768b6f" || me.TaskName != "tasks.add" {
				t.Errorf("error task = %q %q", me.TaskID, me.TaskName)
			}
		}
	})
	for _, tc := range []struct {
		fixture, serializer string
	}{
		{"v2_serializer_msgpack#0", SerializerMsgpack},
		{"v2_serializer_yaml#0", SerializerYAML},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			t.Parallel()
			f := fixtureByName(t, tc.fixture)
			_, err := Decode(f.envelope(t), Accept{})
			me := checkMessageError(t, err, ErrContentDisallowed)
			if me.TaskID != f.Properties.CorrelationID || me.TaskName != "tasks.echo" {
				t.Errorf("error task = %q %q", me.TaskID, me.TaskName)
			}
			only, err := NewAccept([]string{tc.serializer})
			if err != nil {
				t.Fatal(err)
			}
			m, err := Decode(f.envelope(t), only)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Args) != 0 || string(m.Kwargs["s"]) != `"\u00fc"` || string(m.Kwargs["n"]) != "[1, 2.5, null]" ||
				!reflect.DeepEqual(m.KwargsOrder, []string{"s", "n"}) && tc.serializer == SerializerMsgpack {
				t.Errorf("got args %s kwargs %v order %v", m.Args, m.Kwargs, m.KwargsOrder)
			}
			if got := ReprKwargs(m.KwargsOrder, m.Kwargs); tc.serializer == SerializerMsgpack && got != m.KwargsRepr {
				t.Errorf("ReprKwargs = %q, header %q", got, m.KwargsRepr)
			}
			env, err := EncodeV2(m, EncodeOptions{Serializer: tc.serializer})
			if err != nil {
				t.Fatal(err)
			}
			if env.ContentType != f.Properties.ContentType || env.ContentEncoding != f.Properties.ContentEncoding {
				t.Errorf("content = %s/%s", env.ContentType, env.ContentEncoding)
			}
			if tc.serializer == SerializerMsgpack && !bytes.Equal(env.Body, f.body(t)) {
				t.Errorf("msgpack body = %x, want %x", env.Body, f.body(t))
			}
			m2, err := Decode(env, only)
			if err != nil {
				t.Fatalf("decode re-encoded: %v\n%s", err, env.Body)
			}
			b1, _ := appendBodyV2(nil, m)
			b2, _ := appendBodyV2(nil, m2)
			if !jsonEqual(t, b1, b2) {
				t.Errorf("round trip: %s != %s", b1, b2)
			}
		})
	}
}
