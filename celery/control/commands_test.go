package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeRevokeArgs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args    string
		want    RevokeArgs
		wantErr string
	}{
		{args: `{"task_id": ["a", "b", "a"]}`, want: RevokeArgs{TaskIDs: []string{"a", "b"}}},
		{args: `{"task_id": "a", "terminate": true, "signal": "SIGKILL"}`, want: RevokeArgs{TaskIDs: []string{"a"}, Terminate: true, Signal: "SIGKILL"}},
		{args: `{"task_id": null, "terminate": null, "signal": null, "extra": 1}`, want: RevokeArgs{}},
		{args: ``, want: RevokeArgs{}},
		{args: `{"task_id": 5}`, wantErr: "task_id must be a string or a list"},
		{args: `{"task_id": [5]}`, wantErr: "task_id must hold strings"},
		{args: `{"task_id": [""]}`, wantErr: "empty task id"},
		{args: `{"task_id": "a", "terminate": "yes"}`, wantErr: "terminate must be a boolean"},
		{args: `{"task_id": "a", "signal": 9}`, wantErr: "signal must be a string"},
		{args: `[1]`, wantErr: "arguments must be a JSON object"},
	} {
		got, err := DecodeRevokeArgs(json.RawMessage(tc.args))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: got %+v, %v; want an error containing %q", tc.args, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
}

func TestRevokeReply(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args       RevokeArgs
		terminated []string
		want       string
	}{
		{RevokeArgs{TaskIDs: []string{"a", "b"}}, nil, "tasks a, b flagged as revoked"},
		{RevokeArgs{TaskIDs: []string{"a"}, Terminate: true}, nil, "terminate: tasks unknown"},
		{RevokeArgs{TaskIDs: []string{"a", "b"}, Terminate: true}, []string{"b"}, "terminate: b"},
	} {
		if got := RevokeReply(tc.args, tc.terminated); !reflect.DeepEqual(got, OK(tc.want)) {
			t.Errorf("RevokeReply(%+v, %v) = %v, want ok %q", tc.args, tc.terminated, got, tc.want)
		}
	}
}

func TestDecodeRateLimitArgs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args    string
		want    RateLimitArgs
		wantErr string
	}{
		{args: `{"task_name": "x", "rate_limit": "10/m"}`, want: RateLimitArgs{TaskName: "x", RateLimit: "10/m"}},
		{args: `{"task_name": "x", "rate_limit": 10}`, want: RateLimitArgs{TaskName: "x", RateLimit: "10"}},
		{args: `{"task_name": "x", "rate_limit": null}`, want: RateLimitArgs{TaskName: "x"}},
		{args: `{"task_name": "x"}`, wantErr: "missing rate_limit"},
		{args: `{"rate_limit": "1/s"}`, wantErr: "task_name must be"},
		{args: `{"task_name": "", "rate_limit": "1/s"}`, wantErr: "task_name must be"},
		{args: `{"task_name": "x", "rate_limit": [1]}`, wantErr: "rate_limit must be a string or a number"},
	} {
		got, err := DecodeRateLimitArgs(json.RawMessage(tc.args))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: got %+v, %v; want an error containing %q", tc.args, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
}

func TestDecodeActiveArgs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args string
		want bool
		ok   bool
	}{{`{}`, false, true}, {`{"safe": true}`, true, true}, {`{"safe": null}`, false, true}, {`{"safe": 1}`, false, false}} {
		got, err := DecodeActiveArgs(json.RawMessage(tc.args))
		if (err == nil) != tc.ok || got.Safe != tc.want {
			t.Errorf("%s: got %+v, %v", tc.args, got, err)
		}
	}
}

func TestRegisteredEntry(t *testing.T) {
	t.Parallel()
	if got := RegisteredEntry("ads.score", ""); got != "ads.score" {
		t.Errorf("got %q", got)
	}
	if got := RegisteredEntry("ads.score", "10/m"); got != "ads.score [rate_limit=10/m]" {
		t.Errorf("got %q", got)
	}
}

type valueError struct{ msg string }

func (e valueError) Error() string   { return e.msg }
func (e valueError) ExcType() string { return "ValueError" }

func TestErrorRepr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errors.New("boom"), `Exception('boom')`},
		{fmt.Errorf("wrapped: %w", valueError{"it's bad"}), `ValueError("wrapped: it's bad")`},
		{&unknownCommandError{method: "nosuch"}, `KeyError('nosuch')`},
		{panicError{"x"}, `PanicError('panic: x')`},
		{errors.New("line\nbreak é"), `Exception('line\nbreak é')`},
	} {
		if got := ErrorRepr(tc.err); got != tc.want {
			t.Errorf("ErrorRepr(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

func TestEncodeReply(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		result any
		want   string
	}{
		{OK("pong"), `{"celery@vm": {"ok": "pong"}}`},
		{[]string{"a <b>", "é"}, `{"celery@vm": ["a <b>", "\u00e9"]}`},
		{nil, `{"celery@vm": null}`},
		{json.RawMessage(`{"b":1,"a":[1.0]}`), `{"celery@vm": {"b": 1, "a": [1.0]}}`},
		{RequestInfo{ID: "i", Name: "n", Args: json.RawMessage(`[1]`), Kwargs: json.RawMessage(`{}`), Type: "n", Hostname: "celery@vm"},
			`{"celery@vm": {"id": "i", "name": "n", "args": [1], "kwargs": {}, "type": "n", "hostname": "celery@vm", "time_start": null, "acknowledged": false, "delivery_info": {"exchange": "", "routing_key": "", "priority": null, "redelivered": false}, "worker_pid": null}}`},
	} {
		got, err := EncodeReply("celery@vm", tc.result)
		if err != nil || string(got) != tc.want {
			t.Errorf("EncodeReply(%v) = %s, %v\nwant %s", tc.result, got, err, tc.want)
			continue
		}
		back, err := DecodeReply(got)
		if err != nil || len(back) != 1 || back["celery@vm"] == nil {
			t.Errorf("DecodeReply(%s) = %v, %v", got, back, err)
		}
	}
	if _, err := EncodeReply("n", make(chan int)); err == nil {
		t.Error("a channel encoded")
	}
	if _, err := EncodeReply("n", json.RawMessage(`{`)); err == nil {
		t.Error("invalid raw JSON encoded")
	}
	if _, err := DecodeReply([]byte(`[1]`)); err == nil {
		t.Error("a list decoded as a reply")
	}
}
