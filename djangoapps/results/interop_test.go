package results_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/broker/amqpbroker"
	"github.com/forumads/forumads/celery/canvas"
	"github.com/forumads/forumads/djangoapps/results"
	"github.com/forumads/forumads/internal/testenv"
)

// valueError is a Go failure Python rebuilds as the builtin ValueError.
type valueError struct{ msg string }

func (e *valueError) Error() string     { return e.msg }
func (e *valueError) ExcType() string   { return "ValueError" }
func (e *valueError) ExcModule() string { return "builtins" }

type addArgs struct {
	X int `celery:"x"`
	Y int `celery:"y"`
}

type sumArgs struct {
	Numbers []int `celery:"numbers"`
}

type messageArgs struct {
	Message string `celery:"message"`
}

// djrTasks are the Go twins of testdata/djapp.py.
func djrTasks() *celery.Registry {
	reg := celery.NewRegistry()
	celery.Register(reg, "djr.add", func(_ context.Context, t *celery.Task[addArgs]) (int, error) {
		return t.Args.X + t.Args.Y, nil
	})
	celery.Register(reg, "djr.sum", func(_ context.Context, t *celery.Task[sumArgs]) (int, error) {
		n := 0
		for _, x := range t.Args.Numbers {
			n += x
		}
		return n, nil
	})
	celery.Register(reg, "djr.fail", func(_ context.Context, t *celery.Task[messageArgs]) (any, error) {
		return nil, &valueError{t.Args.Message}
	})
	celery.Register(reg, "djr.retry", func(_ context.Context, t *celery.Task[messageArgs]) (any, error) {
		return nil, celery.Retry(&valueError{t.Args.Message}, celery.Countdown(60*time.Second))
	}, celery.MaxRetries(3))
	celery.Register(reg, "djr.ignore", func(context.Context, *celery.Task[celery.Raw]) (any, error) {
		return nil, celery.ErrIgnore
	})
	return reg
}

// testdataDir is this package's testdata directory.
func testdataDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// pythonEnv is the environment of the Python peer on schema s.
func pythonEnv(t testing.TB, s *schema) []string {
	return djangoEnv(s, "PYTHONPATH="+testdataDir(t)+string(os.PathListSeparator)+projectDir())
}

// peer runs testdata/djpeer.py with args and decodes its JSON output into out.
func peer(t testing.TB, s *schema, out any, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, pythonPath(), append([]string{filepath.Join(testdataDir(t), "djpeer.py")}, args...)...)
	cmd.Dir, cmd.Env = testdataDir(t), pythonEnv(t, s)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("djpeer.py %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("djpeer.py %s printed %q: %v\n%s", args[0], stdout.String(), err, stderr.String())
	}
}

// startPythonWorker runs a Celery 5.2 worker of testdata/djapp.py on queue (node name node;
// result_extended as extended) until the test ends; at cleanup it is stopped warm and must exit 0.
func startPythonWorker(t *testing.T, s *schema, queue, node string, extended bool) {
	t.Helper()
	cmd := exec.Command(pythonPath(), "-m", "celery", "-A", "djapp", "worker", "-Q", queue, "-n", node,
		"-P", "solo", "-c", "1", "--without-mingle", "--without-gossip", "--without-heartbeat", "-l", "info")
	ext := "DJR_RESULT_EXTENDED=0"
	if extended {
		ext = "DJR_RESULT_EXTENDED=1"
	}
	cmd.Dir, cmd.Env = testdataDir(t), append(pythonEnv(t, s), ext)
	log := &testenv.LogBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the Python worker: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("the Python worker's warm shutdown: %v\n%s", err, log.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("the Python worker did not stop within 30s\n%s", log.String())
		}
	})
	err := testenv.Poll(90*time.Second, func() (bool, error) {
		select {
		case err := <-exited:
			exited <- err
			return false, fmt.Errorf("the Python worker exited (%v):\n%s", err, log.String())
		default:
		}
		return log.Count(" ready.") > 0, nil
	})
	if err != nil {
		t.Fatalf("the Python worker is not ready: %v\n%s", err, log.String())
	}
}

// startGoWorker runs a Go worker of djrTasks on queue (node name node) with the django-db backend
// on s, until the test ends.
func startGoWorker(t *testing.T, s *schema, queue, node string, extended bool) {
	t.Helper()
	b, err := results.Open(context.Background(), s.URL, results.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	one := 1
	cfg := celery.Config{BrokerURL: testenv.AMQPURL(), ResultBackend: "django-db", DatabaseURL: s.URL,
		ResultExtended: extended, WorkerConcurrency: 2, WorkerPrefetchMultiplier: &one}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	br, err := amqpbroker.New(cfg.BrokerURL, amqpbroker.Options{Logger: log, ConnectionName: "djr-go-worker"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = br.Close() })
	sender, err := canvas.NewSender(cfg, br, b)
	if err != nil {
		t.Fatal(err)
	}
	wc, err := canvas.NewWorkerCanvas(sender, b) // chords count on b's ChordCounter rows
	if err != nil {
		t.Fatal(err)
	}
	w, err := celery.NewWorker(celery.WorkerOptions{Config: cfg, Registry: djrTasks(), Broker: br, Backend: b,
		Canvas: wc, Queues: []string{queue}, Hostname: node, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := w.Shutdown(ctx); err != nil {
			t.Errorf("Go worker shutdown: %v", err)
		}
		if err := <-done; err != nil && !errors.Is(err, celery.ErrWorkerClosed) {
			t.Errorf("Go worker Run: %v", err)
		}
	})
}

// taskRow is a TaskResult row as the Django ORM reads it.
type taskRow map[string]any

// waitRows polls the ORM until every id in want has a row in the state wanted.
func waitRows(t *testing.T, s *schema, want map[string]string) map[string]taskRow {
	t.Helper()
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	var got map[string]taskRow
	err := testenv.Poll(90*time.Second, func() (bool, error) {
		got = nil
		peer(t, s, &got, append([]string{"rows"}, ids...)...)
		for id, state := range want {
			if r, ok := got[id]; !ok || r["status"] != state {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("rows %v; want the states %v: %v", got, want, err)
	}
	return got
}

// TestGoRowsAreThePythonRows sends the same tasks, from a Python client, to a Go worker and to a
// Python Celery 5.2 worker, both on the django-db backend with result_extended in one migrated
// schema, and compares the TaskResult rows the Django ORM reads field by field. Then Python's
// AsyncResult(id).get() on result_backend='django-db' reads the Go results (raising the Go
// failure as ValueError), and the Django admin lists them.
//
// Without result_extended the same comparison runs on its own schema: task_name, task_args,
// task_kwargs, worker and (as django-celery-results 2.4 writes it) traceback are NULL on both sides.
func TestGoRowsAreThePythonRows(t *testing.T) {
	t.Parallel()
	t.Run("ResultExtended", func(t *testing.T) { t.Parallel(); compareRows(t, true) })
	t.Run("NotExtended", func(t *testing.T) { t.Parallel(); compareRows(t, false) })
}

func compareRows(t *testing.T, extended bool) {
	s := newSchema(t)
	if extended {
		migrate(t, s) // the whole project: the admin needs auth, sessions, contenttypes
	} else {
		migrate(t, s, "django_celery_results")
	}
	goQueue, pyQueue := testenv.Name(t, "djr.go"), testenv.Name(t, "djr.py")
	testenv.DeleteQueuesAtCleanup(t, goQueue, pyQueue)
	goNode, pyNode := "djr-go-"+testenv.Suffix()+"@test", "djr-py-"+testenv.Suffix()+"@test"
	startGoWorker(t, s, goQueue, goNode, extended)
	startPythonWorker(t, s, pyQueue, pyNode, extended)

	var goIDs, pyIDs map[string]string
	peer(t, s, &goIDs, "send", goQueue)
	peer(t, s, &pyIDs, "send", pyQueue)
	states := map[string]string{"add": "SUCCESS", "add_kwargs": "SUCCESS", "fail": "FAILURE", "retry": "RETRY"}
	want := map[string]string{}
	for k, st := range states {
		want[goIDs[k]], want[pyIDs[k]] = st, st
	}
	rows := waitRows(t, s, want)

	// Fields that must be equal; the rest are checked below.
	same := []string{"status", "result", "content_type", "content_encoding", "meta", "task_name", "task_args",
		"task_kwargs", "periodic_task_name"}
	for _, k := range []string{"add", "add_kwargs", "fail", "retry"} {
		g, p := rows[goIDs[k]], rows[pyIDs[k]]
		t.Run(k, func(t *testing.T) {
			for _, f := range same {
				// A retry's meta lists the retry as a child: the task's own id.
				gv := strings.ReplaceAll(fmt.Sprint(g[f]), goIDs[k], "<own id>")
				pv := strings.ReplaceAll(fmt.Sprint(p[f]), pyIDs[k], "<own id>")
				if gv != pv {
					t.Errorf("%s: Go wrote %#v, Python %#v", f, g[f], p[f])
				}
			}
			t.Logf("Go row: %v\nPython row: %v", g, p)
			if extended && (g["worker"] != goNode || p["worker"] != pyNode) {
				t.Errorf("worker: Go %v, Python %v", g["worker"], p["worker"])
			}
			if !extended && (g["worker"] != nil || p["worker"] != nil) {
				t.Errorf("worker without result_extended: Go %v, Python %v; want null", g["worker"], p["worker"])
			}
			if (g["traceback"] == nil) != (p["traceback"] == nil) {
				t.Errorf("traceback: Go %q, Python %q; want both set or both null", g["traceback"], p["traceback"])
			}
			if !extended && g["traceback"] != nil {
				t.Errorf("traceback without result_extended: %q; django-celery-results 2.4 writes null", g["traceback"])
			}
			for _, r := range []taskRow{g, p} {
				created, cerr := time.Parse(time.RFC3339Nano, fmt.Sprint(r["date_created"]))
				done, derr := time.Parse(time.RFC3339Nano, fmt.Sprint(r["date_done"]))
				if cerr != nil || derr != nil || done.Before(created) || time.Since(done) > 10*time.Minute {
					t.Errorf("dates: created %v, done %v (%v, %v)", r["date_created"], r["date_done"], cerr, derr)
				}
			}
		})
	}
	// Ignore stores nothing, on either side.
	var ignored map[string]taskRow
	peer(t, s, &ignored, "rows", goIDs["ignore"], pyIDs["ignore"])
	if len(ignored) != 0 {
		t.Errorf("an ignored task has rows: %v", ignored)
	}

	if !extended {
		return
	}
	t.Run("PythonGetsTheGoResults", func(t *testing.T) {
		var got map[string]map[string]any
		peer(t, s, &got, "get", "30", goIDs["add"], goIDs["add_kwargs"], goIDs["fail"])
		if v := got[goIDs["add"]]; v["state"] != "SUCCESS" || v["value"] != float64(5) {
			t.Errorf("get(add) = %v; want 5", v)
		}
		if v := got[goIDs["add_kwargs"]]; v["value"] != float64(42) {
			t.Errorf("get(add_kwargs) = %v; want 42", v)
		}
		v := got[goIDs["fail"]]
		if v["state"] != "FAILURE" || v["exc_type"] != "ValueError" || v["exc_module"] != "builtins" ||
			fmt.Sprint(v["args"]) != "[boom]" || !strings.Contains(fmt.Sprint(v["traceback"]), "boom") {
			t.Errorf("get(fail) = %v; want ValueError('boom') raised, with the Go traceback", v)
		}
	})
	t.Run("TheAdminListsGoResults", func(t *testing.T) {
		var got struct {
			Status int             `json:"status"`
			Shown  map[string]bool `json:"shown"`
			Detail map[string]int  `json:"detail"`
		}
		peer(t, s, &got, "admin", goIDs["add"], goIDs["fail"], goIDs["retry"])
		if got.Status != 200 {
			t.Fatalf("the admin's TaskResult list answered %d", got.Status)
		}
		for _, k := range []string{"add", "fail", "retry"} {
			if !got.Shown[goIDs[k]] || got.Detail[goIDs[k]] != 200 {
				t.Errorf("%s (%s): listed %v, its page %d", k, goIDs[k], got.Shown[goIDs[k]], got.Detail[goIDs[k]])
			}
		}
	})
}

// TestGoWorkersCompleteAPythonChord: a Python client's chord on django-db creates its ChordCounter
// (apply_chord: the header's result tuples, count = size); Go workers run the header and the body,
// counting the parts down on that row as the Python worker does, and Python reads the body's
// result. The counter row is gone afterwards.
func TestGoWorkersCompleteAPythonChord(t *testing.T) {
	t.Parallel()
	s := migratedSchema(t)
	queue := testenv.Name(t, "djr.chord")
	testenv.DeleteQueuesAtCleanup(t, queue)
	startGoWorker(t, s, queue, "djr-chord-"+testenv.Suffix()+"@test", false)
	var sent struct{ Body, Group string }
	peer(t, s, &sent, "chord", queue, "5")
	var got map[string]map[string]any
	peer(t, s, &got, "get", "60", sent.Body)
	if v := got[sent.Body]; v["state"] != "SUCCESS" || v["value"] != float64(0+2+4+6+8) {
		t.Fatalf("the chord body: %v; want SUCCESS 20", v)
	}
	var counter map[string]any
	peer(t, s, &counter, "counter", sent.Group)
	if len(counter) != 0 {
		t.Errorf("the ChordCounter is still there after the chord completed: %v", counter)
	}
}
