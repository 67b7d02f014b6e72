package dataapi

// A minimal Chrome DevTools Protocol client for the browser tests: it starts Debian's chromium
// headless with --remote-debugging-port, opens a page target over a hand-rolled WebSocket
// (RFC 6455, client side: masked text frames out, fragmented and control frames in) and sends
// commands one at a time. No module beyond the standard library.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/forumads/forumads/internal/testenv"
	"syscall"
)

// chromiumPath is where scripts/services.sh installs Debian's chromium.
const chromiumPath = "/usr/bin/chromium"

// browser is one headless chromium with one page.
type browser struct {
	t      *testing.T
	cmd    *exec.Cmd
	ws     *wsConn
	nextID int
}

var devtoolsLine = regexp.MustCompile(`DevTools listening on (ws://[^\s]+)`)

// startBrowser starts chromium (a missing one fails the test) and opens a blank page.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("chromium is required at %s (scripts/services.sh installs it): %v", chromiumPath, err)
	}
	dir := t.TempDir()
	cmd := exec.Command(chromiumPath, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
		"--user-data-dir="+dir, "--remote-debugging-port=0", "--window-size=1280,1400", "about:blank")
	// /usr/bin/chromium is a shell wrapper: the browser and its helpers must be stopped as a group,
	// or they outlive the test and keep writing into its profile directory.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	b := &browser{t: t, cmd: cmd}
	t.Cleanup(b.close)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() { // drain to the end so chromium never blocks on a full pipe
			if m := devtoolsLine.FindStringSubmatch(sc.Text()); m != nil && !sent {
				found <- m[1]
				sent = true
			}
		}
		if !sent {
			close(found)
		}
	}()
	var browserURL string
	select {
	case u, ok := <-found:
		if !ok {
			t.Fatal("chromium exited without a DevTools address")
		}
		browserURL = u
	case <-time.After(30 * time.Second):
		t.Fatal("chromium printed no DevTools address within 30s")
	}
	u, err := url.Parse(browserURL)
	if err != nil {
		t.Fatal(err)
	}
	// A new page target; its WebSocket takes page-level commands directly.
	req, _ := http.NewRequest(http.MethodPut, "http://"+u.Host+"/json/new?about:blank", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("DevTools /json/new: %v", err)
	}
	defer res.Body.Close()
	var target struct {
		WebSocketDebuggerURL string `json:"webSocketDebuggerUrl"`
	}
	if err := json.NewDecoder(res.Body).Decode(&target); err != nil || target.WebSocketDebuggerURL == "" {
		t.Fatalf("DevTools /json/new: %v", err)
	}
	if b.ws, err = dialWS(target.WebSocketDebuggerURL); err != nil {
		t.Fatalf("DevTools WebSocket: %v", err)
	}
	b.call("Page.enable", nil, nil)
	b.call("Runtime.enable", nil, nil)
	return b
}

func (b *browser) close() {
	if b.ws != nil {
		_ = b.ws.conn.Close()
	}
	if b.cmd.Process != nil {
		pgid := b.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		_ = b.cmd.Wait()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if syscall.Kill(-pgid, 0) == syscall.ESRCH {
				return
			}
		}
		b.t.Errorf("chromium's process group %d did not exit", pgid)
	}
}

// call sends a command and decodes its result into out (nil: ignored); events are skipped.
func (b *browser) call(method string, params any, out any) {
	b.t.Helper()
	b.nextID++
	id := b.nextID
	msg, err := json.Marshal(map[string]any{"id": id, "method": method, "params": orEmpty(params)})
	if err != nil {
		b.t.Fatal(err)
	}
	if err := b.ws.writeText(msg); err != nil {
		b.t.Fatalf("%s: %v", method, err)
	}
	_ = b.ws.conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	for {
		data, err := b.ws.readMessage()
		if err != nil {
			b.t.Fatalf("%s: %v", method, err)
		}
		var r struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(data, &r); err != nil {
			b.t.Fatalf("%s: %v", method, err)
		}
		if r.ID != id {
			continue // an event
		}
		if r.Error != nil {
			b.t.Fatalf("%s: %s", method, r.Error.Message)
		}
		if out != nil {
			if err := json.Unmarshal(r.Result, out); err != nil {
				b.t.Fatalf("%s: %v", method, err)
			}
		}
		return
	}
}

func orEmpty(p any) any {
	if p == nil {
		return map[string]any{}
	}
	return p
}

// navigate opens url in the page.
func (b *browser) navigate(u string) {
	b.t.Helper()
	var r struct {
		ErrorText string `json:"errorText"`
	}
	b.call("Page.navigate", map[string]any{"url": u}, &r)
	if r.ErrorText != "" {
		b.t.Fatalf("navigate %s: %s", u, r.ErrorText)
	}
}

// eval runs a JavaScript expression (awaiting a promise) and decodes its JSON value into out.
func (b *browser) eval(expr string, out any) {
	b.t.Helper()
	var r struct {
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
	b.call("Runtime.evaluate", map[string]any{"expression": expr, "awaitPromise": true, "returnByValue": true}, &r)
	if r.ExceptionDetails != nil {
		b.t.Fatalf("JavaScript failed: %s %s\n%s", r.ExceptionDetails.Text, r.ExceptionDetails.Exception.Description, expr)
	}
	if out != nil {
		if err := json.Unmarshal(r.Result.Value, out); err != nil {
			b.t.Fatalf("JavaScript value %s: %v", r.Result.Value, err)
		}
	}
}

// waitFor polls a JavaScript expression in the page until it is truthy and returns its value.
// The 20s bound only stops a broken page from hanging the test; it asserts nothing about speed.
func (b *browser) waitFor(cond string, out any) {
	b.t.Helper()
	b.eval(`(async () => {
		const end = Date.now() + 20000;
		for (;;) {
			let v;
			try { v = (() => (`+cond+`))(); } catch (e) { v = undefined; }
			if (v) return v;
			if (Date.now() > end) throw new Error("gave up waiting for: " + `+jsString(cond)+` + "; page: " + document.body.innerText.slice(0, 500));
			await new Promise((r) => setTimeout(r, 50));
		}
	})()`, out)
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// screenshot saves a PNG of the page under testdata/artifacts/ at the repository root.
func (b *browser) screenshot(name string) string {
	b.t.Helper()
	var r struct {
		Data string `json:"data"`
	}
	b.call("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &r)
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil || len(png) < 8 || string(png[1:4]) != "PNG" {
		b.t.Fatalf("screenshot is not a PNG (%d bytes, %v)", len(png), err)
	}
	dir := filepath.Join(testenv.RepoRoot(), "testdata", "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s (%d bytes)", path, len(png))
	return path
}

// wsConn is the client side of a WebSocket connection.
type wsConn struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialWS opens a ws:// URL (no TLS, no extensions, no Origin header).
func dialWS(raw string) (*wsConn, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "ws" {
		return nil, fmt.Errorf("not a ws:// URL: %q", raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
		u.RequestURI(), u.Host, key)
	r := bufio.NewReader(conn)
	res, err := http.ReadResponse(r, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		conn.Close()
		return nil, fmt.Errorf("WebSocket handshake refused: %s", res.Status)
	}
	return &wsConn{conn: conn, r: r}, nil
}

// writeFrame sends one masked frame with FIN set.
func (c *wsConn) writeFrame(opcode byte, payload []byte) error {
	hdr := []byte{0x80 | opcode}
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n <= 0xFFFF:
		hdr = append(hdr, 0x80|126, byte(n>>8), byte(n))
	default:
		hdr = binary.BigEndian.AppendUint64(append(hdr, 0x80|127), uint64(n))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	hdr = append(hdr, mask[:]...)
	masked := make([]byte, len(payload))
	for i, b := range payload {
		masked[i] = b ^ mask[i%4]
	}
	_, err := c.conn.Write(append(hdr, masked...))
	return err
}

func (c *wsConn) writeText(p []byte) error { return c.writeFrame(0x1, p) }

// readMessage returns the next text or binary message, joining fragments and answering pings.
func (c *wsConn) readMessage() ([]byte, error) {
	var msg []byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.r, h[:]); err != nil {
			return nil, err
		}
		fin, opcode := h[0]&0x80 != 0, h[0]&0x0F
		n := uint64(h[1] & 0x7F)
		switch n {
		case 126:
			var l [2]byte
			if _, err := io.ReadFull(c.r, l[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(l[:]))
		case 127:
			var l [8]byte
			if _, err := io.ReadFull(c.r, l[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(l[:])
		}
		if n > 64<<20 {
			return nil, fmt.Errorf("WebSocket frame of %d bytes", n)
		}
		var mask []byte
		if h[1]&0x80 != 0 {
			mask = make([]byte, 4)
			if _, err := io.ReadFull(c.r, mask); err != nil {
				return nil, err
			}
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(c.r, payload); err != nil {
			return nil, err
		}
		for i := range payload {
			if mask != nil {
				payload[i] ^= mask[i%4]
			}
		}
		switch opcode {
		case 0x8:
			return nil, errors.New("WebSocket closed by chromium")
		case 0x9:
			if err := c.writeFrame(0xA, payload); err != nil {
				return nil, err
			}
			continue
		case 0xA:
			continue
		}
		msg = append(msg, payload...)
		if fin {
			return msg, nil
		}
	}
}
