package interop

// Interoperability on a Redis broker (kombu 5.2's Redis transport): the same cases as on RabbitMQ,
// with Python sending and a Go worker working, a Go client sending and a Python worker working, a
// mixed pool draining one queue, and Celery's command line (inspect, control, events) against a Go
// worker. The broker is Redis database 11 (the Redis broker tests' own); results stay in the
// tests' usual Redis database.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend/redisbackend"
	"github.com/forumads/forumads/celery/broker/redisbroker"
	"github.com/forumads/forumads/internal/testenv"
)

// redisBrokerDB is the Redis database of the interop tests' Redis broker.
const redisBrokerDB = 11

// redisBrokerURL is broker_url for the Redis broker: testenv's Redis, database 11.
func redisBrokerURL(t testing.TB) string {
	t.Helper()
	u, err := url.Parse(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = fmt.Sprintf("/%d", redisBrokerDB)
	return u.String()
}

// redisBrokerClient is a client of the Redis broker's database, closed at cleanup.
func redisBrokerClient(t testing.TB) *redis.Client {
	t.Helper()
	testenv.Redis(t) // fail early and clearly without Redis
	opts, err := redis.ParseURL(redisBrokerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opts)
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

// deleteRedisQueuesAtCleanup deletes the queues' lists (every priority step) and the binding sets
// of the exchanges of the same name when the test ends.
func deleteRedisQueuesAtCleanup(t testing.TB, names ...string) {
	rc := redisBrokerClient(t)
	t.Cleanup(func() {
		var keys []string
		for _, n := range names {
			keys = append(keys, n, "_kombu.binding."+n)
			for _, s := range redisbroker.DefaultPrioritySteps[1:] {
				keys = append(keys, fmt.Sprintf("%s%s%d", n, redisbroker.DefaultSep, s))
			}
		}
		if err := rc.Del(context.Background(), keys...).Err(); err != nil {
			t.Errorf("deleting the Redis queues: %v", err)
		}
	})
}

// startRedisGoWorker starts ./worker on the Redis broker consuming a new queue and a priority
// queue, with visibility_timeout vt, and waits until it consumes; at cleanup it must stop warmly.
func startRedisGoWorker(t *testing.T, label string, vt time.Duration, extraCfg string, args ...string) *goWorker {
	t.Helper()
	q := testenv.Name(t, "interop.redis")
	w := &goWorker{queue: q, prioQueue: q + ".prio", deadLetter: q + ".dlq"}
	deleteRedisQueuesAtCleanup(t, w.queue, w.prioQueue, w.deadLetter)
	w.process = startRedisGoWorkerOn(t, label, w.queue+","+w.prioQueue, fmt.Sprintf(
		"worker_dead_letter_queue: %q\ntask_queues:\n  - {name: %q, exchange: %q, exchange_type: direct, routing_key: %q, max_priority: 10}\n%s",
		w.deadLetter, w.prioQueue, w.prioQueue, w.prioQueue, extraCfg), vt, args...)
	t.Cleanup(func() {
		select {
		case <-w.exited:
			return
		default:
		}
		if err := w.stop(30 * time.Second); err != nil {
			t.Errorf("go worker (%s): warm shutdown should exit 0: %v", label, err)
		}
	})
	return w
}

// startRedisGoWorkerOn starts ./worker on the Redis broker consuming queues (comma-separated) and
// waits until it is ready. The caller stops it.
func startRedisGoWorkerOn(t *testing.T, label, queues, extraCfg string, vt time.Duration, args ...string) *process {
	t.Helper()
	cfg := fmt.Sprintf("broker_url: %q\nbroker_transport_options: {visibility_timeout: %g}\nresult_backend: %q\n"+
		"accept_content: [json]\nresult_extended: true\nresult_expires: 3600\nworker_concurrency: 8\n%s",
		redisBrokerURL(t), vt.Seconds(), testenv.RedisURL(), extraCfg)
	path := filepath.Join(t.TempDir(), "celeryconfig.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	node := "interop-redis-" + testenv.Suffix() + "@%h"
	for i, a := range args {
		if a == "-n" && i+1 < len(args) {
			node = args[i+1]
		}
	}
	host, _ := os.Hostname()
	member := redisbroker.DefaultSep + redisbroker.DefaultSep + strings.ReplaceAll(node, "%h", host) + ".celery.pidbox"
	rc := redisBrokerClient(t)
	t.Cleanup(func() { // after the worker stopped (cleanups run last first); a killed worker leaves its binding
		_ = rc.SRem(context.Background(), "_kombu.binding.celery.pidbox", member).Err()
	})
	base := []string{"--config", path, "-Q", queues, "-n", node, "-l", "info"}
	if !strings.Contains(strings.Join(args, " "), "-c") {
		base = append(base, "-c", "8")
	}
	cmd := exec.Command(workerBin, append(base, args...)...)
	cmd.Env = append(os.Environ(), "CELERY_BROKER_URL="+redisBrokerURL(t), "CELERY_RESULT_BACKEND="+testenv.RedisURL())
	p := startProcess(t, "go worker on redis ("+label+")", cmd, "worker ready")
	if err := p.log.waitFor("worker ready", p.exited, 30*time.Second); err != nil {
		t.Fatalf("go worker on redis (%s): %v", label, err)
	}
	return p
}

// TestRedisPythonClientGoWorker: Python Celery 5.2 sends every case of the RabbitMQ test
// (protocol 2 and 1) over kombu's Redis transport, and a Go worker on the same Redis runs them.
func TestRedisPythonClientGoWorker(t *testing.T) {
	t.Parallel()
	runPyCases(t, 8, func(label string) *goWorker { return startRedisGoWorker(t, label, 30*time.Second, "") },
		func(env map[string]string) map[string]string {
			env = withEnv(env, "BROKER_URL", redisBrokerURL(t))
			env["CELERY_BROKER_URL"] = redisBrokerURL(t) // pythonEnv pins it to RabbitMQ otherwise
			return env
		})
}

func withEnv(env map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for a, b := range env {
		out[a] = b
	}
	return out
}

// startRedisPythonWorker starts a Celery 5.2 worker of the testdata module app on the Redis broker
// consuming queue; at cleanup it must shut down warmly. opts are extra worker arguments.
func startRedisPythonWorker(t *testing.T, app, queue, what string, opts ...string) *process {
	t.Helper()
	args := append([]string{"-m", "celery", "-A", app, "worker", "-Q", queue, "-P", "solo", "-c", "1",
		"--without-mingle", "--without-gossip", "-l", "info", "-n", "py-redis-" + testenv.Suffix() + "@%h"}, opts...)
	cmd := exec.Command(pythonPath(), args...)
	cmd.Dir = testdataDir(t)
	cmd.Env = pythonEnv(map[string]string{"PYTHONPATH": testdataDir(t), "BROKER_URL": redisBrokerURL(t),
		"CELERY_BROKER_URL": redisBrokerURL(t), "BACKEND_URL": testenv.RedisURL(), "PYTHONDONTWRITEBYTECODE": "1"})
	p := startProcess(t, what, cmd, " ready.")
	t.Cleanup(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		if err := p.stop(30 * time.Second); err != nil {
			t.Errorf("%s: warm shutdown should exit 0: %v", what, err)
		}
	})
	if err := p.log.waitFor(" ready.", p.exited, 60*time.Second); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return p
}

// redisGoClient is a Go client on the Redis broker (redisbroker on its own client) with results in
// the tests' Redis.
func redisGoClient(t *testing.T) (*celery.Client, *redisbroker.Broker) {
	t.Helper()
	br, err := redisbroker.New(redisBrokerClient(t), redisbroker.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = br.Close() })
	backend := redisbackend.New(testenv.Redis(t), redisbackend.Options{Expires: time.Hour})
	c, err := celery.NewClient(celery.ClientOptions{Config: celery.Config{BrokerURL: redisBrokerURL(t)}, Broker: br, Backend: backend})
	if err != nil {
		t.Fatal(err)
	}
	return c, br
}

// TestRedisGoClientPythonWorker: the Go client sends over the Redis broker to a real Celery 5.2
// worker (kombu's Redis transport), which runs every kind of message the client writes.
func TestRedisGoClientPythonWorker(t *testing.T) {
	t.Parallel()
	queue := testenv.Name(t, "interop.redis.py")
	deleteRedisQueuesAtCleanup(t, queue)
	startRedisPythonWorker(t, "pytasks", queue, "python worker on redis")
	c, _ := redisGoClient(t)

	t.Run("args_kwargs", func(t *testing.T) {
		t.Parallel()
		var product int
		if err := send(t, c, queue, "py.mul", []any{6, 7}, nil).GetInto(getCtx(t), &product); err != nil || product != 42 {
			t.Errorf("py.mul(6, 7) = %d, %v; want 42", product, err)
		}
		var s string
		if err := send(t, c, queue, "py.mul", nil, map[string]any{"x": "ab", "y": 3}).GetInto(getCtx(t), &s); err != nil || s != "ababab" {
			t.Errorf("py.mul(x='ab', y=3) = %q, %v", s, err)
		}
	})
	t.Run("unicode_1MiB", func(t *testing.T) {
		t.Parallel()
		got, err := send(t, c, queue, "py.echo", []any{"ä €"}, echoPayload()).Get(getCtx(t))
		if err != nil {
			t.Fatalf("py.echo: %v", err)
		}
		want := mustJSON(t, map[string]any{"args": []any{"ä €"}, "kwargs": echoPayload()})
		if !jsonEqual(t, got, want) {
			t.Errorf("py.echo returned something else than it was sent: %.300s", got)
		}
	})
	t.Run("countdown_eta_expires", func(t *testing.T) {
		t.Parallel()
		notBefore := time.Now().Add(2 * time.Second)
		r := send(t, c, queue, "py.request", nil, nil, celery.WithCountdown(2*time.Second), celery.WithExpiresIn(time.Minute))
		var req pyRequest
		if err := r.GetInto(getCtx(t), &req); err != nil {
			t.Fatalf("py.request with countdown: %v", err)
		}
		if req.ETA == nil || req.Expires == nil || parseISO(t, "eta", *req.ETA).Before(notBefore.Add(-time.Second)) {
			t.Fatalf("python saw eta %v expires %v", deref(req.ETA), deref(req.Expires))
		}
		if req.Delivery.Exchange != "" || req.Delivery.RoutingKey != queue {
			t.Errorf("delivered via exchange %q key %q; want the default exchange and key %s", req.Delivery.Exchange, req.Delivery.RoutingKey, queue)
		}
		meta, err := r.Info(getCtx(t))
		if err != nil || meta.DateDone == nil || meta.DateDone.Before(notBefore) {
			t.Errorf("finished at %v (%v), want after the eta %s", meta.DateDone, err, notBefore)
		}
		eta := send(t, c, queue, "py.mul", []any{2, 2}, nil, celery.WithETA(time.Now().Add(time.Second)))
		var four int
		if err := eta.GetInto(getCtx(t), &four); err != nil || four != 4 {
			t.Errorf("py.mul with an eta = %d, %v", four, err)
		}
		_, err = send(t, c, queue, "py.mul", []any{1, 2}, nil, celery.WithCountdown(3*time.Second), celery.WithExpiresIn(time.Second)).Get(getCtx(t))
		var te *celery.TaskError
		if !errors.As(err, &te) || te.State != "REVOKED" {
			t.Errorf("expires before countdown: %v, want REVOKED", err)
		}
	})
	t.Run("failure_retry", func(t *testing.T) {
		t.Parallel()
		_, err := send(t, c, queue, "py.fail", []any{"bad value ü"}, nil).Get(getCtx(t))
		var te *celery.TaskError
		if !errors.As(err, &te) || te.State != "FAILURE" || te.Exception.Type != "ValueError" {
			t.Fatalf("py.fail: %v, want FAILURE ValueError", err)
		}
		var req pyRequest
		if err := send(t, c, queue, "py.request", nil, nil, celery.WithRetries(2)).GetInto(getCtx(t), &req); err != nil || req.Retries != 2 {
			t.Errorf("retries=2: python saw %d, %v", req.Retries, err)
		}
	})
	t.Run("priority", func(t *testing.T) {
		t.Parallel()
		for _, p := range []int{0, 4, 7, 9} {
			var n int
			if err := send(t, c, queue, "py.mul", []any{p, 1}, nil, celery.WithPriority(p)).GetInto(getCtx(t), &n); err != nil || n != p {
				t.Errorf("priority %d: %d, %v", p, n, err)
			}
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
