package redisbackend

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/protocol"
)

// pyReader is what a Python Celery 5.2 client sees for one task id. Modes:
// "get" calls AsyncResult.get(timeout=10); "peek" only reads .state/.info;
// "wait" is "get", printing a line "GOT" after its first read of the key so
// the caller knows Python is subscribed and waiting.
const pyReader = `
import json, sys
from celery import Celery
app = Celery(broker='memory://', backend=sys.argv[1])
mode, ids = sys.argv[2], sys.argv[3:]
b = app.backend
if mode == 'wait':
    orig, seen = b.get, []
    def get(key):
        v = orig(key)
        if not seen:
            seen.append(1)
            print('GOT', flush=True)
        return v
    b.get = get
def exc(e):
    return {'class': type(e).__name__, 'module': type(e).__module__, 'args': list(e.args), 'str': str(e),
            'is_exception': isinstance(e, BaseException)}
out = []
for tid in ids:
    r = app.AsyncResult(tid)
    d = {'id': tid}
    if mode != 'peek':
        try:
            d['value'] = r.get(timeout=10)
        except Exception as e:
            d['raised'] = exc(e)
    d['state'] = r.state
    info = r.info
    d['info'] = exc(info) if isinstance(info, BaseException) else info
    dd = r.date_done
    d['date_done'] = dd.isoformat() if dd is not None else None
    out.append(d)
print(json.dumps(out))
`

// pySeen is one entry of pyReader's output.
type pySeen struct {
	ID       string          `json:"id"`
	Value    json.RawMessage `json:"value"`
	Raised   *pyExc          `json:"raised"`
	State    string          `json:"state"`
	Info     json.RawMessage `json:"info"`
	DateDone *string         `json:"date_done"`
}

type pyExc struct {
	Class       string `json:"class"`
	Module      string `json:"module"`
	Args        []any  `json:"args"`
	Str         string `json:"str"`
	IsException bool   `json:"is_exception"`
}

// pythonPath is PYTHON, default /usr/bin/python3 (Debian's python3-celery).
func pythonPath() string {
	if p := os.Getenv("PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}

// pythonCmd prepares pyReader; the context only guards against a hung
// interpreter.
func pythonCmd(t *testing.T, mode string, ids ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	args := append([]string{"-c", pyReader, redisURL(), mode}, ids...)
	cmd := exec.CommandContext(ctx, pythonPath(), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	return cmd, &stderr
}

func runPython(t *testing.T, mode string, ids ...string) []pySeen {
	t.Helper()
	cmd, stderr := pythonCmd(t, mode, ids...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python %s failed: %v\n%s", pythonPath(), err, stderr.Bytes())
	}
	return parseSeen(t, out, len(ids))
}

func parseSeen(t *testing.T, out []byte, n int) []pySeen {
	t.Helper()
	var seen []pySeen
	if err := json.Unmarshal(out, &seen); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	if len(seen) != n {
		t.Fatalf("python reported %d results, want %d", len(seen), n)
	}
	return seen
}

// interopBackend is a Backend with Celery 5.2's key names (no prefix); the
// ids' keys are deleted when the test ends.
func interopBackend(t *testing.T, ids ...string) *Backend {
	t.Helper()
	c := newClient(t)
	t.Cleanup(func() {
		for _, id := range ids {
			if err := c.Del(context.Background(), TaskKey("", id)).Err(); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	return New(c, Options{Expires: 24 * time.Hour})
}

func sameJSON(t *testing.T, what string, got, want json.RawMessage) {
	t.Helper()
	var g, w any
	dg := json.NewDecoder(bytes.NewReader(got))
	dg.UseNumber()
	dw := json.NewDecoder(bytes.NewReader(want))
	dw.UseNumber()
	if err := dg.Decode(&g); err != nil {
		t.Errorf("%s: python gave %.200q: %v", what, got, err)
		return
	}
	if err := dw.Decode(&w); err != nil {
		t.Fatalf("%s: bad expectation: %v", what, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s: python sees %.300s, want %.300s", what, got, want)
	}
}

func TestPythonReadsGoResults(t *testing.T) {
	big := `"` + strings.Repeat("0123456789abcdef", 1<<16) + `"` // 1 MiB
	type want struct {
		state     string
		value     string // JSON; for SUCCESS
		raised    *pyExc // for FAILURE / REVOKED
		infoClass string // for exception states
		hasDate   bool
	}
	tests := []struct {
		name string
		meta protocol.ResultMeta
		want want
	}{
		{"success int", successMeta("", `42`), want{state: "SUCCESS", value: `42`, hasDate: true}},
		{"success unicode string", successMeta("", `"héllo 😀 \u0000 \"q\" \\ <&> 日本"`),
			want{state: "SUCCESS", value: `"héllo 😀 \u0000 \"q\" \\ <&> 日本"`, hasDate: true}},
		{"success nested object", successMeta("", `{"a":[1,2.5,null,true],"b":{"c":"d"},"big":12345678901234567890123}`),
			want{state: "SUCCESS", value: `{"a":[1,2.5,null,true],"b":{"c":"d"},"big":12345678901234567890123}`, hasDate: true}},
		{"success 1 MiB string", successMeta("", big), want{state: "SUCCESS", value: big, hasDate: true}},
		{"failure Go exception", exceptionMeta("", protocol.StateFailure, "DivisionError", "go.diag", "boom"),
			want{state: "FAILURE", raised: &pyExc{Class: "DivisionError", Args: []any{"boom"}, Str: "boom"}, infoClass: "DivisionError", hasDate: true}},
		{"failure builtin", exceptionMeta("", protocol.StateFailure, "ValueError", "builtins", "bad value", 3),
			want{state: "FAILURE", raised: &pyExc{Class: "ValueError", Module: "builtins", Args: []any{"bad value", 3.0}, Str: "('bad value', 3)"},
				infoClass: "ValueError", hasDate: true}},
		{"revoked", exceptionMeta("", protocol.StateRevoked, "TaskRevokedError", "celery.exceptions", "revoked"),
			want{state: "REVOKED", raised: &pyExc{Class: "TaskRevokedError", Module: "celery.exceptions", Args: []any{"revoked"}, Str: "revoked"},
				infoClass: "TaskRevokedError", hasDate: true}},
	}
	ids := make([]string, len(tests))
	for i := range tests {
		ids[i] = newUUID()
	}
	b := interopBackend(t, ids...)
	ctx := context.Background()
	for i, tt := range tests {
		m := tt.meta
		m.TaskID = ids[i]
		m.Traceback = nil
		if m.Status == protocol.StateFailure {
			tb := "Traceback (most recent call last):\n  File \"worker.go\", line 1\n" + m.Status + "\n"
			m.Traceback = &tb
		}
		if err := b.Store(ctx, m); err != nil {
			t.Fatalf("%s: Store: %v", tt.name, err)
		}
	}
	seen := runPython(t, "get", ids...)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := seen[i]
			if s.ID != ids[i] || s.State != tt.want.state {
				t.Errorf("python sees %s in state %s, want %s", s.ID, s.State, tt.want.state)
			}
			if tt.want.value != "" {
				sameJSON(t, "get()", s.Value, json.RawMessage(tt.want.value))
				sameJSON(t, "info", s.Info, json.RawMessage(tt.want.value))
			}
			if tt.want.raised != nil {
				if s.Raised == nil {
					t.Fatalf("get() did not raise; returned %.200s", s.Value)
				}
				r, w := *s.Raised, *tt.want.raised
				if w.Module == "" {
					w.Module = r.Module // a synthesized class: any module
				}
				w.IsException = true
				if !reflect.DeepEqual(r, w) {
					t.Errorf("get() raised %+v, want %+v", r, w)
				}
				var info pyExc
				if err := json.Unmarshal(s.Info, &info); err != nil || info.Class != tt.want.infoClass || !info.IsException {
					t.Errorf("info = %s, want a %s exception", s.Info, tt.want.infoClass)
				}
			}
			if tt.want.hasDate {
				if s.DateDone == nil || *s.DateDone != protocol.FormatDateDone(testDone) {
					t.Errorf("date_done = %v, want %s", s.DateDone, protocol.FormatDateDone(testDone))
				}
			} else if s.DateDone != nil {
				t.Errorf("date_done = %s, want None", *s.DateDone)
			}
		})
	}
}

func TestPythonSeesRetryThenSuccess(t *testing.T) {
	id := newUUID()
	b := interopBackend(t, id)
	ctx := context.Background()
	if err := b.Store(ctx, exceptionMeta(id, protocol.StateRetry, "RuntimeError", "builtins", "transient failure 1")); err != nil {
		t.Fatal(err)
	}
	s := runPython(t, "peek", id)[0]
	if s.State != protocol.StateRetry || s.DateDone != nil {
		t.Errorf("after RETRY python sees state %s date_done %v", s.State, s.DateDone)
	}
	var info pyExc
	if err := json.Unmarshal(s.Info, &info); err != nil || info.Class != "RuntimeError" || info.Str != "transient failure 1" {
		t.Errorf("RETRY info = %s, want RuntimeError('transient failure 1')", s.Info)
	}
	if err := b.Store(ctx, successMeta(id, `"done"`)); err != nil {
		t.Fatal(err)
	}
	s = runPython(t, "get", id)[0]
	if s.State != protocol.StateSuccess || s.Raised != nil {
		t.Errorf("after SUCCESS python sees %+v", s)
	}
	sameJSON(t, "get()", s.Value, json.RawMessage(`"done"`))
}

func TestPythonPeekStartedAndCustomState(t *testing.T) {
	started, progress := newUUID(), newUUID()
	b := interopBackend(t, started, progress)
	ctx := context.Background()
	metas := []protocol.ResultMeta{
		{Status: protocol.StateStarted, Result: json.RawMessage(`{"pid":4242,"hostname":"celery@go"}`), TaskID: started},
		{Status: "PROGRESS", Result: json.RawMessage(`{"current":3,"total":10}`), TaskID: progress},
	}
	if err := b.StoreMany(ctx, metas); err != nil {
		t.Fatal(err)
	}
	seen := runPython(t, "peek", started, progress)
	for i, m := range metas {
		if seen[i].State != m.Status || seen[i].DateDone != nil {
			t.Errorf("%s: python sees state %s date_done %v", m.Status, seen[i].State, seen[i].DateDone)
		}
		sameJSON(t, m.Status+" info", seen[i].Info, m.Result)
	}
}

// TestPythonGetWokenByPublish starts Python's get() first and stores only
// after Python has subscribed and read the empty key, so only the PUBLISH
// can end its wait (else get(timeout=10) raises TimeoutError).
func TestPythonGetWokenByPublish(t *testing.T) {
	tests := []struct {
		name  string
		metas []protocol.ResultMeta // stored in order after Python waits
		check func(t *testing.T, s pySeen)
	}{
		{"SUCCESS", []protocol.ResultMeta{successMeta("", `{"answer":42}`)}, func(t *testing.T, s pySeen) {
			sameJSON(t, "get()", s.Value, json.RawMessage(`{"answer":42}`))
		}},
		{"STARTED and RETRY do not end get, FAILURE does", []protocol.ResultMeta{
			{Status: protocol.StateStarted, Result: json.RawMessage(`{"pid":1,"hostname":"celery@go"}`)},
			exceptionMeta("", protocol.StateRetry, "RuntimeError", "builtins", "again"),
			exceptionMeta("", protocol.StateFailure, "DivisionError", "go.diag", "boom"),
		}, func(t *testing.T, s pySeen) {
			if s.Raised == nil || s.Raised.Class != "DivisionError" || s.Raised.Str != "boom" {
				t.Errorf("get() raised %+v, want DivisionError('boom')", s.Raised)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := newUUID()
			b := interopBackend(t, id)
			cmd, stderr := pythonCmd(t, "wait", id)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatalf("start python: %v", err)
			}
			rd := bufio.NewReader(stdout)
			line, err := rd.ReadString('\n')
			if err != nil || line != "GOT\n" {
				_ = cmd.Wait()
				t.Fatalf("python did not start waiting (%q, %v)\n%s", line, err, stderr.Bytes())
			}
			for _, m := range tt.metas {
				m.TaskID = id
				if err := b.Store(context.Background(), m); err != nil {
					t.Fatalf("Store: %v", err)
				}
			}
			var rest bytes.Buffer
			if _, err := rest.ReadFrom(rd); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("python: %v\n%s", err, stderr.Bytes())
			}
			s := parseSeen(t, rest.Bytes(), 1)[0]
			if s.Raised != nil && s.Raised.Class == "TimeoutError" {
				t.Fatalf("python get() timed out: PUBLISH did not wake it")
			}
			final := tt.metas[len(tt.metas)-1].Status
			if s.State != final {
				t.Errorf("python state %s, want %s", s.State, final)
			}
			tt.check(t, s)
		})
	}
}

// TestGoReadsPythonResults has Python's own backend store results, then
// reads them with Get and Wait.
func TestGoReadsPythonResults(t *testing.T) {
	const writer = `
import sys
from celery import Celery
app = Celery(broker='memory://', backend=sys.argv[1])
app.conf.result_extended = True
from celery.app.task import Context
ok, bad = sys.argv[2], sys.argv[3]
req = Context(task='tasks.add', args=[1], kwargs={'k': 2}, hostname='celery@py', retries=1,
              delivery_info={'routing_key': 'celery'}, group='g-1')
app.backend.store_result(ok, {'x': ['é', 1]}, 'SUCCESS', request=req)
app.backend.store_result(bad, ValueError('boom', 2), 'FAILURE', traceback='tb')
`
	ok, bad := newUUID(), newUUID()
	b := interopBackend(t, ok, bad)
	cmd := exec.Command(pythonPath(), "-c", writer, redisURL(), ok, bad)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("python store_result: %v\n%s", err, out)
	}
	ctx := context.Background()
	m, err := b.Wait(ctx, ok)
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != protocol.StateSuccess || m.DateDone == nil || m.TaskID != ok || m.GroupID != "g-1" {
		t.Errorf("SUCCESS meta: %+v", m)
	}
	if x := m.Extended; x == nil || x.Name != "tasks.add" || x.Worker != "celery@py" || x.Retries != 1 || x.Queue != "celery" {
		t.Errorf("extended fields: %+v", m.Extended)
	} else {
		sameJSON(t, "args", x.Args, json.RawMessage(`[1]`))
		sameJSON(t, "kwargs", x.Kwargs, json.RawMessage(`{"k":2}`))
	}
	sameJSON(t, "result", m.Result, json.RawMessage(`{"x":["é",1]}`))
	m, err = b.Get(ctx, bad)
	if err != nil {
		t.Fatal(err)
	}
	var info protocol.ExceptionInfo
	if err := json.Unmarshal(m.Result, &info); err != nil {
		t.Fatal(err)
	}
	if m.Status != protocol.StateFailure || info.Error() != `ValueError: ["boom",2]` || info.Module != "builtins" ||
		m.Traceback == nil || *m.Traceback != "tb" {
		t.Errorf("FAILURE meta: %+v, exception %v", m, info)
	}
	// Python's SUCCESS is protected from Go writes too.
	if err := b.Store(ctx, exceptionMeta(ok, protocol.StateFailure, "E", "m")); err == nil {
		t.Error("Store replaced a SUCCESS written by Python")
	}
}
