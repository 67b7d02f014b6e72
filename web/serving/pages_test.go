package serving

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	placeholder "github.com/forumads/forumads/ads/creative"
	"github.com/forumads/forumads/internal/testenv"
)

func TestNewRefusesBadOptions(t *testing.T) {
	t.Parallel()
	rc := testenv.Redis(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cases := []struct {
		name string
		o    Options
		want string
	}{
		{"no redis", Options{Secret: testSecret}, "Redis is required"},
		{"no secret", Options{Redis: rc}, "Secret"},
		{"short secret", Options{Redis: rc, Secret: []byte("0123456789abcde")}, "at least 16 bytes"},
		{"origin with a path", Options{Redis: rc, Secret: testSecret, CORSOrigins: []string{"https://forum.example/app"}}, "CORS origin"},
		{"origin without scheme", Options{Redis: rc, Secret: testSecret, CORSOrigins: []string{"forum.example"}}, "CORS origin"},
		{"ftp origin", Options{Redis: rc, Secret: testSecret, CORSOrigins: []string{"ftp://forum.example"}}, "CORS origin"},
		{"negative budget", Options{Redis: rc, Secret: testSecret, RedisTimeout: -1}, "must not be negative"},
		{"sub-second TTL", Options{Redis: rc, Secret: testSecret, TokenTTL: 10}, "TokenTTL"},
	}
	for _, tc := range cases {
		tc.o.Logger = quiet
		if _, err := New(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, want an error about %q", tc.name, err, tc.want)
		}
	}
	if _, err := New(Options{Redis: rc, Secret: testSecret, Logger: quiet, CORSOrigins: []string{"*", "https://Forum.example:8443", "http://127.0.0.1:3000/"}}); err != nil {
		t.Fatalf("valid options: %v", err)
	}
}

func TestEmbedScript(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	r := f.do("GET", "/embed.js", nil)
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("GET /embed.js: %d %v", r.status, r.header)
	}
	t.Logf("embed.js: %d bytes", len(r.body))
	if len(r.body) >= 8<<10 {
		t.Fatalf("embed.js is %d bytes, want < 8 KB", len(r.body))
	}
	if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "max-age=") || !strings.Contains(cc, "public") {
		t.Fatalf("Cache-Control %q", cc)
	}
	// The script never parses markup from data.
	for _, banned := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
		if bytes.Contains(r.body, []byte(banned)) {
			t.Errorf("embed.js uses %s", banned)
		}
	}
	etag := r.header.Get("ETag")
	if r := f.do("GET", "/embed.js", map[string]string{"If-None-Match": etag}); r.status != http.StatusNotModified || len(r.body) != 0 {
		t.Fatalf("revalidation with the ETag: %d", r.status)
	}
	if r := f.do("HEAD", "/embed.js", nil); r.status != http.StatusOK || len(r.body) != 0 {
		t.Fatalf("HEAD /embed.js: %d", r.status)
	}
	if r := f.do("GET", "/embed.js?v=2", nil); r.status != http.StatusBadRequest {
		t.Fatalf("GET /embed.js?v=2: %d", r.status)
	}
	if r := f.do("POST", "/embed.js", nil); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("POST /embed.js: %d", r.status)
	}
}

func TestDemoPage(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	r := f.do("GET", "/demo/thread", nil)
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /demo/thread: %d %v", r.status, r.header)
	}
	page := string(r.body)
	for _, want := range []string{`<script src="/embed.js" data-forum="cars" data-placement="sidebar" data-count="3" async>`,
		`class="forumads-slot" id="inline-slot" data-forum="cars" data-placement="inline"`} {
		if !strings.Contains(page, want) {
			t.Errorf("demo page lacks %s", want)
		}
	}
	r = f.do("GET", "/demo/thread?forum=bikes_2", nil)
	if !strings.Contains(string(r.body), `data-forum="bikes_2"`) || strings.Contains(string(r.body), `data-forum="cars"`) {
		t.Fatalf("?forum=bikes_2 not used")
	}
	for _, q := range []string{"forum=%3Cscript%3E", "forum=", "forum=a&forum=b", "page=2", "forum=%zz"} {
		r := f.do("GET", "/demo/thread?"+q, nil)
		var e errorBody
		r.json(t, &e)
		if r.status != http.StatusBadRequest || e.Error.Code == "" {
			t.Errorf("?%s: %d %s", q, r.status, r.body)
		}
	}
}

func TestHealthAndReady(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	if r := f.do("GET", "/healthz", nil); r.status != http.StatusOK {
		t.Fatalf("/healthz: %d", r.status)
	}
	r := f.do("GET", "/readyz", nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"redis":"ok"`) {
		t.Fatalf("/readyz: %d %s", r.status, r.body)
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	const forum = "https://forum.example"
	f := newFixture(t, func(o *Options) { o.CORSOrigins = []string{forum, "http://127.0.0.1:8080"} })
	f.putList("sidebar", "cars", cand(1, 10))
	f.putCreative(creative(1))
	_, imp := f.served("forum=cars")
	cases := []struct {
		name, method, path string
		header             map[string]string
		status             int
		allowOrigin        string
	}{
		{"allowed origin", "GET", "/v1/ads?forum=cars", map[string]string{"Origin": forum}, 200, forum},
		{"origin case-insensitive", "GET", "/v1/ads?forum=cars", map[string]string{"Origin": "HTTPS://FORUM.EXAMPLE"}, 200, "HTTPS://FORUM.EXAMPLE"},
		{"other origin", "GET", "/v1/ads?forum=cars", map[string]string{"Origin": "https://evil.example"}, 200, ""},
		{"no origin", "GET", "/v1/ads?forum=cars", nil, 200, ""},
		{"origin with another port", "GET", "/v1/ads?forum=cars", map[string]string{"Origin": "http://127.0.0.1:9090"}, 200, ""},
		{"preflight", "OPTIONS", "/v1/ads", map[string]string{"Origin": forum, "Access-Control-Request-Method": "GET"}, 204, forum},
		{"preflight with Content-Type", "OPTIONS", imp, map[string]string{"Origin": forum, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}, 204, forum},
		{"preflight from another origin", "OPTIONS", "/v1/ads", map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}, 403, ""},
		{"preflight for DELETE", "OPTIONS", "/v1/ads", map[string]string{"Origin": forum, "Access-Control-Request-Method": "DELETE"}, 403, forum},
		{"preflight with a custom header", "OPTIONS", "/v1/ads", map[string]string{"Origin": forum, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "x-token"}, 403, forum},
		{"beacon from the forum", "POST", imp, map[string]string{"Origin": forum}, 204, forum},
		{"beacon from elsewhere still counts", "POST", imp, map[string]string{"Origin": "https://evil.example"}, 204, ""},
		{"plain OPTIONS", "OPTIONS", "/v1/ads", nil, 204, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do(tc.method, tc.path, tc.header)
			if r.status != tc.status {
				t.Fatalf("%d, want %d: %s", r.status, tc.status, r.body)
			}
			if got := r.header.Get("Access-Control-Allow-Origin"); got != tc.allowOrigin {
				t.Fatalf("Access-Control-Allow-Origin %q, want %q", got, tc.allowOrigin)
			}
			if !strings.Contains(strings.Join(r.header.Values("Vary"), ","), "Origin") {
				t.Fatalf("no Vary: Origin in %v", r.header)
			}
			if tc.status == 403 {
				var e errorBody
				r.json(t, &e)
				if e.Error.Code == "" {
					t.Fatalf("403 without a JSON error: %s", r.body)
				}
			}
			if tc.status == 204 && tc.method == "OPTIONS" && tc.allowOrigin != "" &&
				(r.header.Get("Access-Control-Allow-Methods") == "" || r.header.Get("Access-Control-Max-Age") == "") {
				t.Fatalf("preflight headers %v", r.header)
			}
		})
	}

	t.Run("any origin", func(t *testing.T) {
		t.Parallel()
		g := newFixture(t, func(o *Options) { o.CORSOrigins = []string{"*"} })
		r := g.do("GET", "/v1/ads?forum=cars", map[string]string{"Origin": "https://anything.example"})
		if r.header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("Access-Control-Allow-Origin %q, want *", r.header.Get("Access-Control-Allow-Origin"))
		}
	})
}

// TestCreatives: the placeholder of a sample ad is served as SVG with cache headers and
// revalidates by ETag; any other name is a JSON 404, a query a 400, another method a 405.
func TestCreatives(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	r := f.do("GET", "/creatives/ad-12-1-3.svg", nil)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != placeholder.ContentType || !bytes.Equal(r.body, placeholder.SVG("ad-12-1-3")) {
		t.Fatalf("GET /creatives/ad-12-1-3.svg: %d %v\n%s", r.status, r.header, r.body)
	}
	for name, want := range map[string]string{"Cache-Control": "public, max-age=" + CreativeMaxAge, "X-Content-Type-Options": "nosniff",
		"Cross-Origin-Resource-Policy": "cross-origin"} {
		if got := r.header.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "sandbox") {
		t.Errorf("Content-Security-Policy %q: want default-src 'none' and sandbox", csp)
	}
	etag := r.header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if r := f.do("GET", "/creatives/ad-12-1-3.svg", map[string]string{"If-None-Match": etag}); r.status != http.StatusNotModified || len(r.body) != 0 {
		t.Errorf("revalidation: %d, %d bytes", r.status, len(r.body))
	}
	if r := f.do("GET", "/creatives/ad-12-1-4.svg", map[string]string{"If-None-Match": etag}); r.status != http.StatusOK {
		t.Errorf("another ad with the first one's ETag: %d, want 200", r.status)
	}
	if r := f.do("HEAD", "/creatives/x.svg", nil); r.status != http.StatusOK || len(r.body) != 0 || r.header.Get("Content-Type") != placeholder.ContentType {
		t.Errorf("HEAD: %d, %d bytes, %q", r.status, len(r.body), r.header.Get("Content-Type"))
	}
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/creatives/ad-1.png", http.StatusNotFound},
		{"GET", "/creatives/ad-1", http.StatusNotFound},
		{"GET", "/creatives/.svg", http.StatusNotFound},
		{"GET", "/creatives/a%20b.svg", http.StatusNotFound},
		{"GET", "/creatives/%3Cscript%3E.svg", http.StatusNotFound},
		{"GET", "/creatives/" + strings.Repeat("a", placeholder.MaxIDLen+1) + ".svg", http.StatusNotFound},
		{"GET", "/creatives/a/b.svg", http.StatusNotFound},
		{"GET", "/creatives/ad-1.svg?v=2", http.StatusBadRequest},
		{"POST", "/creatives/ad-1.svg", http.StatusMethodNotAllowed},
	} {
		r := f.do(tc.method, tc.path, nil)
		if r.status != tc.status || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") || !bytes.Contains(r.body, []byte(`"error"`)) {
			t.Errorf("%s %s: %d %q %s, want %d with a JSON error", tc.method, tc.path, r.status, r.header.Get("Content-Type"), r.body, tc.status)
		}
	}
}
