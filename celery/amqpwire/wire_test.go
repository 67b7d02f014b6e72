package amqpwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// fieldCases has one value of every type code either library uses, with
// the code the wrapper must leave in its place in each direction. Write
// widens int16 ('s') to int32 ('I'): RabbitMQ refuses py-amqp's 'U'.
var fieldCases = []struct {
	code    byte
	body    []byte
	in, out byte   // code after Read, after Write
	outBody []byte // value after Write, when it changes
}{
	{'t', []byte{1}, 't', 't', nil},
	{'b', []byte{0xfe}, 'b', 'b', nil},
	{'B', []byte{0xfe}, 'B', 'B', nil},
	{'s', u16(0xfffb), 's', 'I', u32(0xfffffffb)},
	{'u', u16(0xfffb), 'u', 'u', nil},
	{'U', u16(0xfffb), 's', 'U', nil},
	{'I', u32(0xfffffff9), 'I', 'I', nil},
	{'i', u32(0xfffffff9), 'i', 'i', nil},
	{'l', u64(0xffffff0000000000), 'l', 'L', nil},
	{'L', u64(0xffffff0000000000), 'l', 'L', nil},
	{'f', u32(0x3fc00000), 'f', 'f', nil},
	{'d', u64(0x3ff8000000000000), 'd', 'd', nil},
	{'D', []byte{2, 0, 0, 0x30, 0x39}, 'D', 'D', nil},
	{'S', longstr("héllo"), 'S', 'S', nil},
	{'x', longstr("\x00\x01\xff"), 'x', 'x', nil},
	{'T', u64(1700000000), 'T', 'T', nil},
	{'V', nil, 'V', 'V', nil},
	{'F', table(entry("k", val('S', longstr("v")))), 'F', 'F', nil},
	{'A', array(val('I', u32(1)), val('S', longstr("a")), val('V')), 'A', 'A', nil},
}

// typeTable puts one value between two ordinary entries, so that a wrong
// size for it would derail the walk.
func typeTable(code byte, body []byte) []byte {
	return table(
		entry("first", val('I', u32(1))),
		entry("k", val(code, body)),
		entry("last", val('S', longstr("end"))),
	)
}

func TestFieldTypes(t *testing.T) {
	t.Parallel()
	for _, tc := range fieldCases {
		t.Run(string(tc.code), func(t *testing.T) {
			t.Parallel()
			in := typeTable(tc.code, tc.body)
			wantIn := typeTable(tc.in, tc.body)
			wantOut := typeTable(tc.out, tc.body)
			if tc.outBody != nil {
				wantOut = typeTable(tc.out, tc.outBody)
			}
			got, _ := inbound(t, cat(startFrame(), deliverFrame(), headerFrame(in), bodyFrame()))
			if want := cat(startFrame(), deliverFrame(), headerFrame(wantIn), bodyFrame()); !bytes.Equal(got, want) {
				t.Errorf("inbound:\n got % x\nwant % x", got, want)
			}

			got, _ = outbound(t, cat(protocolHeader, deliverFrame(), headerFrame(in), bodyFrame()))
			if want := cat(protocolHeader, deliverFrame(), headerFrame(wantOut), bodyFrame()); !bytes.Equal(got, want) {
				t.Errorf("outbound:\n got % x\nwant % x", got, want)
			}
		})
	}
}

func TestUnknownTypeCodes(t *testing.T) {
	t.Parallel()
	known := 0
	for c := 0; c < 256; c++ {
		code := byte(c)
		if fieldSize(code) != sizeUnknown {
			known++
			continue
		}
		tbl := typeTable(code, u64(0))
		got, events := inbound(t, cat(startFrame(), headerFrame(tbl), bodyFrame()))
		frames, ok := splitFrames(got)
		if !ok || len(frames) != 3 || !bytes.Equal(frames[2].payload, []byte("hello")) {
			t.Fatalf("code 0x%02x: inbound output is not start, header, body: % x", c, got)
		}
		reason, raw := markerOf(t, frames[1].payload)
		if !bytes.Equal(raw, tbl) {
			t.Errorf("code 0x%02x: raw headers % x, want % x", c, raw, tbl)
		}
		if want := fmt.Sprintf("unknown field type %q (0x%02x) at table offset 17", code, c); reason != want {
			t.Errorf("code 0x%02x: reason %q, want %q", c, reason, want)
		}
		if len(events) != 1 || events[0].Kind != KindReplaced || events[0].Direction != Inbound ||
			events[0].Detail != "channel 1: "+reason {
			t.Errorf("code 0x%02x: events %+v", c, events)
		}

		stream := cat(protocolHeader, headerFrame(tbl), bodyFrame())
		got, events = outbound(t, stream)
		if !bytes.Equal(got, stream) {
			t.Errorf("code 0x%02x: outbound changed an unparseable frame", c)
		}
		if len(events) != 1 || events[0].Kind != KindUnparsed || events[0].Direction != Outbound {
			t.Errorf("code 0x%02x: outbound events %+v", c, events)
		}
	}
	if known != len(fieldCases) {
		t.Errorf("fieldSize knows %d codes, fieldCases has %d", known, len(fieldCases))
	}
}

// nestedTable holds 64-bit and 16-bit values (written with the codes c64
// and c16) at the top, in nested tables, in arrays, in tables in arrays.
// c16 'I' gives the 16-bit values widened to 32 bits.
func nestedTable(c64, c16 byte) []byte {
	big := val(c64, u64(0xffffff0000000000))
	small := val(c16, u16(0xfff9))
	if c16 == 'I' {
		small = val('I', u32(0xfffffff9))
	}
	return table(
		entry("big", big),
		entry("inner", val('F', table(
			entry("small", small),
			entry("list", val('A', array(big, small, val('F', table(entry("deep", big))), val('A', array(small))))),
		))),
		entry("tail", val('S', longstr("x"))),
	)
}

func TestNested(t *testing.T) {
	t.Parallel()
	py := headerFrame(nestedTable('L', 'U'))
	goForm := headerFrame(nestedTable('l', 's'))

	got, events := inbound(t, cat(startFrame(), py))
	if want := cat(startFrame(), goForm); !bytes.Equal(got, want) {
		t.Errorf("inbound:\n got % x\nwant % x", got, want)
	}
	if len(events) != 1 || events[0] != (Event{Inbound, KindRetype, "channel 1: 3 L->l 3 U->s"}) {
		t.Errorf("inbound events %+v", events)
	}
	got, events = outbound(t, cat(protocolHeader, goForm))
	if want := cat(protocolHeader, headerFrame(nestedTable('L', 'I'))); !bytes.Equal(got, want) {
		t.Errorf("outbound:\n got % x\nwant % x", got, want)
	}
	if len(events) != 1 || events[0] != (Event{Outbound, KindRetype, "channel 1: 3 l->L 3 s->I"}) {
		t.Errorf("outbound events %+v", events)
	}
}

// deepTable nests n tables (alternating with arrays when arrays is set)
// below the headers table, with an 'L' value at the bottom.
func deepTable(n int, arrays bool) []byte {
	v := val('L', u64(1))
	for i := n; i > 0; i-- {
		if arrays && i%2 == 0 {
			v = val('A', array(v))
		} else {
			v = val('F', table(entry("n", v)))
		}
	}
	return table(entry("n", v))
}

// manyTable has n entries (or array items) of type 'V'.
func manyTable(n int, arr bool) []byte {
	items := make([][]byte, n)
	for i := range items {
		if arr {
			items[i] = val('V')
		} else {
			items[i] = entry(fmt.Sprint(i), val('V'))
		}
	}
	if arr {
		return table(entry("a", val('A', array(items...))))
	}
	return table(items...)
}

// badTables are headers tables that amqp091-go v1.16.0 rejects.
var badTables = []struct {
	name   string
	table  []byte
	reason string
}{
	{"unknown type", table(entry("k", val('Z', u32(0)))), `unknown field type 'Z' (0x5a) at table offset 6`},
	{"unknown type nested", table(entry("k", val('A', array(val('I', u32(1)), val('?'))))), `unknown field type '?' (0x3f) at table offset 16`},
	{"name past the end", cat(u32(3), []byte{9, 'a', 'b'}), "field table truncated at table offset 7"},
	{"no type code", cat(u32(2), shortstr("k")), "field table truncated at table offset 6"},
	{"value past the end", cat(u32(5), shortstr("k"), []byte{'I', 0, 0}), "field table truncated at table offset 9"},
	{"string past the end", cat(u32(7), shortstr("k"), []byte{'S', 0, 0, 0, 9}), "field table truncated at table offset 7"},
	{"nested length past its table", table(entry("k", val('F', cat(u32(100), entry("a", val('V')))))), "field table truncated at table offset 7"},
	{"array length past its table", table(entry("k", val('A', u32(100))), entry("z", val('V'))), "field table truncated at table offset 7"},
	{"too deep", deepTable(33, false), "tables or arrays nested deeper than 32 levels at table offset 235"},
	{"too deep with arrays", deepTable(33, true), "tables or arrays nested deeper than 32 levels at table offset 203"},
	{"too many entries", manyTable(8193, false), "table or array with more than 8192 elements at table offset 48046"},
	{"too many items", manyTable(8193, true), "table or array with more than 8192 elements at table offset 8203"},
}

// goodTables are edge cases amqp091-go v1.16.0 accepts.
var goodTables = []struct {
	name  string
	table []byte
}{
	{"empty", table()},
	{"deepest", deepTable(32, false)},
	{"deepest with arrays", deepTable(32, true)},
	{"most entries", manyTable(8192, false)},
	{"most items", manyTable(8192, true)},
	{"empty name and containers", table(entry("", val('F', table())), entry("a", val('A', array())), entry("s", val('S', longstr(""))))},
}

func TestBadTablesReplaced(t *testing.T) {
	t.Parallel()
	for _, tc := range badTables {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Content type before the table, correlation id after it.
			payload := props([]uint16{flagContentType | flagHeaders | 0x0400}, shortstr("application/json"), tc.table, shortstr("corr"))
			got, _ := inbound(t, cat(startFrame(), frame(frameHeader, 7, payload), bodyFrame()))
			frames, ok := splitFrames(got)
			if !ok || len(frames) != 3 {
				t.Fatalf("output is not three frames: % x", got)
			}
			out := frames[1]
			if out.typ != frameHeader || out.channel != 7 {
				t.Errorf("frame type %d channel %d, want 2 and 7", out.typ, out.channel)
			}
			reason, raw := markerOf(t, out.payload)
			if reason != tc.reason {
				t.Errorf("reason %q, want %q", reason, tc.reason)
			}
			if !bytes.Equal(raw, tc.table) {
				t.Errorf("raw headers differ from the original table")
			}
			// Everything around the table is kept.
			l, _ := locate(out.payload)
			end, _ := tableEnd(out.payload, l)
			if !bytes.Equal(out.payload[:l.table], payload[:l.table]) || !bytes.Equal(out.payload[end:], shortstr("corr")) {
				t.Errorf("properties around the table changed: % x", out.payload)
			}
		})
	}
}

func TestGoodTablesKept(t *testing.T) {
	t.Parallel()
	for _, tc := range goodTables {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := cat(startFrame(), headerFrame(tc.table))
			got, events := inbound(t, in)
			if !onlyRetyped(in, got, inboundPairs) {
				t.Errorf("inbound changed the frame beyond L->l: %+v", events)
			}
			wantEvents := 0
			if bytes.Contains(tc.table, val('L', u64(1))) {
				wantEvents = 1
			}
			if len(events) != wantEvents {
				t.Errorf("events %+v, want %d retype event(s)", events, wantEvents)
			}
		})
	}
}

func TestTruncatedTableDropsLaterProperties(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		flags []uint16
		props [][]byte
		want  uint16 // flags of the rebuilt frame
		note  bool   // reason says properties were dropped
	}{
		{"length past the frame", []uint16{flagContentEncoding | flagHeaders | 0x1000 | 0x0400},
			[][]byte{shortstr("utf-8"), u32(500), shortstr("k"), []byte{'V', 2}, shortstr("corr")},
			flagContentEncoding | flagHeaders, true},
		{"length cut short", []uint16{flagHeaders}, [][]byte{{0, 0}}, flagHeaders, false},
		{"no length at all", []uint16{flagHeaders}, nil, flagHeaders, false},
		{"second flags word", []uint16{flagHeaders | flagMore, 0x8000}, [][]byte{u32(9), shortstr("k")}, flagHeaders, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			payload := props(tc.flags, tc.props...)
			got, _ := inbound(t, cat(startFrame(), frame(frameHeader, 1, payload)))
			frames, ok := splitFrames(got)
			if !ok || len(frames) != 2 {
				t.Fatalf("output is not two frames: % x", got)
			}
			out := frames[1].payload
			if f := binary.BigEndian.Uint16(out[contentFixed:]); f != tc.want {
				t.Errorf("flags %#04x, want %#04x", f, tc.want)
			}
			reason, raw := markerOf(t, out)
			l, _ := locate(payload)
			if !bytes.Equal(raw, payload[l.table:]) {
				t.Errorf("raw % x, want the rest of the frame % x", raw, payload[l.table:])
			}
			if dropped := strings.Contains(reason, "properties after the headers were dropped"); dropped != tc.note {
				t.Errorf("reason %q: drop note %v, want %v", reason, dropped, tc.note)
			}
			ol, _ := locate(out)
			if end, ok := tableEnd(out, ol); !ok || end != len(out) {
				t.Errorf("rebuilt payload has bytes after the marker table")
			}
		})
	}
}

func TestPropertyLayouts(t *testing.T) {
	t.Parallel()
	l := val('L', u64(1))
	tbl := table(entry("k", l))
	tests := []struct {
		name    string
		payload []byte
		retype  bool
	}{
		{"headers only", props([]uint16{flagHeaders}, tbl), true},
		{"type and encoding first", props([]uint16{flagContentType | flagContentEncoding | flagHeaders | 0x0004},
			shortstr("application/json"), shortstr("utf-8"), tbl, shortstr("cluster")), true},
		{"two flags words", props([]uint16{flagContentType | flagHeaders | flagMore, 0x8000}, shortstr("L"), tbl, shortstr("L")), true},
		{"three flags words", props([]uint16{flagHeaders | flagMore, flagMore, 0}, tbl), true},
		{"no headers", props([]uint16{flagContentType | 0x0400}, shortstr("L"), shortstr("Lk")), false},
		{"no properties", props([]uint16{0}), false},
		{"flags missing", props(nil), false},
		{"flags word cut", cat(props(nil), []byte{0x20}), false},
		{"continuation word missing", props([]uint16{flagHeaders | flagMore}), false},
		{"content type cut", props([]uint16{flagContentType | flagHeaders}, []byte{9, 'a'}), false},
		{"content type missing", props([]uint16{flagContentType | flagHeaders}), false},
		{"too short", []byte{0, 60, 0}, false},
		{"empty", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := cat(startFrame(), frame(frameHeader, 1, tc.payload), bodyFrame())
			want := in
			if tc.retype {
				want = bytes.Replace(in, cat(shortstr("k"), l), cat(shortstr("k"), val('l', u64(1))), 1)
			}
			got, _ := inbound(t, in)
			if !bytes.Equal(got, want) {
				t.Errorf("inbound:\n got % x\nwant % x", got, want)
			}
		})
	}
}

// mixedStream has frames of every kind, one table to retype and one to
// replace.
func mixedStream() []byte {
	return cat(startFrame(), deliverFrame(), headerFrame(nestedTable('L', 'U')), bodyFrame(), heartbeatFrame(),
		deliverFrame(), headerFrame(badTables[0].table), frame(3, 1, bytes.Repeat([]byte("b"), 300)), heartbeatFrame())
}

func TestSplitReads(t *testing.T) {
	t.Parallel()
	stream := mixedStream()
	want, _ := inbound(t, stream)
	for _, bufSize := range []int{1, 2, 7, 8, 100, 4096} {
		for k := 1; k < len(stream); k++ {
			got, _ := readAll(t, []step{{data: stream[:k]}, {data: stream[k:]}}, bufSize)
			if !bytes.Equal(got, want) {
				t.Fatalf("read buffer %d, split at %d: output differs", bufSize, k)
			}
		}
		for _, sizes := range [][]int{{1}, {3, 5}, {13}} {
			got, _ := readAll(t, chunked(stream, sizes...), bufSize)
			if !bytes.Equal(got, want) {
				t.Fatalf("read buffer %d, chunks %v: output differs", bufSize, sizes)
			}
		}
	}
}

func TestSplitWrites(t *testing.T) {
	t.Parallel()
	stream := cat(protocolHeader, tuneOk(131072), deliverFrame(), headerFrame(nestedTable('l', 's')), bodyFrame(), heartbeatFrame(),
		frame(frameHeader, 2, props([]uint16{flagHeaders}, table(entry("k", val('s', u16(1)))))), bodyFrame())
	want, _ := outbound(t, stream)
	if bytes.Equal(want, stream) {
		t.Fatal("expected a rewrite")
	}
	for i := 0; i <= len(stream); i++ {
		for j := i; j <= len(stream); j += 1 + j%5 { // every i, a spread of j
			got, _ := outbound(t, stream[:i], stream[i:j], stream[j:])
			if !bytes.Equal(got, want) {
				t.Fatalf("writes split at %d and %d: output differs", i, j)
			}
		}
	}
	var writes [][]byte
	for i := range stream {
		writes = append(writes, stream[i:i+1])
	}
	if got, _ := outbound(t, writes...); !bytes.Equal(got, want) {
		t.Fatal("byte-by-byte writes: output differs")
	}
}

func TestTruncatedStream(t *testing.T) {
	t.Parallel()
	stream := cat(startFrame(), deliverFrame(), headerFrame(nestedTable('L', 'U')), bodyFrame())
	full, _ := inbound(t, stream)
	headerEnd := len(cat(startFrame(), deliverFrame(), headerFrame(nestedTable('L', 'U'))))
	for k := 0; k < len(stream); k++ {
		got, _ := readAll(t, []step{{data: stream[:k]}}, 64)
		want := stream[:k] // a content header cut short is passed on as it came
		if k >= headerEnd {
			want = full[:k]
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("stream cut at %d:\n got % x\nwant % x", k, got, want)
		}
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func TestReadTimeoutKeepsPartialFrame(t *testing.T) {
	t.Parallel()
	stream := mixedStream()
	want, _ := inbound(t, stream)
	for k := 1; k < len(stream); k++ {
		c := WrapConn(&scriptConn{steps: []step{{data: stream[:k], err: timeoutError{}}, {data: stream[k:]}}}, Options{})
		var got []byte
		timeouts := 0
		buf := make([]byte, 50)
		for {
			n, err := c.Read(buf)
			got = append(got, buf[:n]...)
			if errors.Is(err, io.EOF) {
				break
			}
			if errors.As(err, new(timeoutError)) {
				timeouts++
				continue
			}
			if err != nil {
				t.Fatalf("split %d: %v", k, err)
			}
		}
		if timeouts != 1 || !bytes.Equal(got, want) {
			t.Fatalf("split %d: %d timeouts, output equal %v", k, timeouts, bytes.Equal(got, want))
		}
	}
}

func TestReadErrorAfterData(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	stream := cat(startFrame(), headerFrame(nestedTable('L', 'U')))
	want, _ := inbound(t, stream)
	c := WrapConn(&scriptConn{steps: []step{{data: stream, err: boom}}}, Options{})
	got, err := io.ReadAll(struct{ io.Reader }{readerUntil{c, boom}})
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes (equal %v), err %v", len(got), bytes.Equal(got, want), err)
	}
}

// readerUntil turns a chosen error into io.EOF, for io.ReadAll.
type readerUntil struct {
	r    io.Reader
	stop error
}

func (r readerUntil) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if errors.Is(err, r.stop) {
		err = io.EOF
	}
	return n, err
}

func TestNotAMQP(t *testing.T) {
	t.Parallel()
	// A TLS record whose bytes would look like a content-header frame.
	tlsLike := cat([]byte{0x16, 3, 1, 0, 0x20}, headerFrame(nestedTable('L', 'U')), bytes.Repeat([]byte{2}, 40))
	tests := []struct {
		name   string
		stream []byte
		events int
	}{
		{"tls", tlsLike, 1},
		{"server refuses the protocol version", cat(protocolHeader, headerFrame(nestedTable('L', 'U'))), 0},
		{"content header without frame end", cat(startFrame(), bytes.TrimSuffix(headerFrame(nestedTable('L', 'U')), []byte{frameEnd}), []byte{0}, bodyFrame()), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, events := inbound(t, tc.stream)
			if tc.events == 0 {
				// Framing resumes after the protocol header.
				want := cat(protocolHeader, headerFrame(nestedTable('l', 's')))
				if !bytes.Equal(got, want) {
					t.Errorf("got % x", got)
				}
				return
			}
			if !bytes.Equal(got, tc.stream) {
				t.Errorf("a stream that is not AMQP framing was changed")
			}
			if len(events) != tc.events || events[0].Kind != KindPassthrough {
				t.Errorf("events %+v", events)
			}
		})
	}
	t.Run("outbound tls", func(t *testing.T) {
		t.Parallel()
		got, events := outbound(t, tlsLike[:3], tlsLike[3:])
		if !bytes.Equal(got, tlsLike) || len(events) != 1 || events[0].Kind != KindPassthrough {
			t.Errorf("outbound changed a TLS stream or did not say so: %+v", events)
		}
	})
	t.Run("outbound frame end missing", func(t *testing.T) {
		t.Parallel()
		bad := cat(protocolHeader, bytes.TrimSuffix(headerFrame(nestedTable('l', 's')), []byte{frameEnd}), []byte{0}, headerFrame(nestedTable('l', 's')))
		got, events := outbound(t, bad)
		if !bytes.Equal(got, bad) || len(events) != 1 || events[0].Kind != KindPassthrough {
			t.Errorf("outbound changed a stream that lost its framing: %+v", events)
		}
	})
}

func TestFrameMaxBoundsMarker(t *testing.T) {
	t.Parallel()
	big := table(entry("blob", val('S', longstr(strings.Repeat("x", 3500)))), entry("bad", val('Z')))
	const frameMax = 4096
	inner := &scriptConn{steps: []step{{data: cat(startFrame(), headerFrame(big))}}}
	c := WrapConn(inner, Options{})
	if _, err := c.Write(cat(protocolHeader, tuneOk(frameMax))); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	frames, ok := splitFrames(got)
	if !ok || len(frames) != 2 {
		t.Fatalf("bad output % x", got)
	}
	if size := len(frames[1].payload) + frameOverhead; size > frameMax {
		t.Errorf("rebuilt frame has %d bytes, over the negotiated %d", size, frameMax)
	}
	reason, raw := markerOf(t, frames[1].payload)
	if !strings.HasPrefix(reason, "unknown field type 'Z'") || !strings.Contains(reason, fmt.Sprintf("raw headers cut to the first %d of %d bytes", len(raw), len(big))) {
		t.Errorf("reason %q (raw %d bytes)", reason, len(raw))
	}
	if len(raw) < 2500 || !bytes.Equal(raw, big[:len(raw)]) {
		t.Errorf("raw copy has %d bytes, want a prefix of the table that fills the frame", len(raw))
	}
}

func TestWriteError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	inner := &scriptConn{writeErr: boom}
	c := WrapConn(inner, Options{})
	p := cat(protocolHeader, headerFrame(nestedTable('l', 's')))
	n, err := c.Write(p)
	if !errors.Is(err, boom) || n >= len(p) {
		t.Errorf("Write = %d, %v; want fewer than %d bytes and the inner error", n, err, len(p))
	}
}

func TestConnDelegates(t *testing.T) {
	t.Parallel()
	inner := &scriptConn{}
	c := WrapConn(inner, Options{})
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := c.SetDeadline(at); err != nil || !inner.deadline.Equal(at) {
		t.Errorf("SetDeadline did not reach the inner conn")
	}
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Errorf("Read(nil) = %d, %v", n, err)
	}
}

func TestDialer(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	if _, err := Dialer(func(string, string) (net.Conn, error) { return nil, boom }, Options{})("tcp", "x"); !errors.Is(err, boom) {
		t.Errorf("base error not returned: %v", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	c, err := Dialer(nil, Options{})("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, ok := c.(*conn); !ok {
		t.Errorf("Dialer returned %T, not the wrapper", c)
	}
	srv := <-accepted
	if srv == nil {
		t.Fatal("listener accepted nothing")
	}
	t.Cleanup(func() { _ = srv.Close() })
	// Deadlines reach the TCP conn and its errors come back unchanged.
	if err := c.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read = %v, want a deadline error passed through", err)
	}
}

func TestFixtureHeaders(t *testing.T) {
	t.Parallel()
	sawL := false
	for name, payload := range fixtureHeaders(t) {
		in := cat(startFrame(), frame(frameHeader, 1, payload))
		got, events := inbound(t, in)
		frames, ok := splitFrames(got)
		if !ok || len(frames) != 2 || len(got) != len(in) {
			t.Fatalf("%s: bad inbound output", name)
		}
		for _, e := range events {
			if e.Kind != KindRetype {
				t.Errorf("%s: event %+v", name, e)
			}
		}
		l, ok := locate(frames[1].payload)
		if !ok {
			t.Fatalf("%s: no headers", name)
		}
		h := decodeTable(t, frames[1].payload[l.table:])
		if v, ok := h["x-big"]; ok {
			sawL = true
			if v != int64(1<<40) {
				t.Errorf("%s: x-big = %#v, want int64 2**40", name, v)
			}
		}
		// Back out again: the Go form goes to the broker as py-amqp wrote it.
		back, _ := outbound(t, cat(protocolHeader, frame(frameHeader, 1, frames[1].payload)))
		if !bytes.Equal(back[len(protocolHeader):], in[len(startFrame()):]) {
			t.Errorf("%s: outbound(inbound(x)) != x", name)
		}
	}
	if !sawL {
		t.Error("no fixture carried the 'L' header x-big")
	}
}

func TestWideningRespectsFrameMax(t *testing.T) {
	t.Parallel()
	const frameMax = 4096
	// A content header exactly frame-max long, holding one int16.
	pad := frameMax - frameOverhead - len(props([]uint16{flagHeaders}, table(entry("k", val('s', u16(1))), entry("p", val('S', longstr(""))))))
	tbl := table(entry("k", val('s', u16(1))), entry("p", val('S', longstr(strings.Repeat("x", pad)))))
	hf := headerFrame(tbl)
	if len(hf) != frameMax {
		t.Fatalf("test frame has %d bytes", len(hf))
	}
	got, events := outbound(t, cat(protocolHeader, tuneOk(frameMax)), hf)
	if !bytes.Equal(got, cat(protocolHeader, tuneOk(frameMax), hf)) {
		t.Error("a frame that cannot grow was changed")
	}
	if len(events) != 1 || events[0].Kind != KindUnparsed || !strings.Contains(events[0].Detail, "frame-max 4096") {
		t.Errorf("events %+v", events)
	}
	// With two bytes less padding it widens to exactly frame-max.
	small := headerFrame(table(entry("k", val('s', u16(1))), entry("p", val('S', longstr(strings.Repeat("x", pad-2))))))
	got, _ = outbound(t, cat(protocolHeader, tuneOk(frameMax)), small)
	if frames, ok := splitFrames(got[len(protocolHeader):]); !ok || len(frames) != 2 || len(frames[1].payload)+frameOverhead != frameMax {
		t.Errorf("widened frame is not exactly frame-max long")
	}
}
