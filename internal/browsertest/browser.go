// Package browsertest drives a headless chromium for browser tests: it starts Debian's
// /usr/bin/chromium with a DevTools port and speaks the Chrome DevTools Protocol over a
// hand-rolled WebSocket client, so no module is added. A missing chromium fails the test; it is
// never skipped. Everything the browser loads must come from 127.0.0.0/8: any other request is
// blocked before it is sent and fails the test (see [IsLoopbackURL], [Browser.TakeBlocked]).
package browsertest

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/forumads/forumads/internal/testenv"
)

// ChromiumPath is where scripts/services.sh installs Debian's chromium.
const ChromiumPath = "/usr/bin/chromium"

// callTimeout bounds one DevTools command. It only stops a broken browser from hanging the test;
// it asserts nothing about speed.
const callTimeout = 30 * time.Second

// Browser is one chromium process and a DevTools session on its first page. Its methods fail
// the test given to Start.
type Browser struct {
	t     testing.TB
	ws    *wsConn
	guard *guard
	mu    sync.Mutex
	next  int64
	wait  map[int64]chan reply // nil once the connection is gone

	evMu       sync.Mutex
	exceptions []string // Runtime.exceptionThrown parameters
	console    []string // Runtime.consoleAPICalled parameters of type error
}

type reply struct {
	Result json.RawMessage
	Err    *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
}

type config struct{ width, height int }

// Option changes how Start launches chromium.
type Option func(*config)

// WindowSize sets the browser window (and so the page's viewport) to w×h CSS pixels; the
// default is 1280×800.
func WindowSize(w, h int) Option { return func(c *config) { c.width, c.height = w, h } }

// Start launches headless chromium (a missing binary fails the test) and attaches to its page.
// At cleanup the DevTools connection is closed and chromium's whole process group is stopped;
// cleanup waits until the group is gone so the profile directory can be removed.
func Start(t testing.TB, opts ...Option) *Browser {
	t.Helper()
	cfg := config{width: 1280, height: 800}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.width <= 0 || cfg.height <= 0 {
		t.Fatalf("browsertest: window size %dx%d: want positive width and height", cfg.width, cfg.height)
	}
	if _, err := os.Stat(ChromiumPath); err != nil {
		t.Fatalf("chromium is required at %s (scripts/services.sh installs it): %v", ChromiumPath, err)
	}
	dir := t.TempDir()
	g, err := startGuardProxy()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.closeProxy) // after chromium is gone (cleanups run last first)
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
		"--disable-dev-shm-usage", "--disable-breakpad", "--disable-crash-reporter", "--hide-scrollbars",
		fmt.Sprintf("--window-size=%d,%d", cfg.width, cfg.height),
		"--user-data-dir=" + filepath.Join(dir, "profile"), "--remote-debugging-port=0"}, g.chromiumFlags()...)
	cmd := exec.Command(ChromiumPath, append(args, "about:blank")...)
	// /usr/bin/chromium is a shell wrapper: the browser and its helpers must be stopped as a
	// group, or they outlive the test and keep writing into its profile directory.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatalf("chromium stderr: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	pgid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// Politely, then for good, and wait until the group is empty.
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-exited
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if syscall.Kill(-pgid, 0) == syscall.ESRCH {
				return
			}
		}
		t.Errorf("chromium's process group %d did not exit", pgid)
	})
	// "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
	found := make(chan string, 1)
	var logMu sync.Mutex
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`DevTools listening on (ws://\S+)`)
		for sc.Scan() { // to the end, so chromium never blocks on a full pipe
			logMu.Lock()
			log.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	var wsURL string
	select {
	case wsURL = <-found:
	case <-exited:
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("chromium exited before its DevTools port opened:\n%s", log.String())
	case <-time.After(60 * time.Second):
		t.Fatal("chromium did not open its DevTools port within 60s")
	}
	u, err := url.Parse(wsURL)
	if err != nil {
		t.Fatalf("chromium's DevTools address %q: %v", wsURL, err)
	}
	// The first page target (about:blank).
	var pageWS string
	for deadline := time.Now().Add(20 * time.Second); pageWS == "" && time.Now().Before(deadline); {
		resp, err := http.Get("http://" + u.Host + "/json/list")
		if err == nil {
			var targets []struct{ Type, WebSocketDebuggerURL string }
			_ = json.NewDecoder(resp.Body).Decode(&targets) // not JSON yet: try again
			resp.Body.Close()
			for _, tg := range targets {
				if tg.Type == "page" && pageWS == "" {
					pageWS = tg.WebSocketDebuggerURL
				}
			}
		}
		if pageWS == "" {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if pageWS == "" {
		t.Fatal("chromium has no page target")
	}
	ws, err := dialWS(pageWS)
	if err != nil {
		t.Fatalf("devtools websocket: %v", err)
	}
	b := &Browser{t: t, ws: ws, guard: g, wait: map[int64]chan reply{}}
	go b.readLoop()
	t.Cleanup(func() { _ = ws.close() })
	b.Call("Page.enable", nil, nil)
	b.Call("Runtime.enable", nil, nil)
	b.enableFetch()
	t.Cleanup(b.failOnBlocked) // first of the browser's cleanups: after the test's own
	return b
}

// readLoop hands replies to their callers and records page exceptions and console errors.
func (b *Browser) readLoop() {
	for {
		msg, err := b.ws.read()
		if err != nil {
			b.mu.Lock()
			for id, ch := range b.wait {
				close(ch)
				delete(b.wait, id)
			}
			b.wait = nil
			b.mu.Unlock()
			return
		}
		var m struct {
			ID     int64           `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
		}
		if json.Unmarshal(msg, &m) != nil {
			continue
		}
		if m.ID != 0 {
			r := reply{Result: m.Result}
			if len(m.Error) > 0 {
				_ = json.Unmarshal(m.Error, &r.Err)
			}
			b.mu.Lock()
			ch := b.wait[m.ID]
			delete(b.wait, m.ID)
			b.mu.Unlock()
			if ch != nil {
				ch <- r
			}
			continue
		}
		switch m.Method {
		case "Fetch.requestPaused":
			b.onRequestPaused(m.Params)
		case "Runtime.exceptionThrown":
			b.evMu.Lock()
			b.exceptions = append(b.exceptions, string(m.Params))
			b.evMu.Unlock()
		case "Runtime.consoleAPICalled":
			var p struct{ Type string }
			if json.Unmarshal(m.Params, &p) == nil && p.Type == "error" {
				b.evMu.Lock()
				b.console = append(b.console, string(m.Params))
				b.evMu.Unlock()
			}
		}
	}
}

// Call sends a DevTools command and decodes its result into out (nil: ignored). A protocol
// error, or no answer within 30s, fails the test.
func (b *Browser) Call(method string, params, out any) {
	b.t.Helper()
	if err := b.Try(method, params, out); err != nil {
		b.t.Fatalf("%s: %v", method, err)
	}
}

// Try is Call that returns the failure instead of failing the test.
func (b *Browser) Try(method string, params, out any) error {
	if params == nil {
		params = struct{}{}
	}
	b.mu.Lock()
	if b.wait == nil {
		b.mu.Unlock()
		return errors.New("devtools connection closed")
	}
	b.next++
	id := b.next
	ch := make(chan reply, 1)
	b.wait[id] = ch
	b.mu.Unlock()
	msg, err := json.Marshal(struct {
		ID     int64  `json:"id"`
		Method string `json:"method"`
		Params any    `json:"params"`
	}{id, method, params})
	if err != nil {
		b.forget(id)
		return fmt.Errorf("encoding the parameters: %w", err)
	}
	if err := b.ws.writeText(msg); err != nil {
		b.forget(id)
		return fmt.Errorf("sending: %w", err)
	}
	timer := time.NewTimer(callTimeout)
	defer timer.Stop()
	select {
	case r, ok := <-ch:
		if !ok {
			return errors.New("devtools connection closed")
		}
		if r.Err != nil {
			return fmt.Errorf("devtools error %d: %s", r.Err.Code, r.Err.Message)
		}
		if out != nil {
			if err := json.Unmarshal(r.Result, out); err != nil {
				return fmt.Errorf("decoding the result %.200s: %w", r.Result, err)
			}
		}
		return nil
	case <-timer.C:
		b.forget(id)
		return fmt.Errorf("no answer within %s", callTimeout)
	}
}

// forget drops a command nobody waits for any more.
func (b *Browser) forget(id int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.wait != nil {
		delete(b.wait, id)
	}
}

// evalResult is Runtime.evaluate's answer.
type evalResult struct {
	Result struct {
		Value json.RawMessage `json:"value"`
	} `json:"result"`
	ExceptionDetails *struct {
		Text      string `json:"text"`
		Exception struct {
			Description string `json:"description"`
		} `json:"exception"`
	} `json:"exceptionDetails"`
}

func (b *Browser) evaluate(expr string) (evalResult, error) {
	var r evalResult
	err := b.Try("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &r)
	if err == nil && r.ExceptionDetails != nil {
		err = fmt.Errorf("JavaScript failed: %s %s", r.ExceptionDetails.Text, r.ExceptionDetails.Exception.Description)
	}
	return r, err
}

// Eval evaluates expr in the page (awaiting a promise) and decodes its JSON value into out
// (nil: ignored). An exception, or a value out cannot hold, fails the test.
func (b *Browser) Eval(expr string, out any) {
	b.t.Helper()
	r, err := b.evaluate(expr)
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	if out != nil {
		if err := json.Unmarshal(r.Result.Value, out); err != nil {
			b.t.Fatalf("evaluating %s: result %s: %v", expr, r.Result.Value, err)
		}
	}
}

// TryEval is Eval that reports failure (as while a navigation replaces the page) instead of
// failing the test.
func (b *Browser) TryEval(expr string, out any) bool {
	r, err := b.evaluate(expr)
	if err != nil {
		return false
	}
	return out == nil || json.Unmarshal(r.Result.Value, out) == nil
}

// WaitFor re-evaluates the JavaScript expression cond in the page until it is truthy, then
// decodes that value into out (nil: ignored). An expression that throws counts as not yet; if
// it stays falsy for 20s the test fails with the start of the page's text. The bound only stops
// a broken page from hanging the test; it asserts nothing about speed.
func (b *Browser) WaitFor(cond string, out any) {
	b.t.Helper()
	b.Eval(`(async () => {
		const end = Date.now() + 20000;
		for (;;) {
			let v;
			try { v = (() => (`+cond+`))(); } catch (e) { v = undefined; }
			if (v) return v;
			if (Date.now() > end) throw new Error("gave up waiting for: " + `+JSString(cond)+` + "; page: " + (document.body ? document.body.innerText.slice(0, 500) : ""));
			await new Promise((r) => setTimeout(r, 50));
		}
	})()`, out)
}

// JSString is s as a JavaScript string literal, for building expressions.
func JSString(s string) string {
	q, _ := json.Marshal(s) // a string always encodes
	return string(q)
}

// Poll calls cond until it returns true. If it has not within 30s the test fails naming what;
// the bound only stops a hang, it asserts nothing about speed.
func Poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Navigate opens u and waits until the new document has loaded. A navigation chromium reports
// as failed fails the test. The fragment is not compared, so a page may drop it from its URL
// while it loads.
func (b *Browser) Navigate(u string) {
	b.t.Helper()
	var r struct {
		ErrorText string `json:"errorText"`
	}
	b.Call("Page.navigate", map[string]any{"url": u}, &r)
	if r.ErrorText != "" {
		b.t.Fatalf("navigate %s: %s", u, r.ErrorText)
	}
	want, _, _ := strings.Cut(u, "#")
	Poll(b.t, "load of "+u, func() bool {
		var state, href string
		b.Eval(`document.readyState`, &state)
		b.Eval(`location.href`, &href)
		href, _, _ = strings.Cut(href, "#")
		return state == "complete" && href == want
	})
}

// ClickAt dispatches a real left click at page coordinates (CSS pixels from the viewport's top
// left).
func (b *Browser) ClickAt(x, y float64) {
	b.t.Helper()
	for _, typ := range []string{"mouseMoved", "mousePressed", "mouseReleased"} {
		p := map[string]any{"type": typ, "x": x, "y": y}
		if typ != "mouseMoved" {
			p["button"], p["clickCount"] = "left", 1
		}
		b.Call("Input.dispatchMouseEvent", p, nil)
	}
}

// ArtifactsDir is where Screenshot writes: testdata/artifacts/ at the repository root.
func ArtifactsDir() string { return filepath.Join(testenv.RepoRoot(), "testdata", "artifacts") }

// Screenshot saves a PNG of the viewport (see WindowSize) as ArtifactsDir()/name, logs its path and returns it. name
// must be a plain file name.
func (b *Browser) Screenshot(name string) string {
	b.t.Helper()
	if name == "" || name != filepath.Base(name) || name == "." || name == ".." {
		b.t.Fatalf("screenshot name %q: want a plain file name", name)
	}
	var r struct {
		Data string `json:"data"`
	}
	b.Call("Page.captureScreenshot", map[string]any{"format": "png"}, &r)
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil || len(png) < 8 || string(png[1:4]) != "PNG" {
		b.t.Fatalf("screenshot is not a PNG (%d bytes, %v)", len(png), err)
	}
	dir := ArtifactsDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	b.t.Logf("screenshot: %s (%d bytes)", path, len(png))
	return path
}

// ErrorsSeen returns the page exceptions and console errors so far, each as its DevTools event
// parameters (JSON).
func (b *Browser) ErrorsSeen() (exceptions, console []string) {
	b.evMu.Lock()
	defer b.evMu.Unlock()
	return append([]string(nil), b.exceptions...), append([]string(nil), b.console...)
}
