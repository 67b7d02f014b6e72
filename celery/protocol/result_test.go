package protocol_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/protocol"
)

// resultFixtureDir is where the captured Celery fixtures live (CELERY_FIXTURES, default
// shared/fixtures beside the repository, where CI puts it).
func resultFixtureDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("CELERY_FIXTURES")
	if dir == "" {
		_, file, _, _ := runtime.Caller(0)
		dir = filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "fixtures")
	}
	if _, err := os.Stat(filepath.Join(dir, "redis_backend_results.json")); err != nil {
		t.Fatalf("Celery fixtures not found (set CELERY_FIXTURES): %v", err)
	}
	return dir
}

// resultFixtureValue is one stored value in a redis_backend_* fixture.
type resultFixtureValue struct {
	Key      string `json:"key"`
	RawValue string `json:"raw_value"`
}

// resultFixtureValues returns the captured raw values by case name.
func resultFixtureValues(t testing.TB) map[string]string {
	t.Helper()
	dir := resultFixtureDir(t)
	var results struct {
		Entries struct {
			Success            resultFixtureValue `json:"success"`
			Failure            resultFixtureValue `json:"failure"`
			Retry              resultFixtureValue `json:"retry"`
			StartedThenSuccess struct {
				Started resultFixtureValue `json:"started"`
				Final   resultFixtureValue `json:"final"`
			} `json:"started_then_success"`
		} `json:"entries"`
	}
	resultReadJSON(t, filepath.Join(dir, "redis_backend_results.json"), &results)
	var chord struct {
		FinalMeta []resultFixtureValue `json:"final_meta"`
	}
	resultReadJSON(t, filepath.Join(dir, "redis_backend_chord.json"), &chord)
	if len(chord.FinalMeta) != 3 {
		t.Fatalf("redis_backend_chord.json: want 3 final_meta entries, got %d", len(chord.FinalMeta))
	}
	e := results.Entries
	out := map[string]string{
		"success":      e.Success.RawValue,
		"failure":      e.Failure.RawValue,
		"retry":        e.Retry.RawValue,
		"started":      e.StartedThenSuccess.Started.RawValue,
		"final":        e.StartedThenSuccess.Final.RawValue,
		"chord_head_0": chord.FinalMeta[0].RawValue,
		"chord_head_1": chord.FinalMeta[1].RawValue,
		"chord_body":   chord.FinalMeta[2].RawValue,
	}
	for name, v := range out {
		if v == "" {
			t.Fatalf("fixture value %q is empty", name)
		}
	}
	return out
}

func resultReadJSON(t testing.TB, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("parse fixture %s: %v", path, err)
	}
}

func resultTime(t testing.TB, s string) *time.Time {
	t.Helper()
	tm, err := time.Parse("2006-01-02T15:04:05.999999999Z07:00", s)
	if err != nil {
		t.Fatalf("bad test time %q: %v", s, err)
	}
	return &tm
}

func resultStr(s string) *string { return &s }

// resultTraceback extracts the traceback text of a fixture value.
func resultTraceback(t testing.TB, raw string) *string {
	t.Helper()
	var v struct {
		Traceback string `json:"traceback"`
	}
	if err := json.Unmarshal([]byte(raw), &v); err != nil || v.Traceback == "" {
		t.Fatalf("fixture has no traceback: %v", err)
	}
	return &v.Traceback
}

func TestResultMetaGolden(t *testing.T) {
	fx := resultFixtureValues(t)
	tests := []struct {
		name string
		meta protocol.ResultMeta
	}{
		{"success", protocol.ResultMeta{
			Status: protocol.StateSuccess, Result: json.RawMessage(`5`),
			DateDone: resultTime(t, "2026-11-25T18:11:56.863107Z"),
			TaskID:   "b0d117a9-9f4d-4342-aff0-095405b4b2f1",
		}},
		{"failure", protocol.ResultMeta{
			Status: protocol.StateFailure,
			Result: protocol.ExceptionResult(protocol.ExceptionInfo{
				Type: "ValueError", Message: []any{"boom"}, Module: "builtins"}),
			Traceback: resultTraceback(t, fx["failure"]),
			DateDone:  resultTime(t, "2026-11-25T18:11:56.873323Z"),
			TaskID:    "4689e3b1-23e7-4ce6-ac1f-3b4ac2b65cd0",
		}},
		{"retry", protocol.ResultMeta{
			Status: protocol.StateRetry,
			Result: protocol.ExceptionResult(protocol.ExceptionInfo{
				Type: "RuntimeError", Message: []any{"transient failure 1"}, Module: "builtins"}),
			Traceback: resultTraceback(t, fx["retry"]),
			Children:  json.RawMessage(`[[["306cad2c-80ba-4fe1-83ba-e1fe7a7284d5",null],null]]`),
			TaskID:    "306cad2c-80ba-4fe1-83ba-e1fe7a7284d5",
		}},
		{"started", protocol.ResultMeta{
			Status: protocol.StateStarted,
			Result: json.RawMessage(`{"pid":22642,"hostname":"celery@vm"}`),
			TaskID: "d84d0348-7951-4dad-899b-2ff74d053f03",
		}},
		{"final", protocol.ResultMeta{
			Status: protocol.StateSuccess, Result: json.RawMessage(`"slept 3"`),
			DateDone: resultTime(t, "2026-11-25T18:11:59.896466Z"),
			TaskID:   "d84d0348-7951-4dad-899b-2ff74d053f03",
		}},
		{"chord_head_0", protocol.ResultMeta{
			Status: protocol.StateSuccess, Result: json.RawMessage(`2`),
			DateDone: resultTime(t, "2026-11-25T18:11:59.905357Z"),
			GroupID:  "7f16e806-6ae5-44e6-ace3-2f0d6998dc45",
			TaskID:   "764b3d6e-325a-41b2-bfda-6f6059eb8432",
		}},
		{"chord_head_1", protocol.ResultMeta{
			Status: protocol.StateSuccess, Result: json.RawMessage(`4`),
			DateDone: resultTime(t, "2026-11-25T18:11:59.908732Z"),
			GroupID:  "7f16e806-6ae5-44e6-ace3-2f0d6998dc45",
			TaskID:   "9e736655-d158-4ad1-8666-17d5f28a3d49",
		}},
		{"chord_body", protocol.ResultMeta{
			Status: protocol.StateSuccess, Result: json.RawMessage(`6`),
			DateDone: resultTime(t, "2026-11-25T18:11:59.914556Z"),
			ParentID: "9e736655-d158-4ad1-8666-17d5f28a3d49",
			TaskID:   "09e0a1f5-34f1-4089-98ea-2e4ddb0b4d17",
		}},
	}
	if len(tests) != len(fx) {
		t.Fatalf("test table covers %d fixture values, fixtures have %d", len(tests), len(fx))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := fx[tt.name]
			got, err := tt.meta.MarshalJSON()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if string(got) != want {
				t.Errorf("Marshal mismatch\n got: %s\nwant: %s", got, want)
			}
			var back protocol.ResultMeta
			if err := json.Unmarshal([]byte(want), &back); err != nil {
				t.Fatalf("Unmarshal fixture: %v", err)
			}
			again, err := back.MarshalJSON()
			if err != nil {
				t.Fatalf("re-Marshal: %v", err)
			}
			if string(again) != want {
				t.Errorf("re-Marshal mismatch\n got: %s\nwant: %s", again, want)
			}
			resultSameMeta(t, back, tt.meta)
		})
	}
}

// resultSameMeta compares two metas, JSON values by meaning and times by
// instant.
func resultSameMeta(t *testing.T, got, want protocol.ResultMeta) {
	t.Helper()
	if got.Status != want.Status || got.TaskID != want.TaskID || got.GroupID != want.GroupID ||
		got.ParentID != want.ParentID {
		t.Errorf("ids/status: got %+v, want %+v", got, want)
	}
	resultSameJSON(t, "result", got.Result, want.Result)
	resultSameJSON(t, "children", resultOr(got.Children, "[]"), resultOr(want.Children, "[]"))
	if (got.Traceback == nil) != (want.Traceback == nil) ||
		(got.Traceback != nil && *got.Traceback != *want.Traceback) {
		t.Errorf("traceback: got %v, want %v", got.Traceback, want.Traceback)
	}
	if (got.DateDone == nil) != (want.DateDone == nil) ||
		(got.DateDone != nil && !got.DateDone.Equal(*want.DateDone)) {
		t.Errorf("date_done: got %v, want %v", got.DateDone, want.DateDone)
	}
	if (got.Extended == nil) != (want.Extended == nil) {
		t.Fatalf("extended: got %+v, want %+v", got.Extended, want.Extended)
	}
	if got.Extended != nil {
		g, w := *got.Extended, *want.Extended
		resultSameJSON(t, "args", g.Args, w.Args)
		resultSameJSON(t, "kwargs", g.Kwargs, w.Kwargs)
		if g.Name != w.Name || g.Worker != w.Worker || g.Retries != w.Retries || g.Queue != w.Queue {
			t.Errorf("extended: got %+v, want %+v", g, w)
		}
	}
}

func resultOr(raw json.RawMessage, def string) json.RawMessage {
	if raw == nil {
		return json.RawMessage(def)
	}
	return raw
}

func resultSameJSON(t *testing.T, field string, got, want json.RawMessage) {
	t.Helper()
	if (got == nil) != (want == nil) {
		t.Errorf("%s: got %s, want %s", field, got, want)
		return
	}
	if got == nil {
		return
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Errorf("%s: %v", field, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Errorf("%s: %v", field, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s: got %s, want %s", field, got, want)
	}
}

func TestResultMetaMarshal(t *testing.T) {
	done := resultTime(t, "2026-01-02T03:04:05.000007+02:00")
	tests := []struct {
		name string
		meta protocol.ResultMeta
		want string
	}{
		{"zero value", protocol.ResultMeta{},
			`{"status": "", "result": null, "traceback": null, "children": [], "date_done": null, "task_id": ""}`},
		{"compact Go JSON is re-spaced", protocol.ResultMeta{
			Status: "SUCCESS", Result: json.RawMessage(` {"a":[1,2,{"b":null}] , "c":"<&>"}`), TaskID: "t"},
			`{"status": "SUCCESS", "result": {"a": [1, 2, {"b": null}], "c": "<&>"}, "traceback": null, "children": [], "date_done": null, "task_id": "t"}`},
		{"non-ASCII escaped like ensure_ascii", protocol.ResultMeta{
			Status: "PROGRESS", Result: json.RawMessage(`"é😀\u00E9\/\u001f"`), Traceback: resultStr("x\x7f\"\\\b\f\n\r\t\x01"), TaskID: "ü"},
			`{"status": "PROGRESS", "result": "\u00e9\ud83d\ude00\u00e9/\u001f", "traceback": "x\u007f\"\\\b\f\n\r\t\u0001", "children": [], "date_done": null, "task_id": "\u00fc"}`},
		{"date_done converted to naive UTC", protocol.ResultMeta{Status: "SUCCESS", DateDone: done, TaskID: "t"},
			`{"status": "SUCCESS", "result": null, "traceback": null, "children": [], "date_done": "2026-01-02T01:04:05.000007", "task_id": "t"}`},
		{"extended with nulls", protocol.ResultMeta{Status: "SUCCESS", TaskID: "t", Extended: &protocol.ExtendedMeta{}},
			`{"status": "SUCCESS", "result": null, "traceback": null, "children": [], "date_done": null, "name": null, "args": null, "kwargs": null, "worker": null, "retries": 0, "queue": null, "task_id": "t"}`},
		{"group, parent and extended order", protocol.ResultMeta{
			Status: "SUCCESS", Result: json.RawMessage(`5`), TaskID: "t", GroupID: "g", ParentID: "p",
			Extended: &protocol.ExtendedMeta{Name: "tasks.add", Args: json.RawMessage(`[2,3]`), Kwargs: json.RawMessage(`{}`),
				Worker: "celery@vm", Retries: 2, Queue: "celery"}},
			`{"status": "SUCCESS", "result": 5, "traceback": null, "children": [], "date_done": null, "group_id": "g", "parent_id": "p", "name": "tasks.add", "args": [2, 3], "kwargs": {}, "worker": "celery@vm", "retries": 2, "queue": "celery", "task_id": "t"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.meta.MarshalJSON()
			if err != nil {
				t.Fatalf("MarshalJSON: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("\n got: %s\nwant: %s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("output is not valid JSON")
			}
		})
	}
}

func TestResultMetaMarshalInvalidJSON(t *testing.T) {
	tests := []struct {
		name string
		meta protocol.ResultMeta
	}{
		{"result", protocol.ResultMeta{Result: json.RawMessage(`{"a":`)}},
		{"children", protocol.ResultMeta{Children: json.RawMessage(`[1,]`)}},
		{"args", protocol.ResultMeta{Extended: &protocol.ExtendedMeta{Args: json.RawMessage(`nope`)}}},
		{"kwargs", protocol.ResultMeta{Extended: &protocol.ExtendedMeta{Kwargs: json.RawMessage(`{} {}`)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := json.Marshal(tt.meta)
			var se *json.SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("want *json.SyntaxError, got %T %v", err, err)
			}
		})
	}
}

func TestResultMetaUnmarshal(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want protocol.ResultMeta
	}{
		{"missing key reads as Python's PENDING", `{"status": "PENDING", "result": null}`,
			protocol.ResultMeta{Status: "PENDING"}},
		{"5.4 aware date_done", `{"status": "SUCCESS", "result": 1, "date_done": "2026-11-25T18:11:56.863107+00:00", "task_id": "t"}`,
			protocol.ResultMeta{Status: "SUCCESS", Result: json.RawMessage(`1`), DateDone: resultTime(t, "2026-11-25T18:11:56.863107Z"), TaskID: "t"}},
		{"offset converted to UTC", `{"status": "SUCCESS", "date_done": "2026-11-25T20:11:56+02:00"}`,
			protocol.ResultMeta{Status: "SUCCESS", DateDone: resultTime(t, "2026-11-25T18:11:56Z")}},
		{"Z suffix and no fraction", `{"status": "SUCCESS", "date_done": "2026-11-25T18:11:56Z"}`,
			protocol.ResultMeta{Status: "SUCCESS", DateDone: resultTime(t, "2026-11-25T18:11:56Z")}},
		{"unknown 5.3 keys ignored", `{"status": "SUCCESS", "stamped_headers": ["a"], "stamps": {"a": 1}, "task_id": "t"}`,
			protocol.ResultMeta{Status: "SUCCESS", TaskID: "t"}},
		{"extended with nulls", `{"status": "SUCCESS", "name": null, "args": null, "kwargs": null, "worker": null, "retries": null, "queue": null}`,
			protocol.ResultMeta{Status: "SUCCESS", Extended: &protocol.ExtendedMeta{}}},
		{"extended partial", `{"status": "SUCCESS", "retries": 3, "queue": "q", "args": [1], "group_id": "g", "parent_id": null}`,
			protocol.ResultMeta{Status: "SUCCESS", GroupID: "g", Extended: &protocol.ExtendedMeta{Retries: 3, Queue: "q", Args: json.RawMessage(`[1]`)}}},
		{"custom state with meta", `{"status": "PROGRESS", "result": {"done": 3, "total": 10}, "traceback": null, "children": null}`,
			protocol.ResultMeta{Status: "PROGRESS", Result: json.RawMessage(`{"done": 3, "total": 10}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got protocol.ResultMeta
			if err := json.Unmarshal([]byte(tt.in), &got); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			resultSameMeta(t, got, tt.want)
		})
	}
}

func TestResultMetaUnmarshalErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		// field is the key named in a *json.UnmarshalTypeError; empty means
		// another typed error is expected (see kind).
		field string
		kind  string
	}{
		{"not JSON", `{"status": `, "", "syntax"},
		{"not an object", `[1, 2]`, "", "type"},
		{"null", `null`, "", "type"},
		{"missing status", `{"result": 1}`, "status", "type"},
		{"status not a string", `{"status": 1}`, "status", "type"},
		{"traceback not a string", `{"status": "FAILURE", "traceback": ["x"]}`, "traceback", "type"},
		{"date_done not a string", `{"status": "SUCCESS", "date_done": 1.5}`, "date_done", "type"},
		{"date_done malformed", `{"status": "SUCCESS", "date_done": "yesterday"}`, "", "time"},
		{"date_done year 0 in UTC", `{"status": "SUCCESS", "date_done": "0001-01-01T00:00:00+01:00"}`, "", "time"},
		{"retries not an int", `{"status": "SUCCESS", "retries": 1.5}`, "retries", "type"},
		{"task_id not a string", `{"status": "SUCCESS", "task_id": 7}`, "task_id", "type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m protocol.ResultMeta
			err := m.UnmarshalJSON([]byte(tt.in))
			var (
				se *json.SyntaxError
				te *json.UnmarshalTypeError
				pe *time.ParseError
			)
			switch tt.kind {
			case "syntax":
				if !errors.As(err, &se) {
					t.Fatalf("want *json.SyntaxError, got %T %v", err, err)
				}
			case "type":
				if !errors.As(err, &te) {
					t.Fatalf("want *json.UnmarshalTypeError, got %T %v", err, err)
				}
				if te.Field != tt.field {
					t.Errorf("Field = %q, want %q", te.Field, tt.field)
				}
			case "time":
				if !errors.As(err, &pe) {
					t.Fatalf("want *time.ParseError, got %T %v", err, err)
				}
			}
		})
	}
}

func TestFormatDateDone(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	tests := []struct {
		name string
		in   time.Time
		want string
	}{
		{"microseconds", time.Date(2026, 11, 25, 18, 11, 56, 863107000, time.UTC), "2026-11-25T18:11:56.863107"},
		{"leading zeros in fraction", time.Date(2026, 1, 2, 3, 4, 5, 7000, time.UTC), "2026-01-02T03:04:05.000007"},
		{"no fraction when zero", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), "2026-01-02T03:04:05"},
		{"nanoseconds truncated", time.Date(2026, 1, 2, 3, 4, 5, 999, time.UTC), "2026-01-02T03:04:05"},
		{"nanoseconds truncated not rounded", time.Date(2026, 1, 2, 3, 4, 5, 1999, time.UTC), "2026-01-02T03:04:05.000001"},
		{"converted to UTC", time.Date(2026, 1, 1, 0, 30, 0, 500000000, berlin), "2025-12-31T23:30:00.500000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := protocol.FormatDateDone(tt.in); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestResultStates(t *testing.T) {
	tests := []struct {
		state            string
		ready, exception bool
	}{
		{protocol.StatePending, false, false},
		{protocol.StateReceived, false, false},
		{protocol.StateStarted, false, false},
		{protocol.StateSuccess, true, false},
		{protocol.StateFailure, true, true},
		{protocol.StateRetry, false, true},
		{protocol.StateRevoked, true, true},
		{protocol.StateRejected, false, false},
		{protocol.StateIgnored, false, false},
		{"PROGRESS", false, false},
		{"success", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.state, func(t *testing.T) {
			if got := protocol.IsReady(tt.state); got != tt.ready {
				t.Errorf("IsReady = %v, want %v", got, tt.ready)
			}
			if got := protocol.IsExceptionState(tt.state); got != tt.exception {
				t.Errorf("IsExceptionState = %v, want %v", got, tt.exception)
			}
		})
	}
}

func TestExceptionResult(t *testing.T) {
	tests := []struct {
		name string
		in   protocol.ExceptionInfo
		want string
	}{
		{"builtins", protocol.ExceptionInfo{Type: "ValueError", Message: []any{"boom"}, Module: "builtins"},
			`{"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"}`},
		{"no args is an empty list", protocol.ExceptionInfo{Type: "KeyError", Module: "builtins"},
			`{"exc_type": "KeyError", "exc_message": [], "exc_module": "builtins"}`},
		{"mixed args", protocol.ExceptionInfo{Type: "E", Module: "go.diag",
			Message: []any{"é", 3, 1.5, nil, true, map[string]any{"k": []int{1}}, json.Number("12345678901234567890")}},
			`{"exc_type": "E", "exc_message": ["\u00e9", 3, 1.5, null, true, {"k": [1]}, 12345678901234567890], "exc_module": "go.diag"}`},
		{"unencodable arg becomes its text", protocol.ExceptionInfo{Type: "E", Module: "m", Message: []any{func() {}, complex(1, 2)}},
			`{"exc_type": "E", "exc_message": ["` + "FUNC" + `", "(1+2i)"], "exc_module": "m"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(protocol.ExceptionResult(tt.in))
			want := tt.want
			if strings.Contains(want, "FUNC") {
				// A func's %v is its address: check the shape only.
				var v struct {
					Msg []string `json:"exc_message"`
				}
				if err := json.Unmarshal([]byte(got), &v); err != nil || len(v.Msg) != 2 || !strings.HasPrefix(v.Msg[0], "0x") {
					t.Fatalf("got %s (%v)", got, err)
				}
				want = strings.Replace(want, "FUNC", v.Msg[0], 1)
			}
			if got != want {
				t.Errorf("\n got: %s\nwant: %s", got, want)
			}
		})
	}
}

func TestExceptionInfoUnmarshal(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    protocol.ExceptionInfo
		wantErr bool
	}{
		{"list", `{"exc_type": "ValueError", "exc_message": ["boom", 3], "exc_module": "builtins"}`,
			protocol.ExceptionInfo{Type: "ValueError", Message: []any{"boom", json.Number("3")}, Module: "builtins"}, false},
		{"plain string", `{"exc_type": "ValueError", "exc_message": "boom", "exc_module": "builtins"}`,
			protocol.ExceptionInfo{Type: "ValueError", Message: []any{"boom"}, Module: "builtins"}, false},
		{"single number", `{"exc_type": "E", "exc_message": 12345678901234567890}`,
			protocol.ExceptionInfo{Type: "E", Message: []any{json.Number("12345678901234567890")}}, false},
		{"null message and module", `{"exc_type": "E", "exc_message": null, "exc_module": null}`,
			protocol.ExceptionInfo{Type: "E"}, false},
		{"empty list", `{"exc_type": "E", "exc_message": []}`,
			protocol.ExceptionInfo{Type: "E", Message: []any{}}, false},
		{"missing exc_type", `{"exc_message": ["x"]}`, protocol.ExceptionInfo{}, true},
		{"exc_type not a string", `{"exc_type": 1}`, protocol.ExceptionInfo{}, true},
		{"not an object", `"ValueError"`, protocol.ExceptionInfo{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got protocol.ExceptionInfo
			err := json.Unmarshal([]byte(tt.in), &got)
			if tt.wantErr {
				var te *json.UnmarshalTypeError
				if !errors.As(err, &te) {
					t.Fatalf("want *json.UnmarshalTypeError, got %T %v", err, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestExceptionInfoError(t *testing.T) {
	tests := []struct {
		name string
		in   protocol.ExceptionInfo
		want string
	}{
		{"one string", protocol.ExceptionInfo{Type: "ValueError", Message: []any{"boom"}}, "ValueError: boom"},
		{"no args", protocol.ExceptionInfo{Type: "KeyError"}, "KeyError"},
		{"one number", protocol.ExceptionInfo{Type: "E", Message: []any{json.Number("3")}}, "E: 3"},
		{"several", protocol.ExceptionInfo{Type: "E", Message: []any{"a", 1}}, `E: ["a",1]`},
		{"no type", protocol.ExceptionInfo{Message: []any{"x"}}, "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error = tt.in
			if got := err.Error(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// resultPython runs script with the system Python (PYTHON, default
// /usr/bin/python3) and returns its standard output.
func resultPython(t *testing.T, script string, stdin []byte) []byte {
	t.Helper()
	py := os.Getenv("PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python (%s) failed: %v\n%s", py, err, stderr.Bytes())
	}
	return out
}

// TestResultMetaMatchesCeleryPython checks MarshalJSON byte for byte against
// what Celery 5.2's own backend code encodes for the same meta.
func TestResultMetaMatchesCeleryPython(t *testing.T) {
	const script = `
import json, sys
from celery import Celery
from celery.app.task import Context
app = Celery(broker='memory://', backend='cache+memory://')
b = app.backend
for line in sys.stdin:
    c = json.loads(line)
    app.conf.result_extended = c['extended']
    req = Context(task=c['name'], args=c['args'], kwargs=c['kwargs'], hostname='celery@vm', retries=c['retries'],
                  delivery_info={'routing_key': 'celery'}, group=c['group'], parent_id=c['parent'], children=[])
    result = c['result']
    if c['exc'] is not None:
        result = b.prepare_exception(type(c['exc'][0], (Exception,), {})(*c['exc'][1]))
        result['exc_type'], result['exc_module'] = c['exc'][0], 'builtins'
    meta = b._get_result_meta(result=result, state=c['state'], traceback=c['tb'], request=req)
    if meta['date_done'] is not None:
        meta['date_done'] = c['date_done']
    meta['task_id'] = c['id']
    print(b.encode(meta))
`
	type pyCase struct {
		Extended bool            `json:"extended"`
		Name     string          `json:"name"`
		Args     json.RawMessage `json:"args"`
		Kwargs   json.RawMessage `json:"kwargs"`
		Retries  int             `json:"retries"`
		Group    *string         `json:"group"`
		Parent   *string         `json:"parent"`
		State    string          `json:"state"`
		Result   json.RawMessage `json:"result"`
		Exc      []any           `json:"exc"`
		TB       *string         `json:"tb"`
		DateDone string          `json:"date_done"`
		ID       string          `json:"id"`
	}
	done := time.Date(2026, 11, 25, 18, 11, 56, 863107000, time.UTC)
	tests := []struct {
		name string
		c    pyCase
	}{
		{"plain success", pyCase{State: "SUCCESS", Result: json.RawMessage(`5`), ID: "t-1"}},
		{"unicode and escapes", pyCase{State: "SUCCESS", ID: "t-ü",
			Result: json.RawMessage(`{"s":"é😀\u0000\u001f\u007f<>&\/\"\\\b\f\n\r\t","lone":"\ud800x","big":123456789012345678901234567890,"f":1.5,"n":[[],{},[null,true,false]]}`)}},
		{"failure with traceback", pyCase{State: "FAILURE", Exc: []any{"DivisionError", []any{"boom", 3}},
			TB: resultStr("Traceback (most recent call last):\n  File \"x.go\"\nDivisionError: boom ✗\n"), ID: "t-2"}},
		{"retry not ready", pyCase{State: "RETRY", Exc: []any{"RuntimeError", []any{"again"}}, ID: "t-3"}},
		{"custom state", pyCase{State: "PROGRESS", Result: json.RawMessage(`{"done":1}`), ID: "t-4"}},
		{"group parent extended", pyCase{Extended: true, Name: "tasks.add", Args: json.RawMessage(`[2,"é"]`),
			Kwargs: json.RawMessage(`{"k":{"x":[1]}}`), Retries: 2, Group: resultStr("g-1"), Parent: resultStr("p-1"),
			State: "SUCCESS", Result: json.RawMessage(`"ok"`), ID: "t-5"}},
	}
	var in bytes.Buffer
	for i := range tests {
		c := &tests[i].c
		if c.Args == nil {
			c.Args, c.Kwargs = json.RawMessage(`[]`), json.RawMessage(`{}`)
		}
		if c.Result == nil {
			c.Result = json.RawMessage(`null`)
		}
		c.DateDone = protocol.FormatDateDone(done)
		line, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		in.Write(line)
		in.WriteByte('\n')
	}
	out := resultPython(t, script, in.Bytes())
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for _, tt := range tests {
		if !sc.Scan() {
			t.Fatalf("python printed too few lines: %q", out)
		}
		want := sc.Text()
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c
			m := protocol.ResultMeta{Status: c.State, Result: c.Result, Traceback: c.TB, TaskID: c.ID}
			if string(c.Result) == "null" {
				m.Result = nil
			}
			if c.Exc != nil {
				var msg []any
				if err := json.Unmarshal(resultMarshal(t, c.Exc[1]), &msg); err != nil {
					t.Fatal(err)
				}
				m.Result = protocol.ExceptionResult(protocol.ExceptionInfo{Type: c.Exc[0].(string), Message: msg, Module: "builtins"})
			}
			if protocol.IsReady(c.State) {
				m.DateDone = &done
			}
			if c.Group != nil {
				m.GroupID = *c.Group
			}
			if c.Parent != nil {
				m.ParentID = *c.Parent
			}
			if c.Extended {
				m.Extended = &protocol.ExtendedMeta{Name: c.Name, Args: c.Args, Kwargs: c.Kwargs,
					Worker: "celery@vm", Retries: c.Retries, Queue: "celery"}
			}
			got, err := m.MarshalJSON()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if string(got) != want {
				t.Errorf("differs from Celery\n  go: %s\n  py: %s", got, want)
			}
		})
	}
}

func resultMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzResultMeta feeds arbitrary bytes to UnmarshalJSON. It must never
// panic, must fail only with typed errors, must reject invalid JSON, and
// whatever it accepts must re-marshal to valid JSON that decodes to a meta
// which marshals to the same bytes.
func FuzzResultMeta(f *testing.F) {
	for _, v := range resultFixtureValues(f) {
		f.Add([]byte(v))
	}
	for _, s := range []string{
		`{"status": "PENDING", "result": null}`,
		`{"status": "SUCCESS", "date_done": "2026-11-25T18:11:56.863107+00:00", "name": "t", "args": [1], "kwargs": {}, "worker": null, "retries": 0, "queue": "celery", "task_id": "x"}`,
		`{"status": "FAILURE", "result": {"exc_type": "E", "exc_message": "\ud800", "exc_module": null}, "traceback": "\u00e9"}`,
		`{"status": 1}`, `[]`, `null`, `{"status": "X", "date_done": "0001-01-01T00:00:00"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m protocol.ResultMeta
		err := m.UnmarshalJSON(data)
		if err != nil {
			var (
				se *json.SyntaxError
				te *json.UnmarshalTypeError
				pe *time.ParseError
			)
			if !errors.As(err, &se) && !errors.As(err, &te) && !errors.As(err, &pe) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		b1, err := m.MarshalJSON()
		if err != nil {
			t.Fatalf("Marshal of decoded meta: %v", err)
		}
		if !json.Valid(b1) {
			t.Fatalf("Marshal wrote invalid JSON %q", b1)
		}
		var m2 protocol.ResultMeta
		if err := json.Unmarshal(b1, &m2); err != nil {
			t.Fatalf("re-Unmarshal of %q: %v", b1, err)
		}
		if m2.Status != m.Status || m2.TaskID != m.TaskID || m2.GroupID != m.GroupID || m2.ParentID != m.ParentID ||
			(m2.Extended == nil) != (m.Extended == nil) || (m2.DateDone == nil) != (m.DateDone == nil) {
			t.Fatalf("round trip changed the meta: %+v vs %+v", m2, m)
		}
		b2, err := m2.MarshalJSON()
		if err != nil {
			t.Fatalf("re-Marshal: %v", err)
		}
		if !bytes.Equal(b1, b2) {
			t.Fatalf("not stable:\n%s\n%s", b1, b2)
		}
	})
}
