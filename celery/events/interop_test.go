package events

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/internal/testenv"
)

// The interop tests run Debian's real Celery 5.2 (/usr/bin/python3, PYTHON overrides it) against
// events sent from Go on the real "celeryev" exchange, as `celery events` and Flower only listen
// there. Other processes may see these events; the tests tell theirs apart by a unique node name
// and task ids.

func pythonPath() string {
	if p := os.Getenv("PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}

// pyProcess is a Python subprocess whose output is collected.
type pyProcess struct {
	cmd    *exec.Cmd
	out    *testenv.LogBuffer
	exited chan struct{}
}

// startPython runs python with args in testdata/, killing it at cleanup; its output is logged if the
// test fails.
func startPython(t *testing.T, args ...string) *pyProcess {
	t.Helper()
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pythonPath()); err != nil {
		t.Fatalf("Debian's python3 with Celery 5.2 is required at %s (run scripts/services.sh): %v", pythonPath(), err)
	}
	p := &pyProcess{cmd: exec.Command(pythonPath(), args...), out: new(testenv.LogBuffer), exited: make(chan struct{})}
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), "PYTHONPATH="+dir, "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1",
		"CELERY_BROKER_URL="+testenv.AMQPURL())
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", pythonPath(), err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("output of %s:\n%s", strings.Join(args, " "), p.out.String())
		}
	})
	return p
}

func (p *pyProcess) kill() {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// waitOutput waits until the output contains every one of parts on one line, sending probe (if not
// nil) every 100 ms meanwhile, and fails after 60 s or if the process exits.
func (p *pyProcess) waitOutput(t *testing.T, probe func(), parts ...string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for p.out.Count(parts...) == 0 {
		if probe != nil {
			probe()
		}
		select {
		case <-p.exited:
			if p.out.Count(parts...) > 0 {
				return
			}
			t.Fatalf("python exited before printing %q", parts)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			t.Fatalf("python did not print %q within 60 s", parts)
		}
	}
}

// interopDispatcher publishes to the real celeryev exchange as a unique node.
func interopDispatcher(t *testing.T, batch int) (*Dispatcher, string) {
	t.Helper()
	node := "gotest-" + testenv.Suffix() + "@interop"
	d, err := NewDispatcher(newRabbitBroker(t), Options{Hostname: node, Enabled: true, BatchLimit: batch,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.Close(ctx)
	})
	return d, node
}

// TestInteropCeleryEventsDump runs `celery events --dump` and checks it prints the worker and task
// events a Go node sends (task events batched as task.multi, as the prefork worker sends them).
func TestInteropCeleryEventsDump(t *testing.T) {
	t.Parallel()
	d, node := interopDispatcher(t, 0)
	dump := startPython(t, "-m", "celery", "-A", "evapp", "events", "--dump")
	// The dump's queue exists, bound and consumed, once it prints a probe event of ours.
	dump.waitOutput(t, func() { d.Send(Event{Type: "gotest-probe"}) }, node, "gotest probe")

	h := StartHeartbeat(d, HeartbeatOptions{Status: func() (int, int) { return 1, 2 }})
	ok, bad := newUUID(), newUUID()
	d.Send(NewTaskReceived(TaskInfo{ID: ok, Name: "diag.add", ArgsRepr: "(2, 3)", KwargsRepr: "{}", RootID: ok}))
	d.Send(NewTaskStarted(ok))
	d.Send(NewTaskSucceeded(ok, json.RawMessage("5"), 2*time.Millisecond))
	d.Send(NewTaskReceived(TaskInfo{ID: bad, Name: "diag.fail", ArgsRepr: "('boom',)", KwargsRepr: "{}", RootID: bad}))
	d.Send(NewTaskStarted(bad))
	d.Send(NewTaskFailed(bad, ExceptionRepr("DiagError", "boom"), "Traceback (most recent call last):\nDiagError: boom\n"))
	h.Stop()
	d.Send(Event{Type: "gotest-done"})
	dump.waitOutput(t, nil, node, "gotest done")
	dump.kill()
	for _, line := range strings.Split(dump.out.String(), "\n") {
		if strings.Contains(line, node) {
			t.Log(line)
		}
	}

	for _, want := range [][]string{
		{node, "] started: ", "sw_ident=go-celery", "freq=2.0", "active=1", "processed=2"},
		{node, "] task received: ", "diag.add(" + ok + ") args=(2, 3) kwargs={}"},
		{node, "] task started: ", "diag.add(" + ok + ")"},
		{node, "] task succeeded: ", "diag.add(" + ok + ")", "result=5", "runtime=0.002"},
		{node, "] task received: ", "diag.fail(" + bad + ") args=('boom',) kwargs={}"},
		{node, "] task failed: ", "diag.fail(" + bad + ")", "exception=DiagError('boom')"},
		{node, "] shutdown: ", "sw_ident=go-celery"},
	} {
		if n := dump.out.Count(want...); n != 1 {
			t.Errorf("%d lines with %q in the dump, want 1", n, want)
		}
	}
}

// stateReport is one line of testdata/state_check.py's output.
type stateReport struct {
	Worker *struct {
		Alive      bool      `json:"alive"`
		Status     string    `json:"status"`
		Active     int       `json:"active"`
		Processed  int       `json:"processed"`
		Freq       float64   `json:"freq"`
		LoadAvg    []float64 `json:"loadavg"`
		SWIdent    string    `json:"sw_ident"`
		SWSys      string    `json:"sw_sys"`
		PID        int       `json:"pid"`
		Clock      int64     `json:"clock"`
		Heartbeats int       `json:"heartbeats"`
	} `json:"worker"`
	Tasks map[string]struct {
		State     string   `json:"state"`
		Name      *string  `json:"name"`
		Args      *string  `json:"args"`
		Result    *string  `json:"result"`
		Exception *string  `json:"exception"`
		Runtime   *float64 `json:"runtime"`
		Retries   *int     `json:"retries"`
		Client    *string  `json:"client"`
		Worker    *string  `json:"worker"`
	} `json:"tasks"`
}

// TestInteropPythonState feeds our events (single messages this time) to Celery's
// celery.events.state.State, which Flower is built on, and checks the worker and task states it
// derives: a live worker with our counters, and each task in the state its last event implies.
func TestInteropPythonState(t *testing.T) {
	t.Parallel()
	d, node := interopDispatcher(t, 1)
	py := startPython(t, "state_check.py", node, "60")
	py.waitOutput(t, func() { d.Send(Event{Type: "gotest-probe"}) }, "PROBE")

	ws := WorkerState{Freq: 2 * time.Second, Active: 1, Processed: 5, LoadAvg: [3]float64{0.25, 0.5, 1}, Software: DefaultSoftware()}
	ids := map[string]string{}
	for _, s := range []string{"SUCCESS", "FAILURE", "RETRY", "REVOKED", "REJECTED", "STARTED"} {
		ids[s] = newUUID()
	}
	ti := func(state, name string) TaskInfo {
		return TaskInfo{ID: ids[state], Name: name, ArgsRepr: "(2, 3)", KwargsRepr: "{}", RootID: ids[state], Retries: 1}
	}
	d.Send(NewWorkerOnline(ws))
	d.Send(NewTaskSent(ti("SUCCESS", "diag.add"), "celery", "", "celery"))
	d.Send(NewWorkerHeartbeat(ws))
	// Not for the rejected task: in Celery's state precedence REJECTED ranks below RECEIVED, so
	// State keeps a received-then-rejected task RECEIVED (for Python workers too).
	for _, s := range []string{"SUCCESS", "FAILURE", "RETRY", "REVOKED", "STARTED"} {
		d.Send(NewTaskReceived(ti(s, "diag."+strings.ToLower(s))))
	}
	d.Send(NewTaskStarted(ids["SUCCESS"]))
	d.Send(NewTaskSucceeded(ids["SUCCESS"], json.RawMessage(`{"x": [1, 2]}`), 1500*time.Millisecond))
	d.Send(NewTaskStarted(ids["FAILURE"]))
	d.Send(NewTaskFailed(ids["FAILURE"], ExceptionRepr("DiagError", "boom"), "Traceback (most recent call last):\n"))
	d.Send(NewTaskStarted(ids["RETRY"]))
	d.Send(NewTaskRetried(ids["RETRY"], ExceptionRepr("Retry", "later"), "tb"))
	d.Send(NewTaskRevoked(ids["REVOKED"], false, 0, true))
	d.Send(NewTaskRejected(ids["REJECTED"], false))
	d.Send(NewTaskStarted(ids["STARTED"]))
	d.Send(Event{Type: "gotest-snapshot"})
	d.Send(NewWorkerOffline(ws))
	d.Send(Event{Type: "gotest-done"})
	py.waitOutput(t, nil, `{"final": `)
	select {
	case <-py.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("state_check.py did not exit after its final report")
	}

	reports := map[string]stateReport{}
	sc := bufio.NewScanner(bytes.NewReader([]byte(py.out.String())))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte("{")) {
			continue
		}
		var m map[string]stateReport
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("report %s: %v", line, err)
		}
		for k, v := range m {
			reports[k] = v
		}
	}
	snap, final := reports["snapshot"], reports["final"]
	w := snap.Worker
	if w == nil {
		t.Fatalf("State has no worker %s: %+v", node, reports)
	}
	if !w.Alive || w.Status != "ONLINE" || w.Active != 1 || w.Processed != 5 || w.Freq != 2 ||
		fmt.Sprint(w.LoadAvg) != "[0.25 0.5 1]" || w.SWIdent != "go-celery" || w.SWSys != "Linux" ||
		w.PID != os.Getpid() || w.Heartbeats < 1 || w.Clock < 3 {
		t.Errorf("worker in State: %+v", *w)
	}
	if final.Worker == nil || final.Worker.Alive || final.Worker.Status != "OFFLINE" {
		t.Errorf("worker after worker-offline: %+v", final.Worker)
	}
	for s, id := range ids {
		task, ok := snap.Tasks[id]
		if !ok {
			t.Errorf("State has no task %s (%s)", id, s)
			continue
		}
		if s == "REJECTED" {
			if task.State != s || task.Worker == nil || *task.Worker != node {
				t.Errorf("task %s: %+v", s, task)
			}
			continue
		}
		if task.State != s || task.Worker == nil || *task.Worker != node || task.Name == nil ||
			*task.Name != "diag."+strings.ToLower(s) || task.Args == nil || *task.Args != "(2, 3)" ||
			task.Retries == nil || *task.Retries != 1 {
			t.Errorf("task %s: %+v", s, task)
		}
	}
	succ, fail := snap.Tasks[ids["SUCCESS"]], snap.Tasks[ids["FAILURE"]]
	if succ.Result == nil || *succ.Result != "{'x': [1, 2]}" || succ.Runtime == nil || *succ.Runtime != 1.5 ||
		succ.Client == nil || *succ.Client != node {
		t.Errorf("succeeded task: %+v", succ)
	}
	if fail.Exception == nil || *fail.Exception != "DiagError('boom')" {
		t.Errorf("failed task: %+v", fail)
	}
}
