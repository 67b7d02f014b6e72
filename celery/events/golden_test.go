package events

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/testenv"
)

// fixture is one ../shared/fixtures/event_*.json capture.
type fixture struct {
	Case     string          `json:"case"`
	Event    json.RawMessage `json:"event"`
	Messages []struct {
		Exchange   string `json:"exchange"`
		RoutingKey string `json:"routing_key"`
		Properties struct {
			ContentType     string         `json:"content_type"`
			ContentEncoding string         `json:"content_encoding"`
			DeliveryMode    int            `json:"delivery_mode"`
			Headers         map[string]any `json:"headers"`
		} `json:"properties"`
		HeaderTypes map[string]string `json:"header_amqp_types"`
		Body        string            `json:"body"`
	} `json:"messages"`
}

func loadFixtures(t testing.TB) map[string]fixture {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(testenv.FixturesDir(t), "event_*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("want the 10 event fixtures, found %d", len(files))
	}
	out := map[string]fixture{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var fx fixture
		if err := json.Unmarshal(b, &fx); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(fx.Messages) != 1 {
			t.Fatalf("%s: want one message, got %d", f, len(fx.Messages))
		}
		out[fx.Case] = fx
	}
	return out
}

// TestGoldenRoundTrip decodes every captured event message and encodes it again: the bytes must be
// exactly Celery's, and the message properties what the Dispatcher sends.
func TestGoldenRoundTrip(t *testing.T) {
	t.Parallel()
	for name, fx := range loadFixtures(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := fx.Messages[0]
			evs, multi, err := DecodeBody([]byte(m.Body))
			if err != nil {
				t.Fatal(err)
			}
			var again []byte
			if multi {
				again, err = EncodeBatch(evs)
			} else {
				again, err = evs[0].MarshalJSON()
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(again) != m.Body {
				t.Fatalf("re-encoded body differs\n got: %s\nwant: %s", again, m.Body)
			}
			wantKey := evs[0].RoutingKey()
			if multi {
				wantKey = evs[0].Group() + ".multi"
			}
			if m.RoutingKey != wantKey || m.Exchange != DefaultExchange {
				t.Errorf("published to %q with key %q; we would use %q, %q", m.Exchange, m.RoutingKey, DefaultExchange, wantKey)
			}
			p := m.Properties
			if p.ContentType != "application/json" || p.ContentEncoding != "utf-8" || p.DeliveryMode != 1 {
				t.Errorf("properties %+v", p)
			}
			if len(p.Headers) != 1 || m.HeaderTypes["hostname"] != "S" {
				t.Errorf("headers %v (types %v), want only hostname as a long string", p.Headers, m.HeaderTypes)
			}
			for i := range evs {
				if p.Headers["hostname"] != evs[i].Hostname {
					t.Errorf("header hostname %v, event %d hostname %q", p.Headers["hostname"], i, evs[i].Hostname)
				}
				if !Known(evs[i].Type) {
					t.Errorf("event %d: type %q unknown", i, evs[i].Type)
				}
				if err := evs[i].Validate(); err != nil {
					t.Errorf("event %d: %v", i, err)
				}
			}
			if fx.Event != nil {
				one, err := Decode(fx.Event)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.ContainsFunc(evs, func(e Event) bool { return reflect.DeepEqual(e, one) }) {
					t.Errorf("the fixture's event %+v is not in its message %+v", one, evs)
				}
			}
		})
	}
}

// fstr is a string field of a decoded fixture event ("" for null or missing).
func fstr(e Event, name string) string {
	s, _ := e.GetString(name)
	return s
}

func fint(t *testing.T, e Event, name string) int {
	raw, _ := e.Get(name)
	n, err := strconv.Atoi(string(raw))
	if err != nil {
		t.Fatalf("%s: field %s: %v", e.Type, name, err)
	}
	return n
}

func ffloat(t *testing.T, e Event, name string) float64 {
	raw, _ := e.Get(name)
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		t.Fatalf("%s: field %s: %v", e.Type, name, err)
	}
	return f
}

func ftime(t *testing.T, e Event, name string) time.Time {
	s := fstr(e, name)
	if s == "" {
		return time.Time{}
	}
	tm, err := protocol.ParseTime(s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func taskInfo(t *testing.T, e Event) TaskInfo {
	return TaskInfo{
		ID: e.UUID(), Name: fstr(e, "name"), ArgsRepr: fstr(e, "args"), KwargsRepr: fstr(e, "kwargs"),
		RootID: fstr(e, "root_id"), ParentID: fstr(e, "parent_id"), Retries: fint(t, e, "retries"),
		ETA: ftime(t, e, "eta"), Expires: ftime(t, e, "expires"),
	}
}

func workerState(t *testing.T, e Event) WorkerState {
	raw, _ := e.Get("loadavg")
	var la [3]float64
	if err := json.Unmarshal(raw, &la); err != nil {
		t.Fatal(err)
	}
	return WorkerState{
		Freq: time.Duration(ffloat(t, e, "freq") * float64(time.Second)), Active: fint(t, e, "active"),
		Processed: fint(t, e, "processed"), LoadAvg: la,
		Software: Software{Ident: fstr(e, "sw_ident"), Version: fstr(e, "sw_ver"), System: fstr(e, "sw_sys")},
	}
}

// TestGoldenConstructors builds every captured event with our constructor from the captured values:
// stamped with the captured standard fields, it must encode to Celery's exact bytes (runtime, a
// float that a time.Duration cannot hold exactly, is compared to the nanosecond).
func TestGoldenConstructors(t *testing.T) {
	t.Parallel()
	build := map[string]func(t *testing.T, e Event) Event{
		TypeTaskSent: func(t *testing.T, e Event) Event {
			return NewTaskSent(taskInfo(t, e), fstr(e, "queue"), fstr(e, "exchange"), fstr(e, "routing_key"))
		},
		TypeTaskReceived: func(t *testing.T, e Event) Event { return NewTaskReceived(taskInfo(t, e)) },
		TypeTaskStarted:  func(t *testing.T, e Event) Event { return NewTaskStarted(e.UUID()) },
		TypeTaskSucceeded: func(t *testing.T, e Event) Event {
			if fstr(e, "result") != "5" {
				t.Fatalf("the fixture's result changed: %q", fstr(e, "result"))
			}
			rt := time.Duration(math.Round(ffloat(t, e, "runtime") * 1e9))
			return NewTaskSucceeded(e.UUID(), json.RawMessage(`5`), rt)
		},
		TypeTaskFailed: func(t *testing.T, e Event) Event {
			return NewTaskFailed(e.UUID(), fstr(e, "exception"), fstr(e, "traceback"))
		},
		TypeTaskRetried: func(t *testing.T, e Event) Event {
			return NewTaskRetried(e.UUID(), fstr(e, "exception"), fstr(e, "traceback"))
		},
		TypeWorkerOnline:    func(t *testing.T, e Event) Event { return NewWorkerOnline(workerState(t, e)) },
		TypeWorkerHeartbeat: func(t *testing.T, e Event) Event { return NewWorkerHeartbeat(workerState(t, e)) },
		TypeWorkerOffline:   func(t *testing.T, e Event) Event { return NewWorkerOffline(workerState(t, e)) },
	}
	covered := map[string]bool{}
	for name, fx := range loadFixtures(t) {
		evs, _, err := DecodeBody([]byte(fx.Messages[0].Body))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range evs {
			covered[want.Type] = true
			t.Run(name+"/"+want.Type, func(t *testing.T) {
				t.Parallel()
				got := build[want.Type](t, want)
				if got.Type != want.Type {
					t.Fatalf("type %q, want %q", got.Type, want.Type)
				}
				got.Hostname, got.UTCOffset, got.PID, got.Clock, got.Timestamp = want.Hostname, want.UTCOffset, want.PID, want.Clock, want.Timestamp
				if got.Type == TypeTaskSucceeded {
					g, w := ffloat(t, got, "runtime"), ffloat(t, want, "runtime")
					if math.Abs(g-w) > 1e-9 {
						t.Errorf("runtime %v, want %v", g, w)
					}
					setField(&got, "runtime", json.RawMessage("0.5"))
					setField(&want, "runtime", json.RawMessage("0.5"))
				}
				gb, err := got.MarshalJSON()
				if err != nil {
					t.Fatal(err)
				}
				wb, _ := want.MarshalJSON()
				if string(gb) != string(wb) {
					t.Errorf("constructor differs from Celery\n got: %s\nwant: %s", gb, wb)
				}
			})
		}
	}
	for typ := range build {
		if !covered[typ] {
			t.Errorf("no fixture covers %s", typ)
		}
	}
}

func setField(e *Event, name string, v json.RawMessage) {
	for i := range e.Fields {
		if e.Fields[i].Name == name {
			e.Fields[i].Value = v
		}
	}
}

// TestConstructorsWithoutFixture covers the types the capture run did not produce, against the
// field lists of Celery 5.2's code (worker/request.py: _announce_revoked, reject).
func TestConstructorsWithoutFixture(t *testing.T) {
	t.Parallel()
	stamp := func(e Event) Event {
		e.Hostname, e.UTCOffset, e.PID, e.Clock, e.Timestamp = "celery@vm", 0, 7, 3, 1795630316.5
		return e
	}
	for _, tc := range []struct {
		e    Event
		want string
	}{
		{NewTaskRevoked("u1", false, 0, true),
			`{"hostname": "celery@vm", "utcoffset": 0, "pid": 7, "clock": 3, "uuid": "u1", "terminated": false, "signum": null, "expired": true, "timestamp": 1795630316.5, "type": "task-revoked"}`},
		{NewTaskRevoked("u2", true, 15, false),
			`{"hostname": "celery@vm", "utcoffset": 0, "pid": 7, "clock": 3, "uuid": "u2", "terminated": true, "signum": 15, "expired": false, "timestamp": 1795630316.5, "type": "task-revoked"}`},
		{NewTaskRejected("u3", true),
			`{"hostname": "celery@vm", "utcoffset": 0, "pid": 7, "clock": 3, "uuid": "u3", "requeue": true, "timestamp": 1795630316.5, "type": "task-rejected"}`},
		{NewTaskReceived(TaskInfo{ID: "u4", Name: "t", ArgsRepr: "()", KwargsRepr: "{'a': 'é'}", Retries: 2,
			ETA: time.Date(2026, 11, 25, 18, 0, 0, 123456000, time.FixedZone("", 2*3600)), Expires: time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)}),
			`{"hostname": "celery@vm", "utcoffset": 0, "pid": 7, "clock": 3, "uuid": "u4", "name": "t", "args": "()", "kwargs": "{'a': '\u00e9'}", "root_id": null, "parent_id": null, "retries": 2, "eta": "2026-11-25T18:00:00.123456+02:00", "expires": "2026-11-26T00:00:00+00:00", "timestamp": 1795630316.5, "type": "task-received"}`},
		{NewTaskSucceeded("u5", json.RawMessage(`{"a": [1, 2.5, null, true]}`), 1500*time.Millisecond),
			`{"hostname": "celery@vm", "utcoffset": 0, "pid": 7, "clock": 3, "uuid": "u5", "result": "{'a': [1, 2.5, None, True]}", "runtime": 1.5, "timestamp": 1795630316.5, "type": "task-succeeded"}`},
		{NewTaskSucceeded("u6", nil, 0),
			`{"hostname": "celery@vm", "utcoffset": 0, "pid": 7, "clock": 3, "uuid": "u6", "result": "None", "runtime": 0.0, "timestamp": 1795630316.5, "type": "task-succeeded"}`},
		{NewTaskFailed("u7", ExceptionRepr("ValueError", "it's"), "Traceback\n"),
			`{"hostname": "celery@vm", "utcoffset": 0, "pid": 7, "clock": 3, "uuid": "u7", "exception": "ValueError(\"it's\")", "traceback": "Traceback\n", "timestamp": 1795630316.5, "type": "task-failed"}`},
		{NewWorkerHeartbeat(WorkerState{Freq: 2 * time.Second, Active: 1, LoadAvg: [3]float64{1, 0.5, math.NaN()}, Software: Software{"go-celery", "v1", "Linux"}}),
			`{"hostname": "celery@vm", "utcoffset": 0, "pid": 7, "clock": 3, "freq": 2.0, "active": 1, "processed": 0, "loadavg": [1.0, 0.5, 0.0], "sw_ident": "go-celery", "sw_ver": "v1", "sw_sys": "Linux", "timestamp": 1795630316.5, "type": "worker-heartbeat"}`},
	} {
		e := stamp(tc.e)
		b, err := e.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("%s\n got: %s\nwant: %s", tc.e.Type, b, tc.want)
		}
		if err := e.Validate(); err != nil {
			t.Error(err)
		}
	}
}

// TestEveryConstructorFollowsSchema checks the field names, order and JSON types of all eleven.
func TestEveryConstructorFollowsSchema(t *testing.T) {
	t.Parallel()
	ti := TaskInfo{ID: "id", Name: "n", ArgsRepr: "()", KwargsRepr: "{}", RootID: "r", ParentID: "p"}
	ws := WorkerState{Freq: time.Second, Software: DefaultSoftware()}
	all := []Event{
		NewTaskSent(ti, "q", "x", "k"), NewTaskReceived(ti), NewTaskStarted("id"),
		NewTaskSucceeded("id", json.RawMessage(`"s"`), time.Millisecond), NewTaskFailed("id", "E()", ""),
		NewTaskRetried("id", "E()", ""), NewTaskRevoked("id", true, 9, false), NewTaskRejected("id", false),
		NewWorkerOnline(ws), NewWorkerHeartbeat(ws), NewWorkerOffline(ws),
	}
	if len(all) != len(schema) {
		t.Fatalf("%d constructors for %d types", len(all), len(schema))
	}
	for _, e := range all {
		var names, want []string
		for _, f := range e.Fields {
			names = append(names, f.Name)
		}
		for _, s := range schema[e.Type] {
			want = append(want, s.name)
		}
		if !slices.Equal(names, want) {
			t.Errorf("%s fields %v, want %v", e.Type, names, want)
		}
		if err := e.Validate(); err != nil {
			t.Error(err)
		}
		if e.Group() != GroupTask && e.Group() != GroupWorker {
			t.Errorf("%s: group %q", e.Type, e.Group())
		}
	}
}
