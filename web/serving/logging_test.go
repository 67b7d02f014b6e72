package serving

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// records is a slog handler keeping what it is given.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *records) Enabled(context.Context, slog.Level) bool { return true }
func (h *records) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r.Clone())
	h.mu.Unlock()
	return nil
}
func (h *records) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *records) WithGroup(string) slog.Handler      { return h }

// requests returns the "request" lines since the last call as "LEVEL path status [requests]".
func (h *records) requests() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.recs {
		if r.Message != "request" {
			continue
		}
		var line string
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "status", "path", "requests":
				if line != "" {
					line += " "
				}
				line += a.Value.String()
			}
			return true
		})
		out = append(out, r.Level.String()+" "+line)
	}
	h.recs = nil
	return out
}

func TestRequestLog(t *testing.T) {
	t.Parallel()
	recs := &records{}
	f := newFixture(t, func(o *Options) { o.Logger = slog.New(recs) })
	f.putList("sidebar", "cars", cand(1, 10))
	f.putCreative(creative(1))
	f.getAds("forum=cars", nil)
	f.getAds("forum=cars", nil)
	f.getAds("forum=cars", nil)
	f.do("GET", "/v1/ads?forum=BAD!", nil)
	f.do("GET", "/nothing", nil)
	f.clock.add(DefaultLogEvery)
	f.getAds("forum=cars", nil)
	want := []string{
		"INFO /v1/ads 200 1", // the first answered request
		"INFO /v1/ads 400",   // errors: always
		"INFO /nothing 404",  //
		"INFO /v1/ads 200 3", // DefaultLogEvery later: itself and the two held
	}
	if got := recs.requests(); !slices.Equal(got, want) {
		t.Fatalf("request lines\n%q\nwant\n%q", got, want)
	}

	every := &records{}
	g := newFixture(t, func(o *Options) { o.Logger = slog.New(every); o.LogEvery = -1 })
	g.do("GET", "/healthz", nil)
	g.do("GET", "/healthz", nil)
	if got := every.requests(); !slices.Equal(got, []string{"INFO /healthz 200", "INFO /healthz 200"}) {
		t.Fatalf("LogEvery < 0: %q", got)
	}
}

func TestRequestLogRecoversPanics(t *testing.T) {
	t.Parallel()
	recs := &records{}
	rl := &requestLog{log: slog.New(recs), every: DefaultLogEvery, now: time.Now}
	h := rl.wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/v1/ads", nil))
	if w.Code != http.StatusInternalServerError || !json500(w.Body.String()) {
		t.Fatalf("after a panic: %d %s", w.Code, w.Body)
	}
	if got := recs.requests(); !slices.Equal(got, []string{"ERROR /v1/ads 500"}) {
		t.Fatalf("request lines %q", got)
	}
}

func json500(body string) bool {
	return strings.HasPrefix(body, "{") && !strings.Contains(body, "goroutine") && !strings.Contains(body, ".go:") &&
		!strings.Contains(body, "boom")
}
