package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend/redisbackend"
	"github.com/forumads/forumads/celery/broker/amqpbroker"
	"github.com/forumads/forumads/internal/testenv"
)

// maxDump bounds how much of a worker's log a failing test prints (the tail is kept).
const maxDump = 256 << 10

// workerProc is one run of the worker binary.
type workerProc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	logs *testenv.LogBuffer
	done chan struct{}
	err  error // cmd.Wait's error, set before done is closed
}

// workerSpec says how to run the worker.
type workerSpec struct {
	queue    string         // -Q and task_default_queue
	broker   string         // CELERY_BROKER_URL (default: testenv.AMQPURL)
	backend  string         // CELERY_RESULT_BACKEND (default: testenv.RedisURL)
	settings map[string]any // extra celeryconfig.yaml settings
	args     []string       // extra flags
}

// writeConfig writes a celeryconfig.yaml for spec into a temporary directory.
func writeConfig(t *testing.T, spec workerSpec) string {
	t.Helper()
	// Revoked ids go under a prefix of the test's own.
	revokes := "t:" + testenv.Suffix() + ":revoked:"
	testenv.DeleteKeysAtCleanup(t, testenv.Redis(t), revokes+"ids")
	settings := map[string]any{
		"task_default_queue":       spec.queue,
		"worker_dead_letter_queue": spec.queue + ".dlq",
		"result_expires":           3600,
		"worker_revoke_key_prefix": revokes,
	}
	for k, v := range spec.settings {
		settings[k] = v
	}
	data, err := yaml.Marshal(settings)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "celeryconfig.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startWorker runs the worker binary on spec.queue. At cleanup a still running worker is killed,
// and when the test failed its stderr is written to the test log.
func startWorker(t *testing.T, name string, spec workerSpec) *workerProc {
	t.Helper()
	if spec.broker == "" {
		spec.broker = testenv.AMQPURL()
	}
	if spec.backend == "" {
		spec.backend = testenv.RedisURL()
	}
	// No metrics endpoint unless the test asks for one: parallel workers would fight over the port.
	args := append([]string{"--config", writeConfig(t, spec), "-Q", spec.queue,
		"-n", name + "-" + testenv.Suffix() + "@%h", "--metrics-addr="}, spec.args...)
	cmd := exec.Command(workerBin, args...)
	cmd.Env = append(os.Environ(), "CELERY_BROKER_URL="+spec.broker, "CELERY_RESULT_BACKEND="+spec.backend)
	w := &workerProc{t: t, name: name, cmd: cmd, logs: &testenv.LogBuffer{}, done: make(chan struct{})}
	cmd.Stdout = w.logs
	cmd.Stderr = w.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the worker: %v", err)
	}
	go func() {
		w.err = cmd.Wait()
		close(w.done)
	}()
	t.Cleanup(func() {
		if !w.exited() {
			_ = cmd.Process.Kill()
			<-w.done
		}
		if t.Failed() {
			out := w.logs.String()
			if len(out) > maxDump {
				out = fmt.Sprintf("[… %d bytes left out …]\n%s", len(out)-maxDump, out[len(out)-maxDump:])
			}
			t.Logf("worker %s (pid %d) stderr:\n%s", name, cmd.Process.Pid, out)
		}
	})
	return w
}

func (w *workerProc) exited() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// waitLog waits until a line of the log contains every part.
func (w *workerProc) waitLog(timeout time.Duration, parts ...string) {
	w.t.Helper()
	testenv.Eventually(w.t, timeout, func() bool {
		if w.exited() {
			w.t.Fatalf("worker %s exited (%v) while the test waited for it to log %q", w.name, w.err, parts)
		}
		return w.logs.Count(parts...) > 0
	}, "worker %s to log %q", w.name, parts)
}

// waitReady waits until the worker consumes.
func (w *workerProc) waitReady() {
	w.t.Helper()
	w.waitLog(30*time.Second, "worker ready")
}

func (w *workerProc) signal(sig syscall.Signal) {
	w.t.Helper()
	if err := w.cmd.Process.Signal(sig); err != nil {
		w.t.Fatalf("signal %v to worker %s: %v", sig, w.name, err)
	}
}

// wait waits for the worker to exit and returns its state.
func (w *workerProc) wait(timeout time.Duration) *os.ProcessState {
	w.t.Helper()
	select {
	case <-w.done:
	case <-time.After(timeout):
		w.t.Fatalf("worker %s did not exit within %v", w.name, timeout)
	}
	var ee *exec.ExitError
	if w.err != nil && !errors.As(w.err, &ee) {
		w.t.Fatalf("waiting for worker %s: %v", w.name, w.err)
	}
	return w.cmd.ProcessState
}

// stop shuts the worker down warmly and checks that it exits 0.
func (w *workerProc) stop() {
	w.t.Helper()
	w.signal(syscall.SIGTERM)
	if st := w.wait(60 * time.Second); st.ExitCode() != 0 {
		w.t.Fatalf("worker %s: warm shutdown exited with %v, want 0", w.name, st)
	}
}

// env is one test's queue, client and result store, cleaned up when the test ends.
type env struct {
	t       *testing.T
	queue   string
	rc      *redis.Client
	backend *redisbackend.Backend
	client  *celery.Client

	mu   sync.Mutex
	keys []string // Redis keys to delete at cleanup
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, queue: testenv.Name(t, "worker"), rc: testenv.Redis(t)}
	testenv.DeleteQueuesAtCleanup(t, e.queue, e.queue+".dlq")
	t.Cleanup(func() {
		e.mu.Lock()
		keys := e.keys
		e.mu.Unlock()
		for len(keys) > 0 {
			n := min(len(keys), 500)
			if err := e.rc.Del(context.Background(), keys[:n]...).Err(); err != nil {
				t.Errorf("cleanup: deleting Redis keys: %v", err)
				return
			}
			keys = keys[n:]
		}
	})
	cfg := celery.Config{BrokerURL: testenv.AMQPURL(), TaskDefaultQueue: e.queue}
	br, err := amqpbroker.New(cfg.BrokerURL, amqpbroker.Options{
		ConnectionName: "test-client " + e.queue, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = br.Close() })
	e.backend = redisbackend.New(e.rc, redisbackend.Options{Expires: time.Hour})
	e.client, err = celery.NewClient(celery.ClientOptions{Config: cfg, Broker: br, Backend: e.backend})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, _ := cfg.WithDefaults().QueueByName(e.queue)
	if err := br.Declare(ctx, q); err != nil {
		t.Fatalf("RabbitMQ is required at %s (run scripts/services.sh): %v", testenv.AMQPURL(), err)
	}
	return e
}

// trackKeys deletes the keys at cleanup.
func (e *env) trackKeys(keys ...string) {
	e.mu.Lock()
	e.keys = append(e.keys, keys...)
	e.mu.Unlock()
}

// send publishes a task to the env's queue and returns its id.
func (e *env) send(ctx context.Context, name string, args ...any) string {
	e.t.Helper()
	id := celery.NewID()
	e.trackKeys(redisbackend.TaskKey("", id))
	if _, err := e.client.SendTask(ctx, name, args, nil, celery.WithTaskID(id)); err != nil {
		e.t.Fatalf("sending %s: %v", name, err)
	}
	return id
}

// sendMany publishes n tasks from a few goroutines; args(i) gives task i's arguments.
func (e *env) sendMany(ctx context.Context, n int, name func(i int) string, args func(i int) []any) []string {
	e.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = celery.NewID()
	}
	e.trackKeys(resultKeys(ids)...)
	const senders = 8
	errs := make(chan error, senders)
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := s; i < n; i += senders {
				if _, err := e.client.SendTask(ctx, name(i), args(i), nil, celery.WithTaskID(ids[i])); err != nil {
					errs <- fmt.Errorf("sending task %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		e.t.Fatal(err)
	}
	return ids
}

func resultKeys(ids []string) []string {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = redisbackend.TaskKey("", id)
	}
	return keys
}

// meta is the part of a stored result the tests read.
type meta struct {
	Status string          `json:"status"`
	Result json.RawMessage `json:"result"`
}

// results reads the stored results of ids (a missing one has an empty Status).
func (e *env) results(ctx context.Context, ids []string) []meta {
	e.t.Helper()
	out := make([]meta, len(ids))
	keys := resultKeys(ids)
	for start := 0; start < len(keys); start += 500 {
		end := min(start+500, len(keys))
		vals, err := e.rc.MGet(ctx, keys[start:end]...).Result()
		if err != nil {
			e.t.Fatalf("reading results: %v", err)
		}
		for i, v := range vals {
			s, ok := v.(string)
			if !ok {
				continue
			}
			if err := json.Unmarshal([]byte(s), &out[start+i]); err != nil {
				e.t.Fatalf("result of %s is not JSON: %v: %q", ids[start+i], err, s)
			}
		}
	}
	return out
}

// countSucceeded is how many of ids have a stored SUCCESS.
func (e *env) countSucceeded(ctx context.Context, ids []string) int {
	e.t.Helper()
	n := 0
	for _, m := range e.results(ctx, ids) {
		if m.Status == "SUCCESS" {
			n++
		}
	}
	return n
}

// waitAllSucceeded waits until every task of ids has a stored SUCCESS, failing on a stored
// FAILURE or REVOKED.
func (e *env) waitAllSucceeded(ctx context.Context, timeout time.Duration, ids []string, w *workerProc) []meta {
	e.t.Helper()
	var ms []meta
	testenv.Eventually(e.t, timeout, func() bool {
		ms = e.results(ctx, ids)
		n := 0
		for i, m := range ms {
			switch m.Status {
			case "SUCCESS":
				n++
			case "FAILURE", "REVOKED":
				e.t.Fatalf("task %d (%s) ended %s: %s", i, ids[i], m.Status, m.Result)
			}
		}
		if w != nil && w.exited() {
			e.t.Fatalf("worker %s exited (%v) with %d of %d results stored", w.name, w.err, n, len(ids))
		}
		return n == len(ids)
	}, "all %d results to be SUCCESS", len(ids))
	return ms
}

// queueDepth is the number of ready messages in queue.
func queueDepth(t *testing.T, queue string) int {
	t.Helper()
	conn, err := amqp.Dial(testenv.AMQPURL())
	if err != nil {
		t.Fatalf("RabbitMQ is required at %s (run scripts/services.sh): %v", testenv.AMQPURL(), err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("inspecting queue %s: %v", queue, err)
	}
	return q.Messages
}

// serviceAddr is the host:port of a service URL, with the scheme's default port.
func serviceAddr(t *testing.T, rawURL, defaultPort string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), defaultPort)
	}
	return u.Host
}

// viaAddr is rawURL pointed at addr instead of its own host and port.
func viaAddr(t *testing.T, rawURL, addr string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	return u.String()
}

// closedPort returns a loopback address nothing listens on (as of now).
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}
