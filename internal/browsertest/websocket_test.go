package browsertest

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReadMessage feeds arbitrary bytes to the frame reader: it never panics, never returns more
// than maxFrame bytes, and a message written as masked frames (as the client writes them) reads
// back whole, with any pings answered on the way.
func FuzzReadMessage(f *testing.F) {
	f.Add([]byte{0x81, 0x03, 'a', 'b', 'c'}, []byte("hello"))
	f.Add([]byte{0x01, 0x01, 'a', 0x89, 0x00, 0x80, 0x01, 'b'}, []byte{})
	f.Add([]byte{0x88, 0x00}, bytes.Repeat([]byte("x"), 70000))
	f.Add([]byte{0x81, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, []byte("{}"))
	f.Add([]byte{0x81, 0xFE, 0x00, 0x10, 1, 2, 3, 4}, bytes.Repeat([]byte("y"), 300))
	f.Fuzz(func(t *testing.T, raw, payload []byte) {
		msg, err := readMessage(bytes.NewReader(raw), func([]byte) error { return nil })
		if err == nil && len(msg) > maxFrame {
			t.Fatalf("a %d-byte message", len(msg))
		}

		// Round trip: a ping, then payload split into two fragments.
		half := len(payload) / 2
		var in []byte
		in = appendFrame(in, 0x9, []byte("ping"))
		in = appendFrame(in, 0x1, payload[:half])
		in[len(in)-len(payload[:half])-frameHeaderLen(half)] &^= 0x80 // first fragment: FIN clear
		in = appendFrame(in, 0x0, payload[half:])
		var pings [][]byte
		got, err := readMessage(bytes.NewReader(in), func(p []byte) error { pings = append(pings, p); return nil })
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("round trip of %d bytes: got %d bytes, %v", len(payload), len(got), err)
		}
		if len(pings) != 1 || string(pings[0]) != "ping" {
			t.Fatalf("pings answered: %q", pings)
		}
		if _, err := readMessage(bytes.NewReader(appendFrame(nil, 0x8, nil)), nil); !errors.Is(err, io.EOF) {
			t.Fatalf("close frame: %v, want io.EOF", err)
		}
	})
}

// frameHeaderLen is the size of a masked client frame's header for an n-byte payload.
func frameHeaderLen(n int) int {
	switch {
	case n < 126:
		return 2 + 4
	case n <= 0xFFFF:
		return 4 + 4
	default:
		return 10 + 4
	}
}
