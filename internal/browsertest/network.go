package browsertest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Everything a browser test loads must come from this machine: a request that would leave
// 127.0.0.0/8 is blocked before it is sent and fails the test, listing its URL. Two layers do it:
//
//   - The DevTools Fetch domain pauses every request of the page (documents, frames, scripts,
//     images, fetch/XHR, beacons) before it is sent; a loopback one is continued, any other is
//     failed with BlockedByClient and recorded with its full URL.
//   - chromium runs with --proxy-server pointing at a local proxy that answers 403 to everything
//     and records what reached it. chromium never sends loopback addresses to a proxy (its
//     implicit bypass rules), so only what escaped the first layer (a WebSocket, a request of
//     another target, such as a popup or a service worker) arrives there; https is seen as its
//     CONNECT host:port. No DNS lookup of an outside name is made by chromium either: proxied
//     names are left to the proxy, which never resolves them. chromium's own background
//     requests to Google's service hosts (component updates, sign-in: the flags turn most of
//     them off, not all) also arrive there: they are refused and logged, and do not fail the
//     test, since no page caused them (a page's own request to such a host is caught, with its
//     URL, by the first layer).
//
// Blocked requests fail the test at cleanup; a test that provokes them on purpose takes them
// with [Browser.TakeBlocked].

// IsLoopbackURL reports whether a request to raw stays on this machine: an http(s) or ws(s) URL
// whose host is an IPv4 address in 127.0.0.0/8, the IPv6 loopback [::1], or localhost (and its
// subdomains, which chromium itself resolves to loopback). URLs that make no network request
// (data:, blob:, about:, javascript:, chromium's own pages) count as loopback; any other scheme,
// a host name, or a URL that does not parse does not.
func IsLoopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	switch strings.ToLower(u.Scheme) {
	case "data", "blob", "about", "javascript", "chrome", "chrome-error", "devtools":
		return true
	case "http", "https", "ws", "wss":
	default:
		return false
	}
	host := strings.ToLower(u.Hostname())
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	if v4 := ip.To4(); v4 != nil {
		return v4[0] == 127
	}
	return ip.Equal(net.IPv6loopback)
}

// chromiumServiceHost reports whether host (of a request that reached the proxy) is one of the
// Google service hosts chromium calls on its own.
func chromiumServiceHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(host)
	for _, d := range []string{"google.com", "googleapis.com", "gvt1.com", "gstatic.com"} {
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}

// guard records the requests blocked in either layer.
type guard struct {
	mu      sync.Mutex
	blocked []string // fail the test
	own     []string // chromium's own, refused and logged
	proxy   *http.Server
	addr    string
}

func (g *guard) recordOwn(what string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.own = append(g.own, what)
}

func (g *guard) record(what string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.blocked = append(g.blocked, what)
}

func (g *guard) take() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	b := g.blocked
	g.blocked = nil
	return b
}

// startGuardProxy starts the refusing proxy on 127.0.0.1; stop it with closeProxy.
func startGuardProxy() (*guard, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("browsertest: the blocking proxy: %w", err)
	}
	g := &guard{addr: l.Addr().String()}
	g.proxy = &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			target := r.URL.String()
			if r.Method == http.MethodConnect {
				target = r.Host
			}
			if what := fmt.Sprintf("%s %s (reached the proxy)", r.Method, target); chromiumServiceHost(r.Host) {
				g.recordOwn(what)
			} else {
				g.record(what)
			}
			w.Header().Set("Connection", "close")
			http.Error(w, "browsertest: requests outside 127.0.0.0/8 are blocked", http.StatusForbidden)
		}),
	}
	go func() { _ = g.proxy.Serve(l) }()
	return g, nil
}

func (g *guard) closeProxy() { _ = g.proxy.Close() }

// chromiumFlags route chromium's non-loopback traffic to the refusing proxy.
func (g *guard) chromiumFlags() []string {
	return []string{"--proxy-server=http://" + g.addr, "--dns-prefetch-disable",
		// chromium's own background traffic (component updates, network time, sign-in, safe
		// browsing, field trials, translate): off, so the proxy sees only what a page caused.
		"--disable-client-side-phishing-detection", "--disable-default-apps", "--disable-field-trial-config",
		"--disable-component-extensions-with-background-pages", "--disable-domain-reliability", "--no-pings",
		"--metrics-recording-only", "--safebrowsing-disable-auto-update", "--disable-search-engine-choice-screen",
		"--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate,AutofillServerCommunication,CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions",
	}
}

// enableFetch makes the page's requests pause for onRequestPaused.
func (b *Browser) enableFetch() {
	b.Call("Fetch.enable", map[string]any{"patterns": []map[string]any{{"urlPattern": "*", "requestStage": "Request"}}}, nil)
}

// onRequestPaused continues a loopback request and fails (and records) any other. It runs on
// the read loop, so it sends without waiting for the answers.
func (b *Browser) onRequestPaused(params json.RawMessage) {
	var p struct {
		RequestID    string `json:"requestId"`
		ResourceType string `json:"resourceType"`
		Request      struct {
			URL         string `json:"url"`
			URLFragment string `json:"urlFragment"`
			Method      string `json:"method"`
		} `json:"request"`
	}
	if json.Unmarshal(params, &p) != nil || p.RequestID == "" {
		return
	}
	if IsLoopbackURL(p.Request.URL) {
		_ = b.send("Fetch.continueRequest", map[string]any{"requestId": p.RequestID})
		return
	}
	b.guard.record(fmt.Sprintf("%s %s (%s)", p.Request.Method, p.Request.URL+p.Request.URLFragment, p.ResourceType))
	_ = b.send("Fetch.failRequest", map[string]any{"requestId": p.RequestID, "errorReason": "BlockedByClient"})
}

// send writes a DevTools command without waiting for its answer (which the read loop drops).
func (b *Browser) send(method string, params any) error {
	b.mu.Lock()
	if b.wait == nil {
		b.mu.Unlock()
		return errors.New("devtools connection closed")
	}
	b.next++
	id := b.next
	b.mu.Unlock()
	msg, err := json.Marshal(struct {
		ID     int64  `json:"id"`
		Method string `json:"method"`
		Params any    `json:"params"`
	}{id, method, params})
	if err != nil {
		return err
	}
	return b.ws.writeText(msg)
}

// TakeBlocked returns the requests that were blocked for leaving 127.0.0.0/8 so far, each as
// "METHOD URL (resource type)", and forgets them, so they no longer fail the test: for a test
// that provokes them on purpose.
func (b *Browser) TakeBlocked() []string { return b.guard.take() }

// failOnBlocked is the cleanup that fails the test listing every blocked request not taken (and
// logs chromium's own refused requests).
func (b *Browser) failOnBlocked() {
	b.guard.mu.Lock()
	own := b.guard.own
	b.guard.own = nil
	b.guard.mu.Unlock()
	if len(own) > 0 {
		b.t.Logf("browsertest: refused %d request(s) chromium made on its own:\n  %s", len(own), strings.Join(own, "\n  "))
	}
	if blocked := b.guard.take(); len(blocked) > 0 {
		b.t.Errorf("browsertest: the browser asked for %d address(es) outside 127.0.0.0/8 (blocked, nothing was sent):\n  %s",
			len(blocked), strings.Join(blocked, "\n  "))
	}
}
