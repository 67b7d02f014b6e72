package events

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	const ok = `"type": "worker-heartbeat", "hostname": "h", "timestamp": 1.5`
	for _, tc := range []struct {
		in   string
		want string // in the error
	}{
		{``, "invalid JSON"},
		{`[1]`, "must be a JSON object"}, // through Decode: a list is not an event
		{`"x"`, "must be a JSON object"},
		{`{`, "invalid JSON"},
		{`{"type": "a"`, "invalid JSON"},
		{`{` + ok + `} {}`, "extra data"},
		{`{` + ok + `}x`, "extra data"},
		{`{"hostname": "h", "timestamp": 1}`, `field "type": missing`},
		{`{"type": "t", "timestamp": 1}`, `field "hostname": missing`},
		{`{"type": "t", "hostname": "h"}`, `field "timestamp": missing`},
		{`{"type": "", "hostname": "h", "timestamp": 1}`, `field "type": want a non-empty string`},
		{`{"type": 5, "hostname": "h", "timestamp": 1}`, `field "type": want a non-empty string, got number`},
		{`{"type": "t", "hostname": null, "timestamp": 1}`, `field "hostname": want a string, got null`},
		{`{"type": "t", "hostname": "h", "timestamp": "1"}`, `field "timestamp": want a finite number`},
		{`{"type": "t", "hostname": "h", "timestamp": 1e999}`, `field "timestamp": want a finite number`},
		{`{` + ok + `, "pid": 1.5}`, `field "pid": want an integer, got 1.5`},
		{`{` + ok + `, "utcoffset": 99999999999}`, `field "utcoffset": want an integer`},
		{`{` + ok + `, "clock": "3"}`, `field "clock": want an integer or null`},
		{`{` + ok + `, "uuid": "a", "uuid": "b"}`, `field "uuid": the key appears twice`},
		{`{` + ok + `, "type": "x"}`, `field "type": the key appears twice`},
		{"{\"type\": \"t\xff\", \"hostname\": \"h\", \"timestamp\": 1}", "not valid UTF-8"},
	} {
		_, err := Decode([]byte(tc.in))
		var de *DecodeError
		if err == nil || !errors.As(err, &de) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Decode(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestDecodeKeepsFieldsAndDefaults(t *testing.T) {
	t.Parallel()
	e, err := Decode([]byte(` {"x": {"b": [1, 2]}, "type": "custom-thing", "clock": null, "hostname": "h@x", "a": "\u00e9", "timestamp": 5} `))
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != "custom-thing" || e.Hostname != "h@x" || e.Timestamp != 5 || e.Clock != 0 || e.PID != 0 || e.UTCOffset != 0 {
		t.Fatalf("%+v", e)
	}
	if e.Group() != "custom" || e.RoutingKey() != "custom.thing" || e.UUID() != "" {
		t.Errorf("group %q key %q uuid %q", e.Group(), e.RoutingKey(), e.UUID())
	}
	if s, ok := e.GetString("a"); !ok || s != "é" {
		t.Errorf("a = %q %v", s, ok)
	}
	if _, ok := e.GetString("x"); ok {
		t.Error("x is not a string")
	}
	b, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"hostname": "h@x", "utcoffset": 0, "pid": 0, "clock": 0, "x": {"b": [1, 2]}, "a": "\u00e9", "timestamp": 5.0, "type": "custom-thing"}`
	if string(b) != want {
		t.Errorf("\n got: %s\nwant: %s", b, want)
	}
}

func TestDecodeBody(t *testing.T) {
	t.Parallel()
	one := `{"type": "task-started", "hostname": "h", "timestamp": 1, "uuid": "a"}`
	evs, multi, err := DecodeBody([]byte(one))
	if err != nil || multi || len(evs) != 1 || evs[0].UUID() != "a" {
		t.Fatalf("single: %v %v %v", evs, multi, err)
	}
	evs, multi, err = DecodeBody([]byte(" [" + one + `, {"type": 1}, ` + one + `, 7]`))
	if !multi || len(evs) != 2 {
		t.Fatalf("list: %v %v", evs, multi)
	}
	var de *DecodeError
	if !errors.As(err, &de) || de.Index != 1 || !strings.Contains(err.Error(), "element 3:") {
		t.Errorf("list error: %v", err)
	}
	if _, _, err := DecodeBody([]byte(`[1,`)); err == nil || !strings.Contains(err.Error(), "invalid JSON list") {
		t.Errorf("broken list: %v", err)
	}
	if evs, multi, err := DecodeBody([]byte(`[]`)); err != nil || !multi || len(evs) != 0 {
		t.Errorf("empty list: %v %v %v", evs, multi, err)
	}
}

func TestEncodeErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		e    Event
		want string
	}{
		{Event{}, "without a type"},
		{Event{Type: "t", Timestamp: math.NaN()}, "not a finite number"},
		{Event{Type: "t", Timestamp: math.Inf(1)}, "not a finite number"},
		{Event{Type: "t", Fields: []Field{{"clock", json.RawMessage("1")}}}, `"clock" is a standard field`},
		{Event{Type: "t", Fields: []Field{{"a", json.RawMessage("1")}, {"a", json.RawMessage("2")}}}, `"a" appears twice`},
		{Event{Type: "t", Fields: []Field{{"a", json.RawMessage("{")}}}, `field "a"`},
		{Event{Type: "t", Fields: []Field{{"a", nil}}}, ``}, // a nil value is null: fine
	} {
		_, err := tc.e.MarshalJSON()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%+v: %v", tc.e, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.e, err, tc.want)
		}
	}
	if _, err := EncodeBatch([]Event{{Type: "t"}, {}}); err == nil || !strings.Contains(err.Error(), "element 1") {
		t.Errorf("EncodeBatch: %v", err)
	}
}

func TestNewField(t *testing.T) {
	t.Parallel()
	f, err := NewField("n", map[string]any{"b": 1.0, "a": []any{"é", nil}})
	if err != nil || string(f.Value) != `{"a": ["\u00e9", null], "b": 1.0}` {
		t.Errorf("%s %v", f.Value, err)
	}
	if _, err := NewField("bad", math.Inf(1)); err == nil || !strings.Contains(err.Error(), `field "bad"`) {
		t.Errorf("inf: %v", err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	base := func(fields string) string {
		return `{"type": "task-revoked", "hostname": "h", "timestamp": 1` + fields + `}`
	}
	for _, tc := range []struct {
		in   string
		want string // "" = valid
	}{
		{base(`, "uuid": "u", "terminated": true, "signum": 15, "expired": false`), ""},
		{base(`, "uuid": "u", "terminated": true, "signum": "15", "expired": false`), ""},
		{base(`, "uuid": "u", "terminated": true, "signum": null, "expired": false, "extra": 1`), ""},
		{base(`, "uuid": "u", "terminated": true, "signum": 1.5, "expired": false`), `"signum": want an integer, a string or null`},
		{base(`, "uuid": "u", "terminated": 1, "signum": null, "expired": false`), `"terminated": want a boolean`},
		{base(`, "uuid": "u", "signum": null, "expired": false`), `"terminated" is missing`},
		{`{"type": "task-failed", "hostname": "h", "timestamp": 1, "uuid": "u", "exception": "NotRegistered('x')"}`, ""},
		{`{"type": "worker-online", "hostname": "h", "timestamp": 1, "freq": 2, "active": 0, "processed": 0, "loadavg": [1, 2], "sw_ident": "", "sw_ver": "", "sw_sys": ""}`, `"loadavg": want a list of three numbers`},
		{`{"type": "worker-online", "hostname": "h", "timestamp": 1, "freq": 2, "active": 0.0, "processed": 0, "loadavg": [1, 2, 3], "sw_ident": "", "sw_ver": "", "sw_sys": ""}`, `"active": want an integer`},
		{`{"type": "custom-x", "hostname": "h", "timestamp": 1}`, ""},
	} {
		e, err := Decode([]byte(tc.in))
		if err != nil {
			t.Fatal(err)
		}
		err = e.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: Validate = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestExceptionRepr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		typ  string
		args []string
		want string
	}{
		{"ValueError", []string{"boom"}, "ValueError('boom')"},
		{"KeyError", nil, "KeyError()"},
		{"E", []string{"a", "b\n"}, `E('a', 'b\n')`},
		{"E", []string{`it's "q"`}, `E('it\'s "q"')`},
	} {
		if got := ExceptionRepr(tc.typ, tc.args...); got != tc.want {
			t.Errorf("ExceptionRepr(%q, %q) = %s, want %s", tc.typ, tc.args, got, tc.want)
		}
	}
}

func TestClock(t *testing.T) {
	t.Parallel()
	var c Clock
	if c.Tick() != 1 || c.Tick() != 2 || c.Value() != 2 {
		t.Fatal("Tick")
	}
	if got := c.Forward(10); got != 11 {
		t.Errorf("Forward(10) from 2 = %d, want 11", got)
	}
	if got := c.Forward(3); got != 12 {
		t.Errorf("Forward(3) from 11 = %d, want 12", got)
	}
	// Concurrent ticks and forwards never hand out the same value twice.
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[int64]bool{}
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				var v int64
				if i%5 == 0 {
					v = c.Forward(int64(g))
				} else {
					v = c.Tick()
				}
				mu.Lock()
				if seen[v] {
					t.Errorf("value %d handed out twice", v)
				}
				seen[v] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if c.Value() != 12+8*500 {
		t.Errorf("final %d, want %d", c.Value(), 12+8*500)
	}
}

func TestUTCOffset(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		east int // seconds
		want int // hours west, floored
	}{
		{0, 0}, {3600, -1}, {-5 * 3600, 5}, {5*3600 + 1800, -6}, {-(3*3600 + 1800), 3}, {14 * 3600, -14},
	} {
		tm := time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", tc.east))
		if got := UTCOffset(tm); got != tc.want {
			t.Errorf("UTCOffset(%+ds) = %d, want %d", tc.east, got, tc.want)
		}
	}
}

func TestParseLoadAvg(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want [3]float64
		err  string
	}{
		{"0.85 1.15 0.77 1/146 27363\n", [3]float64{0.85, 1.15, 0.77}, ""},
		{"6.29 3.17 1.55", [3]float64{6.29, 3.17, 1.55}, ""},
		{"0.001 0 12", [3]float64{0.01, 0, 12}, ""}, // rounded up, as Celery does
		{"1 2", [3]float64{}, "want three numbers"},
		{"", [3]float64{}, "want three numbers"},
		{"1 x 3", [3]float64{}, "field 2"},
		{"1 2 -3", [3]float64{}, "field 3"},
		{"NaN 1 1", [3]float64{}, "field 1"},
		{"1 Inf 1", [3]float64{}, "field 2"},
	} {
		got, err := ParseLoadAvg(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseLoadAvg(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseLoadAvg(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if _, err := ReadLoadAvg(); err != nil {
		t.Errorf("ReadLoadAvg on this Linux machine: %v", err)
	}
}

func TestDefaultSoftware(t *testing.T) {
	t.Parallel()
	s := DefaultSoftware()
	if s.Ident != "go-celery" || s.Version == "" || s.System != "Linux" {
		t.Errorf("%+v", s)
	}
	for goos, want := range map[string]string{"darwin": "Darwin", "windows": "Windows", "freebsd": "FreeBSD", "plan9": "Plan9", "": ""} {
		if got := platformSystem(goos); got != want {
			t.Errorf("platformSystem(%q) = %q, want %q", goos, got, want)
		}
	}
}
