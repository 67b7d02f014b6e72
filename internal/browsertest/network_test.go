package browsertest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestIsLoopbackURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url  string
		want bool
	}{
		{"http://127.0.0.1:8000/imports/x/", true},
		{"https://127.8.9.10/a.png", true},
		{"ws://127.0.0.1:9222/devtools/page/1", true},
		{"http://localhost:5200/embed.js", true},
		{"http://LOCALHOST/", true},
		{"http://demo.localhost/", true},
		{"http://[::1]:8080/", true},
		{"data:image/png;base64,AAAA", true},
		{"blob:http://127.0.0.1:8000/6f1c", true},
		{"about:blank", true},
		{"https://picsum.photos/seed/ad-1/300/250", false},
		{"http://128.0.0.1/", false},
		{"http://126.255.255.255/", false},
		{"http://10.0.0.1/", false},
		{"http://192.0.2.1/x.png", false},
		{"http://[::2]/", false},
		{"http://[::ffff:8.8.8.8]/", false},
		{"http://localhost.example.com/", false},
		{"http://127.0.0.1.nip.io/", false},
		{"ftp://127.0.0.1/", false},
		{"file:///etc/passwd", false},
		{"http://%zz/", false},
		{"", false},
	} {
		if got := IsLoopbackURL(tc.url); got != tc.want {
			t.Errorf("IsLoopbackURL(%q) = %v, want %v", tc.url, got, tc.want)
		}
	}
}

func TestChromiumServiceHost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"update.googleapis.com:443", true},
		{"accounts.google.com:443", true},
		{"clients2.google.com", true},
		{"redirector.gvt1.com:443", true},
		{"google.com", true},
		{"picsum.photos:443", false},
		{"evilgoogle.com:443", false},
		{"google.com.example.net", false},
		{"198.51.100.7:80", false},
	} {
		if got := chromiumServiceHost(tc.host); got != tc.want {
			t.Errorf("chromiumServiceHost(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
}

// TestOutsideRequestsBlocked loads a local page that asks for an image, a fetch and a beacon on
// outside hosts (the page's own Fetch layer) and opens a WebSocket to one (the proxy layer):
// every one is blocked and listed, while the page's loopback image still loads.
func TestOutsideRequestsBlocked(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/local.svg":
			w.Header().Set("Content-Type", "image/svg+xml")
			fmt.Fprint(w, `<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>`)
		case "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, `<!doctype html><title>t</title>
<img id="local" src="/local.svg"><img id="outside" src="http://192.0.2.1/ad.png">
<script>
window.results = {};
fetch("https://picsum.photos/seed/x/300/250").then(() => results.fetch = "loaded", () => results.fetch = "failed");
navigator.sendBeacon("http://203.0.113.9/beacon", "x");
const ws = new WebSocket("ws://198.51.100.7/socket");
ws.onerror = () => results.ws = "failed";
ws.onopen = () => results.ws = "open";
</script>`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)

	b := Start(t)
	b.Navigate(srv.URL + "/")
	var local bool
	b.WaitFor(`document.getElementById("local").complete && document.getElementById("local").naturalWidth === 10`, &local)
	b.WaitFor(`document.getElementById("outside").complete && document.getElementById("outside").naturalWidth === 0`, nil)
	var results map[string]string
	b.WaitFor(`results.fetch && results.ws && results`, &results)
	if results["fetch"] != "failed" || results["ws"] != "failed" {
		t.Errorf("outside fetch and WebSocket: %v, want both failed", results)
	}
	want := []string{"http://192.0.2.1/ad.png", "https://picsum.photos/seed/x/300/250", "http://203.0.113.9/beacon", "198.51.100.7:80"}
	var blocked []string
	Poll(t, "every outside request blocked", func() bool {
		blocked = append(blocked, b.TakeBlocked()...)
		for _, w := range want {
			if !slices.ContainsFunc(blocked, func(s string) bool { return strings.Contains(s, w) }) {
				return false
			}
		}
		return true
	})
	for _, s := range blocked {
		if strings.Contains(s, "127.0.0.1") {
			t.Errorf("a loopback request was blocked: %s", s)
		}
	}
	t.Logf("blocked: %q", blocked)
}
