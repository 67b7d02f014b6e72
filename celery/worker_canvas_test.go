package celery_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend"
	"github.com/forumads/forumads/celery/backend/memorybackend"
	"github.com/forumads/forumads/celery/backend/redisbackend"
	"github.com/forumads/forumads/celery/canvas"
	"github.com/forumads/forumads/celery/internal/workertest"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/testenv"
	"github.com/forumads/forumads/tasks/diag"
)

// redisResults is a Redis result backend under a key prefix of the test's own, deleted at cleanup.
func redisResults(t *testing.T) backend.Backend {
	t.Helper()
	rc := testenv.Redis(t)
	prefix := "t:" + testenv.Suffix() + ":"
	testenv.DeletePrefixAtCleanup(t, rc, prefix)
	return redisbackend.New(rc, redisbackend.Options{Expires: time.Hour, KeyPrefix: prefix})
}

// canvasWorker starts a Go worker with canvas support on a queue of its own, storing results and
// counting chords in backend, and returns a Sender for that queue, the worker's log and the worker.
func canvasWorker(t *testing.T, backend backend.Backend) (*canvas.Sender, *errorLog, *celery.Worker) {
	t.Helper()
	queue := testenv.Name(t, "canvas")
	testenv.DeleteQueuesAtCleanup(t, queue)
	cfg := celery.Config{BrokerURL: testenv.AMQPURL(), TaskDefaultQueue: queue, WorkerConcurrency: 4}
	reg := celery.NewRegistry()
	diag.Register(reg, diag.Deps{})
	// A new-style errback (request, exc, traceback): diag.echo under a name of its own, so the
	// other errbacks here stay old-style.
	celery.Register(reg, newStyleEcho, diag.Echo, celery.RequestErrback())
	var out io.Writer = io.Discard
	if testing.Verbose() {
		out = workertest.Writer{T: t}
	}
	errs := &errorLog{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(out, errs), &slog.HandlerOptions{Level: slog.LevelDebug}))
	wbr := newBroker(t, log, "test-canvas-worker") // closed after the worker stops: Run does not close it
	wsend, err := canvas.NewSender(cfg, wbr, backend)
	if err != nil {
		t.Fatal(err)
	}
	wsend.Applier().RequestErrback = func(task string) bool {
		o, ok := reg.Options(task)
		return ok && o.RequestErrback
	}
	wc, err := canvas.NewWorkerCanvas(wsend, backend)
	if err != nil {
		t.Fatal(err)
	}
	w := workertest.New(t, celery.WorkerOptions{Config: cfg, Registry: reg, Broker: wbr, Backend: backend,
		Hostname: "celery@canvas", Logger: log, Canvas: wc})
	s, err := canvas.NewSender(cfg, newBroker(t, log, "test-canvas-client"), backend)
	if err != nil {
		t.Fatal(err)
	}
	workertest.Start(t, context.Background(), w, 30*time.Second)
	return s, errs, w
}

// newStyleEcho is diag.echo registered as a new-style errback in canvasWorker.
const newStyleEcho = "test.echo_new_style"

// errorLog keeps the worker's log lines, safe for concurrent writes.
type errorLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *errorLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *errorLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func waitMeta(t *testing.T, b celery.ResultBackend, id string) protocol.ResultMeta {
	t.Helper()
	m, err := b.Wait(ctxT(t, 60*time.Second), id)
	if err != nil {
		t.Fatalf("waiting for %s: %v", id, err)
	}
	return m
}

// TestWorkerCanvas runs canvases through a Go worker, with results and chord counters in Redis
// and, to prove the engine needs no particular store, in memory.
func TestWorkerCanvas(t *testing.T) {
	t.Parallel()
	t.Run("redis", func(t *testing.T) { t.Parallel(); testWorkerCanvas(t, redisResults(t)) })
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		testWorkerCanvas(t, memorybackend.New(memorybackend.Options{Expires: time.Hour}))
	})
}

func testWorkerCanvas(t *testing.T, b backend.Backend) {
	s, logs, w := canvasWorker(t, b)
	send := func(t *testing.T, sig canvas.Signature) canvas.Result {
		t.Helper()
		res, err := s.Send(ctxT(t, 30*time.Second), sig)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	t.Run("chain", func(t *testing.T) {
		res := send(t, canvas.Chain(canvas.S("diag.add", 1, 2), canvas.S("diag.add", 3), canvas.S("diag.add", 4)))
		m := waitMeta(t, b, res.ID)
		if m.Status != protocol.StateSuccess || string(m.Result) != "10" {
			t.Fatalf("chain result = %s %s, want SUCCESS 10", m.Status, m.Result)
		}
		if m.ParentID != res.Parent.ID {
			t.Errorf("last step parent_id = %q, want %q", m.ParentID, res.Parent.ID)
		}
		// Each step names the next in its `children`, so Python's AsyncResult.children works.
		first := waitMeta(t, b, res.Parent.Parent.ID)
		if want := string(canvas.Children(*res.Parent)); string(first.Children) != want {
			t.Errorf("first step children = %s, want %s", first.Children, want)
		}
		if string(m.Children) != "[]" && m.Children != nil {
			t.Errorf("last step children = %s, want []", m.Children)
		}
	})
	t.Run("link", func(t *testing.T) {
		cb := celery.NewID()
		res := send(t, canvas.S("diag.add", 1, 2).Link(canvas.S("diag.add", 5).TaskID(cb)))
		if m := waitMeta(t, b, cb); m.Status != protocol.StateSuccess || string(m.Result) != "8" {
			t.Fatalf("callback = %s %s, want SUCCESS 8", m.Status, m.Result)
		}
		if m, want := waitMeta(t, b, res.ID), string(canvas.Children(canvas.Result{ID: cb})); string(m.Children) != want {
			t.Errorf("parent children = %s, want %s", m.Children, want)
		}
	})
	t.Run("link_error", func(t *testing.T) {
		eb := celery.NewID()
		res := send(t, canvas.S("diag.fail", "boom").LinkError(canvas.S("diag.echo").TaskID(eb)))
		if m := waitMeta(t, b, res.ID); m.Status != protocol.StateFailure {
			t.Fatalf("failing task = %s, want FAILURE", m.Status)
		}
		m := waitMeta(t, b, eb)
		if m.Status != protocol.StateSuccess || !strings.Contains(string(m.Result), res.ID) {
			t.Fatalf("errback = %s %s, want SUCCESS echoing %s", m.Status, m.Result, res.ID)
		}
	})
	// A new-style errback of a task that fails directly gets (request, exc, None) with exc the
	// failure Celery 5.2's _call_task_errbacks passes, here the stored exception, never None.
	t.Run("link_error_new_style", func(t *testing.T) {
		eb := celery.NewID()
		res := send(t, canvas.S("diag.fail", "boom").LinkError(canvas.S(newStyleEcho).TaskID(eb)))
		failed := waitMeta(t, b, res.ID)
		if failed.Status != protocol.StateFailure {
			t.Fatalf("failing task = %s, want FAILURE", failed.Status)
		}
		m := waitMeta(t, b, eb)
		var got diag.EchoResult
		if err := json.Unmarshal(m.Result, &got); m.Status != protocol.StateSuccess || err != nil || len(got.Args) != 3 {
			t.Fatalf("errback = %s %s (%v), want SUCCESS echoing (request, exc, traceback)", m.Status, m.Result, err)
		}
		var req struct{ ID, Task string }
		if err := json.Unmarshal(got.Args[0], &req); err != nil || req.ID != res.ID || req.Task != "diag.fail" {
			t.Errorf("request = %s (%v), want id %s task diag.fail", got.Args[0], err, res.ID)
		}
		var exc, want map[string]any
		if err := json.Unmarshal(got.Args[1], &exc); err != nil || exc == nil {
			t.Fatalf("exc = %s (%v), want the failure's exception", got.Args[1], err)
		}
		if err := json.Unmarshal(failed.Result, &want); err != nil {
			t.Fatal(err)
		}
		if exc["exc_type"] != want["exc_type"] || exc["exc_message"] == nil || !strings.Contains(string(got.Args[1]), "boom") {
			t.Errorf("exc = %s, want the stored exception %s", got.Args[1], failed.Result)
		}
		if string(got.Args[2]) != "null" {
			t.Errorf("traceback = %s, want null", got.Args[2])
		}
	})
	t.Run("chain_failure", func(t *testing.T) {
		res := send(t, canvas.Chain(canvas.S("diag.fail", "boom"), canvas.S("diag.add", 3), canvas.S("diag.add", 4)))
		if m := waitMeta(t, b, res.ID); m.Status != protocol.StateFailure {
			t.Fatalf("last step = %s, want FAILURE", m.Status)
		}
	})
	t.Run("chord", func(t *testing.T) {
		var header []canvas.Signature
		want := 0
		for i := range 20 {
			header = append(header, canvas.S("diag.add", i, 1))
			want += i + 1
		}
		res := send(t, canvas.Chord(canvas.Group(header...), canvas.S("diag.sum")))
		m := waitMeta(t, b, res.ID)
		var got int
		if err := json.Unmarshal(m.Result, &got); m.Status != protocol.StateSuccess || err != nil || got != want {
			t.Fatalf("chord body = %s %s, want SUCCESS %d", m.Status, m.Result, want)
		}
		// Each member's own result was stored (with its part, in one round trip).
		for i, id := range res.Parent.Group.Results {
			mm := waitMeta(t, b, id)
			if mm.Status != protocol.StateSuccess || string(mm.Result) != strconv.Itoa(i+1) || mm.GroupID != res.Parent.ID || mm.DateDone == nil {
				t.Fatalf("header member %d: %+v", i, mm)
			}
		}
	})
	t.Run("chord_failure", func(t *testing.T) {
		eb := celery.NewID()
		header := canvas.Group(canvas.S("diag.add", 1, 1), canvas.S("diag.fail", "boom"), canvas.S("diag.add", 2, 2))
		res := send(t, canvas.Chord(header, canvas.S("diag.sum").LinkError(canvas.S("diag.echo").TaskID(eb))))
		m := waitMeta(t, b, res.ID)
		if m.Status != protocol.StateFailure || !strings.Contains(string(m.Result), "ChordError") {
			t.Fatalf("chord body = %s %s, want FAILURE ChordError", m.Status, m.Result)
		}
		if m := waitMeta(t, b, eb); m.Status != protocol.StateSuccess {
			t.Fatalf("body errback = %s %s, want SUCCESS", m.Status, m.Result)
		}
	})
	t.Run("chord_chain_member", func(t *testing.T) {
		header := canvas.Group(canvas.Chain(canvas.S("diag.add", 1, 1), canvas.S("diag.add", 1)), canvas.S("diag.add", 2, 2))
		res := send(t, canvas.Chord(header, canvas.S("diag.sum")))
		if m := waitMeta(t, b, res.ID); m.Status != protocol.StateSuccess || string(m.Result) != "7" {
			t.Fatalf("chord body = %s %s, want SUCCESS 7", m.Status, m.Result)
		}
	})
	t.Run("chord_chain_member_fails", func(t *testing.T) {
		// The chain's first step fails: its last step (the chord part) is marked FAILURE and
		// counted, so the chord completes with a ChordError instead of waiting forever.
		header := canvas.Group(canvas.Chain(canvas.S("diag.fail", "boom"), canvas.S("diag.add", 1)), canvas.S("diag.add", 2, 2))
		res := send(t, canvas.Chord(header, canvas.S("diag.sum")))
		if m := waitMeta(t, b, res.ID); m.Status != protocol.StateFailure || !strings.Contains(string(m.Result), "ChordError") {
			t.Fatalf("chord body = %s %s, want FAILURE ChordError", m.Status, m.Result)
		}
	})
	t.Run("chord_member_revoked", func(t *testing.T) {
		// A revoked header member counts its part as REVOKED (Celery's mark_as_revoked), so the
		// chord fails with a ChordError naming it instead of waiting forever.
		revoked := celery.NewID()
		if _, err := w.Revoke(ctxT(t, 10*time.Second), []string{revoked}, false, ""); err != nil {
			t.Fatal(err)
		}
		header := canvas.Group(canvas.S("diag.add", 1, 1), canvas.S("diag.add", 2, 2).TaskID(revoked))
		res := send(t, canvas.Chord(header, canvas.S("diag.sum")))
		if m := waitMeta(t, b, revoked); m.Status != protocol.StateRevoked {
			t.Fatalf("revoked member = %s %s, want REVOKED", m.Status, m.Result)
		}
		m := waitMeta(t, b, res.ID)
		if m.Status != protocol.StateFailure || !strings.Contains(string(m.Result), "ChordError") || !strings.Contains(string(m.Result), revoked) {
			t.Fatalf("chord body = %s %s, want FAILURE ChordError naming %s", m.Status, m.Result, revoked)
		}
	})
	t.Run("chord_member_expired", func(t *testing.T) {
		expired := celery.NewID()
		header := canvas.Group(canvas.S("diag.add", 1, 1), canvas.S("diag.add", 2, 2).TaskID(expired).Set("expires", "2001-01-01T00:00:00+00:00"))
		res := send(t, canvas.Chord(header, canvas.S("diag.sum")))
		if m := waitMeta(t, b, expired); m.Status != protocol.StateRevoked || !strings.Contains(string(m.Result), "expired") {
			t.Fatalf("expired member = %s %s, want REVOKED expired", m.Status, m.Result)
		}
		if m := waitMeta(t, b, res.ID); m.Status != protocol.StateFailure || !strings.Contains(string(m.Result), "ChordError") {
			t.Fatalf("chord body = %s %s, want FAILURE ChordError", m.Status, m.Result)
		}
	})
	t.Run("bad_embed", func(t *testing.T) {
		// A chain step without a task name cannot be applied: the error is logged with the
		// task's id and the task's own result is still stored.
		id := celery.NewID()
		bad := protocol.Signature{Args: []json.RawMessage{json.RawMessage("1")}}
		msg := &protocol.TaskMessage{ID: id, Task: "diag.add", Args: []json.RawMessage{json.RawMessage("1"), json.RawMessage("2")},
			Embed: protocol.Embed{Chain: []protocol.Signature{bad}}}
		if err := s.Publish(ctxT(t, 30*time.Second), []canvas.Outgoing{{Msg: msg}}); err != nil {
			t.Fatal(err)
		}
		if m := waitMeta(t, b, id); m.Status != protocol.StateSuccess || string(m.Result) != "3" {
			t.Fatalf("task with a bad chain = %s %s, want SUCCESS 3", m.Status, m.Result)
		}
		if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, id+"]: its canvas follow-ups could not be built") ||
			!strings.Contains(l, "empty task name") {
			t.Errorf("no error naming the bad chain step was logged:\n%s", l)
		}
	})
}
