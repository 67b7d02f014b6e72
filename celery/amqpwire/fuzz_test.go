package amqpwire

import (
	"bytes"
	"errors"
	"testing"
)

// seedStreams are well-formed inbound streams: every captured Celery
// content header as RabbitMQ delivers it, plus the hand-built cases.
func seedStreams(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, payload := range fixtureHeaders(f) {
		seeds = append(seeds, cat(startFrame(), deliverFrame(), frame(frameHeader, 1, payload), bodyFrame()))
	}
	seeds = append(seeds, mixedStream())
	for _, tc := range badTables[:8] {
		seeds = append(seeds, cat(startFrame(), headerFrame(tc.table)))
	}
	return seeds
}

// checkHeaderTable asserts what amqp091-go needs of an inbound content
// header after the wrapper: its headers table, if it has one, walks (so
// amqp091-go will not fail on it) and holds no 'L' or 'U'.
func checkHeaderTable(t *testing.T, payload []byte) {
	t.Helper()
	l, ok := locate(payload)
	if !ok {
		return
	}
	w := newWalker([2][2]byte{{'L', 'l'}, {'U', 's'}})
	if _, err := w.walk(payload, l.table); err != nil {
		var te *tableError
		if !errors.As(err, &te) {
			t.Fatalf("walk error %T is not a *tableError", err)
		}
		t.Fatalf("wrapper delivered a headers table amqp091-go cannot read: %v", err)
	}
	if len(w.pos) != 0 {
		t.Fatalf("wrapper delivered %d 'L'/'U' codes", len(w.pos))
	}
}

func FuzzInbound(f *testing.F) {
	for i, s := range seedStreams(f) {
		f.Add(s, uint8(i))
	}
	f.Add([]byte("AMQP\x00\x00\x09\x01"), uint8(0))
	f.Add([]byte{0x16, 3, 1, 0, 5, 2, 0, 1}, uint8(1))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		got, _ := inbound(t, stream)
		// Splitting the input differently never changes the output.
		split, _ := readAll(t, chunked(stream, int(chunk)+1), int(chunk)%19+1)
		if !bytes.Equal(got, split) {
			t.Fatalf("output depends on how reads are split (chunk %d)", chunk)
		}
		in, ok := splitFrames(stream)
		if !ok || len(in) == 0 || in[0].typ != frameMethod {
			if len(stream) > 0 && stream[0] != 'A' && stream[0] != frameMethod && !bytes.Equal(got, stream) {
				t.Fatal("a stream that is not AMQP was changed")
			}
			return
		}
		out, ok := splitFrames(got)
		if !ok || len(out) != len(in) {
			t.Fatalf("well-formed input (%d frames) gave malformed output", len(in))
		}
		for i := range in {
			a, b := in[i], out[i]
			if a.typ != b.typ || a.channel != b.channel {
				t.Fatalf("frame %d: type/channel changed", i)
			}
			if a.typ != frameHeader {
				if !bytes.Equal(a.payload, b.payload) {
					t.Fatalf("frame %d (type %d) changed", i, a.typ)
				}
				continue
			}
			checkHeaderTable(t, b.payload)
			if len(a.payload) == len(b.payload) && onlyRetyped(a.payload, b.payload, inboundPairs) {
				continue
			}
			// Otherwise the table was replaced: the marker holds the
			// original table bytes, or a prefix of them.
			_, raw := markerOf(t, b.payload)
			l, _ := locate(a.payload)
			if !bytes.HasPrefix(a.payload[l.table:], raw) {
				t.Fatalf("frame %d: raw headers are not the original table", i)
			}
		}
	})
}

func FuzzOutbound(f *testing.F) {
	for i, s := range seedStreams(f) {
		goForm, _ := inbound(f, s)
		f.Add(cat(protocolHeader, tuneOk(131072), goForm[len(startFrame()):]), uint16(i), uint16(3*i))
	}
	f.Add([]byte{0x16, 3, 1, 0, 5, 2, 0, 1}, uint16(1), uint16(2))
	f.Fuzz(func(t *testing.T, stream []byte, i, j uint16) {
		got, _ := outbound(t, stream)
		a := min(int(i), len(stream))
		b := min(max(int(j), a), len(stream))
		if split, _ := outbound(t, stream[:a], stream[a:b], stream[b:]); !bytes.Equal(split, got) {
			t.Fatalf("output depends on how writes are split (%d, %d)", a, b)
		}
		if len(stream) > 0 && stream[0] != 'A' && !bytes.Equal(got, stream) {
			t.Fatal("a stream that is not AMQP was changed")
		}
		if !bytes.HasPrefix(stream, protocolHeader) {
			return
		}
		in, ok := splitFrames(stream[len(protocolHeader):])
		if !ok {
			return
		}
		out, ok := splitFrames(got[len(protocolHeader):])
		if !ok || len(out) != len(in) || !bytes.HasPrefix(got, protocolHeader) {
			t.Fatalf("well-formed input (%d frames) gave malformed output", len(in))
		}
		roundTrip := true
		for k := range in {
			a, b := in[k], out[k]
			if a.typ != b.typ || a.channel != b.channel {
				t.Fatalf("frame %d: type/channel changed", k)
			}
			if a.typ != frameHeader {
				if !bytes.Equal(a.payload, b.payload) {
					t.Fatalf("frame %d (type %d) changed", k, a.typ)
				}
				continue
			}
			l, ok := locate(a.payload)
			if !ok {
				if !bytes.Equal(a.payload, b.payload) {
					t.Fatalf("frame %d: header without a table changed", k)
				}
				continue
			}
			py := newWalker([2][2]byte{{'L', 'l'}, {'U', 's'}})
			if _, err := py.walk(a.payload, l.table); err != nil || len(py.pos) > 0 {
				roundTrip = false // inbound would replace or retype it
			}
			if len(a.payload) == len(b.payload) {
				if !onlyRetyped(a.payload, b.payload, outboundPairs) {
					t.Fatalf("frame %d: more than l->L in place", k)
				}
				continue
			}
			// int16 values were widened: the table still walks, holds
			// neither 'l' nor 's', and everything around it is kept.
			goCodes := newWalker([2][2]byte{{'l', 'L'}, {'s', 'I'}})
			end, err := goCodes.walk(b.payload, l.table)
			if err != nil || len(goCodes.pos) > 0 {
				t.Fatalf("frame %d: widened table is bad (%v, %d Go codes left)", k, err, len(goCodes.pos))
			}
			aEnd, _ := tableEnd(a.payload, l)
			if !bytes.Equal(a.payload[:l.table], b.payload[:l.table]) || !bytes.Equal(a.payload[aEnd:], b.payload[end:]) {
				t.Fatalf("frame %d: properties around the table changed", k)
			}
			roundTrip = false
		}
		// For tables without int16 values or py-amqp codes, reading back
		// what was sent gives the original.
		if roundTrip {
			back, _ := inbound(t, cat(startFrame(), got[len(protocolHeader):]))
			if want := cat(startFrame(), stream[len(protocolHeader):]); !bytes.Equal(back, want) {
				t.Fatal("inbound(outbound(x)) != x")
			}
		}
	})
}
