package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/internal/testenv"
)

// opsWorker is a ./worker started for the operations tests: its own node name, queue and revoke
// key prefix, task events on (-E), no metrics endpoint.
type opsWorker struct {
	*process
	node, queue, prefix string
}

// startOpsWorker starts ./worker as node on queue with the revoke prefix (shared by restarts).
func startOpsWorker(t *testing.T, node, queue, prefix string, args ...string) *opsWorker {
	t.Helper()
	cfg := fmt.Sprintf("broker_url: %q\nresult_backend: %q\nresult_expires: 3600\nworker_revoke_key_prefix: %q\n",
		testenv.AMQPURL(), testenv.RedisURL(), prefix)
	path := filepath.Join(t.TempDir(), "celeryconfig.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"--config", path, "-Q", queue, "-n", node, "-l", "info", "-E", "--metrics-addr="}
	cmd := exec.Command(workerBin, append(base, args...)...)
	cmd.Env = append(os.Environ(), "CELERY_BROKER_URL="+testenv.AMQPURL(), "CELERY_RESULT_BACKEND="+testenv.RedisURL())
	w := &opsWorker{process: startProcess(t, "go worker "+node, cmd, "worker ready"), node: node, queue: queue, prefix: prefix}
	if err := w.log.waitFor("worker ready", w.exited, 30*time.Second); err != nil {
		t.Fatalf("%s: %v", node, err)
	}
	return w
}

// stopAtCleanup stops the worker warmly when the test ends (if it still runs) and expects exit 0.
func (w *opsWorker) stopAtCleanup(t *testing.T) {
	t.Cleanup(func() {
		select {
		case <-w.exited:
			return
		default:
		}
		if err := w.stop(30 * time.Second); err != nil {
			t.Errorf("%s: warm shutdown should exit 0: %v", w.name, err)
		}
	})
}

// py runs testdata/opsapp.py (a client) or `python3 -m celery -A opsapp` with its arguments.
type py struct {
	t       *testing.T
	dir     string
	mu      sync.Mutex
	results []string // ids whose results are deleted at cleanup
}

func newPy(t *testing.T) *py {
	p := &py{t: t, dir: testdataDir(t)}
	rc := testenv.Redis(t)
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, id := range p.results {
			rc.Del(context.Background(), "celery-task-meta-"+id)
		}
	})
	return p
}

func (p *py) run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, pythonPath(), args...)
	cmd.Dir = p.dir
	cmd.Env = pythonEnv(map[string]string{"PYTHONPATH": p.dir, "BROKER_URL": testenv.AMQPURL(),
		"BACKEND_URL": testenv.RedisURL(), "PYTHONDONTWRITEBYTECODE": "1"})
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errb.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("python3 %v: %v", args, err)
	}
	return out.String(), errb.String(), 0
}

// celery runs `celery -A opsapp <args> -d node --timeout 5` and returns what it printed; a non-zero
// exit fails the test. The command and its output are logged (the issue quotes them).
func (p *py) celery(t *testing.T, node string, args ...string) string {
	t.Helper()
	full := append([]string{"-m", "celery", "-A", "opsapp"}, args...)
	full = append(full, "-d", node, "--timeout", "5")
	out, errOut, code := p.run(t, full...)
	t.Logf("$ celery -A opsapp %s\n%s", strings.Join(full[4:], " "), out)
	if code != 0 {
		t.Fatalf("celery %v exited %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errOut)
	}
	return out
}

// send publishes a task from Python and returns its id.
func (p *py) send(t *testing.T, name string, args []any, opts map[string]any) string {
	t.Helper()
	a, _ := json.Marshal(args)
	o, _ := json.Marshal(opts)
	out, errOut, code := p.run(t, "opsapp.py", "send", name, string(a), string(o))
	id := strings.TrimSpace(out)
	if code != 0 || id == "" {
		t.Fatalf("sending %s: exit %d\n%s%s", name, code, out, errOut)
	}
	p.mu.Lock()
	p.results = append(p.results, id)
	p.mu.Unlock()
	return id
}

// pyState is what AsyncResult shows.
type pyState struct {
	State  string          `json:"state"`
	Exc    string          `json:"exc"`
	Args   []string        `json:"args"`
	Result json.RawMessage `json:"result"`
}

// state waits up to wait for the task to be ready and returns what Python sees.
func (p *py) state(t *testing.T, id string, wait time.Duration) pyState {
	t.Helper()
	out, errOut, code := p.run(t, "opsapp.py", "state", id, fmt.Sprint(wait.Seconds()))
	var s pyState
	if code != 0 || json.Unmarshal([]byte(out), &s) != nil {
		t.Fatalf("state of %s: exit %d\n%s%s", id, code, out, errOut)
	}
	return s
}

// has fails the test unless out contains every part.
func has(t *testing.T, what, out string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(out, p) {
			t.Errorf("%s printed\n%s\nwithout %q", what, out, p)
		}
	}
}

// TestOpsCeleryCLI runs Python Celery 5.2's own `celery inspect`, `celery control` and `celery
// events` against a Go worker: every answer is the one Celery's tools expect.
func TestOpsCeleryCLI(t *testing.T) {
	t.Parallel()
	testenv.AMQP(t)
	rc := testenv.Redis(t)
	suffix := testenv.Suffix()
	node := "celery@gotest-" + suffix
	queue := testenv.Name(t, "ops")
	prefix := "t:" + suffix + ":revoked:"
	testenv.DeleteQueuesAtCleanup(t, queue, queue+".extra")
	testenv.DeleteKeysAtCleanup(t, rc, prefix+"ids")
	w := startOpsWorker(t, node, queue, prefix, "-c", "2")
	w.stopAtCleanup(t)
	p := newPy(t)
	on := map[string]any{"queue": queue}

	t.Run("inspect ping", func(t *testing.T) {
		t.Parallel()
		if out := p.celery(t, node, "inspect", "ping"); out != "->  "+node+": OK\n        pong\n\n1 node online.\n" {
			t.Errorf("ping printed %q", out)
		}
	})
	t.Run("inspect stats", func(t *testing.T) {
		t.Parallel()
		has(t, "stats", p.celery(t, node, "inspect", "stats"), "->  "+node+": OK", `"max-concurrency": 2`,
			`"prefetch_count": `, `"transport": "amqp"`, `"rusage": {`, "1 node online.")
	})
	t.Run("inspect conf", func(t *testing.T) {
		t.Parallel()
		out := p.celery(t, node, "inspect", "conf")
		has(t, "conf", out, `"result_expires": 3600`, `"worker_revoke_key_prefix": "`+prefix+`"`)
		if regexp.MustCompile(`://[^:"]*:[^*"]+@`).MatchString(out) {
			t.Errorf("conf shows a password:\n%s", out)
		}
	})
	t.Run("rate_limit then registered", func(t *testing.T) {
		t.Parallel()
		if out := p.celery(t, node, "control", "rate_limit", "diag.echo", "10/m"); out != "->  "+node+": OK\n        new rate limit set successfully\n" {
			t.Errorf("rate_limit printed %q", out)
		}
		has(t, "registered", p.celery(t, node, "inspect", "registered"), "* diag.add\n", "* diag.echo [rate_limit=10/m]\n", "* diag.sleep\n")
		if out := p.celery(t, node, "control", "rate_limit", "no.such", "1/s"); out != "->  "+node+": ERROR\n        unknown task\n" {
			t.Errorf("rate_limit of an unknown task printed %q", out)
		}
	})
	t.Run("active, query_task, terminate", func(t *testing.T) {
		t.Parallel()
		id := p.send(t, "diag.sleep", []any{60}, on)
		testenv.Eventually(t, 30*time.Second, func() bool {
			return strings.Contains(p.celery(t, node, "inspect", "active"), "'id': '"+id+"', 'name': 'diag.sleep', 'args': [60]")
		}, "diag.sleep in inspect active")
		has(t, "query_task", p.celery(t, node, "inspect", "query_task", id), `"`+id+`": [`, `"active",`, `"acknowledged": true`)
		has(t, "terminate", p.celery(t, node, "control", "terminate", "SIGTERM", id), "terminate: "+id)
		if s := p.state(t, id, 10*time.Second); s.State != "REVOKED" || s.Exc != "TaskRevokedError" || fmt.Sprint(s.Args) != "[terminated]" {
			t.Errorf("terminated diag.sleep: Python sees %+v", s)
		}
	})
	t.Run("scheduled", func(t *testing.T) {
		t.Parallel()
		id := p.send(t, "diag.add", []any{1, 2}, map[string]any{"queue": queue, "countdown": 300})
		testenv.Eventually(t, 30*time.Second, func() bool {
			return strings.Contains(p.celery(t, node, "inspect", "scheduled"), "'request': {'id': '"+id+"'")
		}, "the ETA task in inspect scheduled")
		has(t, "scheduled", p.celery(t, node, "inspect", "scheduled"), "{'eta': '", "'priority': 6")
	})
	t.Run("revoke a queued task", func(t *testing.T) {
		t.Parallel()
		id := celery.NewID()
		if out := p.celery(t, node, "control", "revoke", id); out != "->  "+node+": OK\n        tasks "+id+" flagged as revoked\n" {
			t.Errorf("revoke printed %q", out)
		}
		has(t, "revoked", p.celery(t, node, "inspect", "revoked"), "* "+id+"\n")
		p.send(t, "diag.add", []any{1, 1}, map[string]any{"queue": queue, "task_id": id})
		if s := p.state(t, id, 20*time.Second); s.State != "REVOKED" || s.Exc != "TaskRevokedError" || fmt.Sprint(s.Args) != "[revoked]" {
			t.Errorf("revoked task: Python sees %+v", s)
		}
		if n := w.log.String(); strings.Contains(n, "Task diag.add["+id+"] succeeded") {
			t.Errorf("the revoked task ran")
		}
	})
	t.Run("add_consumer, cancel_consumer", func(t *testing.T) {
		t.Parallel()
		extra := queue + ".extra"
		if out := p.celery(t, node, "control", "add_consumer", extra); out != "->  "+node+": OK\n        add consumer "+extra+"\n" {
			t.Errorf("add_consumer printed %q", out)
		}
		has(t, "active_queues", p.celery(t, node, "inspect", "active_queues"), "'name': '"+queue+"'", "'name': '"+extra+"'")
		id := p.send(t, "diag.add", []any{20, 22}, map[string]any{"queue": extra})
		if s := p.state(t, id, 20*time.Second); s.State != "SUCCESS" || string(s.Result) != "42" {
			t.Errorf("task on the added queue: %+v", s)
		}
		if out := p.celery(t, node, "control", "cancel_consumer", extra); out != "->  "+node+": OK\n        no longer consuming from "+extra+"\n" {
			t.Errorf("cancel_consumer printed %q", out)
		}
		if out := p.celery(t, node, "inspect", "active_queues"); strings.Contains(out, "'name': '"+extra+"'") {
			t.Errorf("active_queues still lists %s:\n%s", extra, out)
		}
	})
	t.Run("events dump", func(t *testing.T) {
		t.Parallel()
		cmd := exec.Command(pythonPath(), "-m", "celery", "-A", "opsapp", "events", "--dump")
		cmd.Dir = p.dir
		cmd.Env = pythonEnv(map[string]string{"PYTHONPATH": p.dir, "BROKER_URL": testenv.AMQPURL(), "BACKEND_URL": testenv.RedisURL()})
		dump := startProcess(t, "celery events --dump", cmd, "starting capture")
		defer func() { _ = dump.stop(10 * time.Second) }()
		if err := dump.log.waitFor("starting capture", dump.exited, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		id := p.send(t, "diag.add", []any{2, 3}, on)
		testenv.Eventually(t, 30*time.Second, func() bool {
			return strings.Contains(dump.log.String(), "task succeeded: diag.add("+id+")")
		}, "the task's events in celery events --dump")
		out := dump.log.String()
		var lines []string
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, id) || (strings.HasPrefix(l, node) && strings.Contains(l, "heartbeat")) {
				lines = append(lines, l)
			}
		}
		t.Logf("$ celery -A opsapp events --dump (lines of %s)\n%s", node, strings.Join(lines, "\n"))
		has(t, "celery events --dump", out, node+" [", "task received: diag.add("+id+") args=[2, 3]",
			"task started: diag.add("+id+")", "task succeeded: diag.add("+id+")", "result=5")
	})
}

// TestOpsCeleryCLIPoolEventsShutdownRestart drives a one-goroutine Go worker: reserved, pool_grow
// (the reserved task then runs), pool_shrink, enable/disable_events, time_limit, then a revoke
// that survives `celery control shutdown` and a restart.
func TestOpsCeleryCLIPoolEventsShutdownRestart(t *testing.T) {
	t.Parallel()
	testenv.AMQP(t)
	rc := testenv.Redis(t)
	suffix := testenv.Suffix()
	node := "celery@gotest-" + suffix
	queue := testenv.Name(t, "ops")
	prefix := "t:" + suffix + ":revoked:"
	testenv.DeleteQueuesAtCleanup(t, queue)
	testenv.DeleteKeysAtCleanup(t, rc, prefix+"ids")
	w := startOpsWorker(t, node, queue, prefix, "-c", "1")
	w.stopAtCleanup(t)
	p := newPy(t)
	on := map[string]any{"queue": queue}

	sleeper := p.send(t, "diag.sleep", []any{60}, on)
	testenv.Eventually(t, 30*time.Second, func() bool {
		return strings.Contains(p.celery(t, node, "inspect", "active"), sleeper)
	}, "diag.sleep to run")
	waiting := p.send(t, "diag.add", []any{4, 4}, on)
	testenv.Eventually(t, 30*time.Second, func() bool {
		return strings.Contains(p.celery(t, node, "inspect", "reserved"), "'id': '"+waiting+"', 'name': 'diag.add', 'args': [4, 4]")
	}, "diag.add in inspect reserved")
	if out := p.celery(t, node, "control", "pool_grow", "1"); out != "->  "+node+": OK\n        pool will grow\n" {
		t.Errorf("pool_grow printed %q", out)
	}
	if s := p.state(t, waiting, 20*time.Second); s.State != "SUCCESS" || string(s.Result) != "8" {
		t.Errorf("the reserved task after pool_grow: %+v", s)
	}
	has(t, "stats", p.celery(t, node, "inspect", "stats"), `"max-concurrency": 2`)
	if out := p.celery(t, node, "control", "pool_shrink", "1"); out != "->  "+node+": OK\n        pool will shrink\n" {
		t.Errorf("pool_shrink printed %q", out)
	}
	has(t, "stats", p.celery(t, node, "inspect", "stats"), `"max-concurrency": 1`)
	has(t, "terminate", p.celery(t, node, "control", "terminate", "SIGKILL", sleeper), "terminate: "+sleeper)

	if out := p.celery(t, node, "control", "disable_events"); out != "->  "+node+": OK\n        task events disabled\n" {
		t.Errorf("disable_events printed %q", out)
	}
	if out := p.celery(t, node, "control", "enable_events"); out != "->  "+node+": OK\n        task events enabled\n" {
		t.Errorf("enable_events printed %q", out)
	}
	if out := p.celery(t, node, "control", "time_limit", "diag.sleep", "0.2", "5"); out != "->  "+node+": OK\n        time limits set successfully\n" {
		t.Errorf("time_limit printed %q", out)
	}
	limited := p.send(t, "diag.sleep", []any{30}, on)
	if s := p.state(t, limited, 20*time.Second); s.State != "FAILURE" || s.Exc != "SoftTimeLimitExceeded" {
		t.Errorf("diag.sleep(30) with a 0.2 s soft limit: %+v", s)
	}

	// A revoke survives the worker: shut it down from Python, start it again, send the task.
	id := celery.NewID()
	p.celery(t, node, "control", "revoke", id)
	has(t, "shutdown", p.celery(t, node, "control", "shutdown"), "->  "+node+": OK")
	select {
	case <-w.exited:
		if w.err != nil {
			t.Fatalf("after celery control shutdown the worker exited with %v, want 0", w.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not exit after celery control shutdown")
	}
	again := startOpsWorker(t, node, queue, prefix, "-c", "1")
	again.stopAtCleanup(t)
	p.send(t, "diag.add", []any{1, 1}, map[string]any{"queue": queue, "task_id": id})
	if s := p.state(t, id, 20*time.Second); s.State != "REVOKED" || s.Exc != "TaskRevokedError" {
		t.Errorf("a task revoked before the restart: Python sees %+v", s)
	}
	if strings.Contains(again.log.String(), "Task diag.add["+id+"] succeeded") {
		t.Error("the revoked task ran after the restart")
	}
}
