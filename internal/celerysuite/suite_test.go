package celerysuite

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend/memorybackend"
	"github.com/forumads/forumads/celery/broker/memorybroker"
	"github.com/forumads/forumads/celery/canvas"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/testenv"
)

// harness is a Go worker with the suite's task set and canvases on the memory adapters (one
// process), its Sender and the real Redis the Redis tasks write to.
type harness struct {
	sender  *canvas.Sender
	backend *memorybackend.Backend
}

func newHarness(t *testing.T) harness {
	t.Helper()
	cfg := celery.Config{BrokerURL: "memory://", WorkerConcurrency: 4}.WithDefaults()
	br := memorybroker.New()
	be := memorybackend.New(memorybackend.Options{Expires: time.Hour})
	sender, err := canvas.NewSender(cfg, br, be)
	if err != nil {
		t.Fatal(err)
	}
	wc, err := canvas.NewWorkerCanvas(sender, be)
	if err != nil {
		t.Fatal(err)
	}
	reg := celery.NewRegistry()
	if err := Register(reg, Deps{Sender: sender, Redis: testenv.Redis(t), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		t.Fatal(err)
	}
	sender.Applier().RequestErrback = func(task string) bool {
		o, ok := reg.Options(task)
		return ok && o.RequestErrback
	}
	var out io.Writer = io.Discard
	if testing.Verbose() {
		out = tWriter{t}
	}
	w, err := celery.NewWorker(celery.WorkerOptions{Config: cfg, Registry: reg, Broker: br, Backend: be,
		Hostname: "celery@suite", Canvas: wc, Logger: slog.New(slog.NewTextHandler(out, nil))})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Shutdown(ctx)
		<-done
		_ = br.Close()
	})
	return harness{sender: sender, backend: be}
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// wait returns the final meta of id.
func (h harness) wait(t *testing.T, id string) protocol.ResultMeta {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	m, err := h.backend.Wait(ctx, id)
	if err != nil {
		t.Fatalf("waiting for %s: %v (last state %s)", id, err, m.Status)
	}
	return m
}

func (h harness) send(t *testing.T, sig canvas.Signature) canvas.Result {
	t.Helper()
	res, err := h.sender.Send(context.Background(), sig)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func s(task string, args ...any) canvas.Signature { return canvas.S(name(task), args...) }

// TestTasksAsTheirPythonBodies runs the suite's tasks and canvases of them on a Go worker and
// checks what Python's t.integration.tasks would have stored.
func TestTasksAsTheirPythonBodies(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, tc := range []struct {
		name    string
		sig     canvas.Signature
		state   string
		result  string // the stored result JSON (SUCCESS) or exception (FAILURE)
		compact bool   // compare result with whitespace removed
	}{
		{"add", s("add", 2, 3), protocol.StateSuccess, "5", false},
		{"add with z", s("add", 1, 2).Kwarg("z", 3), protocol.StateSuccess, "6", false},
		{"add strings", s("add", "Hello ", "world"), protocol.StateSuccess, `"Hello world"`, false},
		{"add wrong arguments is TypeError", s("add_not_typed", 5), protocol.StateFailure, `"exc_type": "TypeError"`, false},
		{"identity", s("identity", map[string]any{"a": 1}), protocol.StateSuccess, `{"a":1}`, true},
		{"tsum", s("tsum", []int{1, 2, 3}), protocol.StateSuccess, "6", false},
		{"fail has all its args", s("fail", "test"), protocol.StateFailure,
			`{"exc_type": "ExpectedException", "exc_message": ["Task expected to fail", "test"], "exc_module": "t.integration.tasks"}`, false},
		{"raise_error", s("raise_error"), protocol.StateFailure,
			`{"exc_type": "ValueError", "exc_message": ["deliberate error"], "exc_module": "builtins"}`, false},
		{"add_replaced stores under its own id", s("add_replaced", 40, 2), protocol.StateSuccess, "42", false},
		{"add_to_all: a group replacement", s("add_to_all", []int{1, 2, 3}, 4), protocol.StateSuccess, "[5,6,7]", true},
		{"fail_replaced", s("fail_replaced", "x"), protocol.StateFailure,
			`{"exc_type": "ExpectedException", "exc_message": ["Task expected to fail", "x"], "exc_module": "t.integration.tasks"}`, false},
		{"replace with an empty chain", s("replace_with_empty_chain"), protocol.StateFailure,
			`{"exc_type": "ImproperlyConfigured", "exc_message": ["Cannot replace with an empty chain"], "exc_module": "celery.exceptions"}`, false},
		{"replaced in the middle of a chain", canvas.Chain(s("add", 1, 2), s("add_replaced", 10), s("add", 100)),
			protocol.StateSuccess, "113", false},
		{"replace_with_chain passes its args through", canvas.Chain(s("identity", "Hello "), s("replace_with_chain"), s("add", "world")),
			protocol.StateSuccess, `"Hello world"`, false},
		{"replace_with_chain_which_raises fails the chain", canvas.Chain(s("identity", "x"), s("replace_with_chain_which_raises"), s("add", "y")),
			protocol.StateFailure, `"exc_type": "ValueError"`, false},
		{"chord header member replaced with a chain", canvas.Chord(canvas.Group(s("replace_with_chain", 1), s("add", 1, 1)), s("tsum")),
			protocol.StateSuccess, "3", false},
		{"retry_once", s("retry_once"), protocol.StateSuccess, "1", false},
		{"auto_retry_class_task", canvas.S("auto_retry_class_task"), protocol.StateSuccess, "1", false},
		{"soft time limit guarded", s("delayed_sum_with_soft_guard", []int{100}).Kwarg("pause_time", 2).Set("soft_time_limit", 0.2),
			protocol.StateSuccess, "0", false},
		{"delayed_sum", s("delayed_sum", []int{1, 2}).Kwarg("pause_time", 0), protocol.StateSuccess, "3", false},
		{"return_priority without one", s("return_priority"), protocol.StateSuccess, `"Priority: None"`, false},
		{"return_exception", s("return_exception", "e"), protocol.StateSuccess, `["e",true]`, true},
		{"celery.ping", canvas.S("celery.ping"), protocol.StateSuccess, `"pong"`, false},
		{"rebuild_signature of a nested chord", canvas.Chain(s("return_nested_signature_chord_chord"), s("rebuild_signature")),
			protocol.StateSuccess, "", false},
		{"rebuild_signature of a non-signature", s("rebuild_signature", map[string]any{"x": 1}), protocol.StateFailure,
			`"exc_type": "TypeError"`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := h.wait(t, h.send(t, tc.sig).ID)
			got := string(m.Result)
			if tc.compact {
				got = strings.Join(strings.Fields(got), "")
			}
			if m.Status != tc.state || !strings.Contains(got, tc.result) {
				t.Errorf("%s %s, want %s containing %s", m.Status, m.Result, tc.state, tc.result)
			}
		})
	}
}

// TestIDsAlongAChain: ids returns (root_id, parent_id, i), each step's parent the previous one.
func TestIDsAlongAChain(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := canvas.Chain(canvas.SI(name("ids"), 0), canvas.SI(name("ids"), 1), canvas.SI(name("ids"), 2))
	res := h.send(t, c)
	var chainIDs []string
	for r := &res; r != nil; r = r.Parent {
		chainIDs = append([]string{r.ID}, chainIDs...)
	}
	for i, id := range chainIDs {
		var got []any
		if err := json.Unmarshal(h.wait(t, id).Result, &got); err != nil {
			t.Fatal(err)
		}
		var parent any
		if i > 0 {
			parent = chainIDs[i-1]
		}
		if got[0] != chainIDs[0] || got[1] != parent || got[2] != float64(i) {
			t.Errorf("step %d: %v, want [%s %v %d]", i, got, chainIDs[0], parent, i)
		}
	}
}

// TestRedisTasksAndErrbacks: redis_count and errback_old_style count in Redis under the keys the
// suite gives them; a failing task's errback gets its id.
func TestRedisTasksAndErrbacks(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := testenv.Redis(t)
	key := testenv.Name(t, "suite-count")
	testenv.DeleteKeysAtCleanup(t, rc, key)
	h.wait(t, h.send(t, s("redis_count").Kwarg("redis_key", key)).ID)
	h.wait(t, h.send(t, s("redis_count").Kwarg("redis_key", key)).ID)
	if n, err := rc.Get(context.Background(), key).Int(); err != nil || n != 2 {
		t.Errorf("redis_count twice: %d, %v", n, err)
	}
	res := h.send(t, s("fail").LinkError(s("errback_old_style")))
	testenv.DeleteKeysAtCleanup(t, rc, res.ID)
	if m := h.wait(t, res.ID); m.Status != protocol.StateFailure {
		t.Fatalf("fail: %s", m.Status)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		n, _ := rc.Get(context.Background(), res.ID).Int()
		return n == 1
	}, "errback_old_style did not count the failed task's id %s", res.ID)

	// A new-style errback gets the failed task's request: it counts under request.id too.
	res = h.send(t, s("fail").LinkError(s("errback_new_style")))
	testenv.DeleteKeysAtCleanup(t, rc, res.ID)
	h.wait(t, res.ID)
	testenv.Eventually(t, 10*time.Second, func() bool {
		n, _ := rc.Get(context.Background(), res.ID).Int()
		return n == 1
	}, "errback_new_style did not count the failed task's id %s", res.ID)

	// In a failed chord, the body's errbacks run with the body's id.
	bodyID := celery.NewID()
	testenv.DeleteKeysAtCleanup(t, rc, bodyID)
	chord := canvas.Chord(canvas.Group(s("fail")), s("identity").TaskID(bodyID)).LinkError(s("errback_new_style"))
	h.send(t, chord)
	if m := h.wait(t, bodyID); m.Status != protocol.StateFailure || !strings.Contains(string(m.Result), "ChordError") {
		t.Errorf("chord body: %s %s, want a ChordError FAILURE", m.Status, m.Result)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		n, _ := rc.Get(context.Background(), bodyID).Int()
		return n == 1
	}, "errback_new_style did not count the chord body's id %s", bodyID)
}

// TestBuildChainInsideTask returns the chain's AsyncResult tuple: [[id, parent tuple], null].
func TestBuildChainInsideTask(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	m := h.wait(t, h.send(t, s("build_chain_inside_task")).ID)
	var got []json.RawMessage
	if err := json.Unmarshal(m.Result, &got); err != nil || len(got) != 2 {
		t.Fatalf("%s: %s, %v", m.Status, m.Result, err)
	}
	var head []json.RawMessage
	if err := json.Unmarshal(got[0], &head); err != nil || len(head) != 2 || head[1][0] != '[' {
		t.Fatalf("result[0] = %s, want [id, [parent...]]", got[0])
	}
	var bodyID string
	_ = json.Unmarshal(head[0], &bodyID)
	// As in Python, the chord body add(5) gets the group's list: [7, 8] + 5 is a TypeError.
	if r := h.wait(t, bodyID); r.Status != protocol.StateFailure || !strings.Contains(string(r.Result), "can only concatenate list") {
		t.Errorf("the chain's result: %s %s, want TypeError (list + int)", r.Status, r.Result)
	}
}
