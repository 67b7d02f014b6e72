package amqpwire

import (
	"io"
	"net"
	"testing"
)

// loopConn serves a prefix once and then the same message for ever, like a
// broker delivering a stream of identical messages. Writes are discarded.
type loopConn struct {
	net.Conn
	prefix, msg []byte
	pos         int
}

func (c *loopConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	n := copy(p, c.msg[c.pos:])
	c.pos = (c.pos + n) % len(c.msg)
	return n, nil
}

func (c *loopConn) Write(p []byte) (int, error) { return len(p), nil }

// celeryMessage is one delivery of the captured Celery message with an 'L'
// header (v2_custom_headers): basic.deliver, content header, body.
func celeryMessage(tb testing.TB) []byte {
	tb.Helper()
	payload, ok := fixtureHeaders(tb)["v2_custom_headers.json#0"]
	if !ok {
		tb.Fatal("fixture v2_custom_headers.json is missing")
	}
	payload = append([]byte(nil), payload...)
	copy(payload[4:12], u64(5))
	return cat(deliverFrame(), frame(frameHeader, 1, payload), bodyFrame())
}

func BenchmarkInboundHeaderFrame(b *testing.B) {
	msg := celeryMessage(b)
	c := WrapConn(&loopConn{prefix: startFrame(), msg: msg}, Options{})
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf[:len(startFrame())]); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOutboundHeaderFrame(b *testing.B) {
	goForm, _ := inbound(b, cat(startFrame(), celeryMessage(b)))
	msg := goForm[len(startFrame()):]
	c := WrapConn(&loopConn{}, Options{})
	if _, err := c.Write(protocolHeader); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// TestNoAllocations checks the common path: once warmed up, reading and
// writing Celery messages with rewritten headers allocates nothing.
func TestNoAllocations(t *testing.T) {
	msg := celeryMessage(t)
	rc := WrapConn(&loopConn{prefix: startFrame(), msg: msg}, Options{})
	buf := make([]byte, len(msg))
	read := func() {
		if _, err := io.ReadFull(rc, buf); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := io.ReadFull(rc, buf[:len(startFrame())]); err != nil {
		t.Fatal(err)
	}
	read()
	if buf[len(deliverFrame())] != frameHeader || string(buf[len(buf)-6:len(buf)-1]) != "hello" {
		t.Fatal("loop is not aligned on messages")
	}
	if n := testing.AllocsPerRun(200, read); n != 0 {
		t.Errorf("inbound: %v allocations per message", n)
	}

	wc := WrapConn(&loopConn{}, Options{})
	if _, err := wc.Write(protocolHeader); err != nil {
		t.Fatal(err)
	}
	goForm := append([]byte(nil), buf...)
	k := len(deliverFrame()) + 20 // split the header frame across two calls
	write := func() {
		if _, err := wc.Write(goForm[:k]); err != nil {
			t.Fatal(err)
		}
		if _, err := wc.Write(goForm[k:]); err != nil {
			t.Fatal(err)
		}
	}
	write()
	if n := testing.AllocsPerRun(200, write); n != 0 {
		t.Errorf("outbound: %v allocations per message", n)
	}
}
