// Package tcpproxy is a loopback TCP proxy for tests that need to lose a connection on purpose: a
// program under test dials the proxy instead of RabbitMQ or Redis, and the test cuts the live
// connections, refuses new ones for a while, then lets them through again.
//
//	p := tcpproxy.Start(t, "127.0.0.1:5672")
//	url := "amqp://guest:guest@" + p.Addr() + "/"
//	p.Pause()  // new connections are reset as soon as they are accepted
//	p.Cut()    // every live connection is reset, both ways
//	p.Resume() // new connections reach the target again
//
// DropUpstream loses what clients send without closing anything, for a test of what happens to
// data written just before a connection breaks.
//
// A cut connection is closed with a TCP reset on both sides, as a crashed peer or a broken network
// path would leave it: neither side gets a protocol-level goodbye.
package tcpproxy

import (
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards every TCP connection it accepts to one target address. It is safe for concurrent
// use.
type Proxy struct {
	target string
	ln     net.Listener

	mu     sync.Mutex
	live   map[*link]struct{}
	paused bool
	closed bool

	wg       sync.WaitGroup
	accepted atomic.Int64
	refused  atomic.Int64
	dropUp   atomic.Bool
	dropped  atomic.Int64
}

// link is one proxied connection: the accepted client side and the dialled target side.
type link struct {
	client, server net.Conn
	once           sync.Once
}

// reset closes both sides with a TCP reset rather than an orderly FIN.
func (l *link) reset() {
	l.once.Do(func() {
		abort(l.client)
		abort(l.server)
	})
}

func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// New starts a proxy listening on addr (use "127.0.0.1:0" for any free port) that forwards to
// target. Close stops it.
func New(addr, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, ln: ln, live: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Start starts a proxy to target on a free loopback port and closes it when the test ends. It fails
// the test if it cannot listen.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	return Listen(t, "127.0.0.1:0", target)
}

// StartURL is Start to the host of a service URL (amqp://, redis://...), on defaultPort when the URL
// names none, and returns the proxy with the same URL pointed at it. It fails the test on a URL
// it cannot read.
func StartURL(t testing.TB, rawURL, defaultPort string) (*Proxy, string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		t.Fatalf("tcpproxy: %q is not a service URL with a host (%v)", rawURL, err)
		return nil, ""
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), defaultPort)
	}
	p := Start(t, target)
	u.Host = p.Addr()
	return p, u.String()
}

// Listen is Start on a given address, for a test that first points a program at a closed port and
// later opens it.
func Listen(t testing.TB, addr, target string) *Proxy {
	t.Helper()
	p, err := New(addr, target)
	if err != nil {
		t.Fatalf("tcpproxy: listening on %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// Addr is the host:port clients dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the host:port connections are forwarded to.
func (p *Proxy) Target() string { return p.target }

// Accepted counts the connections forwarded to the target so far.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Refused counts the connections reset because the proxy was paused or the target was unreachable.
func (p *Proxy) Refused() int64 { return p.refused.Load() }

// Live is the number of connections being forwarded now.
func (p *Proxy) Live() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.live)
}

// Cut resets every live connection on both sides and returns how many there were. New connections
// are still accepted unless the proxy is paused.
func (p *Proxy) Cut() int {
	p.mu.Lock()
	links := make([]*link, 0, len(p.live))
	for l := range p.live {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.reset()
	}
	return len(links)
}

// Pause makes the proxy reset every new connection as soon as it is accepted, without dialling the
// target, until Resume. Live connections are left alone (Cut them).
func (p *Proxy) Pause() {
	p.mu.Lock()
	p.paused = true
	p.mu.Unlock()
}

// Resume forwards new connections again after Pause.
func (p *Proxy) Resume() {
	p.mu.Lock()
	p.paused = false
	p.mu.Unlock()
}

// DropUpstream(true) makes the proxy read and discard what clients send instead of forwarding it,
// as a network path that loses packets one way before breaking would: a client's writes succeed
// but the target never sees them, while the target's bytes still reach the client.
// DropUpstream(false) forwards again (what was discarded stays lost).
func (p *Proxy) DropUpstream(on bool) { p.dropUp.Store(on) }

// Dropped counts the client bytes discarded by DropUpstream.
func (p *Proxy) Dropped() int64 { return p.dropped.Load() }

// upstream is the writer to the target, which discards while DropUpstream is on.
type upstream struct {
	p   *Proxy
	dst net.Conn
}

func (u upstream) Write(b []byte) (int, error) {
	if u.p.dropUp.Load() {
		u.p.dropped.Add(int64(len(b)))
		return len(b), nil
	}
	return u.dst.Write(b)
}

// Close stops listening, resets every live connection and waits for the proxy's goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.Cut()
	p.wg.Wait()
	return err
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // a transient accept error (EMFILE...) must not stop the proxy
		}
		p.mu.Lock()
		paused, closed := p.paused, p.closed
		p.mu.Unlock()
		if paused || closed {
			p.refused.Add(1)
			abort(c)
			continue
		}
		p.wg.Add(1)
		go p.forward(c)
	}
}

func (p *Proxy) forward(client net.Conn) {
	defer p.wg.Done()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		p.refused.Add(1)
		abort(client)
		return
	}
	l := &link{client: client, server: server}
	p.mu.Lock()
	if p.closed || p.paused {
		// Closed or paused while dialling: this connection was never forwarded.
		p.mu.Unlock()
		p.refused.Add(1)
		l.reset()
		return
	}
	p.live[l] = struct{}{}
	p.mu.Unlock()
	p.accepted.Add(1)

	var copies sync.WaitGroup
	copies.Add(2)
	pipe := func(dst, src net.Conn, w io.Writer) {
		defer copies.Done()
		if _, err := io.Copy(w, src); err != nil {
			// A reset or a failed write: the other side is reset too, as a broken path would do.
			l.reset()
			return
		}
		// An orderly end of stream is passed on as one, after the bytes before it.
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}
	go pipe(server, client, upstream{p, server})
	go pipe(client, server, client)
	copies.Wait()
	p.mu.Lock()
	delete(p.live, l)
	p.mu.Unlock()
	_ = client.Close()
	_ = server.Close()
}
