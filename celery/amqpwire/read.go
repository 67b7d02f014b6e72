package amqpwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
)

// readBufSize is the initial size of the inbound buffer.
const readBufSize = 32 << 10

// readState is the inbound (server to client) side of a conn.
type readState struct {
	buf     []byte // bytes read from the inner conn; buf[r:w] not yet used
	r, w    int
	out     []byte // a rebuilt frame still to deliver: out[o:]
	o       int
	pass    int64 // bytes of the current frame still to deliver unchanged
	raw     bool  // framing given up: deliver everything unchanged
	started bool
	err     error // read error held back until buffered bytes are delivered
	walk    walker
}

// Read implements net.Conn. It delivers the server's bytes with every
// content-header frame checked: 'L' and 'U' field types are rewritten to
// 'l' and 's' in place, and a headers table that cannot be walked is
// replaced by the marker table (see [UndecodableHeader]).
func (c *conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s := &c.rd
	for {
		if s.o < len(s.out) {
			n := copy(p, s.out[s.o:])
			s.o += n
			if s.o == len(s.out) {
				s.out, s.o = s.out[:0], 0
			}
			return n, nil
		}
		if s.raw || s.pass > 0 {
			return c.readThrough(p)
		}
		if err := c.fill(frameHead); err != nil {
			if c.readFailed(err) {
				continue
			}
			return 0, err
		}
		head := s.buf[s.r : s.r+frameHead]
		if !s.started {
			s.started = true
			switch head[0] {
			case 'A':
				// "AMQP" and a protocol version: the server refuses ours.
				s.pass = 8
				continue
			case frameMethod:
			default:
				s.raw = true
				c.emit(Inbound, KindPassthrough, fmt.Sprintf("stream starts with byte 0x%02x, not an AMQP frame", head[0]))
				continue
			}
		}
		total := int64(binary.BigEndian.Uint32(head[3:])) + frameOverhead
		if head[0] != frameHeader || total > int64(c.bufferLimit()) {
			s.pass = total
			continue
		}
		if err := c.fill(int(total)); err != nil {
			if c.readFailed(err) {
				continue
			}
			return 0, err
		}
		frame := s.buf[s.r : s.r+int(total)]
		if frame[total-1] != frameEnd {
			s.raw = true
			c.emit(Inbound, KindPassthrough, fmt.Sprintf("channel %d: content header without frame end", binary.BigEndian.Uint16(frame[1:])))
			continue
		}
		if c.fixInbound(frame) {
			s.r += int(total)
		} else {
			s.pass = total
		}
	}
}

// readThrough delivers bytes of the current frame (or of a raw stream)
// unchanged: from the buffer when it holds any, else straight from the
// inner conn into p.
func (c *conn) readThrough(p []byte) (int, error) {
	s := &c.rd
	if !s.raw && int64(len(p)) > s.pass {
		p = p[:s.pass]
	}
	var (
		n   int
		err error
	)
	switch {
	case s.r < s.w:
		n = copy(p, s.buf[s.r:s.w])
		s.r += n
	case s.err != nil:
		err, s.err = s.err, nil
	default:
		n, err = c.Conn.Read(p)
	}
	if !s.raw {
		s.pass -= int64(n)
	}
	return n, err
}

// readFailed decides what to do when the inner conn failed while a frame
// was incomplete. It returns true when Read should go on: the stream ended
// inside a frame, so the bytes that did arrive are delivered unchanged and
// the error after them. A timeout keeps the partial frame for a later Read.
func (c *conn) readFailed(err error) bool {
	s := &c.rd
	var ne net.Error
	if s.r == s.w || (errors.As(err, &ne) && ne.Timeout()) {
		return false
	}
	s.raw, s.err = true, err
	return true
}

// fill reads until the buffer holds at least need unused bytes. The
// buffer grows with the bytes that arrive, not with a frame's declared
// size, so a bogus size costs nothing until its bytes come.
func (c *conn) fill(need int) error {
	s := &c.rd
	if s.w-s.r >= need {
		return nil
	}
	if s.err != nil {
		err := s.err
		s.err = nil
		return err
	}
	for s.w-s.r < need {
		if s.w == len(s.buf) {
			s.makeRoom(need)
		}
		n, err := c.Conn.Read(s.buf[s.w:])
		s.w += n
		if err != nil {
			if s.w-s.r >= need {
				s.err = err
				return nil
			}
			return err
		}
	}
	return nil
}

// makeRoom frees space after s.buf[s.w-1]: it moves the unused bytes to the
// front or, when they fill the buffer, grows it towards need.
func (s *readState) makeRoom(need int) {
	n := s.w - s.r
	size := len(s.buf)
	if n == size {
		size = max(min(2*size, need), readBufSize)
	}
	if size != len(s.buf) {
		nb := make([]byte, size)
		copy(nb, s.buf[s.r:s.w])
		s.buf = nb
	} else {
		copy(s.buf, s.buf[s.r:s.w])
	}
	s.r, s.w = 0, n
}

// fixInbound checks one whole content-header frame. It either rewrites
// type codes in place and returns false (deliver frame as it now is), or
// builds a replacement frame in c.rd.out and returns true.
func (c *conn) fixInbound(frame []byte) bool {
	s := &c.rd
	payload := frame[frameHead : len(frame)-1]
	l, ok := locate(payload)
	if !ok {
		return false
	}
	end, err := s.walk.walk(payload, l.table)
	if err == nil {
		if len(s.walk.pos) > 0 {
			n := s.walk.apply(payload)
			c.emitRetype(Inbound, binary.BigEndian.Uint16(frame[1:]), &s.walk, n)
		}
		if !c.pack || len(frame)+packedExtra > c.bufferLimit() {
			return false
		}
		s.out = appendPackedFrame(s.out[:0], frame, l, end)
		s.o = 0
		return true
	}
	s.out = appendMarkerFrame(s.out[:0], frame, l, err, c.frameMax.Load())
	s.o = 0
	if c.onEvent != nil {
		c.emit(Inbound, KindReplaced, fmt.Sprintf("channel %d: %v", binary.BigEndian.Uint16(frame[1:]), err))
	}
	return true
}
