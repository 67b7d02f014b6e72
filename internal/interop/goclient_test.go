package interop

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend/redisbackend"
	"github.com/forumads/forumads/celery/broker/amqpbroker"
	"github.com/forumads/forumads/internal/testenv"
)

// startPyWorker starts a real Celery 5.2 worker running testdata/pytasks.py on a new queue and waits
// until it is ready. At cleanup it gets SIGTERM (warm shutdown) and must exit 0.
func startPyWorker(t *testing.T) (queue string) {
	t.Helper()
	return startPythonWorker(t, "pytasks", "interop.py", "python worker")
}

// startPythonWorker starts a real Celery 5.2 worker running the app module testdata/<app>.py on a
// new queue named after prefix and waits until it is ready; at cleanup it gets SIGTERM (warm
// shutdown) and must exit 0. what names it in messages.
func startPythonWorker(t *testing.T, app, prefix, what string) (queue string) {
	t.Helper()
	queue = testenv.Name(t, prefix)
	testenv.DeleteQueuesAtCleanup(t, queue)
	startPythonWorkerOn(t, app, queue, strings.ReplaceAll(prefix, ".", "-")+"-"+testenv.Suffix()+"@%h", what)
	return queue
}

// startPythonWorkerOn starts a real Celery 5.2 worker (solo pool, info log) of the testdata module
// app consuming queue under the node name node, waits until it is ready and returns it; at cleanup
// it must shut down warm with status 0.
func startPythonWorkerOn(t *testing.T, app, queue, node, what string) *process {
	t.Helper()
	testenv.AMQP(t)
	testenv.Redis(t)
	cmd := exec.Command(pythonPath(), "-m", "celery", "-A", app, "worker", "-Q", queue, "-P", "solo", "-c", "1",
		"--without-mingle", "--without-gossip", "-l", "info", "-n", node)
	cmd.Dir = testdataDir(t)
	cmd.Env = pythonEnv(map[string]string{"PYTHONPATH": testdataDir(t), "BROKER_URL": testenv.AMQPURL(),
		"BACKEND_URL": testenv.RedisURL(), "PYTHONDONTWRITEBYTECODE": "1"})
	p := startProcess(t, what, cmd, " ready.")
	t.Cleanup(func() {
		if err := p.stop(30 * time.Second); err != nil {
			t.Errorf("%s: warm shutdown should exit 0: %v", what, err)
		}
	})
	if err := p.log.waitFor(" ready.", p.exited, 60*time.Second); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return p
}

// goClient returns a Go client on the test's RabbitMQ and Redis, with Celery 5.2's result keys.
func goClient(t *testing.T) *celery.Client {
	t.Helper()
	cfg := celery.Config{BrokerURL: testenv.AMQPURL()}
	br, err := amqpbroker.New(cfg.BrokerURL, amqpbroker.Options{ConnectionName: "interop-go-client",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = br.Close() })
	backend := redisbackend.New(testenv.Redis(t), redisbackend.Options{Expires: time.Hour})
	c, err := celery.NewClient(celery.ClientOptions{Config: cfg, Broker: br, Backend: backend})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// send publishes a task to queue and deletes its result at cleanup.
func send(t *testing.T, c *celery.Client, queue, name string, args []any, kwargs map[string]any, opts ...celery.SendOption) *celery.AsyncResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := c.SendTask(ctx, name, args, kwargs, append(opts, celery.WithQueue(queue))...)
	if err != nil {
		t.Fatalf("SendTask(%s): %v", name, err)
	}
	testenv.DeleteKeysAtCleanup(t, testenv.Redis(t), redisbackend.TaskKey("", r.ID))
	return r
}

// getCtx bounds a wait for a result.
func getCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// pyRequest is what py.request saw of the message.
type pyRequest struct {
	ID            string          `json:"id"`
	Task          string          `json:"task"`
	Args          json.RawMessage `json:"args"`
	Kwargs        json.RawMessage `json:"kwargs"`
	Retries       int             `json:"retries"`
	ETA           *string         `json:"eta"`
	Expires       *string         `json:"expires"`
	RootID        *string         `json:"root_id"`
	ParentID      *string         `json:"parent_id"`
	Group         *string         `json:"group"`
	Origin        string          `json:"origin"`
	IgnoreResult  bool            `json:"ignore_result"`
	ArgsRepr      string          `json:"argsrepr"`
	KwargsRepr    string          `json:"kwargsrepr"`
	CorrelationID string          `json:"correlation_id"`
	ReplyTo       string          `json:"reply_to"`
	XHeaders      json.RawMessage `json:"x_headers"`
	Delivery      struct {
		Exchange   string `json:"exchange"`
		RoutingKey string `json:"routing_key"`
	} `json:"delivery"`
}

// parseISO reads the ISO-8601 times Celery 5.2 sends (always with an offset).
func parseISO(t *testing.T, what, s string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%s %q: %v", what, s, err)
	}
	return ts
}

// TestGoClientPythonWorker sends tasks from the Go client to a real Celery 5.2 worker and reads
// the results it stored from Go.
func TestGoClientPythonWorker(t *testing.T) {
	t.Parallel()
	queue := startPyWorker(t)
	c := goClient(t)

	t.Run("args", func(t *testing.T) {
		t.Parallel()
		var product int
		if err := send(t, c, queue, "py.mul", []any{6, 7}, nil).GetInto(getCtx(t), &product); err != nil || product != 42 {
			t.Errorf("py.mul(6, 7) = %d, %v; want 42", product, err)
		}
	})
	t.Run("kwargs", func(t *testing.T) {
		t.Parallel()
		var product string
		r := send(t, c, queue, "py.mul", nil, map[string]any{"x": "ab", "y": 3})
		if err := r.GetInto(getCtx(t), &product); err != nil || product != "ababab" {
			t.Errorf("py.mul(x='ab', y=3) = %q, %v; want ababab", product, err)
		}
	})
	t.Run("echo_unicode_nested", func(t *testing.T) {
		t.Parallel()
		args := []any{1, "ä €", []any{map[string]any{"n": nil}}, json.Number("123456789012345678901")}
		r := send(t, c, queue, "py.echo", args, echoPayload())
		got, err := r.Get(getCtx(t))
		if err != nil {
			t.Fatalf("py.echo: %v", err)
		}
		want, err := json.Marshal(map[string]any{"args": args, "kwargs": echoPayload()})
		if err != nil {
			t.Fatal(err)
		}
		if !jsonEqual(t, got, want) {
			t.Errorf("py.echo returned something else than it was sent: %.1000s", got)
		}
	})
	t.Run("headers", func(t *testing.T) {
		t.Parallel()
		id := celery.NewID()
		r := send(t, c, queue, "py.request", []any{1, "two"}, map[string]any{"k": "v"},
			celery.WithTaskID(id), celery.WithRetries(3), celery.WithHeaders(map[string]any{
				"x-custom": "hi", "x-big": int64(1) << 41, "x-neg": -(int64(1) << 40), "x-float": 1.5, "x-bool": true,
				"x-nil": nil, "x-list": []any{1, "a"}, "x-map": map[string]any{"k": "v"},
			}))
		var req pyRequest
		if err := r.GetInto(getCtx(t), &req); err != nil {
			t.Fatalf("py.request: %v", err)
		}
		if r.ID != id || req.ID != id || req.CorrelationID != id || req.Task != "py.request" || req.Retries != 3 {
			t.Errorf("python saw id %s (correlation_id %s) task %s retries %d; want %s, py.request, 3", req.ID, req.CorrelationID, req.Task, req.Retries, id)
		}
		if !jsonEqual(t, req.Args, []byte(`[1, "two"]`)) || !jsonEqual(t, req.Kwargs, []byte(`{"k": "v"}`)) {
			t.Errorf("python saw args %s kwargs %s", req.Args, req.Kwargs)
		}
		if deref(req.RootID) != id || req.ParentID != nil || req.Group != nil || req.ETA != nil || req.Expires != nil {
			t.Errorf("root_id %v parent_id %v group %v eta %v expires %v; want the id and nulls",
				deref(req.RootID), deref(req.ParentID), deref(req.Group), deref(req.ETA), deref(req.Expires))
		}
		if req.Origin == "" || req.ReplyTo == "" || req.ArgsRepr == "" || req.KwargsRepr == "" || req.IgnoreResult {
			t.Errorf("origin %q reply_to %q argsrepr %q kwargsrepr %q ignore_result %v; want them set, ignore_result false",
				req.Origin, req.ReplyTo, req.ArgsRepr, req.KwargsRepr, req.IgnoreResult)
		}
		if want := `{"x-custom": "hi", "x-big": 2199023255552, "x-neg": -1099511627776, "x-float": 1.5, "x-bool": true,
			"x-nil": null, "x-list": [1, "a"], "x-map": {"k": "v"}}`; !jsonEqual(t, req.XHeaders, []byte(want)) {
			t.Errorf("python saw the custom headers as %s, want %s", req.XHeaders, want)
		}
		if req.Delivery.Exchange != "" || req.Delivery.RoutingKey != queue {
			t.Errorf("delivered via exchange %q key %q; want the default exchange and key %s (Celery's publishing rule)",
				req.Delivery.Exchange, req.Delivery.RoutingKey, queue)
		}
	})
	t.Run("countdown_expires", func(t *testing.T) {
		t.Parallel()
		notBefore := time.Now().Add(2 * time.Second)
		r := send(t, c, queue, "py.request", nil, nil, celery.WithCountdown(2*time.Second), celery.WithExpiresIn(time.Minute))
		var req pyRequest
		if err := r.GetInto(getCtx(t), &req); err != nil {
			t.Fatalf("py.request with countdown: %v", err)
		}
		if req.ETA == nil || req.Expires == nil {
			t.Fatalf("python saw eta %v expires %v, want both", deref(req.ETA), deref(req.Expires))
		}
		eta := parseISO(t, "eta", *req.ETA)
		if eta.Before(notBefore) || eta.After(notBefore.Add(time.Minute)) {
			t.Errorf("eta %s, want about 2 s after sending (%s)", eta, notBefore)
		}
		if exp := parseISO(t, "expires", *req.Expires); !exp.After(eta) {
			t.Errorf("expires %s is not after the eta %s", exp, eta)
		}
		meta, err := r.Info(getCtx(t))
		if err != nil || meta.DateDone == nil {
			t.Fatalf("reading the result: %v, %+v", err, meta)
		}
		if meta.DateDone.Before(notBefore) {
			t.Errorf("the python worker finished at %s, before the eta %s", meta.DateDone, notBefore)
		}
	})
	t.Run("expires_before_countdown", func(t *testing.T) {
		t.Parallel()
		r := send(t, c, queue, "py.mul", []any{1, 2}, nil, celery.WithCountdown(3*time.Second), celery.WithExpiresIn(time.Second))
		_, err := r.Get(getCtx(t))
		var te *celery.TaskError
		if !errors.As(err, &te) {
			t.Fatalf("Get = %v, want a *celery.TaskError (REVOKED)", err)
		}
		if te.State != "REVOKED" || te.Exception.Type != "TaskRevokedError" || !reflect.DeepEqual(te.Exception.Message, []any{"expired"}) {
			t.Errorf("got %s %+v, want REVOKED TaskRevokedError('expired')", te.State, te.Exception)
		}
	})
	t.Run("failure", func(t *testing.T) {
		t.Parallel()
		_, err := send(t, c, queue, "py.fail", []any{"bad value ü"}, nil).Get(getCtx(t))
		var te *celery.TaskError
		if !errors.As(err, &te) {
			t.Fatalf("Get = %v, want a *celery.TaskError", err)
		}
		if te.State != "FAILURE" || te.Exception.Type != "ValueError" || te.Exception.Module != "builtins" ||
			!reflect.DeepEqual(te.Exception.Message, []any{"bad value ü"}) {
			t.Errorf("got %s %+v, want FAILURE builtins.ValueError('bad value ü')", te.State, te.Exception)
		}
		if !strings.Contains(te.Traceback, "ValueError: bad value ü") || !strings.Contains(te.Traceback, "pytasks.py") {
			t.Errorf("traceback %q, want Python's, ending in the ValueError", te.Traceback)
		}
	})
}
