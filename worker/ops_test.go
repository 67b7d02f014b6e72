package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/internal/testenv"
)

// TestMetricsEndpoint runs the worker with --metrics-addr: /healthz answers ok while it consumes,
// /metrics counts the tasks it ran, and the banner says where the endpoint is.
func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 90*time.Second)
	e := newEnv(t)
	addr := freeAddr(t)
	w := startWorker(t, "metrics", workerSpec{queue: e.queue, args: []string{"--metrics-addr", addr, "--without-mingle"}})
	w.waitReady()
	if w.logs.Count(".> metrics:", "http://"+addr+"/metrics") != 1 {
		t.Errorf("the banner does not show the metrics endpoint")
	}
	// A known workload: three successes, two failures, one unknown task (dead-lettered).
	for i := range 3 {
		e.waitState(ctx, e.send(ctx, "diag.add", i, 1), "SUCCESS", w)
	}
	for range 2 {
		e.waitState(ctx, e.send(ctx, "diag.fail", "boom"), "FAILURE", w)
	}
	e.waitState(ctx, e.send(ctx, "no.such.task"), "FAILURE", w)
	if code, body := httpGet(t, "http://"+addr+"/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	// The dead letter is counted once its publish is confirmed, just after FAILURE is stored.
	wants := []string{
		`celery_tasks_total{outcome="success",task="diag.add"} 3`,
		`celery_tasks_total{outcome="failure",task="diag.fail"} 2`,
		`celery_tasks_received_total{task="diag.add"} 3`,
		`celery_tasks_received_total{task="diag.fail"} 2`,
		`celery_task_queue_wait_seconds_count{task="diag.add"} 3`,
		`celery_task_runtime_seconds_count{task="diag.fail"} 2`,
		`celery_worker_dead_lettered_total{reason="NotRegistered"} 1`,
		`celery_worker_active_tasks 0`,
		`celery_worker_processed_tasks_total 5`,
		`celery_worker_broker_reconnects_total 0`,
	}
	var body string
	// A timeout is not reported here: the checks below say what the last body lacks.
	_ = testenv.Poll(10*time.Second, func() (bool, error) {
		_, body = httpGet(t, "http://"+addr+"/metrics")
		return strings.Contains(body, wants[6]), nil
	})
	for _, want := range wants {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	w.stop()
}

// TestMetricsAddressInUse: a worker that cannot listen for metrics logs it and runs anyway.
func TestMetricsAddressInUse(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 90*time.Second)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	e := newEnv(t)
	w := startWorker(t, "metrics-in-use", workerSpec{queue: e.queue, args: []string{"--metrics-addr", ln.Addr().String(), "--without-heartbeat"}})
	w.waitReady()
	w.waitLog(30*time.Second, "metrics endpoint stopped; the worker goes on without it")
	id := e.send(ctx, "diag.add", 1, 1)
	e.waitState(ctx, id, "SUCCESS", w)
	w.stop()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}
