package workerctl

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestControlArgDecoders(t *testing.T) {
	t.Parallel()
	sec := func(f float64) *time.Duration { d := time.Duration(f * float64(time.Second)); return &d }
	tests := []struct {
		name    string
		decode  func(json.RawMessage) (any, error)
		args    string
		want    any
		wantErr string
	}{
		{"time_limit", tl, `{"task_name": "t", "soft": 1.5, "hard": 2}`, timeLimitArgs{TaskName: "t", Soft: sec(1.5), Hard: sec(2)}, ""},
		{"time_limit nulls", tl, `{"task_name": "t", "soft": null}`, timeLimitArgs{TaskName: "t"}, ""},
		{"time_limit no task", tl, `{"soft": 1}`, nil, "task_name is required"},
		{"time_limit negative", tl, `{"task_name": "t", "hard": -1}`, nil, "from 0 to 1e9"},
		{"time_limit string", tl, `{"task_name": "t", "hard": "2"}`, nil, "hard must be a number"},
		{"time_limit not an object", tl, `[1]`, nil, "arguments must be a JSON object"},
		{"add_consumer", qa, `{"queue": "q", "exchange": "x", "exchange_type": "topic", "routing_key": "k"}`, queueArgs{"q", "x", "topic", "k"}, ""},
		{"add_consumer nulls", qa, `{"queue": "q", "exchange": null, "exchange_type": null, "routing_key": null}`, queueArgs{Queue: "q"}, ""},
		{"add_consumer no queue", qa, `{}`, nil, "queue is required"},
		{"add_consumer bad type", qa, `{"queue": "q", "exchange_type": "x-bogus"}`, nil, "unknown exchange_type"},
		{"add_consumer queue not a string", qa, `{"queue": 5}`, nil, "queue must be a string"},
		{"pool default", pa, `{}`, 1, ""},
		{"pool n", pa, `{"n": 4}`, 4, ""},
		{"pool zero", pa, `{"n": 0}`, nil, "from 1 to 10000"},
		{"pool float", pa, `{"n": 1.5}`, nil, "from 1 to 10000"},
		{"query_task one", qt, `{"ids": "a"}`, []string{"a"}, ""},
		{"query_task list", qt, `{"ids": ["a", "b"]}`, []string{"a", "b"}, ""},
		{"query_task none", qt, `null`, []string(nil), ""},
		{"query_task empty id", qt, `{"ids": [""]}`, nil, "empty string"},
		{"query_task number", qt, `{"ids": [1]}`, nil, "must hold strings"},
		{"hello", he, `{"from_node": "celery@py", "revoked": {"b": [1.5, "b"], "a": 2}}`, helloArgs{"celery@py", []string{"a", "b"}}, ""},
		{"hello no revoked", he, `{"from_node": "n", "revoked": {}}`, helloArgs{FromNode: "n"}, ""},
		{"hello no node", he, `{"revoked": {}}`, nil, "from_node is required"},
		{"hello bad time", he, `{"from_node": "n", "revoked": {"a": "soon"}}`, nil, `revoked["a"]`},
		{"hello empty pair", he, `{"from_node": "n", "revoked": {"a": []}}`, nil, `revoked["a"]`},
		{"hello revoked list", he, `{"from_node": "n", "revoked": ["a"]}`, nil, "revoked must be an object"},
		{"registered", re, `{"taskinfoitems": ["rate_limit"]}`, registeredArgs{[]string{"rate_limit"}}, ""},
		{"registered default", re, `{}`, registeredArgs{}, ""},
		{"conf", co, `{"with_defaults": true}`, true, ""},
		{"conf string", co, `{"with_defaults": "yes"}`, true, ""},
		{"conf off", co, `{"with_defaults": "0"}`, false, ""},
		{"conf bad", co, `{"with_defaults": "maybe"}`, nil, "with_defaults must be a boolean"},
		{"shutdown", sh, `{}`, "Got shutdown from remote", ""},
		{"shutdown msg", sh, `{"msg": "bye"}`, "bye", ""},
		{"shutdown bad msg", sh, `{"msg": 1}`, nil, "msg must be a string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.decode(json.RawMessage(tc.args))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("decoding %s = %v, %v; want an error containing %q", tc.args, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("decoding %s: %v", tc.args, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("decoding %s = %#v, want %#v", tc.args, got, tc.want)
			}
		})
	}
}

func tl(a json.RawMessage) (any, error) { return decodeTimeLimitArgs(a) }
func qa(a json.RawMessage) (any, error) { return decodeQueueArgs("add_consumer", a) }
func pa(a json.RawMessage) (any, error) { return decodePoolArgs("pool_grow", a) }
func qt(a json.RawMessage) (any, error) { return decodeQueryTaskArgs(a) }
func he(a json.RawMessage) (any, error) { return decodeHelloArgs(a) }
func re(a json.RawMessage) (any, error) { return decodeRegisteredArgs(a) }
func co(a json.RawMessage) (any, error) { return decodeConfArgs(a) }
func sh(a json.RawMessage) (any, error) { return decodeShutdownArgs(a) }

func TestDecodeHelloReply(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    helloReply
		wantErr string
	}{
		{`null`, helloReply{}, ""},
		{`{"revoked": {"x": [3.5, "x"]}, "clock": 9}`, helloReply{Revoked: []string{"x"}, Clock: 9}, ""},
		{`{"error": "KeyError('hello')"}`, helloReply{}, "answered an error"},
		{`{"clock": -1}`, helloReply{}, "clock must be"},
		{`{"revoked": {"x": "y"}}`, helloReply{}, `revoked["x"]`},
		{`"text"`, helloReply{}, "must be a JSON object"},
	} {
		got, err := decodeHelloReply(json.RawMessage(tc.in))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("decodeHelloReply(%s) = %+v, %v; want %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("decodeHelloReply(%s) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

// FuzzControlArgs feeds every argument decoder the same bytes: none panics, an accepted value
// keeps its invariants, and re-encoding what was decoded decodes to the same value.
func FuzzControlArgs(f *testing.F) {
	for _, s := range []string{
		`{}`, `null`, ``, `[]`, `{"task_name": "t", "soft": 1.5, "hard": 2}`, `{"queue": "q", "exchange": "x", "exchange_type": "topic"}`,
		`{"n": 3}`, `{"ids": ["a", "b"]}`, `{"ids": "a"}`, `{"from_node": "celery@py", "revoked": {"a": [1.5, "a"], "b": 2}}`,
		`{"taskinfoitems": ["rate_limit"]}`, `{"with_defaults": "yes"}`, `{"msg": "bye"}`, `{"revoked": {"x": 1}, "clock": 3}`,
		`{"error": "KeyError('hello')"}`, `{"n": 1e400}`, `{"soft": -0}`, "{\"queue\": \"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		raw := json.RawMessage(data)
		if a, err := decodeTimeLimitArgs(raw); err == nil {
			if a.TaskName == "" || (a.Soft != nil && *a.Soft < 0) || (a.Hard != nil && *a.Hard < 0) {
				t.Fatalf("time_limit accepted %+v", a)
			}
			m := map[string]any{"task_name": a.TaskName}
			if a.Soft != nil {
				m["soft"] = a.Soft.Seconds()
			}
			if a.Hard != nil {
				m["hard"] = a.Hard.Seconds()
			}
			again, err := decodeTimeLimitArgs(mustJSON(t, m))
			if err != nil || again.TaskName != a.TaskName || !sameDur(again.Soft, a.Soft) || !sameDur(again.Hard, a.Hard) {
				t.Fatalf("time_limit round trip: %+v -> %+v, %v", a, again, err)
			}
		}
		if a, err := decodeQueueArgs("add_consumer", raw); err == nil {
			if a.Queue == "" {
				t.Fatal("add_consumer accepted no queue")
			}
			again, err := decodeQueueArgs("add_consumer", mustJSON(t, map[string]string{"queue": a.Queue,
				"exchange": a.Exchange, "exchange_type": a.ExchangeType, "routing_key": a.RoutingKey}))
			if err != nil || again != a {
				t.Fatalf("add_consumer round trip: %+v -> %+v, %v", a, again, err)
			}
		}
		if n, err := decodePoolArgs("pool_grow", raw); err == nil && (n < 1 || n > 10000) {
			t.Fatalf("pool_grow accepted n=%d", n)
		}
		if ids, err := decodeQueryTaskArgs(raw); err == nil {
			for _, id := range ids {
				if id == "" {
					t.Fatal("query_task accepted an empty id")
				}
			}
			if ids != nil {
				again, err := decodeQueryTaskArgs(mustJSON(t, map[string]any{"ids": ids}))
				if err != nil || !reflect.DeepEqual(again, ids) {
					t.Fatalf("query_task round trip: %q -> %q, %v", ids, again, err)
				}
			}
		}
		if a, err := decodeHelloArgs(raw); err == nil {
			if a.FromNode == "" {
				t.Fatal("hello accepted no from_node")
			}
			revoked := map[string]float64{}
			for _, id := range a.Revoked {
				revoked[id] = 1.5
			}
			again, err := decodeHelloArgs(mustJSON(t, map[string]any{"from_node": a.FromNode, "revoked": revoked}))
			if err != nil || again.FromNode != a.FromNode || len(again.Revoked) != len(a.Revoked) {
				t.Fatalf("hello round trip: %+v -> %+v, %v", a, again, err)
			}
		}
		if r, err := decodeHelloReply(raw); err == nil {
			for _, id := range r.Revoked {
				if id == "" {
					t.Fatal("hello reply accepted an empty id")
				}
			}
		}
		_, _ = decodeRegisteredArgs(raw)
		_, _ = decodeConfArgs(raw)
		if msg, err := decodeShutdownArgs(raw); err == nil && msg == "" {
			t.Fatal("shutdown gave an empty message")
		}
	})
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameDur compares durations that went through float seconds (a nanosecond may be lost).
func sameDur(a, b *time.Duration) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	d := *a - *b
	return d >= -time.Microsecond && d <= time.Microsecond
}
