package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkWorkerTask is the metrics cost of one task on the worker's hot path: received,
// started, finished.
func BenchmarkWorkerTask(b *testing.B) {
	m := NewWorker(prometheus.NewRegistry())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.TaskReceived("diag.add")
			m.TaskStarted("diag.add", time.Millisecond)
			m.TaskFinished("diag.add", "success", 2*time.Millisecond)
		}
	})
}

// BenchmarkBeatPublished is the metrics cost of one beat publish.
func BenchmarkBeatPublished(b *testing.B) {
	m := NewBeat(prometheus.NewRegistry())
	b.ReportAllocs()
	for b.Loop() {
		m.Published("warm", "ads.warm_cache", 3*time.Millisecond)
	}
}

// BenchmarkMiddleware is a trivial handler with and without the middleware.
func BenchmarkMiddleware(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	req := httptest.NewRequest("GET", "/ads", nil)
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"bare", h}, {"middleware", NewHTTP(prometheus.NewRegistry()).Middleware("/ads", h)}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bc.h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}

// BenchmarkScrape is one /metrics scrape of a worker registry with 50 tasks.
func BenchmarkScrape(b *testing.B) {
	reg := NewRegistry()
	m := NewWorker(reg)
	m.SetStateFunc(func() WorkerState { return WorkerState{Active: 1} })
	for i := range 50 {
		task := "task." + string(rune('a'+i%26)) + string(rune('a'+i/26))
		m.TaskReceived(task)
		m.TaskStarted(task, time.Millisecond)
		m.TaskFinished(task, "success", time.Millisecond)
	}
	h := Handler(reg, nil, nil)
	req := httptest.NewRequest("GET", "/metrics", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}
