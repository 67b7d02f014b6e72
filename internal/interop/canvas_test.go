package interop

import (
	"context"
	"encoding/json"
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
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/testenv"
)

// startCanvasWorker starts a real Celery 5.2 worker running testdata/canvas_tasks.py on a new
// queue and waits until it is ready; at cleanup it must shut down warm with status 0.
func startCanvasWorker(t *testing.T) (queue string) {
	t.Helper()
	return startPythonWorker(t, "canvas_tasks", "interop.canvas", "python canvas worker")
}

// canvasSender returns a Sender publishing to queue by default, with the Redis backend (no key
// prefix, as the Python worker reads it) storing chord sizes, and that backend.
func canvasSender(t *testing.T, queue string) (*canvas.Sender, *redisbackend.Backend) {
	t.Helper()
	cfg := celery.Config{BrokerURL: testenv.AMQPURL(), TaskDefaultQueue: queue}
	br, err := amqpbroker.New(cfg.BrokerURL, amqpbroker.Options{ConnectionName: "interop-canvas",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = br.Close() })
	backend := redisbackend.New(testenv.Redis(t), redisbackend.Options{Expires: time.Hour})
	s, err := canvas.NewSender(cfg, br, backend)
	if err != nil {
		t.Fatal(err)
	}
	return s, backend
}

func sendCanvas(t *testing.T, s *canvas.Sender, sig canvas.Signature) canvas.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := s.Send(ctx, sig)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	return res
}

// resultOf waits for a task's result as Python stored it.
func resultOf(t *testing.T, b *redisbackend.Backend, id string, v any) {
	t.Helper()
	testenv.DeleteKeysAtCleanup(t, testenv.Redis(t), redisbackend.TaskKey("", id))
	if err := celery.NewAsyncResult(id, b).GetInto(getCtx(t), v); err != nil {
		t.Fatalf("result of %s: %v", id, err)
	}
}

// TestCanvasGoClientPythonWorker sends canvases built with the Go canvas package to a real Celery
// 5.2 worker, which runs every step; the results are read back from Go. What the worker publishes
// (chain steps, callbacks, chord bodies) is routed by the signatures' queue option, as in Python.
func TestCanvasGoClientPythonWorker(t *testing.T) {
	t.Parallel()
	queue := startCanvasWorker(t)
	s, b := canvasSender(t, queue)

	t.Run("chain", func(t *testing.T) {
		t.Parallel()
		res := sendCanvas(t, s, canvas.Chain(canvas.S("cv.add", 1, 2), canvas.S("cv.add", 3), canvas.S("cv.add", 4)).Queue(queue))
		var sum int
		if resultOf(t, b, res.ID, &sum); sum != 10 {
			t.Errorf("chain(add(1, 2), add(3), add(4)) = %d, want 10", sum)
		}
		meta, err := b.Get(getCtx(t), res.ID)
		if err != nil || meta.ParentID != res.Parent.ID {
			t.Errorf("last step's parent_id %v (%v), want %s", meta.ParentID, err, res.Parent.ID)
		}
		for p := res.Parent; p != nil; p = p.Parent {
			testenv.DeleteKeysAtCleanup(t, testenv.Redis(t), redisbackend.TaskKey("", p.ID))
		}
	})
	t.Run("immutable", func(t *testing.T) {
		t.Parallel()
		res := sendCanvas(t, s, canvas.Chain(canvas.S("cv.add", 1, 2), canvas.SI("cv.add", 10, 20).Queue(queue)))
		var sum int
		if resultOf(t, b, res.ID, &sum); sum != 30 {
			t.Errorf("chain(add(1, 2), add.si(10, 20)) = %d, want 30", sum)
		}
		testenv.DeleteKeysAtCleanup(t, testenv.Redis(t), redisbackend.TaskKey("", res.Parent.ID))
	})
	t.Run("group of 100", func(t *testing.T) {
		t.Parallel()
		var members []canvas.Signature
		for i := range 100 {
			members = append(members, canvas.S("cv.add", i, i))
		}
		res := sendCanvas(t, s, canvas.Group(members...))
		if res.Group == nil || len(res.Group.Results) != 100 {
			t.Fatalf("group result %+v", res.Group)
		}
		for i, id := range res.Group.Results {
			var v int
			if resultOf(t, b, id, &v); v != 2*i {
				t.Errorf("member %d = %d, want %d", i, v, 2*i)
			}
		}
	})
	t.Run("chord", func(t *testing.T) {
		t.Parallel()
		var header []canvas.Signature
		for i := range 10 {
			header = append(header, canvas.S("cv.add", i, 1))
		}
		res := sendCanvas(t, s, canvas.Chord(canvas.Group(header...), canvas.S("cv.xsum")).Queue(queue))
		var sum int
		if resultOf(t, b, res.ID, &sum); sum != 55 {
			t.Errorf("chord(add(i, 1) for i < 10)(xsum) = %d, want 55", sum)
		}
		if res.Parent == nil || res.Parent.Group == nil || len(res.Parent.Group.Results) != 10 {
			t.Fatalf("chord result has no header group: %+v", res)
		}
		for i, id := range res.Parent.Group.Results {
			var v int
			if resultOf(t, b, id, &v); v != i+1 {
				t.Errorf("header member %d = %d, want %d", i, v, i+1)
			}
		}
		// The Python worker completed the chord through the counter and removed its keys.
		n, err := testenv.Redis(t).Exists(getCtx(t), redisbackend.GroupKey("", res.Parent.ID)+".j",
			redisbackend.GroupKey("", res.Parent.ID)+".s").Result()
		if err != nil || n != 0 {
			t.Errorf("chord counter keys left: %d, %v", n, err)
		}
	})
	t.Run("chord with a chain in its header", func(t *testing.T) {
		t.Parallel()
		header := canvas.Group(canvas.Chain(canvas.S("cv.add", 1, 1), canvas.S("cv.add", 1)), canvas.S("cv.add", 2, 2))
		res := sendCanvas(t, s, canvas.Chord(header, canvas.S("cv.xsum")).Queue(queue))
		var sum int
		if resultOf(t, b, res.ID, &sum); sum != 7 {
			t.Errorf("chord(chain(add(1, 1), add(1)), add(2, 2))(xsum) = %d, want 7", sum)
		}
		for _, id := range res.Parent.Group.Results {
			testenv.DeleteKeysAtCleanup(t, testenv.Redis(t), redisbackend.TaskKey("", id))
		}
	})
	t.Run("link", func(t *testing.T) {
		t.Parallel()
		cbID := celery.NewID()
		res := sendCanvas(t, s, canvas.S("cv.add", 1, 2).Link(canvas.S("cv.record", "ok").TaskID(cbID).Queue(queue)))
		var rec struct {
			Args     []any  `json:"args"`
			ParentID string `json:"parent_id"`
			RootID   string `json:"root_id"`
		}
		resultOf(t, b, cbID, &rec)
		if len(rec.Args) != 2 || rec.Args[0] != float64(3) || rec.Args[1] != "ok" || rec.ParentID != res.ID || rec.RootID != res.ID {
			t.Errorf("link callback saw %+v, want args [3 ok] and parent/root %s", rec, res.ID)
		}
		testenv.DeleteKeysAtCleanup(t, testenv.Redis(t), redisbackend.TaskKey("", res.ID))
	})
	t.Run("link_error", func(t *testing.T) {
		t.Parallel()
		ebID := celery.NewID()
		res := sendCanvas(t, s, canvas.S("cv.fail", "boom").LinkError(canvas.S("cv.record").TaskID(ebID).Queue(queue)))
		var rec struct {
			Args     []any   `json:"args"`
			ParentID string  `json:"parent_id"`
			Group    *string `json:"group"`
		}
		resultOf(t, b, ebID, &rec)
		if len(rec.Args) != 1 || rec.Args[0] != res.ID || rec.ParentID != res.ID || rec.Group == nil {
			t.Errorf("errback saw %+v, want args [%s], parent %s, a group", rec, res.ID, res.ID)
		}
		var v any
		testenv.DeleteKeysAtCleanup(t, testenv.Redis(t), redisbackend.TaskKey("", res.ID))
		if err := celery.NewAsyncResult(res.ID, b).GetInto(getCtx(t), &v); err == nil || !strings.Contains(err.Error(), "boom") {
			t.Errorf("failed task result: %v, %v", v, err)
		}
	})
}

// TestCanvasPythonClientGoDecode: a Celery 5.2 client publishes canvases (no worker); Go decodes
// every message, its embedded signatures re-encode byte for byte, and the frozen ids and
// headers are where Celery's rules put them.
func TestCanvasPythonClientGoDecode(t *testing.T) {
	t.Parallel()
	conn := testenv.AMQP(t)
	testenv.Redis(t)
	queue := testenv.Name(t, "interop.canvas.client")
	testenv.DeleteQueuesAtCleanup(t, queue)
	cmd := exec.Command(pythonPath(), "canvas_client.py", queue)
	cmd.Dir = testdataDir(t)
	cmd.Env = pythonEnv(map[string]string{"BROKER_URL": testenv.AMQPURL(), "BACKEND_URL": testenv.RedisURL(),
		"PYTHONDONTWRITEBYTECODE": "1"})
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("canvas_client.py: %v\n%s", err, out)
	}
	var ids struct {
		Chain struct{ First, Middle, Last string }
		Group struct {
			ID      string
			Members []string
		}
		Chord struct {
			Body, Group string
			Members     []string
		}
		Link struct{ ID string }
	}
	if err := json.Unmarshal(out, &ids); err != nil {
		t.Fatalf("canvas_client.py output %q: %v", out, err)
	}
	for _, id := range []string{ids.Chord.Group} {
		testenv.DeleteKeysAtCleanup(t, testenv.Redis(t), redisbackend.GroupKey("", id)+".s")
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	var msgs []*protocol.TaskMessage
	for len(msgs) < 1+3+2+1 {
		d, ok, err := ch.Get(queue, true)
		if err != nil || !ok {
			t.Fatalf("basic_get: %d messages, ok=%v, %v", len(msgs), ok, err)
		}
		env := protocol.Envelope{Body: d.Body, ContentType: d.ContentType, ContentEncoding: d.ContentEncoding,
			Headers: d.Headers, CorrelationID: d.CorrelationId, ReplyTo: d.ReplyTo}
		m, err := protocol.Decode(env, protocol.Accept{})
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		// Every embedded signature decodes with canvas.Decode and re-encodes to the same bytes.
		var body []json.RawMessage
		if err := json.Unmarshal(d.Body, &body); err != nil || len(body) != 3 {
			t.Fatalf("body %s", d.Body)
		}
		for _, sig := range embedded(m) {
			raw, _ := sig.MarshalJSON()
			got, err := canvas.Decode(raw)
			if err != nil {
				t.Fatalf("canvas.Decode(%s): %v", raw, err)
			}
			again, _ := got.MarshalJSON()
			if string(again) != string(raw) || !strings.Contains(string(body[2]), string(raw)) {
				t.Errorf("signature %s does not round-trip (%s) or is not in the body", raw, again)
			}
		}
		msgs = append(msgs, m)
	}

	chain, group, chord, link := msgs[0], msgs[1:4], msgs[4:6], msgs[6]
	if chain.ID != ids.Chain.First || len(chain.Embed.Chain) != 2 ||
		canvas.FromProtocol(chain.Embed.Chain[0]).ID() != ids.Chain.Last ||
		canvas.FromProtocol(chain.Embed.Chain[1]).ID() != ids.Chain.Middle {
		t.Errorf("chain: first %s, embed.chain %v; want %+v", chain.ID, chain.Embed.Chain, ids.Chain)
	}
	for i, m := range group {
		if m.ID != ids.Group.Members[i] || m.GroupID != ids.Group.ID || m.GroupIndex != nil {
			t.Errorf("group member %d: id %s group %s index %v; want %s in %s", i, m.ID, m.GroupID, m.GroupIndex, ids.Group.Members[i], ids.Group.ID)
		}
	}
	for i, m := range chord {
		if m.ID != ids.Chord.Members[i] || m.GroupID != ids.Chord.Group || m.GroupIndex == nil || *m.GroupIndex != i ||
			m.Embed.Chord == nil || canvas.FromProtocol(*m.Embed.Chord).ID() != ids.Chord.Body {
			t.Errorf("chord member %d: %s group %s index %v chord %v; want %+v", i, m.ID, m.GroupID, m.GroupIndex, m.Embed.Chord, ids.Chord)
		}
	}
	if link.ID != ids.Link.ID || len(link.Embed.Callbacks) != 1 || len(link.Embed.Errbacks) != 1 ||
		link.Embed.Callbacks[0].Task != "cv.record" || !link.Embed.Errbacks[0].Immutable {
		t.Errorf("link: %s callbacks %v errbacks %v", link.ID, link.Embed.Callbacks, link.Embed.Errbacks)
	}

	// A Go worker handling these messages would publish what a Python worker does.
	a := &canvas.Applier{Origin: "gen1@go", ReplyTo: "r"}
	next, err := a.NextChainStep(chain, json.RawMessage("3"))
	if err != nil || len(next) != 1 || next[0].Msg.ID != ids.Chain.Middle || protocol.ReprArgs(next[0].Msg.Args) != "(3, 3)" ||
		len(next[0].Msg.Embed.Chain) != 1 || next[0].Msg.ParentID != chain.ID || next[0].Msg.RootID != chain.ID {
		t.Errorf("next chain step: %+v, %v", next, err)
	}
	cbs, err := a.Callbacks(link, json.RawMessage("3"))
	if err != nil || len(cbs) != 1 || protocol.ReprArgs(cbs[0].Msg.Args) != "(3, 'ok')" {
		t.Errorf("callbacks: %+v, %v", cbs, err)
	}
	ebs, err := a.Errbacks(link, link.ID, false)
	if err != nil || len(ebs) != 1 || protocol.ReprArgs(ebs[0].Msg.Args) != "('err',)" || ebs[0].Msg.GroupID == "" {
		t.Errorf("errbacks: %+v, %v", ebs, err)
	}
}

// embedded lists a message's embedded signatures.
func embedded(m *protocol.TaskMessage) []protocol.Signature {
	sigs := append(append(append([]protocol.Signature{}, m.Embed.Callbacks...), m.Embed.Errbacks...), m.Embed.Chain...)
	if m.Embed.Chord != nil {
		sigs = append(sigs, *m.Embed.Chord)
	}
	return sigs
}
