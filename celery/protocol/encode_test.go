package protocol

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"
)

func TestEncodeV2Minimal(t *testing.T) {
	t.Parallel()
	m := &TaskMessage{ID: testID, Task: "proj.tasks.add", Args: raws("2", "2"), Origin: "gen123@host", ReplyTo: "reply-oid"}
	env, err := EncodeV2(m, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantHeaders := map[string]any{
		"lang": "go", "task": "proj.tasks.add", "id": testID, "shadow": nil, "eta": nil, "expires": nil,
		"group": nil, "group_index": nil, "retries": int32(0), "timelimit": []any{nil, nil}, "root_id": testID,
		"parent_id": nil, "argsrepr": "(2, 2)", "kwargsrepr": "{}", "origin": "gen123@host", "ignore_result": false,
	}
	if !reflect.DeepEqual(env.Headers, wantHeaders) {
		t.Errorf("headers = %#v", env.Headers)
	}
	wantBody := `[[2, 2], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`
	if string(env.Body) != wantBody {
		t.Errorf("body = %s", env.Body)
	}
	want := Envelope{Body: env.Body, ContentType: "application/json", ContentEncoding: "utf-8", Headers: env.Headers,
		CorrelationID: testID, ReplyTo: "reply-oid", DeliveryMode: 2}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("envelope = %+v", env)
	}
}

func TestEncodeV2Fields(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	base := func() *TaskMessage { return &TaskMessage{ID: "id1", Task: "t"} }
	tests := []struct {
		name   string
		mutate func(m *TaskMessage)
		check  func(t *testing.T, env Envelope)
	}{
		{"eta keeps its offset", func(m *TaskMessage) {
			m.ETA = ptr(time.Date(2030, 1, 2, 3, 4, 5, 678901999, time.FixedZone("", 7200)))
		}, func(t *testing.T, env Envelope) {
			if env.Headers["eta"] != "2030-01-02T03:04:05.678901+02:00" || env.Expiration != "" {
				t.Errorf("eta = %v, expiration %q", env.Headers["eta"], env.Expiration)
			}
		}},
		{"expires sets expiration in whole ms", func(m *TaskMessage) {
			m.Expires = ptr(now.Add(300*time.Second + 999*time.Microsecond))
		}, func(t *testing.T, env Envelope) {
			if env.Headers["expires"] != "2026-01-01T00:05:00.000999+00:00" || env.Expiration != "300000" {
				t.Errorf("expires = %v, expiration %q", env.Headers["expires"], env.Expiration)
			}
		}},
		{"expires in the past gives 0", func(m *TaskMessage) {
			m.Expires = ptr(now.Add(-time.Hour))
		}, func(t *testing.T, env Envelope) {
			if env.Expiration != "0" {
				t.Errorf("expiration = %q", env.Expiration)
			}
		}},
		{"ids, group, shadow, priority", func(m *TaskMessage) {
			m.RootID, m.ParentID, m.GroupID, m.GroupIndex, m.Shadow = "root", "parent", "g", ptr(3), "sh"
			m.Priority, m.IgnoreResult, m.CorrelationID = ptr(uint8(9)), true, "ignored"
		}, func(t *testing.T, env Envelope) {
			h := env.Headers
			if h["root_id"] != "root" || h["parent_id"] != "parent" || h["group"] != "g" || h["group_index"] != int32(3) ||
				h["shadow"] != "sh" || h["ignore_result"] != true || env.Priority != 9 || env.CorrelationID != "id1" {
				t.Errorf("got %+v", env)
			}
		}},
		{"retries beyond int32", func(m *TaskMessage) { m.Retries = math.MaxInt32 + 1 }, func(t *testing.T, env Envelope) {
			if env.Headers["retries"] != int64(math.MaxInt32+1) {
				t.Errorf("retries = %#v", env.Headers["retries"])
			}
		}},
		{"timelimit whole numbers as ints", func(m *TaskMessage) {
			m.TimeLimit = TimeLimit{Hard: ptr(30.0), Soft: ptr(1.5)}
		}, func(t *testing.T, env Envelope) {
			if !reflect.DeepEqual(env.Headers["timelimit"], []any{int32(30), 1.5}) {
				t.Errorf("timelimit = %#v", env.Headers["timelimit"])
			}
		}},
		{"given reprs are kept", func(m *TaskMessage) {
			m.Args, m.ArgsRepr, m.KwargsRepr = raws("1"), "[1]", "custom"
		}, func(t *testing.T, env Envelope) {
			if env.Headers["argsrepr"] != "[1]" || env.Headers["kwargsrepr"] != "custom" {
				t.Errorf("reprs = %v %v", env.Headers["argsrepr"], env.Headers["kwargsrepr"])
			}
		}},
		{"kwargs order, python escapes, canvas", func(m *TaskMessage) {
			m.Kwargs = map[string]json.RawMessage{"a": json.RawMessage(`"é"`), "b": json.RawMessage(`{"x":[1,2.50]}`)}
			m.KwargsOrder = []string{"b", "a"}
			m.Embed = Embed{Chain: []Signature{}, Chord: &Signature{Task: "body", Immutable: true}}
		}, func(t *testing.T, env Envelope) {
			want := `[[], {"b": {"x": [1, 2.5]}, "a": "\u00e9"}, {"callbacks": null, "errbacks": null, "chain": [], ` +
				`"chord": {"task": "body", "args": [], "kwargs": {}, "options": {}, "subtask_type": null, "immutable": true}}]`
			if string(env.Body) != want {
				t.Errorf("body\n got %s\nwant %s", env.Body, want)
			}
			if env.Headers["kwargsrepr"] != "{'b': {'x': [1, 2.5]}, 'a': 'é'}" {
				t.Errorf("kwargsrepr = %v", env.Headers["kwargsrepr"])
			}
		}},
		{"extra headers converted, own headers protected", func(m *TaskMessage) {
			m.ExtraHeaders = map[string]any{
				"task": "evil", "compression": "x", "x-int": 7, "x-big": uint64(1 << 40), "x-neg-edge": int64(math.MinInt32),
				"x-bytes": []byte("b"), "x-time": time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), "x-f32": float32(0.5),
				"x-table": amqpTable{"l": []int{1, 2}}, "x-nil": nil,
			}
		}, func(t *testing.T, env Envelope) {
			h := env.Headers
			if h["task"] != "t" {
				t.Errorf("task overridden: %v", h["task"])
			}
			if _, ok := h["compression"]; ok {
				t.Error("compression header leaked from ExtraHeaders")
			}
			want := map[string]any{
				"x-int": int32(7), "x-big": int64(1 << 40), "x-neg-edge": int64(math.MinInt32), "x-bytes": "b",
				"x-time": "2024-01-01T00:00:00+00:00", "x-f32": 0.5,
				"x-table": map[string]any{"l": []any{int32(1), int32(2)}}, "x-nil": nil,
			}
			for k, v := range want {
				if !reflect.DeepEqual(h[k], v) {
					t.Errorf("%s = %#v, want %#v", k, h[k], v)
				}
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := base()
			tc.mutate(m)
			env, err := EncodeV2(m, EncodeOptions{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, env)
		})
	}
}

func TestEncodeV2Errors(t *testing.T) {
	t.Parallel()
	ok := func() *TaskMessage { return &TaskMessage{ID: "i", Task: "t"} }
	tests := []struct {
		name string
		m    *TaskMessage
		opts EncodeOptions
	}{
		{"nil message", nil, EncodeOptions{}},
		{"no id", &TaskMessage{Task: "t"}, EncodeOptions{}},
		{"no task", &TaskMessage{ID: "i"}, EncodeOptions{}},
		{"unknown serializer", ok(), EncodeOptions{Serializer: "pickle"}},
		{"bzip2 cannot be written", ok(), EncodeOptions{Compression: "bzip2"}},
		{"invalid raw arg", &TaskMessage{ID: "i", Task: "t", Args: raws("{")}, EncodeOptions{}},
		{"invalid raw kwarg", &TaskMessage{ID: "i", Task: "t", Kwargs: map[string]json.RawMessage{"k": nil}}, EncodeOptions{}},
		{"invalid signature", &TaskMessage{ID: "i", Task: "t", Embed: Embed{Callbacks: []Signature{{Args: raws("x")}}}}, EncodeOptions{}},
		{"unsupported header", &TaskMessage{ID: "i", Task: "t", ExtraHeaders: map[string]any{"x": struct{}{}}}, EncodeOptions{}},
		{"header uint64 overflow", &TaskMessage{ID: "i", Task: "t", ExtraHeaders: map[string]any{"x": []any{uint64(math.MaxUint64)}}}, EncodeOptions{}},
		{"msgpack int beyond 64 bits", &TaskMessage{ID: "i", Task: "t", Args: raws("123456789012345678901234567890")}, EncodeOptions{Serializer: "msgpack"}},
		{"yaml float overflow", &TaskMessage{ID: "i", Task: "t", Args: raws("1e400")}, EncodeOptions{Serializer: "yaml"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if env, err := EncodeV2(tc.m, tc.opts); err == nil {
				t.Errorf("EncodeV2 = %+v, want an error", env)
			}
		})
	}
}

// TestEncodeDecodeRoundTrip encodes with every serializer and compression and
// decodes the result back.
func TestEncodeDecodeRoundTrip(t *testing.T) {
	t.Parallel()
	all, err := NewAccept([]string{"json", "msgpack", "yaml"})
	if err != nil {
		t.Fatal(err)
	}
	eta := time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.FixedZone("", -3600))
	orig := &TaskMessage{
		ID: "id-1", Task: "tasks.echo", Shadow: "sh", Retries: 2, RootID: "r", ParentID: "p", GroupID: "g",
		GroupIndex: ptr(0), ETA: &eta, Origin: "gen1@h", IgnoreResult: true, ReplyTo: "oid",
		Args:        raws(`"yes"`, `"2024-01-01"`, "1.0", "-7", `{"k": [true, null]}`, `"line\nnew ü 🚀"`, "1e-07", "18446744073709551615"),
		Kwargs:      map[string]json.RawMessage{"z": json.RawMessage("0.5"), "a": json.RawMessage(`"0x1F"`)},
		KwargsOrder: []string{"z", "a"},
		TimeLimit:   TimeLimit{Hard: ptr(60.0)},
		Embed: Embed{
			Callbacks: []Signature{{Task: "cb", Args: raws("1"), Options: map[string]json.RawMessage{"queue": json.RawMessage(`"q"`)}}},
			Chain:     []Signature{{Task: "next", SubtaskType: "chain"}},
		},
		ExtraHeaders: map[string]any{"x-tenant": "acme", "x-n": int64(5)},
	}
	for _, serializer := range []string{"", "json", "msgpack", "yaml"} {
		for _, compression := range []string{"", "gzip"} {
			t.Run(serializer+"/"+compression, func(t *testing.T) {
				t.Parallel()
				env, err := EncodeV2(orig, EncodeOptions{Serializer: serializer, Compression: compression})
				if err != nil {
					t.Fatal(err)
				}
				if compression != "" && env.Headers["compression"] != CompressionZlib {
					t.Errorf("compression header = %v", env.Headers["compression"])
				}
				got, err := Decode(env, all)
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				b1, _ := appendBodyV2(nil, orig)
				b2, _ := appendBodyV2(nil, got)
				if string(b1) != string(b2) {
					t.Errorf("body\n got %s\nwant %s", b2, b1)
				}
				if got.ID != orig.ID || got.Task != orig.Task || got.Shadow != orig.Shadow || got.Retries != 2 ||
					got.RootID != "r" || got.ParentID != "p" || got.GroupID != "g" || *got.GroupIndex != 0 ||
					!got.ETA.Equal(eta) || got.Origin != orig.Origin || !got.IgnoreResult || got.ReplyTo != "oid" ||
					*got.TimeLimit.Hard != 60 || got.TimeLimit.Soft != nil || got.Protocol != 2 {
					t.Errorf("got %+v", got)
				}
				if !reflect.DeepEqual(got.ExtraHeaders, map[string]any{"x-tenant": "acme", "x-n": int64(5)}) {
					t.Errorf("ExtraHeaders = %v", got.ExtraHeaders)
				}
				if got.ArgsRepr != ReprArgs(orig.Args) {
					t.Errorf("ArgsRepr = %q", got.ArgsRepr)
				}
			})
		}
	}
}
