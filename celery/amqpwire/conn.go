package amqpwire

import (
	"fmt"
	"net"
	"sync/atomic"
	"time"
)

// Header names of the table that replaces a headers table the wrapper could
// not walk. Both values are AMQP long strings.
const (
	// UndecodableHeader says why the original headers table was replaced.
	UndecodableHeader = "x-forumads-undecodable-headers"
	// RawHeadersHeader holds the original table, base64 encoded, from its
	// 4-byte length on (offsets in UndecodableHeader count from there).
	RawHeadersHeader = "x-forumads-raw-headers-b64"
)

// Values of [Event].Direction.
const (
	// Inbound is server to client (Read).
	Inbound = "inbound"
	// Outbound is client to server (Write).
	Outbound = "outbound"
)

// Values of [Event].Kind.
const (
	// KindRetype: type codes in a headers table were rewritten (inbound
	// L→l and U→s in place; outbound l→L in place and s widened to I).
	// Detail counts them.
	KindRetype = "retype"
	// KindReplaced: an inbound headers table could not be walked and was
	// replaced by the marker table. Detail is the reason.
	KindReplaced = "replaced"
	// KindUnparsed: an outbound headers table could not be walked (or its
	// int16 values not widened within frame-max) and was sent unchanged.
	// Detail is the reason.
	KindUnparsed = "unparsed"
	// KindPassthrough: the stream does not look like AMQP 0-9-1 framing (for
	// example TLS below the wrapper) or lost its framing; from here on every
	// byte in that direction passes through untouched.
	KindPassthrough = "passthrough"
)

// Event describes one thing the wrapper did to the byte stream.
type Event struct {
	Direction string // Inbound or Outbound
	Kind      string // KindRetype, KindReplaced, KindUnparsed or KindPassthrough
	Detail    string // human-readable; starts with the channel for frame events
}

// Options configure the wrapper. The zero value is ready to use.
type Options struct {
	// OnEvent, if set, is called synchronously for every rewrite and every
	// frame the wrapper had to give up on. It runs on the connection's
	// reading or writing goroutine (possibly both at once), so it must be
	// cheap and safe for concurrent use.
	OnEvent func(Event)
	// PackHeaders delivers every inbound headers table that walks packed:
	// as the single byte-array entry [PackedHeadersHeader], which the
	// consumer decodes with [UnpackHeaders]. amqp091-go then allocates one
	// byte slice for the table instead of decoding it field by field
	// (through encoding/binary.Read and two copies of the table), which
	// costs a Celery consumer about a fifth of its CPU. Every reader of
	// Delivery.Headers on such a connection must call UnpackHeaders. A
	// frame that would outgrow the negotiated frame-max is left unpacked.
	PackHeaders bool
}

// defaultTimeout is amqp091-go's defaultConnectionTimeout.
const defaultTimeout = 30 * time.Second

// Dialer returns a dial function for amqp091-go's Config.Dial that wraps
// every connection made by base with [WrapConn]. A nil base dials TCP with
// a 30 s timeout and, like amqp.DefaultDial, sets a 30 s deadline for the
// handshake; amqp091-go clears it once the connection is open.
//
// The wrapper must see plain AMQP frames. With an amqps:// URL amqp091-go
// puts TLS on top of the dialled connection, so the wrapper would see TLS
// records (it notices and passes them through untouched, fixing nothing).
// For TLS, let base do the TLS handshake itself and use an amqp:// URL
// pointing at the TLS port.
func Dialer(base func(network, addr string) (net.Conn, error), opts Options) func(network, addr string) (net.Conn, error) {
	if base == nil {
		base = defaultDial
	}
	return func(network, addr string) (net.Conn, error) {
		c, err := base(network, addr)
		if err != nil {
			return nil, err
		}
		return WrapConn(c, opts), nil
	}
}

func defaultDial(network, addr string) (net.Conn, error) {
	c, err := net.DialTimeout(network, addr, defaultTimeout)
	if err != nil {
		return nil, err
	}
	if err := c.SetDeadline(time.Now().Add(defaultTimeout)); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// WrapConn returns c wrapped so that the field types of AMQP content-header
// tables are translated between amqp091-go and py-amqp (see the package
// documentation). One goroutine may Read while another Writes; concurrent
// Reads, or concurrent Writes, are not supported (amqp091-go does neither).
// Deadlines, Close and addresses are those of c.
func WrapConn(c net.Conn, opts Options) net.Conn {
	w := &conn{Conn: c, onEvent: opts.OnEvent, pack: opts.PackHeaders}
	w.rd.walk = newWalker([2][2]byte{{'L', 'l'}, {'U', 's'}})
	w.wr.walk = newWalker([2][2]byte{{'l', 'L'}, {'s', 'I'}})
	return w
}

// conn is the wrapper. Its read side and write side share only frameMax.
type conn struct {
	net.Conn
	onEvent  func(Event)
	pack     bool
	frameMax atomic.Uint32 // negotiated frame-max, seen in the outbound tune-ok
	rd       readState
	wr       writeState
}

func (c *conn) emit(dir, kind, detail string) {
	if c.onEvent != nil {
		c.onEvent(Event{Direction: dir, Kind: kind, Detail: detail})
	}
}

// bufferLimit is the largest frame (overhead included) the wrapper holds.
func (c *conn) bufferLimit() int {
	if m := c.frameMax.Load(); m > 0 && m < maxBuffered {
		return int(m)
	}
	return maxBuffered
}

func (c *conn) emitRetype(dir string, channel uint16, w *walker, n [2]int) {
	if c.onEvent == nil {
		return
	}
	detail := fmt.Sprintf("channel %d:", channel)
	for i, p := range w.pairs {
		if n[i] > 0 {
			detail += fmt.Sprintf(" %d %c->%c", n[i], p[0], p[1])
		}
	}
	c.emit(dir, KindRetype, detail)
}
