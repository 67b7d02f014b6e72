package interop

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// pyExc is an exception as client.py describes it.
type pyExc struct {
	Class       string   `json:"class"`
	Module      string   `json:"module"`
	Str         string   `json:"str"`
	Args        []string `json:"args"`
	IsException bool     `json:"is_exception"`
}

// outcome is what client.py's outcome() read from one AsyncResult.
type outcome struct {
	ID           string          `json:"id"`
	Value        json.RawMessage `json:"value"`
	Raised       *pyExc          `json:"raised"`
	State        string          `json:"state"`
	Successful   *bool           `json:"successful"`
	Ready        *bool           `json:"ready"`
	Result       json.RawMessage `json:"result"`
	DateDoneType string          `json:"date_done_type"`
	DateDone     *string         `json:"date_done"`
}

// pyDateDone is how Python's datetime.isoformat() writes a naive date_done.
const pyDateDone = "2006-01-02T15:04:05.999999"

// wantSuccess asserts that Python saw the task succeed with the JSON value want.
func wantSuccess(t *testing.T, what string, o outcome, want string) {
	t.Helper()
	if o.Raised != nil {
		t.Errorf("%s: get() raised %s(%q), want the value %s", what, o.Raised.Class, o.Raised.Str, want)
		return
	}
	if !jsonEqual(t, o.Value, []byte(want)) {
		t.Errorf("%s: get() = %s, want %s", what, o.Value, want)
	}
	if !jsonEqual(t, o.Result, []byte(want)) {
		t.Errorf("%s: .result = %s, want %s", what, o.Result, want)
	}
	if o.State != "SUCCESS" {
		t.Errorf("%s: .state = %q, want SUCCESS", what, o.State)
	}
	if o.Successful == nil || !*o.Successful || o.Ready == nil || !*o.Ready {
		t.Errorf("%s: .successful() = %v, .ready() = %v, want true, true", what, deref(o.Successful), deref(o.Ready))
	}
	if o.DateDoneType != "datetime" || o.DateDone == nil {
		t.Errorf("%s: .date_done is a %q (%v), want a datetime", what, o.DateDoneType, deref(o.DateDone))
	} else if _, err := time.Parse(pyDateDone, *o.DateDone); err != nil {
		t.Errorf("%s: .date_done %q is not a naive ISO time: %v", what, *o.DateDone, err)
	}
}

// wantRaised asserts that get() raised the exception class (and module, when given) with the
// message, and that the state is state.
func wantRaised(t *testing.T, what string, o outcome, class, module, message, state string) {
	t.Helper()
	if o.Raised == nil {
		t.Errorf("%s: get() returned %s, want it to raise %s", what, o.Value, class)
		return
	}
	e := o.Raised
	if e.Class != class || (module != "" && e.Module != module) || !e.IsException {
		t.Errorf("%s: get() raised %s.%s (an Exception: %v), want %s.%s", what, e.Module, e.Class, e.IsException, module, class)
	}
	if message != "" && e.Str != message {
		t.Errorf("%s: str(exception) = %q, want %q", what, e.Str, message)
	}
	if o.State != state {
		t.Errorf("%s: .state = %q, want %q", what, o.State, state)
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// jsonEqual compares two JSON texts by value, numbers exactly.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := decodeJSON(a, &va); err != nil {
		t.Errorf("decoding %.200s: %v", a, err)
		return false
	}
	if err := decodeJSON(b, &vb); err != nil {
		t.Errorf("decoding %.200s: %v", b, err)
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// unmarshalReport decodes a report, failing the test if it does not fit v.
func unmarshalReport(t *testing.T, report []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(report, v); err != nil {
		t.Fatalf("report %.2000s: %v", report, err)
	}
}

// echoPayload is the kwargs of the echo case: text beyond ASCII and the BMP, nesting, integers
// beyond float64's exact range, and a 1 MiB string.
func echoPayload() map[string]any {
	return map[string]any{
		"text":    "naïve café: Grüße, Здравствуйте, 日本語, עברית",
		"emoji":   "🎉🐍🦫 and a flag 🇪🇺",
		"escapes": "quote \" backslash \\ tab \t newline \n nul \u0000 <html>&amp;",
		"nested": map[string]any{
			"list":  []any{1, 2.5, "x", nil, true, false, []any{}, map[string]any{"deep": []any{map[string]any{"k": "v"}}}},
			"empty": map[string]any{},
		},
		"big":          json.Number("12345678901234567890123"), // > 2**64
		"over53":       json.Number("9007199254740993"),        // 2**53 + 1
		"neg_big":      json.Number("-9223372036854775809"),    // -(2**63) - 1
		"mib":          strings.Repeat("€abcde", 1<<17),        // 1 MiB of UTF-8
		"ünïcode ключ": []any{"keys too"},
	}
}

// deadLetter is a message client.py took from the dead-letter queue.
type deadLetter struct {
	Headers    map[string]any `json:"headers"`
	Properties map[string]any `json:"properties"`
	BodyLen    int            `json:"body_len"`
}

// wantDeadLettered asserts the dead-letter copy of task id: reason, original queue, properties kept.
func wantDeadLettered(t *testing.T, w *goWorker, d *deadLetter, id, reason, contentType string) {
	t.Helper()
	if d == nil {
		t.Errorf("task %s: no message in the dead-letter queue %s", id, w.deadLetter)
		return
	}
	if r, _ := d.Headers["x-dead-letter-reason"].(string); !strings.Contains(r, reason) {
		t.Errorf("x-dead-letter-reason = %#v, want it to mention %q", d.Headers["x-dead-letter-reason"], reason)
	}
	if q := d.Headers["x-original-queue"]; q != w.queue {
		t.Errorf("x-original-queue = %#v, want %q", q, w.queue)
	}
	for _, h := range []string{"x-original-exchange", "x-original-routing-key", "x-dead-lettered-by", "x-dead-lettered-at"} {
		if _, ok := d.Headers[h].(string); !ok {
			t.Errorf("header %s = %#v, want a string", h, d.Headers[h])
		}
	}
	if d.Properties["correlation_id"] != id || d.Properties["content_type"] != contentType {
		t.Errorf("properties = %v, want correlation_id %s and content_type %s kept", d.Properties, id, contentType)
	}
	if d.BodyLen == 0 {
		t.Error("the dead-lettered body is empty")
	}
}

// pyCase is one Python client scenario: what client.py runs, and what the Go test asserts.
type pyCase struct {
	name  string
	env   func(t *testing.T) map[string]string
	check func(t *testing.T, w *goWorker, protocol int, report []byte)
}

func pyCases() []pyCase {
	return []pyCase{
		{name: "add", check: func(t *testing.T, _ *goWorker, _ int, report []byte) {
			wantSuccess(t, "send_task(diag.add, args=[2, 3])", outcomeField(t, report, "send_task"), "5")
			wantSuccess(t, "send_task(diag.add, kwargs={x: 2, y: 3})", outcomeField(t, report, "send_task_kwargs"), "5")
		}},
		{name: "apply_async", check: func(t *testing.T, _ *goWorker, _ int, report []byte) {
			wantSuccess(t, "add.apply_async((2, 3))", outcomeField(t, report, "args"), "5")
			wantSuccess(t, "add.apply_async(kwargs={x: 40, y: 2})", outcomeField(t, report, "kwargs"), "42")
		}},
		{name: "echo",
			env: func(t *testing.T) map[string]string {
				data, err := json.Marshal(echoPayload())
				if err != nil {
					t.Fatal(err)
				}
				path := filepath.Join(t.TempDir(), "payload.json")
				if err := os.WriteFile(path, data, 0o600); err != nil {
					t.Fatal(err)
				}
				return map[string]string{"PAYLOAD_FILE": path}
			},
			check: func(t *testing.T, _ *goWorker, _ int, report []byte) {
				var r struct {
					Equal  bool            `json:"equal"`
					Value  json.RawMessage `json:"value"`
					Raised *pyExc          `json:"raised"`
					State  string          `json:"state"`
				}
				unmarshalReport(t, report, &r)
				if r.Raised != nil {
					t.Fatalf("get() raised %s(%q), state %s", r.Raised.Class, r.Raised.Str, r.State)
				}
				if !r.Equal {
					t.Error("Python: the echoed result differs from what it sent")
				}
				want, err := json.Marshal(map[string]any{"args": []any{1, "a"}, "kwargs": echoPayload()})
				if err != nil {
					t.Fatal(err)
				}
				if !jsonEqual(t, r.Value, want) {
					t.Errorf("the echoed result differs from the payload: got %.1000s", r.Value)
				}
			}},
		{name: "countdown", check: func(t *testing.T, _ *goWorker, _ int, report []byte) {
			var r struct {
				outcome
				EarlyState   string  `json:"early_state"`
				EarlyElapsed float64 `json:"early_elapsed"`
				NotBefore    string  `json:"not_before"`
				RanAfterETA  bool    `json:"ran_after_eta"`
			}
			unmarshalReport(t, report, &r)
			wantSuccess(t, "countdown=2", r.outcome, "42")
			if !r.RanAfterETA {
				t.Errorf("date_done %v is before send time + countdown %s: the countdown was not honoured", deref(r.DateDone), r.NotBefore)
			}
			// The eta is at least 2 s after the send; a state read that ended before then cannot
			// see the result.
			if r.EarlyElapsed < 2 {
				if r.EarlyState != "PENDING" {
					t.Errorf("%.2fs after sending with countdown=2 the state is %q, want PENDING", r.EarlyElapsed, r.EarlyState)
				}
			} else {
				t.Logf("the early state read ended %.2fs after sending (past the countdown): its %q proves nothing here; date_done was checked", r.EarlyElapsed, r.EarlyState)
			}
		}},
		{name: "eta_offset", check: func(t *testing.T, _ *goWorker, _ int, report []byte) {
			var r struct {
				outcome
				ETA         string `json:"eta"`
				NotBefore   string `json:"not_before"`
				RanAfterETA bool   `json:"ran_after_eta"`
			}
			unmarshalReport(t, report, &r)
			wantSuccess(t, "eta=now+2s in +02:00", r.outcome, "2")
			if !strings.HasSuffix(r.ETA, "+02:00") {
				t.Errorf("the eta sent was %q, want a +02:00 offset", r.ETA)
			}
			if !r.RanAfterETA {
				t.Errorf("date_done %v is before the eta %s (%s UTC): the offset was not honoured", deref(r.DateDone), r.ETA, r.NotBefore)
			}
		}},
		{name: "expires_past", check: func(t *testing.T, _ *goWorker, _ int, report []byte) {
			var o outcome
			unmarshalReport(t, report, &o)
			wantRaised(t, "expires 30 s ago", o, "TaskRevokedError", "celery.exceptions", "expired", "REVOKED")
		}},
		{name: "expires_before_countdown", check: func(t *testing.T, _ *goWorker, _ int, report []byte) {
			var o outcome
			unmarshalReport(t, report, &o)
			wantRaised(t, "countdown=3, expires=1", o, "TaskRevokedError", "celery.exceptions", "expired", "REVOKED")
		}},
		{name: "retries", check: func(t *testing.T, w *goWorker, _ int, report []byte) {
			var r struct {
				outcome
				Retries *int            `json:"retries"`
				Name    string          `json:"name"`
				Args    json.RawMessage `json:"args"`
				Kwargs  json.RawMessage `json:"kwargs"`
				Queue   string          `json:"queue"`
				Worker  string          `json:"worker"`
			}
			unmarshalReport(t, report, &r)
			wantSuccess(t, "retries=3", r.outcome, "3")
			if r.Retries == nil || *r.Retries != 3 {
				t.Errorf("AsyncResult.retries = %v, want 3 (the retries header)", deref(r.Retries))
			}
			if r.Name != "diag.add" || !jsonEqual(t, r.Args, []byte("[1, 2]")) || !jsonEqual(t, r.Kwargs, []byte("{}")) {
				t.Errorf("extended result: name %q args %s kwargs %s, want diag.add [1, 2] {}", r.Name, r.Args, r.Kwargs)
			}
			if r.Queue != w.queue || !strings.HasPrefix(r.Worker, "interop-") {
				t.Errorf("extended result: queue %q worker %q, want %q and the worker's node name", r.Queue, r.Worker, w.queue)
			}
		}},
		{name: "priority", check: func(t *testing.T, _ *goWorker, _ int, report []byte) {
			wantSuccess(t, "priority=7 on a plain queue", outcomeField(t, report, "plain_queue"), "7")
			wantSuccess(t, "priority=7 on an x-max-priority queue", outcomeField(t, report, "priority_queue"), "11")
		}},
		{name: "task_id", check: func(t *testing.T, _ *goWorker, _ int, report []byte) {
			var r struct {
				outcome
				WantedID    string          `json:"wanted_id"`
				FreshState  string          `json:"fresh_state"`
				FreshResult json.RawMessage `json:"fresh_result"`
			}
			unmarshalReport(t, report, &r)
			wantSuccess(t, "task_id=<uuid>", r.outcome, "15")
			if r.ID != r.WantedID || r.FreshState != "SUCCESS" || !jsonEqual(t, r.FreshResult, []byte("15")) {
				t.Errorf("id %s, AsyncResult(%s): state %q result %s; want the given id, SUCCESS, 15", r.ID, r.WantedID, r.FreshState, r.FreshResult)
			}
		}},
		{name: "fail", check: func(t *testing.T, _ *goWorker, _ int, report []byte) {
			var r struct {
				outcome
				Failed            bool   `json:"failed"`
				TracebackType     string `json:"traceback_type"`
				Traceback         string `json:"traceback"`
				ResultIsException bool   `json:"result_is_exception"`
				ResultExc         *pyExc `json:"result_exc"`
			}
			unmarshalReport(t, report, &r)
			wantRaised(t, "diag.fail('boom')", r.outcome, "DiagError", "", "boom", "FAILURE")
			if !r.Failed || r.TracebackType != "str" || strings.TrimSpace(r.Traceback) == "" {
				t.Errorf(".failed() = %v, .traceback is a %s %q; want true and a non-empty str", r.Failed, r.TracebackType, r.Traceback)
			}
			if !r.ResultIsException || r.ResultExc == nil || r.ResultExc.Class != "DiagError" || r.ResultExc.Str != "boom" {
				t.Errorf(".result = %+v, want the DiagError('boom') instance", r.ResultExc)
			}
		}},
		{name: "flaky",
			env: func(t *testing.T) map[string]string {
				return map[string]string{"FLAKY_KEY": redisKeyAtCleanup(t, "interop:flaky:")}
			},
			check: func(t *testing.T, _ *goWorker, _ int, report []byte) {
				var r struct {
					outcome
					States  []string `json:"states"`
					Retries *int     `json:"retries"`
				}
				unmarshalReport(t, report, &r)
				wantSuccess(t, "diag.flaky(key, 2)", r.outcome, "3")
				retried := false
				for _, s := range r.States {
					retried = retried || s == "RETRY"
				}
				if !retried || len(r.States) == 0 || r.States[len(r.States)-1] != "SUCCESS" {
					t.Errorf("states seen while polling: %v; want RETRY at some point, then SUCCESS", r.States)
				}
				if r.Retries == nil || *r.Retries != 2 {
					t.Errorf("AsyncResult.retries = %v, want 2", deref(r.Retries))
				}
			}},
		{name: "unknown", check: func(t *testing.T, w *goWorker, protocol int, report []byte) {
			var r struct {
				outcome
				After      outcome     `json:"after"`
				DeadLetter *deadLetter `json:"dead_letter"`
			}
			unmarshalReport(t, report, &r)
			wantRaised(t, "send_task(nope.missing)", r.outcome, "NotRegistered", "celery.exceptions", "", "FAILURE")
			if r.Raised != nil && !strings.Contains(r.Raised.Str, "nope.missing") {
				t.Errorf("NotRegistered message %q does not name the task", r.Raised.Str)
			}
			wantSuccess(t, "diag.add after an unknown task", r.After, "5")
			wantDeadLettered(t, w, r.DeadLetter, r.ID, "NotRegistered", "application/json")
			if protocol == 2 && r.DeadLetter != nil && r.DeadLetter.Headers["task"] != "nope.missing" {
				t.Errorf("dead letter task header = %#v, want the original headers kept", r.DeadLetter.Headers["task"])
			}
		}},
		{name: "pickle", check: func(t *testing.T, w *goWorker, _ int, report []byte) {
			var r struct {
				outcome
				After      outcome     `json:"after"`
				DeadLetter *deadLetter `json:"dead_letter"`
			}
			unmarshalReport(t, report, &r)
			wantRaised(t, "serializer=pickle", r.outcome, "ContentDisallowed", "kombu.exceptions", "", "FAILURE")
			wantSuccess(t, "diag.add after a pickle message", r.After, "5")
			wantDeadLettered(t, w, r.DeadLetter, r.ID, "ContentDisallowed", "application/x-python-serialize")
		}},
		{name: "big_headers", check: func(t *testing.T, w *goWorker, _ int, report []byte) {
			wantSuccess(t, "headers x-sent-ms=2**41, x-neg=-2**40", outcomeField(t, report, "big"), "3")
			wantSuccess(t, "diag.add after 64-bit headers", outcomeField(t, report, "after"), "11")
			w.assertConnectionKept(t)
		}},
	}
}

// outcomeField decodes report[field] as an outcome.
func outcomeField(t *testing.T, report []byte, field string) outcome {
	t.Helper()
	var m map[string]json.RawMessage
	unmarshalReport(t, report, &m)
	raw, ok := m[field]
	if !ok {
		t.Fatalf("report has no %q: %.2000s", field, report)
	}
	var o outcome
	unmarshalReport(t, raw, &o)
	return o
}

// TestPythonClientGoWorker sends tasks from Python Celery 5.2 (protocol 2 and protocol 1) to the Go
// worker and checks everything a Django caller observes through AsyncResult. Each protocol has its
// own worker; every case runs its own client.py, all of them at once, and is then checked in its
// subtest.
func TestPythonClientGoWorker(t *testing.T) {
	t.Parallel()
	runPyCases(t, 16, func(label string) *goWorker { return startGoWorker(t, label) }, nil)
}

// runPyCases runs every pyCase from Python clients (pool of poolSize client.py at once) against
// one Go worker per protocol (2 and 1) that start gives, then checks each case in its subtest
// protocolN/<case>. env, when not nil, adjusts each case's environment (such as the broker URL).
func runPyCases(t *testing.T, poolSize int, start func(label string) *goWorker, env func(map[string]string) map[string]string) {
	t.Helper()
	pool := newClientPool(t, poolSize)
	type started struct {
		tc  pyCase
		run *clientRun
	}
	protocols := []int{2, 1}
	workers := map[int]*goWorker{}
	runs := map[int][]started{}
	for _, protocol := range protocols {
		w := start(fmt.Sprintf("protocol %d", protocol))
		workers[protocol] = w
		for _, tc := range pyCases() {
			var e map[string]string
			if tc.env != nil {
				e = tc.env(t)
			}
			if env != nil {
				e = env(e)
			}
			runs[protocol] = append(runs[protocol], started{tc, pool.start(w, protocol, tc.name, e)})
		}
	}
	for _, protocol := range protocols {
		t.Run(fmt.Sprintf("protocol%d", protocol), func(t *testing.T) {
			for _, s := range runs[protocol] {
				t.Run(s.tc.name, func(t *testing.T) {
					s.tc.check(t, workers[protocol], protocol, s.run.report(t))
				})
			}
		})
	}
}
