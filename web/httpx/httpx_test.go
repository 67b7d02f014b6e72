package httpx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuf collects a logger's output.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLog() (*slog.Logger, *logBuf) {
	buf := &logBuf{}
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// answer decodes an error answer.
func answer(t *testing.T, rec *httptest.ResponseRecorder) Error {
	t.Helper()
	var e struct{ Error Error }
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("not JSON: %v: %s", err, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	return e.Error
}

func TestErrors(t *testing.T) {
	t.Parallel()
	e := Errorf(409, "conflict", "%s taken", "name")
	if e.Status != 409 || e.Code != "conflict" || e.Error() != "name taken" || e.Field != "" {
		t.Errorf("Errorf: %+v", e)
	}
	f := FieldError("title", "must be at most %d characters", 90)
	if f.Status != 422 || f.Field != "title" || f.Message != "title: must be at most 90 characters" {
		t.Errorf("FieldError: %+v", f)
	}
}

func TestWriteError(t *testing.T) {
	t.Parallel()
	log, buf := newLog()
	r := httptest.NewRequest("GET", "/x", nil)

	rec := httptest.NewRecorder()
	WriteError(rec, r, log, FieldError("name", "required"))
	if got := answer(t, rec); rec.Code != 422 || got.Field != "name" || got.Code != "invalid_field" {
		t.Errorf("field error: %d %+v", rec.Code, got)
	}
	// A wrapped *Error is found.
	rec = httptest.NewRecorder()
	WriteError(rec, r, log, errors.Join(errors.New("context"), Errorf(404, "not_found", "no such thing")))
	if rec.Code != 404 {
		t.Errorf("wrapped: %d", rec.Code)
	}
	// Anything else is a 500 that tells the client nothing, and the log everything.
	rec = httptest.NewRecorder()
	WriteError(rec, r, log, errors.New("pq: password authentication failed for user secret"))
	got := answer(t, rec)
	if rec.Code != 500 || got.Code != "internal" || strings.Contains(rec.Body.String(), "secret") {
		t.Errorf("internal: %d %s", rec.Code, rec.Body)
	}
	if !strings.Contains(buf.String(), "password authentication failed") {
		t.Errorf("the cause is not logged: %s", buf)
	}
	if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Error("nosniff missing")
	}
}

func TestWriteJSONUnencodable(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	WriteJSON(rec, 200, map[string]any{"f": func() {}})
	if got := answer(t, rec); rec.Code != 500 || got.Code != "internal" {
		t.Errorf("%d %+v", rec.Code, got)
	}
}

type inner struct {
	Count int `json:"count"`
}

type body struct {
	Name  string   `json:"name"`
	Tags  []string `json:"tags"`
	Inner inner    `json:"inner"`
	Ratio float64  `json:"ratio"`
	On    bool     `json:"on"`
}

func TestDecodeJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, ct, body string
		status         int
		code, field    string
		msg            string // a part of the message
	}{
		{"valid", "application/json", `{"name": "a", "tags": ["x"], "inner": {"count": 2}}`, 0, "", "", ""},
		{"no content type", "", `{"name": "a"}`, 0, "", "", ""},
		{"json with charset", "application/json; charset=utf-8", `{}`, 0, "", "", ""},
		{"leading space", "", " \n\t{}", 0, "", "", ""},
		{"form", "application/x-www-form-urlencoded", `name=a`, 415, "unsupported_media_type", "", "application/json"},
		{"empty", "", ``, 400, "malformed_json", "", "empty"},
		{"blank", "", "  \n", 400, "malformed_json", "", "empty"},
		{"null", "", `null`, 400, "malformed_json", "", "JSON object"},
		{"array", "", `[]`, 400, "malformed_json", "", "JSON object"},
		{"number", "", `5`, 400, "malformed_json", "", "JSON object"},
		{"syntax", "", `{"name": }`, 400, "malformed_json", "", "byte"},
		{"truncated", "", `{"name": "a"`, 400, "malformed_json", "", ""},
		{"two objects", "", `{}{}`, 400, "malformed_json", "", "nothing after"},
		{"trailing junk", "", `{} x`, 400, "malformed_json", "", ""},
		{"unknown field", "", `{"colour": 1}`, 422, "unknown_field", "colour", "colour: unknown field"},
		{"unknown empty field", "", `{"": 1}`, 422, "unknown_field", "", `"": unknown field`},
		{"unknown field with quote", "", `{"a\"b": 1}`, 422, "unknown_field", `a"b`, `"a\"b": unknown field`},
		{"string for int", "", `{"inner": {"count": "2"}}`, 422, "invalid_field", "inner.count", "must be an integer, got string"},
		{"float for int", "", `{"inner": {"count": 1.5}}`, 422, "invalid_field", "inner.count", "must be an integer"},
		{"int for string", "", `{"name": 5}`, 422, "invalid_field", "name", "must be a string, got number"},
		{"string for float", "", `{"ratio": "x"}`, 422, "invalid_field", "ratio", "must be a number"},
		{"number for bool", "", `{"on": 1}`, 422, "invalid_field", "on", "must be true or false"},
		{"object for list", "", `{"tags": {}}`, 422, "invalid_field", "tags", "must be a list"},
		{"number in list", "", `{"tags": [1]}`, 422, "invalid_field", "tags", "must be a string"},
		{"too large", "", `{"name": "` + strings.Repeat("a", 200) + `"}`, 413, "body_too_large", "", "at most 100 bytes"},
		{"too much space", "", strings.Repeat(" ", 200) + `{}`, 413, "body_too_large", "", ""},
	} {
		r := httptest.NewRequest("POST", "/", strings.NewReader(tc.body))
		if tc.ct != "" {
			r.Header.Set("Content-Type", tc.ct)
		}
		var v body
		err := DecodeJSON(httptest.NewRecorder(), r, 100, &v)
		if tc.status == 0 {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		var he *Error
		if !errors.As(err, &he) {
			t.Errorf("%s: %v is not an *Error", tc.name, err)
			continue
		}
		if he.Status != tc.status || he.Code != tc.code || he.Field != tc.field || !strings.Contains(he.Message, tc.msg) {
			t.Errorf("%s: %+v, want %d %s field %q message containing %q", tc.name, *he, tc.status, tc.code, tc.field, tc.msg)
		}
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"name": "a", "tags": ["x"], "inner": {"count": 2}, "ratio": 0.5, "on": true}`, `{}`, `null`, `[]`,
		`{"colour": 1}`, `{"inner": {"count": "x"}}`, `{"name": "\ud800"}`, ` {"a":1}`, `{} {}`, ``, "{\"name\": \"\xff\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := httptest.NewRequest("POST", "/", bytes.NewReader(data))
		var v body
		err := DecodeJSON(httptest.NewRecorder(), r, 1<<10, &v)
		if err != nil {
			var he *Error
			if !errors.As(err, &he) || (he.Status != 400 && he.Status != 413 && he.Status != 422) || he.Message == "" || he.Code == "" {
				t.Fatalf("%q: %#v", data, err)
			}
			if he.Status == 422 && he.Field == "" && he.Code != "unknown_field" {
				t.Fatalf("%q: a 422 naming no field: %+v", data, he)
			}
			return
		}
		// Accepted: one JSON object, and what was read encodes and decodes to the same value.
		if trimmed := bytes.TrimLeft(data, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(data) {
			t.Fatalf("accepted %q", data)
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var w body
		if err := DecodeJSON(httptest.NewRecorder(), httptest.NewRequest("POST", "/", bytes.NewReader(again)), 1<<20, &w); err != nil {
			t.Fatalf("re-encoded %s refused: %v", again, err)
		}
		if b2, _ := json.Marshal(w); !bytes.Equal(b2, again) {
			t.Fatalf("%s became %s", again, b2)
		}
	})
}

func TestLogged(t *testing.T) {
	t.Parallel()
	log, buf := newLog()
	h := Logged(log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			_, _ = io.WriteString(w, "hello")
		case "/teapot":
			WriteError(w, r, log, Errorf(418, "teapot", "short and stout"))
		case "/panic":
			panic("kaboom: secret detail")
		case "/panic-after-write":
			w.WriteHeader(202)
			panic("late")
		}
	}))
	for _, tc := range []struct {
		path   string
		status int
	}{{"/ok", 200}, {"/teapot", 418}, {"/panic", 500}, {"/panic-after-write", 202}} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
		if rec.Code != tc.status {
			t.Errorf("%s: %d, want %d", tc.path, rec.Code, tc.status)
		}
		if tc.path == "/panic" {
			if got := answer(t, rec); got.Code != "internal" || strings.Contains(rec.Body.String(), "secret") || strings.Contains(rec.Body.String(), "goroutine") {
				t.Errorf("panic answer leaks: %s", rec.Body)
			}
		}
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	want := map[string]struct {
		level  string
		status float64
	}{"/ok": {"INFO", 200}, "/teapot": {"INFO", 418}, "/panic": {"ERROR", 500}, "/panic-after-write": {"INFO", 202}}
	found := 0
	for _, m := range lines {
		if m["msg"] != "request" {
			if m["msg"] == "handler panic" && !strings.Contains(m["panic"].(string), "kaboom") && m["panic"] != "late" {
				t.Errorf("panic log %v", m)
			}
			continue
		}
		w, ok := want[m["path"].(string)]
		if !ok || m["level"] != w.level || m["status"] != w.status || m["method"] != "GET" {
			t.Errorf("request log %v", m)
		}
		found++
	}
	if found != 4 {
		t.Errorf("%d request logs: %s", found, buf)
	}
	if rec := httptest.NewRecorder(); true {
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/ok", nil))
		if !strings.Contains(buf.String(), `"bytes":5`) {
			t.Errorf("bytes not logged: %s", buf)
		}
	}
}

// http.ErrAbortHandler is net/http's way to abort a response: Logged lets it through.
func TestLoggedAbortHandler(t *testing.T) {
	t.Parallel()
	log, _ := newLog()
	h := Logged(log, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }))
	defer func() {
		if p := recover(); p != http.ErrAbortHandler {
			t.Errorf("recovered %v, want http.ErrAbortHandler", p)
		}
	}()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	t.Error("the abort was swallowed")
}

func TestServerTimeouts(t *testing.T) {
	t.Parallel()
	log, _ := newLog()
	s := Server(":0", http.NotFoundHandler(), log)
	if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 || s.MaxHeaderBytes <= 0 || s.ErrorLog == nil {
		t.Errorf("a phase without a timeout: %+v", s)
	}
}

// Serve finishes in-flight requests when its context ends, then returns nil.
func TestServeGracefulShutdown(t *testing.T) {
	t.Parallel()
	log, _ := newLog()
	started, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		_, _ = io.WriteString(w, "finished")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, Server(ln.Addr().String(), h, log), ln, time.Minute) }()
	got := make(chan string, 1)
	go func() {
		res, err := http.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			got <- err.Error()
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		got <- string(b)
	}()
	<-started
	cancel()
	close(release)
	if body := <-got; body != "finished" {
		t.Errorf("in-flight request got %q", body)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("still listening after shutdown")
	}
}

func TestListenAndServeBadAddress(t *testing.T) {
	t.Parallel()
	log, _ := newLog()
	if err := ListenAndServe(context.Background(), Server("256.0.0.1:http", http.NotFoundHandler(), log), time.Second); err == nil {
		t.Error("a bad address was accepted")
	}
}

func TestHealthAndReady(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	Health(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != 200 || rec.Body.String() != "ok\n" {
		t.Errorf("health: %d %q", rec.Code, rec.Body)
	}
	ok := func(context.Context) error { return nil }
	bad := func(context.Context) error { return errors.New("connection refused") }
	slow := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	for _, tc := range []struct {
		name   string
		checks map[string]func(context.Context) error
		status int
		want   map[string]string
	}{
		{"all ok", map[string]func(context.Context) error{"db": ok, "redis": ok}, 200, map[string]string{"db": "ok", "redis": "ok"}},
		{"one down", map[string]func(context.Context) error{"db": ok, "redis": bad}, 503, map[string]string{"db": "ok", "redis": "unavailable: connection refused"}},
		{"one hangs", map[string]func(context.Context) error{"db": slow}, 503, map[string]string{"db": "unavailable: context deadline exceeded"}},
		{"none", nil, 200, map[string]string{}},
	} {
		rec := httptest.NewRecorder()
		Ready(10*time.Millisecond, tc.checks)(rec, httptest.NewRequest("GET", "/readyz", nil))
		var got map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if rec.Code != tc.status || len(got) != len(tc.want) {
			t.Errorf("%s: %d %v", tc.name, rec.Code, got)
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q", tc.name, k, got[k], v)
			}
		}
		if (rec.Code == 503) != (rec.Header().Get("Retry-After") != "") {
			t.Errorf("%s: Retry-After %q", tc.name, rec.Header().Get("Retry-After"))
		}
	}
}
