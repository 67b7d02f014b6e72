package workerops

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/control"
	"github.com/forumads/forumads/internal/testenv"
	"github.com/forumads/forumads/internal/wiring"
)

func TestRevokeURL(t *testing.T) {
	t.Setenv("REDIS_URL", "redis://env:6379/3")
	for _, tc := range []struct {
		name      string
		cfg       celery.Config
		want, src string
	}{
		{"setting wins", celery.Config{WorkerRevokeURL: "redis://own/1", ResultBackend: "redis://rb/0"}, "redis://own/1", "worker_revoke_url"},
		{"result backend", celery.Config{ResultBackend: "redis://rb/0"}, "redis://rb/0", "result_backend"},
		{"Sentinel result backend", celery.Config{ResultBackend: "sentinel://s1:26379;sentinel://s2:26379"}, "sentinel://s1:26379;sentinel://s2:26379", "result_backend"},
		{"REDIS_URL", celery.Config{ResultBackend: "rpc://"}, "redis://env:6379/3", "REDIS_URL"},
	} {
		if got, src := RevokeURL(tc.cfg); got != tc.want || src != tc.src {
			t.Errorf("%s: RevokeURL = %q from %s, want %q from %s", tc.name, got, src, tc.want, tc.src)
		}
	}
	t.Setenv("REDIS_URL", "")
	if got, _ := RevokeURL(celery.Config{}); got != "" {
		t.Errorf("nothing configured: %q", got)
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	if _, err := New(celery.Config{BrokerURL: "memory://"}, Options{}); err == nil || !strings.Contains(err.Error(), "Nodename") {
		t.Errorf("no node name: err = %v, want one naming Nodename", err)
	}
	if _, err := New(celery.Config{BrokerURL: "kafka://x"}, Options{Nodename: "celery@x"}); err == nil || !strings.Contains(err.Error(), "kafka") {
		t.Errorf("unknown broker scheme: err = %v, want one naming it", err)
	}
}

// running is a worker with its ops started, as the worker program runs them.
type running struct {
	ops      *Ops
	w        *celery.Worker
	reg      *celery.Registry
	br       broker.Broker
	cfg      celery.Config
	nodename string
	logs     *testenv.LogBuffer
	runErr   chan error
}

// startWorker builds Ops on cfg, a worker on the broker cfg names consuming queue, and starts
// both. The cleanup stops the ops, shuts the worker down and closes the broker.
func startWorker(t *testing.T, cfg celery.Config, queue string, opts Options) *running {
	t.Helper()
	r := &running{cfg: cfg, nodename: testenv.Name(t, "celery@workerops"), logs: &testenv.LogBuffer{}, runErr: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Nodename, opts.Logger = r.nodename, log
	var err error
	if r.ops, err = New(cfg, opts); err != nil {
		t.Fatalf("New: %v", err)
	}
	if r.br, err = wiring.Broker(cfg, r.nodename, log); err != nil {
		t.Fatalf("broker: %v", err)
	}
	r.reg = celery.NewRegistry()
	type addArgs struct{ A, B int }
	celery.Register(r.reg, "workerops.add", func(_ context.Context, t *celery.Task[addArgs]) (int, error) {
		return t.Args.A + t.Args.B, nil
	})
	r.w, err = celery.NewWorker(celery.WorkerOptions{Config: cfg, Registry: r.reg, Broker: r.br, Queues: []string{queue},
		Hostname: r.nodename, Logger: log, Events: r.ops.Events(), Revokes: r.ops.Revokes(), Metrics: r.ops.Metrics()})
	if err != nil {
		t.Fatalf("NewWorker: %v", err)
	}
	r.ops.Start(context.Background(), r.w, r.reg, r.br)
	go func() { r.runErr <- r.w.Run(context.Background()) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.w.Shutdown(ctx); err != nil {
		t.Errorf("worker shutdown: %v", err)
	}
	if err := <-r.runErr; err != nil && !errors.Is(err, celery.ErrWorkerClosed) {
		t.Errorf("worker.Run: %v", err)
	}
	r.ops.Stop(ctx)
	_ = r.br.Close()
	if t.Failed() {
		t.Logf("logs:\n%s", r.logs.String())
	}
}

// ping asks the worker's mailbox for a pong over the control transport cfg names.
func (r *running) ping(t *testing.T) map[string]string {
	t.Helper()
	tr, closer, err := wiring.Fanout(r.cfg, "workerops-test-control", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if closer != nil {
		defer closer.Close()
	}
	cl, err := control.NewClient(tr, control.Options{Namespace: r.cfg.ControlExchange})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	replies, err := cl.Broadcast(ctx, "ping", nil, []string{r.nodename}, 10*time.Second, control.WithLimit(1))
	if err != nil {
		t.Fatalf("ping: %v", err)
	}
	out := map[string]string{}
	for k, v := range replies {
		out[k] = string(v)
	}
	return out
}

// get fetches url without keeping the connection (goleak would see its goroutines).
func get(url string) (int, string, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitHealthy polls /healthz until it answers 200 ok (the worker consumes and the broker is up).
func waitHealthy(t *testing.T, addr string) {
	t.Helper()
	err := testenv.Poll(30*time.Second, func() (bool, error) {
		code, body, err := get("http://" + addr + "/healthz")
		return err == nil && code == 200 && strings.TrimSpace(body) == "ok", nil
	})
	if err != nil {
		t.Fatalf("/healthz never answered ok: %v", err)
	}
}

// TestStartOnMemory runs the ops on memory://: the mailbox answers a ping once Start returned
// (Start waits for it), /healthz and /metrics are served, and Stop leaves no goroutine (TestMain).
func TestStartOnMemory(t *testing.T) {
	t.Setenv("REDIS_URL", "")
	addr := testenv.FreeAddr(t)
	cfg := celery.Config{BrokerURL: "memory://", ControlExchange: testenv.Name(t, "ctl")}
	r := startWorker(t, cfg, testenv.Name(t, "q"), Options{MetricsAddr: addr, Heartbeat: time.Second})
	if r.ops.Revokes() != nil {
		t.Errorf("Revokes() = %v without any Redis configured, want nil (memory only)", r.ops.Revokes())
	}
	if got := r.ping(t); !strings.Contains(got[r.nodename], "pong") {
		t.Errorf("ping replies = %v, want a pong from %s", got, r.nodename)
	}
	waitHealthy(t, addr)
	code, body, err := get("http://" + addr + "/metrics")
	if err != nil || code != 200 || !strings.Contains(body, "celery_worker_active_tasks 0") {
		t.Errorf("/metrics = %d %v, lacks celery_worker_active_tasks 0:\n%s", code, err, body)
	}
	if r.logs.Count("revokes are kept in memory only") != 1 {
		t.Errorf("Start did not log that revokes are kept in memory only")
	}
}

// TestStartOnRabbitMQ runs the ops on RabbitMQ with revokes in Redis: the mailbox answers a ping,
// /healthz is ok once the worker consumes, and the revoke store is the Redis one.
func TestStartOnRabbitMQ(t *testing.T) {
	queue := testenv.Name(t, "q")
	ctl := testenv.Name(t, "ctl")
	testenv.DeleteQueuesAtCleanup(t, queue)
	rc := testenv.Redis(t)
	prefix := testenv.Name(t, "revokes")
	testenv.DeletePrefixAtCleanup(t, rc, prefix)
	addr := testenv.FreeAddr(t)
	cfg := celery.Config{BrokerURL: testenv.AMQPURL(), ResultBackend: testenv.RedisURL(), ControlExchange: ctl,
		EventExchange: testenv.Name(t, "ev"), WorkerRevokeKeyPrefix: prefix}
	r := startWorker(t, cfg, queue, Options{MetricsAddr: addr, WithoutMingle: true, Heartbeat: time.Second})
	if r.ops.Revokes() == nil || !strings.Contains(r.ops.Revokes().String(), prefix) {
		t.Errorf("Revokes() = %v, want the Redis store under %s", r.ops.Revokes(), prefix)
	}
	if got := r.ping(t); !strings.Contains(got[r.nodename], "pong") {
		t.Errorf("ping replies = %v, want a pong from %s", got, r.nodename)
	}
	waitHealthy(t, addr)
	if r.logs.Count("revokes are kept in Redis", "from=result_backend") != 1 {
		t.Errorf("Start did not log where revokes are kept")
	}
}

// TestBanner renders the banner of a worker on memory:// and finds its node, queue, task and
// operator settings in it.
func TestBanner(t *testing.T) {
	t.Setenv("REDIS_URL", "")
	queue := testenv.Name(t, "q")
	cfg := celery.Config{BrokerURL: "memory://", ControlExchange: testenv.Name(t, "ctl")}
	r := startWorker(t, cfg, queue, Options{TaskEvents: true, WithoutHeartbeat: true, WithoutMingle: true})
	var b bytes.Buffer
	if err := Banner(&b, r.w, r.reg, "/etc/celeryconfig.yaml", r.ops); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{" -------------- " + r.nodename + " ", ".> config:      /etc/celeryconfig.yaml",
		".> transport:   memory://", ".> results:     disabled://", ".> task events: ON", ".> revokes:     memory only",
		".> metrics:     off", ".> " + queue, "  . workerops.add"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, b.String())
		}
	}
}
