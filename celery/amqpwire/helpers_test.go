package amqpwire

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/forumads/forumads/internal/testenv"
)

// ---- wire builders -------------------------------------------------------

func shortstr(s string) []byte { return append([]byte{byte(len(s))}, s...) }

func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// val is a field value: its type code and the bytes after it.
func val(code byte, body ...[]byte) []byte { return append([]byte{code}, cat(body...)...) }

// longstr is a 4-byte length and the bytes.
func longstr(s string) []byte { return append(u32(uint32(len(s))), s...) }

// entry is one table entry: a name and a field value.
func entry(name string, value []byte) []byte { return cat(shortstr(name), value) }

// table is a field table with its 4-byte length.
func table(entries ...[]byte) []byte {
	body := cat(entries...)
	return cat(u32(uint32(len(body))), body)
}

// array is a field array's length and its values (without the 'A').
func array(values ...[]byte) []byte { return table(values...) }

// frame builds one AMQP frame.
func frame(typ byte, channel uint16, payload []byte) []byte {
	return cat([]byte{typ}, u16(channel), u32(uint32(len(payload))), payload, []byte{frameEnd})
}

// props builds a content-header payload for the basic class (60) with a
// body size of 5, the given property-flag words and property bytes.
func props(flags []uint16, properties ...[]byte) []byte {
	p := cat(u16(60), u16(0), u64(5))
	for _, f := range flags {
		p = append(p, u16(f)...)
	}
	return cat(p, cat(properties...))
}

// headerFrame is a content-header frame on channel 1 with only headers.
func headerFrame(tbl []byte) []byte {
	return frame(frameHeader, 1, props([]uint16{flagHeaders}, tbl))
}

// A delivery as RabbitMQ sends it: basic.deliver, content header, body.
func deliverFrame() []byte {
	return frame(frameMethod, 1, cat(u16(60), u16(60), shortstr("ctag"), u64(1), []byte{0}, shortstr(""), shortstr("q")))
}
func bodyFrame() []byte      { return frame(3, 1, []byte("hello")) }
func heartbeatFrame() []byte { return frame(8, 0, nil) }

// startFrame stands for connection.start, the first frame a server sends.
func startFrame() []byte { return frame(frameMethod, 0, cat(u16(10), u16(10), []byte{0, 9}, table())) }

// protocolHeader is what an AMQP 0-9-1 client sends first.
var protocolHeader = []byte("AMQP\x00\x00\x09\x01")

// tuneOk is connection.tune-ok with the given frame-max.
func tuneOk(frameMax uint32) []byte {
	return frame(frameMethod, 0, cat(u16(10), u16(31), u16(2047), u32(frameMax), u16(60)))
}

// ---- scripted connections -------------------------------------------------

// step is what one Read of a scriptConn returns.
type step struct {
	data []byte
	err  error
}

// scriptConn is a net.Conn whose Reads follow a script (then io.EOF) and
// whose Writes are recorded. A Read returns at most one step's bytes.
type scriptConn struct {
	net.Conn // nil: methods not overridden would panic
	steps    []step
	written  bytes.Buffer
	writeErr error // returned by Write after writing half of p, when set
	deadline time.Time
}

func (c *scriptConn) Read(p []byte) (int, error) {
	for len(c.steps) > 0 {
		s := &c.steps[0]
		if len(s.data) == 0 {
			err := s.err
			c.steps = c.steps[1:]
			if err != nil {
				return 0, err
			}
			continue
		}
		n := copy(p, s.data)
		s.data = s.data[n:]
		if len(s.data) == 0 && s.err == nil {
			c.steps = c.steps[1:]
		}
		return n, nil
	}
	return 0, io.EOF
}

func (c *scriptConn) Write(p []byte) (int, error) {
	if c.writeErr != nil {
		c.written.Write(p[:len(p)/2])
		return len(p) / 2, c.writeErr
	}
	return c.written.Write(p)
}

func (c *scriptConn) SetDeadline(t time.Time) error { c.deadline = t; return nil }

// chunked splits data into Read steps of the given sizes, cycling.
func chunked(data []byte, sizes ...int) []step {
	var steps []step
	for i := 0; len(data) > 0; i++ {
		n := min(max(sizes[i%len(sizes)], 1), len(data))
		steps = append(steps, step{data: data[:n]})
		data = data[n:]
	}
	return steps
}

// readAll reads everything through a wrapper over steps, bufSize bytes at
// a time, and returns what came out and the events.
func readAll(t testing.TB, steps []step, bufSize int) ([]byte, []Event) {
	t.Helper()
	var events []Event
	c := WrapConn(&scriptConn{steps: steps}, Options{OnEvent: func(e Event) { events = append(events, e) }})
	var out []byte
	buf := make([]byte, bufSize)
	for i := 0; ; i++ {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return out, events
		}
		if err != nil {
			t.Fatalf("Read: unexpected error %v", err)
		}
		if n == 0 && i > 1<<20 {
			t.Fatal("Read makes no progress")
		}
	}
}

// inbound runs a whole stream through Read in one go.
func inbound(t testing.TB, stream []byte) ([]byte, []Event) {
	t.Helper()
	return readAll(t, []step{{data: stream}}, 1<<16)
}

// outbound runs writes through Write and returns what reached the inner
// conn, checking that every Write reports all of its bytes written.
func outbound(t testing.TB, writes ...[]byte) ([]byte, []Event) {
	t.Helper()
	var events []Event
	inner := &scriptConn{}
	c := WrapConn(inner, Options{OnEvent: func(e Event) { events = append(events, e) }})
	for _, p := range writes {
		n, err := c.Write(p)
		if err != nil || n != len(p) {
			t.Fatalf("Write(%d bytes) = %d, %v; want %d, nil", len(p), n, err, len(p))
		}
	}
	return inner.written.Bytes(), events
}

// ---- reading frames back ---------------------------------------------------

type parsedFrame struct {
	typ     byte
	channel uint16
	payload []byte
}

// splitFrames parses a stream of whole frames; ok is false when the stream
// is not exactly that.
func splitFrames(b []byte) (frames []parsedFrame, ok bool) {
	for len(b) > 0 {
		if len(b) < frameOverhead {
			return frames, false
		}
		size := binary.BigEndian.Uint32(b[3:])
		if uint64(size) > uint64(len(b)-frameOverhead) || b[frameHead+int(size)] != frameEnd {
			return frames, false
		}
		frames = append(frames, parsedFrame{typ: b[0], channel: binary.BigEndian.Uint16(b[1:]), payload: b[frameHead : frameHead+int(size)]})
		b = b[frameOverhead+int(size):]
	}
	return frames, true
}

// decodeTable decodes a field table (from its length word on) the way
// amqp091-go does for the type codes it knows, failing on the rest.
func decodeTable(t testing.TB, b []byte) map[string]any {
	t.Helper()
	n := binary.BigEndian.Uint32(b)
	b = b[4 : 4+n]
	m := map[string]any{}
	for len(b) > 0 {
		k := string(b[1 : 1+b[0]])
		b = b[1+b[0]:]
		var v any
		v, b = decodeValue(t, b)
		m[k] = v
	}
	return m
}

func decodeValue(t testing.TB, b []byte) (any, []byte) {
	t.Helper()
	code, b := b[0], b[1:]
	switch code {
	case 'S':
		n := binary.BigEndian.Uint32(b)
		return string(b[4 : 4+n]), b[4+n:]
	case 'l':
		return int64(binary.BigEndian.Uint64(b)), b[8:]
	case 's':
		return int16(binary.BigEndian.Uint16(b)), b[2:]
	case 'I':
		return int32(binary.BigEndian.Uint32(b)), b[4:]
	case 'V':
		return nil, b
	case 'F':
		n := binary.BigEndian.Uint32(b)
		return decodeTable(t, b[:4+n]), b[4+n:]
	case 'A':
		n := binary.BigEndian.Uint32(b)
		items, rest := b[4:4+n], b[4+n:]
		var arr []any
		for len(items) > 0 {
			var v any
			v, items = decodeValue(t, items)
			arr = append(arr, v)
		}
		return arr, rest
	}
	size := fieldSize(code)
	if size < 0 {
		t.Fatalf("decodeValue: type %q not handled by the test decoder", code)
	}
	return b[:size], b[size:]
}

// markerOf returns the two marker headers of a replaced content-header
// payload that carries only headers (plus maybe content type/encoding).
func markerOf(t testing.TB, payload []byte) (reason string, raw []byte) {
	t.Helper()
	l, ok := locate(payload)
	if !ok {
		t.Fatalf("replaced payload has no headers table: % x", payload)
	}
	m := decodeTable(t, payload[l.table:])
	if len(m) != 2 {
		t.Fatalf("marker table has %d entries, want 2: %v", len(m), m)
	}
	reason, _ = m[UndecodableHeader].(string)
	b64, _ := m[RawHeadersHeader].(string)
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || reason == "" {
		t.Fatalf("bad marker table %v (base64 error %v)", m, err)
	}
	return reason, raw
}

// ---- fixtures --------------------------------------------------------------

// fixtureHeaders returns the raw content-header payloads of every captured
// Celery message, keyed by fixture file and index.
func fixtureHeaders(t testing.TB) map[string][]byte {
	t.Helper()
	fixtureDir := testenv.FixturesDir(t)
	files, err := filepath.Glob(filepath.Join(fixtureDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Celery fixtures under %s (glob error %v): the shared fixtures must sit beside the repository", fixtureDir, err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var fx struct {
			Messages []struct {
				Raw string `json:"raw_content_header_b64"`
			} `json:"messages"`
		}
		if json.Unmarshal(data, &fx) != nil {
			continue // not a message capture
		}
		for i, m := range fx.Messages {
			if m.Raw == "" {
				continue
			}
			raw, err := base64.StdEncoding.DecodeString(m.Raw)
			if err != nil {
				t.Fatalf("%s message %d: %v", f, i, err)
			}
			out[filepath.Base(f)+"#"+strconv.Itoa(i)] = raw
		}
	}
	if len(out) == 0 {
		t.Fatalf("no raw_content_header_b64 in %s", fixtureDir)
	}
	return out
}

// Type-code rewrites the wrapper may do, per direction.
var (
	inboundPairs  = map[byte]byte{'L': 'l', 'U': 's'}
	outboundPairs = map[byte]byte{'l': 'L'} // 's' is widened, not replaced
)

// onlyRetyped reports whether out has in's length and differs from it only
// by the given one-byte rewrites.
func onlyRetyped(in, out []byte, pairs map[byte]byte) bool {
	if len(in) != len(out) {
		return false
	}
	for i := range in {
		if in[i] != out[i] && pairs[in[i]] != out[i] {
			return false
		}
	}
	return true
}
