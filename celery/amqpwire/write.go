package amqpwire

import (
	"encoding/binary"
	"fmt"
	"io"
)

// writeState is the outbound (client to server) side of a conn.
type writeState struct {
	hold    []byte // a frame being collected (or just its head)
	want    int    // total size of the frame in hold, once its head is known
	pass    int64  // bytes of the current frame still to send unchanged
	raw     bool   // framing given up: send everything unchanged
	started bool
	out     []byte // what one Write sends to the inner conn
	wide    []byte // a content-header frame rebuilt with int16 widened
	walk    walker
}

// Write implements net.Conn. It sends p with every content-header frame
// checked: 'l' (int64) is rewritten to 'L' in place and 's' (int16) values
// are widened to 'I' (int32), so py-amqp reads them as signed numbers. A
// frame split across calls is held until it is complete; the return value
// counts such bytes as written. Anything the wrapper cannot parse is sent
// unchanged.
func (c *conn) Write(p []byte) (int, error) {
	s := &c.wr
	if s.raw || (s.started && len(s.hold) == 0 && s.pass >= int64(len(p))) {
		// Inside a body (or raw): no copy.
		n, err := c.Conn.Write(p)
		if !s.raw {
			s.pass -= int64(n)
		}
		return n, err
	}
	carried := len(s.hold) // held by earlier calls; reported written then
	s.out = s.out[:0]
	for q := p; len(q) > 0; {
		switch {
		case s.raw:
			s.out = append(s.out, q...)
			q = nil
			continue
		case s.pass > 0:
			k := int(min(int64(len(q)), s.pass))
			s.out = append(s.out, q[:k]...)
			q = q[k:]
			s.pass -= int64(k)
			continue
		case !s.started:
			s.started = true
			if q[0] == 'A' {
				s.pass = 8 // "AMQP" and the protocol version
			} else {
				s.raw = true
				c.emit(Outbound, KindPassthrough, fmt.Sprintf("stream starts with byte 0x%02x, not an AMQP protocol header", q[0]))
			}
			continue
		}
		if s.want == 0 {
			k := min(frameHead-len(s.hold), len(q))
			s.hold = append(s.hold, q[:k]...)
			q = q[k:]
			if len(s.hold) < frameHead {
				break
			}
			total := int64(binary.BigEndian.Uint32(s.hold[3:])) + frameOverhead
			if !c.collect(s.hold, total) {
				s.out = append(s.out, s.hold...)
				s.pass = total - frameHead
				s.hold = s.hold[:0]
				continue
			}
			s.want = int(total)
		}
		k := min(s.want-len(s.hold), len(q))
		s.hold = append(s.hold, q[:k]...)
		q = q[k:]
		if len(s.hold) < s.want {
			break
		}
		s.out = append(s.out, c.fixOutbound(s.hold)...)
		s.hold, s.want = s.hold[:0], 0
	}
	if len(s.out) == 0 {
		return len(p), nil
	}
	n, err := c.Conn.Write(s.out)
	if err == nil && n < len(s.out) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return min(max(n-carried, 0), len(p)), err
	}
	return len(p), nil
}

// collect says whether the frame whose head is given must be held whole:
// content headers, and channel-0 method frames of tune-ok's size.
func (c *conn) collect(head []byte, total int64) bool {
	switch head[0] {
	case frameHeader:
		return total <= int64(c.bufferLimit())
	case frameMethod:
		return binary.BigEndian.Uint16(head[1:]) == 0 && total == tuneOkSize
	}
	return false
}

// tuneOkSize is the whole connection.tune-ok frame: class-id(2) method-id(2)
// channel-max(2) frame-max(4) heartbeat(2).
const tuneOkSize = frameOverhead + 12

// fixOutbound checks one whole frame held by Write and returns the bytes
// to send: the frame itself, possibly rewritten in place, or a rebuilt
// copy with int16 values widened.
func (c *conn) fixOutbound(frame []byte) []byte {
	s := &c.wr
	if frame[len(frame)-1] != frameEnd {
		s.raw = true
		c.emit(Outbound, KindPassthrough, fmt.Sprintf("channel %d: frame without frame end", binary.BigEndian.Uint16(frame[1:])))
		return frame
	}
	payload := frame[frameHead : len(frame)-1]
	channel := binary.BigEndian.Uint16(frame[1:])
	if frame[0] == frameMethod {
		if binary.BigEndian.Uint16(payload) == 10 && binary.BigEndian.Uint16(payload[2:]) == 31 {
			c.frameMax.Store(binary.BigEndian.Uint32(payload[6:]))
		}
		return frame
	}
	l, ok := locate(payload)
	if !ok {
		return frame
	}
	if _, err := s.walk.walk(payload, l.table); err != nil {
		if c.onEvent != nil {
			c.emit(Outbound, KindUnparsed, fmt.Sprintf("channel %d: %v", channel, err))
		}
		return frame
	}
	if len(s.walk.pos) == 0 {
		return frame
	}
	n := s.walk.count(payload)
	if n[1] == 0 {
		c.emitRetype(Outbound, channel, &s.walk, s.walk.apply(payload))
		return frame
	}
	// int16 ('s') values: RabbitMQ refuses py-amqp's 'U', so widen them to
	// 'I', which both RabbitMQ and py-amqp read as signed.
	wide := append(s.wide[:0], frame[:frameHead+l.table]...)
	wide, end := s.walk.appendWidened(wide, payload, l.table)
	wide = append(append(wide, payload[end:]...), frameEnd)
	s.wide = wide
	if m := c.frameMax.Load(); m > 0 && len(wide) > int(m) {
		if c.onEvent != nil {
			c.emit(Outbound, KindUnparsed, fmt.Sprintf("channel %d: widening %d int16 headers would pass frame-max %d; sent unchanged", channel, n[1], m))
		}
		return frame
	}
	binary.BigEndian.PutUint32(wide[3:], uint32(len(wide)-frameOverhead))
	c.emitRetype(Outbound, channel, &s.walk, n)
	return wide
}
