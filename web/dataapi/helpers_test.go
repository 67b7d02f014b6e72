package dataapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/celery/backend/redisbackend"
	"github.com/forumads/forumads/internal/testdb"
	"github.com/forumads/forumads/internal/testenv"
)

// env is one test's API: its own PostgreSQL schema, Redis key prefix and result-backend prefix.
type env struct {
	t       *testing.T
	pg      *testdb.PG
	rc      *redis.Client
	keys    rkeys.Keys
	results *redisbackend.Backend
	srv     *httptest.Server
	token   string
	logs    *logSink
}

// newEnv starts the API in-process. A 500 or a panic fails the test: no input may make the API
// fail that way (a dependency outage is a 503).
func newEnv(t *testing.T, edit ...func(*Options)) *env {
	t.Helper()
	e := &env{t: t, pg: testdb.Postgres(t), rc: testenv.Redis(t), token: "tok-" + testenv.Suffix(), logs: &logSink{}}
	prefix := "t:" + testenv.Suffix() + ":"
	e.keys = rkeys.New(prefix)
	e.results = redisbackend.New(e.rc, redisbackend.Options{KeyPrefix: prefix, Expires: time.Hour})
	t.Cleanup(func() { deleteKeys(e.rc, prefix) })
	o := Options{DB: e.pg.DB, Redis: e.rc, Keys: e.keys, Results: e.results, Tokens: []string{"other-token", e.token},
		Logger: slog.New(e.logs)}
	for _, f := range edit {
		f(&o)
	}
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	t.Cleanup(func() {
		for _, r := range e.logs.errors() {
			t.Errorf("a 500 or a panic was logged: %s", r)
		}
	})
	return e
}

func deleteKeys(rc redis.UniversalClient, prefix string) {
	ctx := context.Background()
	it := rc.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for it.Next(ctx) {
		keys = append(keys, it.Val())
	}
	if len(keys) > 0 {
		rc.Del(ctx, keys...)
	}
}

// logSink keeps the records of 500s and panics.
type logSink struct {
	mu   sync.Mutex
	errs []string
}

func (l *logSink) Enabled(context.Context, slog.Level) bool { return true }
func (l *logSink) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	bad := r.Message == "request failed" || r.Message == "handler panic"
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		if a.Key == "status" && a.Value.Int64() == 500 {
			bad = true
		}
		return true
	})
	if bad {
		l.mu.Lock()
		l.errs = append(l.errs, b.String())
		l.mu.Unlock()
	}
	return nil
}
func (l *logSink) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logSink) WithGroup(string) slog.Handler      { return l }
func (l *logSink) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errs...)
}

// resp is an answer.
type resp struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a generic value.
func (r *resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v: %s", r.status, err, r.body)
	}
	return m
}

// errField returns the error's code and field, failing when the answer is not an error.
func (r *resp) errField(t *testing.T) (code, field string) {
	t.Helper()
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("answer %d is not a JSON error: %s", r.status, r.body)
	}
	return e.Error.Code, e.Error.Field
}

// req is a request to send: body is a string (sent as is) or a value (sent as JSON).
type req struct {
	method, path string
	body         any
	header       map[string]string
	noAuth       bool
}

func (e *env) send(q req) *resp {
	e.t.Helper()
	var rd io.Reader
	switch b := q.body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	r, err := http.NewRequest(q.method, e.srv.URL+q.path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	if !q.noAuth {
		r.Header.Set("Authorization", "Bearer "+e.token)
	}
	for k, v := range q.header {
		r.Header.Set(k, v)
	}
	res, err := e.srv.Client().Do(r)
	if err != nil {
		e.t.Fatalf("%s %s: %v", q.method, q.path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return &resp{status: res.StatusCode, header: res.Header, body: body}
}

func (e *env) get(path string) *resp { return e.send(req{method: "GET", path: path}) }

func (e *env) post(path string, body any) *resp {
	return e.send(req{method: "POST", path: path, body: body})
}

// mustCreate POSTs and returns the created object, failing unless 201.
func (e *env) mustCreate(path string, body any) map[string]any {
	e.t.Helper()
	r := e.post(path, body)
	if r.status != http.StatusCreated {
		e.t.Fatalf("POST %s: %d %s", path, r.status, r.body)
	}
	return r.json(e.t)
}

// id reads a created object's id.
func id(m map[string]any) int64 { return int64(m["id"].(float64)) }

// seed creates an advertiser, a campaign and n ads; it returns their ids.
func (e *env) seed(name string, n int) (adv, camp int64, ads []int64) {
	e.t.Helper()
	a := e.mustCreate("/v1/advertisers", map[string]any{"external_id": "adv-" + name, "name": "Advertiser " + name})
	c := e.mustCreate("/v1/campaigns", map[string]any{"external_id": "camp-" + name, "advertiser_id": id(a),
		"name": "Campaign " + name, "bid": "0.35", "daily_budget": "100", "start_at": "2026-01-01"})
	for i := range n {
		ad := e.mustCreate("/v1/ads", map[string]any{"external_id": fmt.Sprintf("ad-%s-%d", name, i), "campaign_id": id(c),
			"title": fmt.Sprintf("Ad %s %d", name, i), "click_url": "https://example.com/" + name})
		ads = append(ads, id(ad))
	}
	return id(a), id(c), ads
}

// count counts a table's rows.
func (e *env) count(table string) int {
	e.t.Helper()
	var n int
	if err := e.pg.DB.Get(&n, "SELECT count(*) FROM "+table); err != nil {
		e.t.Fatal(err)
	}
	return n
}
