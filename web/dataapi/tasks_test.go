package dataapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/broker/amqpbroker"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/testenv"
)

// celeryClient returns a client whose ads.import_feed messages go to a queue of this test.
func celeryClient(t *testing.T, brokerURL string) (*celery.Client, string) {
	t.Helper()
	queue := testenv.Name(t, "dataapi")
	testenv.DeleteQueuesAtCleanup(t, queue)
	cfg := celery.Config{BrokerURL: brokerURL, TaskRoutes: celery.Routes{{Pattern: ImportTask, Queue: queue}}}.WithDefaults()
	br, err := amqpbroker.New(cfg.BrokerURL, amqpbroker.Options{ConnectionName: t.Name(), MaxBackoff: 200 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = br.Close() })
	client, err := celery.NewClient(celery.ClientOptions{Config: cfg, Broker: br})
	if err != nil {
		t.Fatal(err)
	}
	return client, queue
}

func TestImports(t *testing.T) {
	t.Parallel()
	client, queue := celeryClient(t, testenv.AMQPURL())
	e := newEnv(t, func(o *Options) { o.Client = client })
	ch, err := testenv.AMQP(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		body string
	}{
		{"missing", `{}`},
		{"null", `{"source": null}`},
		{"empty", `{"source": ""}`},
		{"blank", `{"source": "   "}`},
		{"number", `{"source": 5}`},
		{"list", `{"source": ["a"]}`},
		{"control character", `{"source": "feed\u0001.csv"}`},
		{"newline", `{"source": "a\nb"}`},
		{"ftp", `{"source": "ftp://feeds.example.com/a.csv"}`},
		{"javascript", `{"source": "javascript://x"}`},
		{"no host", `{"source": "https:///a.csv"}`},
		{"too long", `{"source": "/` + strings.Repeat("a", maxSource) + `"}`},
	} {
		r := e.post("/v1/imports", tc.body)
		code, field := r.errField(t)
		if r.status != 422 || field != "source" {
			t.Errorf("%s: %d %s %s", tc.name, r.status, code, r.body)
		}
	}
	if q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil); err == nil && q.Messages != 0 {
		t.Fatalf("refused imports sent %d messages", q.Messages)
	}
	ch, err = testenv.AMQP(t).Channel() // a failed passive declare closes the channel
	if err != nil {
		t.Fatal(err)
	}

	sources := []string{"https://feeds.example.com/acme.csv.gz", "samples/feed.csv", "file:///srv/feeds/a.jsonl", "/tmp/x'; DROP TABLE ads;--.csv"}
	var ids []string
	for _, src := range sources {
		r := e.post("/v1/imports", map[string]any{"source": src})
		if r.status != 202 {
			t.Fatalf("import %s: %d %s", src, r.status, r.body)
		}
		id, _ := r.json(t)["task_id"].(string)
		if id == "" || r.header.Get("Location") != "/v1/tasks/"+id {
			t.Fatalf("import answer %s, Location %q", r.body, r.header.Get("Location"))
		}
		ids = append(ids, id)
	}
	for i, src := range sources {
		d, ok, err := ch.Get(queue, true)
		if err != nil || !ok {
			t.Fatalf("message %d: ok=%v err=%v", i, ok, err)
		}
		m, err := protocol.Decode(protocol.Envelope{Body: d.Body, ContentType: d.ContentType, ContentEncoding: d.ContentEncoding, Headers: d.Headers}, protocol.Accept{})
		if err != nil {
			t.Fatal(err)
		}
		var arg string
		if m.Task != ImportTask || m.ID != ids[i] || len(m.Args) != 1 || json.Unmarshal(m.Args[0], &arg) != nil || arg != src || len(m.Kwargs) != 0 {
			t.Errorf("message %d: task %s id %s args %s kwargs %v; want %s(%q) id %s", i, m.Task, m.ID, m.Args, m.Kwargs, ImportTask, src, ids[i])
		}
	}
	// The task is PENDING until a worker takes it.
	if r := e.get("/v1/tasks/" + ids[0]); r.status != 200 || r.json(t)["state"] != "PENDING" {
		t.Errorf("new task: %d %s", r.status, r.body)
	}
}

func TestImportsWithoutBroker(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if r := e.post("/v1/imports", map[string]any{"source": "a.csv"}); r.status != 503 {
		t.Errorf("no client: %d %s", r.status, r.body)
	}
	// A broker that cannot be reached: 503 once the publish timeout passes.
	client, _ := celeryClient(t, "amqp://guest:guest@127.0.0.1:1/")
	down := newEnv(t, func(o *Options) { o.Client, o.PublishTimeout = client, 300*time.Millisecond })
	r := down.post("/v1/imports", map[string]any{"source": "a.csv"})
	if code, _ := r.errField(t); r.status != 503 || code != "unavailable" {
		t.Errorf("broker down: %d %s", r.status, r.body)
	}
}

func TestTasks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tb := "Traceback (most recent call last):\n  File \"/srv/secret/importer.go\", line 12\nFeedImportError: boom"
	store := func(m protocol.ResultMeta) {
		t.Helper()
		if err := e.results.Store(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	store(protocol.ResultMeta{TaskID: "t-progress", Status: "PROGRESS", Result: json.RawMessage(`{"current": 1200, "total": 30000}`)})
	store(protocol.ResultMeta{TaskID: "t-odd-progress", Status: "PROGRESS", Result: json.RawMessage(`{"phase": "reading"}`)})
	store(protocol.ResultMeta{TaskID: "t-success", Status: protocol.StateSuccess, Result: json.RawMessage(`{"run_id": 7, "rows_ok": 3}`)})
	store(protocol.ResultMeta{TaskID: "t-failure", Status: protocol.StateFailure, Traceback: &tb,
		Result: protocol.ExceptionResult(protocol.ExceptionInfo{Type: "FeedImportError", Message: []any{"fetching https://x: 500"}, Module: "builtins"})})
	store(protocol.ResultMeta{TaskID: "t-started", Status: protocol.StateStarted, Result: json.RawMessage(`{"pid": 1, "hostname": "w"}`)})

	for _, tc := range []struct {
		id, want string
	}{
		{"never-sent", `{"task_id":"never-sent","state":"PENDING","progress":null,"result":null,"error":null}`},
		{"t-progress", `{"task_id":"t-progress","state":"PROGRESS","progress":{"current":1200,"total":30000},"result":null,"error":null}`},
		{"t-odd-progress", `{"task_id":"t-odd-progress","state":"PROGRESS","progress":null,"result":null,"error":null}`},
		{"t-success", `{"task_id":"t-success","state":"SUCCESS","progress":null,"result":{"run_id":7,"rows_ok":3},"error":null}`},
		{"t-failure", `{"task_id":"t-failure","state":"FAILURE","progress":null,"result":null,"error":{"type":"FeedImportError","message":"fetching https://x: 500"}}`},
		{"t-started", `{"task_id":"t-started","state":"STARTED","progress":null,"result":null,"error":null}`},
	} {
		r := e.get("/v1/tasks/" + tc.id)
		if r.status != 200 || strings.TrimSpace(string(r.body)) != tc.want {
			t.Errorf("task %s: %d %s\nwant %s", tc.id, r.status, r.body, tc.want)
		}
		if strings.Contains(string(r.body), "Traceback") || strings.Contains(string(r.body), "secret") {
			t.Errorf("task %s leaks the traceback: %s", tc.id, r.body)
		}
	}
	for _, bad := range []string{"a%20b", "a%00", "%27%3B--", strings.Repeat("a", 256), "x%2Fy"} {
		r := e.get("/v1/tasks/" + bad)
		if code, _ := r.errField(t); r.status != 400 && r.status != 404 || (r.status == 400 && code != "invalid_id") {
			t.Errorf("task id %q: %d %s", bad, r.status, r.body)
		}
	}
	noResults := newEnv(t, func(o *Options) { o.Results = nil })
	if r := noResults.get("/v1/tasks/abc"); r.status != 503 {
		t.Errorf("no result backend: %d", r.status)
	}
}
