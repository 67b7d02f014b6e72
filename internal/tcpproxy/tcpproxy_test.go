package tcpproxy_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/forumads/forumads/internal/tcpproxy"
	"github.com/forumads/forumads/internal/testenv"
)

// echoServer echoes every line back and counts the connections it accepted.
type echoServer struct {
	ln       net.Listener
	accepted atomic.Int64
}

func startEcho(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{ln: ln}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-done })
	return s
}

// dial connects to the proxy with a deadline on every read, so a broken proxy fails the test
// instead of hanging it.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return c
}

// roundTrip sends a line and reads it back.
func roundTrip(c net.Conn, line string) (string, error) {
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return got[:len(got)-1], nil
}

// assertDead checks that c was reset or closed by the proxy: a read returns an error, not data and
// not a deadline expiry.
func assertDead(t *testing.T, c net.Conn) {
	t.Helper()
	var b [1]byte
	_, err := c.Read(b[:])
	if err == nil {
		t.Fatal("read on a cut connection returned data")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection was not cut: read timed out (%v)", err)
	}
}

// assertRefused checks that a new connection to addr is reset: either the dial itself fails or the
// first read does.
func assertRefused(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return // reset before connect returned
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	assertDead(t, c)
}

func TestForwards(t *testing.T) {
	t.Parallel()
	echo := startEcho(t)
	p := tcpproxy.Start(t, echo.ln.Addr().String())
	tests := []struct {
		name  string
		lines []string
	}{
		{"one line", []string{"hello"}},
		{"several lines", []string{"a", "bb", "ccc"}},
		{"long line", []string{randomText(1 << 18)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, p.Addr())
			r := bufio.NewReader(c)
			for _, line := range tt.lines {
				if _, err := io.WriteString(c, line+"\n"); err != nil {
					t.Fatal(err)
				}
				got, err := r.ReadString('\n')
				if err != nil {
					t.Fatal(err)
				}
				if got != line+"\n" {
					t.Fatalf("echo = %d bytes, want %d", len(got), len(line)+1)
				}
			}
		})
	}
	if got, want := p.Accepted(), int64(len(tests)); got != want {
		t.Errorf("Accepted() = %d, want %d", got, want)
	}
	if p.Target() != echo.ln.Addr().String() {
		t.Errorf("Target() = %q", p.Target())
	}
}

func randomText(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return string(b)
}

func TestCutResetsLiveConnections(t *testing.T) {
	t.Parallel()
	echo := startEcho(t)
	p := tcpproxy.Start(t, echo.ln.Addr().String())
	conns := []net.Conn{dial(t, p.Addr()), dial(t, p.Addr()), dial(t, p.Addr())}
	for _, c := range conns {
		if _, err := roundTrip(c, "x"); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return p.Live() == 3 }, "3 live connections")
	if n := p.Cut(); n != 3 {
		t.Errorf("Cut() = %d, want 3", n)
	}
	for _, c := range conns {
		assertDead(t, c)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return p.Live() == 0 }, "no live connection")

	// The proxy itself keeps working.
	c := dial(t, p.Addr())
	if got, err := roundTrip(c, "after"); err != nil || got != "after" {
		t.Fatalf("after Cut: %q, %v", got, err)
	}
}

func TestPauseRefusesNewConnections(t *testing.T) {
	t.Parallel()
	echo := startEcho(t)
	p := tcpproxy.Start(t, echo.ln.Addr().String())
	before := dial(t, p.Addr())
	if _, err := roundTrip(before, "x"); err != nil {
		t.Fatal(err)
	}

	p.Pause()
	assertRefused(t, p.Addr())
	if got := p.Refused(); got != 1 {
		t.Errorf("Refused() = %d, want 1", got)
	}
	if got := echo.accepted.Load(); got != 1 {
		t.Errorf("the target accepted %d connections, want 1: a paused proxy must not dial it", got)
	}
	// A connection made before Pause is left alone.
	if got, err := roundTrip(before, "still"); err != nil || got != "still" {
		t.Fatalf("live connection during Pause: %q, %v", got, err)
	}

	p.Resume()
	after := dial(t, p.Addr())
	if got, err := roundTrip(after, "back"); err != nil || got != "back" {
		t.Fatalf("after Resume: %q, %v", got, err)
	}
}

func TestDropUpstream(t *testing.T) {
	t.Parallel()
	// The target records what it receives and sends a greeting on its own.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	received := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.WriteString(c, "hello\n")
		b, _ := io.ReadAll(c)
		received <- string(b)
	}()
	p := tcpproxy.Start(t, ln.Addr().String())
	c := dial(t, p.Addr())
	r := bufio.NewReader(c)
	if got, err := r.ReadString('\n'); err != nil || got != "hello\n" {
		t.Fatalf("greeting: %q, %v", got, err)
	}
	tests := []struct {
		drop bool
		send string
	}{
		{false, "kept-1 "},
		{true, "lost "},
		{false, "kept-2"},
	}
	for _, tt := range tests {
		p.DropUpstream(tt.drop)
		if _, err := io.WriteString(c, tt.send); err != nil {
			t.Fatal(err)
		}
		// Wait until the proxy has handled the bytes before switching modes.
		if tt.drop {
			testenv.Eventually(t, 10*time.Second, func() bool { return p.Dropped() >= int64(len(tt.send)) }, "the bytes to be dropped")
		}
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-received:
		// "kept-1 " may still have been in flight when dropping began; what matters is that the
		// dropped bytes never arrive and the later ones do.
		if strings.Contains(got, "lost") || !strings.HasSuffix(got, "kept-2") {
			t.Fatalf("the target received %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the target received nothing")
	}
}

func TestUnreachableTargetResetsClient(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().String()
	_ = ln.Close()
	p := tcpproxy.Start(t, closedPort)
	assertRefused(t, p.Addr())
	testenv.Eventually(t, 10*time.Second, func() bool { return p.Refused() == 1 }, "the refusal to be counted")
	if p.Accepted() != 0 {
		t.Errorf("Accepted() = %d, want 0", p.Accepted())
	}
}

func TestHalfCloseIsForwarded(t *testing.T) {
	t.Parallel()
	echo := startEcho(t)
	p := tcpproxy.Start(t, echo.ln.Addr().String())
	c := dial(t, p.Addr())
	if _, err := io.WriteString(c, "last words"); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// The echo server sees EOF only if the proxy passed the half-close on; then it closes, and every
	// byte written before arrives ahead of the end of stream.
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read after half-close: %v", err)
	}
	if string(got) != "last words" {
		t.Fatalf("got %q, want %q", got, "last words")
	}
}

func TestListenOnGivenAddressAndClose(t *testing.T) {
	t.Parallel()
	echo := startEcho(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()

	p := tcpproxy.Listen(t, addr, echo.ln.Addr().String())
	if p.Addr() != addr {
		t.Fatalf("Addr() = %q, want %q", p.Addr(), addr)
	}
	live := dial(t, addr)
	if got, err := roundTrip(live, "x"); err != nil || got != "x" {
		t.Fatalf("%q, %v", got, err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	assertDead(t, live)
	if c, err := net.Dial("tcp", addr); err == nil {
		_ = c.Close()
		t.Fatal("dial after Close succeeded")
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNewBadAddress(t *testing.T) {
	t.Parallel()
	if _, err := tcpproxy.New("256.0.0.1:0", "127.0.0.1:1"); err == nil {
		t.Fatal("New on an invalid address succeeded")
	}
}

// TestStartURL: the URL comes back pointed at the proxy with everything else kept, a URL without a
// port is proxied to the default port, and the proxy reaches the service.
func TestStartURL(t *testing.T) {
	t.Parallel()
	echo := startEcho(t)
	_, port, err := net.SplitHostPort(echo.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, url, defaultPort, wantPrefix, wantSuffix string
	}{
		{"port given", "amqp://u:p@127.0.0.1:" + port + "/vh?heartbeat=5", "1", "amqp://u:p@127.0.0.1:", "/vh?heartbeat=5"},
		{"default port", "redis://127.0.0.1/3", port, "redis://127.0.0.1:", "/3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, got := tcpproxy.StartURL(t, tc.url, tc.defaultPort)
			if p.Target() != "127.0.0.1:"+port {
				t.Errorf("target = %s, want 127.0.0.1:%s", p.Target(), port)
			}
			if want := tc.wantPrefix + strings.TrimPrefix(p.Addr(), "127.0.0.1:") + tc.wantSuffix; got != want {
				t.Errorf("url = %s, want %s", got, want)
			}
			if line, err := roundTrip(dial(t, p.Addr()), "hello"); err != nil || line != "hello" {
				t.Errorf("round trip through the proxy = %q, %v", line, err)
			}
		})
	}
}
