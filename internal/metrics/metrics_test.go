package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// serve starts ServeListener on a free loopback port and returns its base URL; the server is
// stopped (and must return nil) at cleanup.
func serve(t *testing.T, reg *prometheus.Registry, healthz func() error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, ln, reg, healthz, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeListener returned %v after its context ended, want nil", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrape returns the text exposition of base/metrics.
func scrape(t *testing.T, base string) string {
	t.Helper()
	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", code, body)
	}
	return body
}

// wantLines checks that every line is in the exposition exactly.
func wantLines(t *testing.T, body string, lines ...string) {
	t.Helper()
	have := make(map[string]bool)
	for _, l := range strings.Split(body, "\n") {
		have[l] = true
	}
	for _, l := range lines {
		if !have[l] {
			t.Errorf("missing line %q", l)
		}
	}
	if t.Failed() {
		t.Logf("exposition:\n%s", body)
	}
}

func TestWorkerMetricsScraped(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	m := NewWorker(reg)
	m.SetStateFunc(func() WorkerState {
		return WorkerState{Active: 3, Reserved: 5, HeldETA: 2, Prefetch: 16, Reconnects: 1, Processed: 42}
	})
	m.TaskReceived("diag.add")
	m.TaskReceived("diag.add")
	m.TaskReceived("")
	m.TaskStarted("diag.add", 3*time.Millisecond)
	m.TaskStarted("diag.add", -time.Second)
	m.TaskFinished("diag.add", "success", 20*time.Millisecond)
	m.TaskFinished("diag.add", "failure", 2*time.Second)
	m.TaskFinished("diag.add", "exploded", time.Second)
	m.TaskFinished("diag.sleep", "revoked", 0)
	m.DeadLettered(`NotRegistered: task "x.y" is not registered on celery@h`)
	m.DeadLettered("InvalidTaskError: bad header")
	m.DeadLettered("task failed and acks_on_failure_or_timeout is off: ValueError: no")
	m.DeadLettered("rejected by the task: nope")
	m.DeadLettered("something new")

	body := scrape(t, serve(t, reg, nil))
	wantLines(t, body,
		`celery_tasks_received_total{task="diag.add"} 2`,
		`celery_tasks_received_total{task="unknown"} 1`,
		`celery_tasks_total{outcome="success",task="diag.add"} 1`,
		`celery_tasks_total{outcome="failure",task="diag.add"} 1`,
		`celery_tasks_total{outcome="unknown",task="diag.add"} 1`,
		`celery_tasks_total{outcome="revoked",task="diag.sleep"} 1`,
		`celery_task_runtime_seconds_count{task="diag.add"} 3`,
		`celery_task_runtime_seconds_bucket{task="diag.add",le="0.025"} 1`,
		`celery_task_runtime_seconds_bucket{task="diag.add",le="2.5"} 3`,
		`celery_task_queue_wait_seconds_count{task="diag.add"} 2`,
		`celery_task_queue_wait_seconds_bucket{task="diag.add",le="0.001"} 1`,
		`celery_task_queue_wait_seconds_bucket{task="diag.add",le="0.005"} 2`,
		`celery_worker_active_tasks 3`,
		`celery_worker_reserved_tasks 5`,
		`celery_worker_eta_held_tasks 2`,
		`celery_worker_prefetch_count 16`,
		`celery_worker_broker_reconnects_total 1`,
		`celery_worker_processed_tasks_total 42`,
		`celery_worker_dead_lettered_total{reason="NotRegistered"} 1`,
		`celery_worker_dead_lettered_total{reason="InvalidTaskError"} 1`,
		`celery_worker_dead_lettered_total{reason="failed"} 1`,
		`celery_worker_dead_lettered_total{reason="rejected"} 1`,
		`celery_worker_dead_lettered_total{reason="other"} 1`,
		`# TYPE celery_task_runtime_seconds histogram`,
		`# TYPE celery_worker_broker_reconnects_total counter`,
	)
	if strings.Contains(body, `diag.sleep"} `) && strings.Contains(body, `celery_task_runtime_seconds_count{task="diag.sleep"}`) {
		t.Errorf("a revoked task's zero runtime was observed")
	}
	for _, prefix := range []string{"go_goroutines ", "process_"} {
		if !strings.Contains(body, "\n"+prefix) {
			t.Errorf("no %q metrics: the Go/process collectors are missing", prefix)
		}
	}
}

func TestWorkerStateBeforeSetAndAfterPanic(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	m := NewWorker(reg)
	base := serve(t, reg, nil)
	wantLines(t, scrape(t, base), `celery_worker_active_tasks 0`, `celery_worker_prefetch_count 0`)

	m.SetStateFunc(func() WorkerState { panic("state is broken") })
	code, body := get(t, base+"/metrics")
	// ContinueOnError: the other metrics are still served, the broken collector is reported.
	if code != http.StatusOK || strings.Contains(body, "celery_worker_active_tasks ") {
		t.Errorf("scrape with a panicking state function: %d\n%s", code, body)
	}
	if !strings.Contains(body, "go_goroutines") {
		t.Errorf("the other metrics were not served:\n%s", body)
	}
}

func TestKnownTasks(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := NewWorker(reg)
	m.SetKnownTasks([]string{"diag.add", "ads.score"})
	m.TaskReceived("diag.add")
	m.TaskReceived("evil.task")
	m.TaskReceived("evil.task2")
	wantLines(t, scrape(t, serve(t, reg, nil)),
		`celery_tasks_received_total{task="diag.add"} 1`,
		`celery_tasks_received_total{task="unknown"} 2`,
	)
}

func TestTaskLabelCap(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := NewWorker(reg)
	for i := 0; i < MaxTaskLabels+10; i++ {
		m.TaskReceived("task." + strings.Repeat("x", i%50) + string(rune('a'+i/50)))
	}
	m.TaskReceived("task.a") // seen first: keeps its own series
	body := scrape(t, serve(t, reg, nil))
	if n := strings.Count(body, "\ncelery_tasks_received_total{"); n != MaxTaskLabels+1 {
		t.Errorf("%d task series, want %d (the cap plus \"other\")", n, MaxTaskLabels+1)
	}
	wantLines(t, body, `celery_tasks_received_total{task="other"} 10`, `celery_tasks_received_total{task="task.a"} 2`)
}

func TestBeatMetricsScraped(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	m := NewBeat(reg)
	m.SetEntries(4)
	m.Published("warm", "ads.warm_cache", 1500*time.Microsecond)
	m.Published("warm", "ads.warm_cache", 40*time.Millisecond)
	m.Published("score", "ads.score", -time.Millisecond)
	m.PublishFailed("score", "ads.score")
	wantLines(t, scrape(t, serve(t, reg, nil)),
		`beat_entries 4`,
		`beat_publishes_total{entry="warm",task="ads.warm_cache"} 2`,
		`beat_publishes_total{entry="score",task="ads.score"} 1`,
		`beat_publish_failures_total{entry="score",task="ads.score"} 1`,
		`beat_publish_lateness_seconds_count 3`,
		`beat_publish_lateness_seconds_bucket{le="0.001"} 1`,
		`beat_publish_lateness_seconds_bucket{le="0.002"} 2`,
		`beat_publish_lateness_seconds_bucket{le="0.05"} 3`,
	)
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		healthz  func() error
		wantCode int
		wantBody string
	}{
		{"nil check", nil, 200, "ok\n"},
		{"healthy", func() error { return nil }, 200, "ok\n"},
		{"unhealthy", func() error { return errors.New("broker connection lost") }, 503, "broker connection lost\n"},
		{"panics", func() error { panic("boom") }, 503, "health check panicked: boom\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, body := get(t, serve(t, prometheus.NewRegistry(), tc.healthz)+"/healthz")
			if code != tc.wantCode || body != tc.wantBody {
				t.Errorf("GET /healthz = %d %q, want %d %q", code, body, tc.wantCode, tc.wantBody)
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	h := Handler(prometheus.NewRegistry(), nil, nil)
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/metrics", 200},
		{"HEAD", "/healthz", 200},
		{"POST", "/metrics", 405},
		{"DELETE", "/healthz", 405},
		{"GET", "/", 404},
		{"GET", "/metrics/extra", 404},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.want {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, rec.Code, tc.want)
		}
	}
}

func TestServeErrors(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := Serve(context.Background(), ln.Addr().String(), prometheus.NewRegistry(), nil, nil); err == nil ||
		!strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("Serve on an address in use = %v, want an error naming the address", err)
	}
	if err := Serve(context.Background(), "not an address", prometheus.NewRegistry(), nil, nil); err == nil {
		t.Error("Serve on a bad address returned nil")
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := ServeListener(context.Background(), ln2, nil, nil, nil); err == nil {
		t.Error("ServeListener without a registry returned nil")
	}
}

func TestServeStopsOnContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// An already-ended context: Serve listens, then shuts down at once and returns nil.
	if err := Serve(ctx, "127.0.0.1:0", prometheus.NewRegistry(), nil, nil); err != nil {
		t.Errorf("Serve with an ended context = %v, want nil", err)
	}
}

func TestHTTPMiddleware(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := NewHTTP(reg)
	mux := http.NewServeMux()
	mux.Handle("/ok", m.Middleware("/ok", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "fine")
	})))
	mux.Handle("/missing/{id}", m.Middleware("/missing/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NotFound(w, r)
	})))
	mux.Handle("/fail", m.Middleware("/fail", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		w.WriteHeader(http.StatusOK) // superfluous: the first code counts
	})))
	mux.Handle("/panic", m.Middleware("", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic(http.ErrAbortHandler)
	})))
	mux.Handle("/empty", m.Middleware("/empty", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	for _, req := range []struct{ method, path string }{
		{"GET", "/ok"}, {"GET", "/ok"}, {"POST", "/ok"}, {"BREW", "/ok"},
		{"GET", "/missing/1"}, {"GET", "/missing/2"}, {"GET", "/fail"}, {"GET", "/panic"}, {"GET", "/empty"},
	} {
		rec := httptest.NewRecorder()
		func() {
			defer func() { _ = recover() }()
			mux.ServeHTTP(rec, httptest.NewRequest(req.method, req.path, nil))
		}()
	}
	wantLines(t, scrape(t, serve(t, reg, nil)),
		`http_request_duration_seconds_count{code="2xx",method="GET",route="/ok"} 2`,
		`http_request_duration_seconds_count{code="2xx",method="POST",route="/ok"} 1`,
		`http_request_duration_seconds_count{code="2xx",method="OTHER",route="/ok"} 1`,
		`http_request_duration_seconds_count{code="4xx",method="GET",route="/missing/{id}"} 2`,
		`http_request_duration_seconds_count{code="5xx",method="GET",route="/fail"} 1`,
		`http_request_duration_seconds_count{code="5xx",method="GET",route="unknown"} 1`,
		`http_request_duration_seconds_count{code="2xx",method="GET",route="/empty"} 1`,
	)
}

func TestMiddlewareKeepsFlusher(t *testing.T) {
	t.Parallel()
	m := NewHTTP(nil)
	var flushErr error
	h := m.Middleware("/stream", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		flushErr = http.NewResponseController(w).Flush()
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/stream", nil))
	if flushErr != nil || !rec.Flushed {
		t.Errorf("Flush through the middleware: err %v, flushed %v", flushErr, rec.Flushed)
	}
}

func TestCodeClass(t *testing.T) {
	t.Parallel()
	for code, want := range map[int]string{0: "2xx", 100: "1xx", 200: "2xx", 204: "2xx", 301: "3xx", 404: "4xx",
		499: "4xx", 500: "5xx", 599: "5xx", 600: "unknown", 99: "unknown", -1: "unknown"} {
		if got := codeClass(code); got != want {
			t.Errorf("codeClass(%d) = %q, want %q", code, got, want)
		}
	}
}

func TestReasonKind(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{`NotRegistered: task "a" is not registered on celery@h`, "NotRegistered"},
		{"NotRegistered", "NotRegistered"},
		{"InvalidTaskError: missing header", "InvalidTaskError"},
		{"ContentDisallowed: pickle", "ContentDisallowed"},
		{"DecodeError: bad json", "DecodeError"},
		{"task failed and acks_on_failure_or_timeout is off: KeyError: x", "failed"},
		{"failed", "failed"},
		{"rejected by the task", "rejected"},
		{"rejected by the task: no", "rejected"},
		{"", "other"},
		{"Whatever: x", "other"},
		{"\xff\xfe", "other"},
	} {
		if got := reasonKind(tc.in); got != tc.want {
			t.Errorf("reasonKind(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDoubleRegistrationPanics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	NewBeat(reg)
	defer func() {
		if recover() == nil {
			t.Error("registering the beat metrics twice did not panic")
		}
	}()
	NewBeat(reg)
}
