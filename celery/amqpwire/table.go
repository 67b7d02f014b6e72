package amqpwire

import (
	"encoding/binary"
	"fmt"
)

// Limits that amqp091-go v1.16.0 enforces while decoding a field table
// (maxFieldDepth and maxContainerElements in its read.go). A table that
// breaks them makes amqp091-go fail the frame, so the walker treats it as
// undecodable too.
const (
	maxDepth    = 32
	maxElements = 8192
)

// problem says why a field table could not be walked.
type problem uint8

const (
	problemTruncated problem = iota + 1
	problemUnknownType
	problemTooDeep
	problemTooMany
)

// tableError reports a field table that the walker cannot size. Off is the
// offset, counted from the first byte of the table's 4-byte length, of the
// byte where walking stopped.
type tableError struct {
	problem problem
	off     int
	typ     byte // the offending type code, for problemUnknownType
}

func (e *tableError) Error() string {
	switch e.problem {
	case problemUnknownType:
		return fmt.Sprintf("unknown field type %q (0x%02x) at table offset %d", e.typ, e.typ, e.off)
	case problemTooDeep:
		return fmt.Sprintf("tables or arrays nested deeper than %d levels at table offset %d", maxDepth, e.off)
	case problemTooMany:
		return fmt.Sprintf("table or array with more than %d elements at table offset %d", maxElements, e.off)
	default:
		return fmt.Sprintf("field table truncated at table offset %d", e.off)
	}
}

// Size classes returned by fieldSize besides fixed sizes (>= 0).
const (
	sizeUnknown = -1 - iota
	sizeLong    // 4-byte length, then that many bytes (S, x)
	sizeTable   // 4-byte length, then a nested field table (F)
	sizeArray   // 4-byte length, then field values without names (A)
)

// fieldSize classifies an AMQP field-value type code as written by
// amqp091-go or py-amqp. Lowercase 's' is sized as amqp091-go's int16:
// both directions only ever carry tables that amqp091-go either wrote or
// is about to read.
func fieldSize(t byte) int {
	switch t {
	case 'V':
		return 0
	case 't', 'b', 'B':
		return 1
	case 's', 'u', 'U':
		return 2
	case 'I', 'i', 'f':
		return 4
	case 'D':
		return 5
	case 'l', 'L', 'd', 'T':
		return 8
	case 'S', 'x':
		return sizeLong
	case 'F':
		return sizeTable
	case 'A':
		return sizeArray
	}
	return sizeUnknown
}

// walker sizes a field table and records the offsets of the type codes it
// would rewrite. It owns its position slice so that walking allocates
// nothing once warmed up; a walker is used by one goroutine at a time.
type walker struct {
	pairs [2][2]byte // {from, to} type codes
	repl  [256]byte  // repl[code] != 0: rewrite code to repl[code]
	pos   []int      // offsets (into the slice given to walk) of codes to rewrite
	base  int        // offset of the table's length word, for error offsets
}

func newWalker(pairs [2][2]byte) walker {
	w := walker{pairs: pairs}
	for _, p := range pairs {
		w.repl[p[0]] = p[1]
	}
	return w
}

// walk checks the field table whose 4-byte length starts at b[off] and
// must end by len(b). It returns the offset just past the table. On
// success w.pos holds the offsets of type codes to rewrite; nothing in b is
// changed.
func (w *walker) walk(b []byte, off int) (int, error) {
	w.pos = w.pos[:0]
	w.base = off
	end, err := w.span(b, off, len(b))
	if err != nil {
		return 0, err
	}
	if err := w.table(b, off+4, end, 0); err != nil {
		return 0, err
	}
	return end, nil
}

// count returns how many codes the last successful walk found for each of
// w.pairs.
func (w *walker) count(b []byte) (n [2]int) {
	for _, p := range w.pos {
		if b[p] == w.pairs[1][0] {
			n[1]++
		} else {
			n[0]++
		}
	}
	return n
}

// apply rewrites in place the type codes found by the last successful walk
// and returns how many were rewritten for each of w.pairs. Only for
// same-width pairs.
func (w *walker) apply(b []byte) (n [2]int) {
	n = w.count(b)
	for _, p := range w.pos {
		b[p] = w.repl[b[p]]
	}
	return n
}

func (w *walker) fail(p problem, off int) error {
	return &tableError{problem: p, off: off - w.base}
}

// span reads the 4-byte length at b[off] and returns the end offset of the
// value it prefixes, which must not pass end.
func (w *walker) span(b []byte, off, end int) (int, error) {
	if end-off < 4 {
		return 0, w.fail(problemTruncated, off)
	}
	n := binary.BigEndian.Uint32(b[off:])
	if uint64(n) > uint64(end-off-4) {
		return 0, w.fail(problemTruncated, off)
	}
	return off + 4 + int(n), nil
}

func (w *walker) table(b []byte, off, end, depth int) error {
	if depth > maxDepth {
		return w.fail(problemTooDeep, off)
	}
	for n := 0; off < end; n++ {
		if n == maxElements {
			return w.fail(problemTooMany, off)
		}
		// Name: a short string; then at least the type code must follow.
		off += 1 + int(b[off])
		if off >= end {
			return w.fail(problemTruncated, end)
		}
		var err error
		if off, err = w.value(b, off, end, depth); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) array(b []byte, off, end, depth int) error {
	if depth > maxDepth {
		return w.fail(problemTooDeep, off)
	}
	for n := 0; off < end; n++ {
		if n == maxElements {
			return w.fail(problemTooMany, off)
		}
		var err error
		if off, err = w.value(b, off, end, depth); err != nil {
			return err
		}
	}
	return nil
}

// value sizes the field value whose type code is at b[off] (off < end) and
// returns the offset just past it. depth is the nesting level of the
// container holding the value, counted as amqp091-go does.
func (w *walker) value(b []byte, off, end, depth int) (int, error) {
	t := b[off]
	size := fieldSize(t)
	if size == sizeUnknown {
		e := w.fail(problemUnknownType, off).(*tableError)
		e.typ = t
		return 0, e
	}
	if w.repl[t] != 0 {
		w.pos = append(w.pos, off)
	}
	off++
	if size >= 0 {
		if end-off < size {
			return 0, w.fail(problemTruncated, end)
		}
		return off + size, nil
	}
	next, err := w.span(b, off, end)
	if err != nil {
		return 0, err
	}
	switch size {
	case sizeTable:
		err = w.table(b, off+4, next, depth+1)
	case sizeArray:
		err = w.array(b, off+4, next, depth+1)
	}
	return next, err
}

// appendWidened appends a copy of the field table at b[off:] (from its
// length word on; it must have been walked without error) in which every
// code in w.repl is rewritten, and every 's' (int16) value is widened to
// 'I' (int32) with its sign, fixing the lengths of the containers around
// it. It returns the new slice and the offset just past the table in b.
func (w *walker) appendWidened(dst, b []byte, off int) ([]byte, int) {
	return w.appendContainer(dst, b, off, true)
}

func (w *walker) appendContainer(dst, b []byte, off int, named bool) ([]byte, int) {
	end := off + 4 + int(binary.BigEndian.Uint32(b[off:]))
	at := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	for p := off + 4; p < end; {
		if named {
			n := 1 + int(b[p])
			dst = append(dst, b[p:p+n]...)
			p += n
		}
		dst, p = w.appendValue(dst, b, p)
	}
	binary.BigEndian.PutUint32(dst[at:], uint32(len(dst)-at-4))
	return dst, end
}

func (w *walker) appendValue(dst, b []byte, p int) ([]byte, int) {
	t := b[p]
	switch size := fieldSize(t); {
	case t == 's':
		v := int32(int16(binary.BigEndian.Uint16(b[p+1:])))
		return binary.BigEndian.AppendUint32(append(dst, 'I'), uint32(v)), p + 3
	case size == sizeTable || size == sizeArray:
		return w.appendContainer(append(dst, t), b, p+1, size == sizeTable)
	default:
		if size < 0 {
			size = 4 + int(binary.BigEndian.Uint32(b[p+1:]))
		}
		if r := w.repl[t]; r != 0 {
			t = r
		}
		return append(append(dst, t), b[p+1:p+1+size]...), p + 1 + size
	}
}
