package interop

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend/redisbackend"
	"github.com/forumads/forumads/celery/broker/amqpbroker"
	"github.com/forumads/forumads/celery/canvas"
	"github.com/forumads/forumads/internal/testenv"
	"github.com/forumads/forumads/tasks/diag"
)

// startCanvasGoWorker runs an in-process Go worker with canvas support (canvas.NewWorkerCanvas)
// on a queue of its own, with the diag tasks (diag.sum, the sum of a list, is the chord body). Its
// backend has no key prefix, as Python reads it.
func startCanvasGoWorker(t *testing.T) (queue string) {
	t.Helper()
	queue = testenv.Name(t, "interop.gocanvas")
	testenv.DeleteQueuesAtCleanup(t, queue)
	startCanvasGoWorkerOn(t, queue, io.Discard)
	return queue
}

// startCanvasGoWorkerOn runs an in-process Go worker with canvas support consuming queue, logging
// at info level to logs; it is stopped at cleanup.
func startCanvasGoWorkerOn(t *testing.T, queue string, logs io.Writer) {
	t.Helper()
	testenv.AMQP(t)
	rc := testenv.Redis(t)
	cfg := celery.Config{BrokerURL: testenv.AMQPURL(), TaskDefaultQueue: queue, WorkerConcurrency: 4}
	log := slog.New(slog.NewTextHandler(logs, nil))
	br, err := amqpbroker.New(cfg.BrokerURL, amqpbroker.Options{ConnectionName: "interop-gocanvas", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = br.Close() }) // after the worker stops: Run does not close it
	backend := redisbackend.New(rc, redisbackend.Options{Expires: time.Hour})
	s, err := canvas.NewSender(cfg, br, backend)
	if err != nil {
		t.Fatal(err)
	}
	wc, err := canvas.NewWorkerCanvas(s, backend)
	if err != nil {
		t.Fatal(err)
	}
	reg := celery.NewRegistry()
	diag.Register(reg, diag.Deps{})
	w, err := celery.NewWorker(celery.WorkerOptions{Config: cfg, Registry: reg, Broker: br, Backend: backend,
		Hostname: "interop-gocanvas-" + testenv.Suffix() + "@test", Logger: log, Canvas: wc})
	if err != nil {
		t.Fatal(err)
	}
	testenv.RunUntilCleanup(t, "go worker", w.Run)
}

// TestCanvasMixedChain: a chain whose steps alternate between the Go worker's queue and a real
// Celery 5.2 worker's queue; each worker publishes the next step to the other.
func TestCanvasMixedChain(t *testing.T) {
	t.Parallel()
	pyQueue := startCanvasWorker(t)
	goQueue := startCanvasGoWorker(t)
	s, b := canvasSender(t, goQueue)
	res := sendCanvas(t, s, canvas.Chain(canvas.S("diag.add", 1, 2).Queue(goQueue), canvas.S("cv.add", 3).Queue(pyQueue),
		canvas.S("diag.add", 4).Queue(goQueue)))
	var got int
	resultOf(t, b, res.ID, &got)
	if got != 10 {
		t.Fatalf("mixed chain = %d, want 10", got)
	}
	for p := res.Parent; p != nil; p = p.Parent {
		testenv.DeleteKeysAtCleanup(t, testenv.Redis(t), redisbackend.TaskKey("", p.ID))
	}

	// Python worker first, then Go, then Python again.
	res = sendCanvas(t, s, canvas.Chain(canvas.S("cv.add", 1, 2).Queue(pyQueue), canvas.S("diag.add", 3).Queue(goQueue),
		canvas.S("cv.add", 4).Queue(pyQueue)))
	resultOf(t, b, res.ID, &got)
	if got != 10 {
		t.Fatalf("mixed chain (python first) = %d, want 10", got)
	}
	for p := res.Parent; p != nil; p = p.Parent {
		testenv.DeleteKeysAtCleanup(t, testenv.Redis(t), redisbackend.TaskKey("", p.ID))
	}
}

// canvasWorkerClient is a Celery 5.2 client: it sends a chain and chords to the Go worker's queue
// and waits with AsyncResult.get().
const canvasWorkerClient = `
import json, os, sys, uuid
from celery import Celery, chain, chord, group
from celery.result import AsyncResult, GroupResult
app = Celery("cw", broker=os.environ["BROKER_URL"], backend=os.environ["BACKEND_URL"])
app.conf.task_default_queue = sys.argv[1]
pyq = sys.argv[2]
add, xsum, fail, echo = app.signature("diag.add"), app.signature("diag.sum"), app.signature("diag.fail"), app.signature("diag.echo")
def s(sig, *args):
    return sig.clone(args=args)
out = {"ids": []}
r = chain(s(add, 1, 2), s(add, 3), s(add, 4)).apply_async()
out["chain"] = r.get(timeout=60)
out["ids"] += [r.id, r.parent.id, r.parent.parent.id]
# children and parent, read back from what the Go worker stored
first = AsyncResult(r.parent.parent.id, app=app)
out["chain_children_ok"] = [c.id for c in first.children] == [r.parent.id]
out["chain_parent_id"] = app.backend.get_task_meta(r.id).get("parent_id") == r.parent.id
# a group of 100: results in order; saved and restored as a GroupResult
g = group(s(add, i, i) for i in range(100)).apply_async()
out["group"] = g.get(timeout=60) == [2 * i for i in range(100)]
g.save()
out["group_restored"] = GroupResult.restore(g.id, app=app).get(timeout=60) == [2 * i for i in range(100)]
app.backend.delete_group(g.id)
out["ids"] += [x.id for x in g.results]
# link: the callback gets the parent's result prepended; .si keeps its own args
cb = s(add, 10)
r = add.clone(args=(1, 2)).apply_async(link=cb)
out["link_parent"] = r.get(timeout=60)
child = r.children and r.children[0]
out["link"] = child.get(timeout=60) if child else "no children"
out["ids"] += [r.id] + ([child.id] if child else [])
r = add.clone(args=(1, 2)).apply_async(link=app.signature("diag.add", args=(5, 5), immutable=True))
r.get(timeout=60)
child = r.children and r.children[0]
out["link_si"] = child.get(timeout=60) if child else "no children"
out["ids"] += [r.id] + ([child.id] if child else [])
# link_error: the Go worker publishes the errback with the failed task's id
ebid = str(uuid.uuid4())
r = fail.clone(args=("boom",)).apply_async(link_error=echo.clone().set(task_id=ebid))
try:
    r.get(timeout=60)
    out["link_error"] = "no error"
except Exception as e:
    out["link_error"] = type(e).__name__
out["errback"] = AsyncResult(ebid, app=app).get(timeout=60)
out["failed_id"] = r.id
out["ids"] += [r.id, ebid]
# a chord whose header runs on the Go worker and whose body runs on the Python worker
r = chord([s(add, i, 1) for i in range(10)], app.signature("cv.xsum", queue=pyq)).apply_async()
out["chord_py_body"] = r.get(timeout=60)
out["ids"] += [r.id] + [x.id for x in r.parent.results]
r = chord([s(add, i, 1) for i in range(20)], s(xsum)).apply_async()
out["chord"] = r.get(timeout=60)
out["ids"] += [r.id] + [x.id for x in r.parent.results]
r = chord([s(add, 1, 1), s(fail, "boom")], s(xsum)).apply_async()
try:
    out["chord_fail"] = "no error: %r" % (r.get(timeout=60, follow_parents=False),)
except Exception as e:
    out["chord_fail"] = "%s: %s" % (type(e).__name__, e)
try:
    out["chord_fail_parents"] = "no error: %r" % (r.get(timeout=60),)
except Exception as e:
    out["chord_fail_parents"] = type(e).__name__
out["ids"] += [r.id] + [x.id for x in r.parent.results]
print(json.dumps(out))
`

// TestCanvasPythonClientGoWorker: a Celery 5.2 client sends a chain and chords that only the Go
// worker runs; Python's AsyncResult.get() returns the chain's and the chord's results, and for a
// chord with a failing header member the body's stored ChordError (follow_parents=False) or the
// member's own error (the default).
func TestCanvasPythonClientGoWorker(t *testing.T) {
	t.Parallel()
	queue := startCanvasGoWorker(t)
	pyQueue := startCanvasWorker(t)
	cmd := exec.Command(pythonPath(), "-c", canvasWorkerClient, queue, pyQueue)
	cmd.Dir = testdataDir(t)
	cmd.Env = pythonEnv(map[string]string{"BROKER_URL": testenv.AMQPURL(), "BACKEND_URL": testenv.RedisURL(),
		"PYTHONDONTWRITEBYTECODE": "1"})
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("python client: %v\n%s\n%s", err, out, stderr)
	}
	var got struct {
		IDs       []string `json:"ids"`
		Chain     int      `json:"chain"`
		Chord     int      `json:"chord"`
		ChordFail string   `json:"chord_fail"`
		// With follow_parents (the default) get raises the failed header member's own error.
		ChordFailParents string `json:"chord_fail_parents"`
		ChainChildrenOK  bool   `json:"chain_children_ok"`
		ChainParentID    bool   `json:"chain_parent_id"`
		Group            bool   `json:"group"`
		GroupRestored    bool   `json:"group_restored"`
		LinkParent       int    `json:"link_parent"`
		Link             any    `json:"link"`
		LinkSI           any    `json:"link_si"`
		LinkError        string `json:"link_error"`
		Errback          any    `json:"errback"`
		FailedID         string `json:"failed_id"`
		ChordPyBody      int    `json:"chord_py_body"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("python client output %q: %v", out, err)
	}
	for _, id := range got.IDs {
		testenv.DeleteKeysAtCleanup(t, testenv.Redis(t), redisbackend.TaskKey("", id))
	}
	if got.Chain != 10 {
		t.Errorf("chain = %d, want 10", got.Chain)
	}
	if got.Chord != 210 {
		t.Errorf("chord = %d, want 210", got.Chord)
	}
	if !strings.HasPrefix(got.ChordFail, "ChordError: Dependency ") || !strings.Contains(got.ChordFail, "raised DiagError") {
		t.Errorf("chord body with a failing member raised %q, want ChordError: Dependency <id> raised DiagError(...)", got.ChordFail)
	}
	if got.ChordFailParents != "DiagError" {
		t.Errorf("chord get(follow_parents=True) raised %q, want the member's DiagError", got.ChordFailParents)
	}
	if !got.ChainChildrenOK || !got.ChainParentID {
		t.Errorf("chain: AsyncResult.children of the first step names the second: %v; the last step's parent_id is the middle one: %v",
			got.ChainChildrenOK, got.ChainParentID)
	}
	if !got.Group || !got.GroupRestored {
		t.Errorf("group of 100 in order: %v; restored GroupResult: %v", got.Group, got.GroupRestored)
	}
	if got.LinkParent != 3 || fmt.Sprint(got.Link) != "13" {
		t.Errorf("link: parent %d, callback %v (via AsyncResult.children); want 3 and 13", got.LinkParent, got.Link)
	}
	if fmt.Sprint(got.LinkSI) != "10" {
		t.Errorf("immutable link callback = %v, want 10 (its own args only)", got.LinkSI)
	}
	if got.LinkError != "DiagError" || !strings.Contains(fmt.Sprint(got.Errback), got.FailedID) {
		t.Errorf("link_error: task raised %q (want DiagError), errback returned %v (want it to name %s)", got.LinkError, got.Errback, got.FailedID)
	}
	if got.ChordPyBody != 55 {
		t.Errorf("chord with a Go header and a Python body = %d, want 55", got.ChordPyBody)
	}
}
