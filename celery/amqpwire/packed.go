package amqpwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unsafe"
)

// PackedHeadersHeader is, with [Options.PackHeaders], the only entry of an
// inbound headers table that walked: a byte array ('x') holding the
// original table, from its 4-byte length on, after the inbound retyping.
// [UnpackHeaders] turns it back into the table amqp091-go would have
// decoded.
const PackedHeadersHeader = "x-forumads-packed-headers"

// packedExtra is what packing adds to a content-header payload: the new
// table's length word and the entry's name and type code. (The original
// table's length word becomes the byte array's length prefix's payload.)
const packedExtra = 4 + 1 + len(PackedHeadersHeader) + 1 + 4

// appendPackedFrame appends to dst the content-header frame with its
// headers table (payload[l.table:end], already walked and retyped)
// wrapped in a one-entry table holding it as a byte array.
func appendPackedFrame(dst, frame []byte, l layout, end int) []byte {
	payload := frame[frameHead : len(frame)-1]
	start := len(dst)
	dst = append(dst, frame[:frameHead]...)
	dst = append(dst, payload[:l.table]...)
	raw := payload[l.table:end]
	dst = binary.BigEndian.AppendUint32(dst, uint32(1+len(PackedHeadersHeader)+1+4+len(raw)))
	dst = append(dst, byte(len(PackedHeadersHeader)))
	dst = append(dst, PackedHeadersHeader...)
	dst = append(dst, 'x')
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(raw)))
	dst = append(dst, raw...)
	dst = append(dst, payload[end:]...)
	dst = append(dst, frameEnd)
	binary.BigEndian.PutUint32(dst[start+3:], uint32(len(dst)-start-frameOverhead))
	return dst
}

// UnpackHeaders returns the headers table a packed one ([PackedHeadersHeader])
// holds, decoded to the Go types amqp091-go v1.16.0 gives each field type
// (after the wrapper's retyping: see the package documentation), nested
// tables as T and arrays as []any; decimal builds a 'D' value. With T =
// amqp.Table and decimal returning an amqp.Decimal the result is what
// amqp091-go itself would have decoded (the package stays free of
// amqp091-go: only the AMQP adapter imports it). A table that is not packed is
// returned as it is. The strings and byte arrays of the result share the
// packed bytes, which amqp091-go allocated for this delivery alone: one
// allocation holds them all. An error means the packed bytes are not a
// table the wrapper could have walked (never expected: the wrapper packs
// only tables that walked).
func UnpackHeaders[T ~map[string]any, D any](h T, decimal func(scale uint8, value int32) D) (T, error) {
	raw, ok := h[PackedHeadersHeader].([]byte)
	if !ok || len(h) != 1 {
		return h, nil
	}
	if len(raw) < 4 || int64(binary.BigEndian.Uint32(raw)) != int64(len(raw)-4) {
		return nil, errors.New("amqpwire: packed headers: bad table length")
	}
	d := fieldDecoder[T, D]{b: raw, decimal: decimal}
	return d.table(4, len(raw), 0)
}

// fieldDecoder decodes a field table held in b, which it never changes
// and whose bytes its strings and byte arrays share.
type fieldDecoder[T ~map[string]any, D any] struct {
	b       []byte
	decimal func(scale uint8, value int32) D
}

var errPacked = errors.New("amqpwire: packed headers: malformed field table")

// str returns b[i:j] as a string sharing b's bytes.
func (d *fieldDecoder[T, D]) str(i, j int) string {
	if i == j {
		return ""
	}
	return unsafe.String(&d.b[i], j-i)
}

// table decodes the fields in b[i:end].
func (d *fieldDecoder[T, D]) table(i, end, depth int) (T, error) {
	if depth > maxDepth {
		return nil, errPacked
	}
	t := make(T, countFields(d.b[i:end]))
	for i < end {
		n := int(d.b[i])
		if end-i < 1+n {
			return nil, errPacked
		}
		key := d.str(i+1, i+1+n)
		v, next, err := d.value(i+1+n, end, depth)
		if err != nil {
			return nil, err
		}
		if len(t) >= maxElements {
			return nil, errPacked
		}
		t[key] = v
		i = next
	}
	return t, nil
}

// countFields is a size hint for a table's map: its entries, counted
// without decoding (at most maxElements, 0 when the bytes do not walk).
func countFields(b []byte) int {
	n := 0
	for i := 0; i < len(b) && n < maxElements; n++ {
		if i+int(b[i])+2 > len(b) {
			return 0
		}
		i += 1 + int(b[i])
		size := fieldSize(b[i])
		i++
		switch {
		case size >= 0:
			i += size
		case size == sizeUnknown || len(b)-i < 4:
			return 0
		default:
			i += 4 + int(binary.BigEndian.Uint32(b[i:]))
		}
	}
	return n
}

// value decodes the field value whose type code is at b[i], within b[:end],
// and returns the offset past it.
func (d *fieldDecoder[T, D]) value(i, end, depth int) (any, int, error) {
	if i >= end {
		return nil, 0, errPacked
	}
	typ := d.b[i]
	i++
	size := fieldSize(typ)
	if size >= 0 && end-i < size {
		return nil, 0, errPacked
	}
	b := d.b[i:end]
	switch typ {
	case 'V':
		return nil, i, nil
	case 't':
		return b[0] != 0, i + 1, nil
	case 'B':
		return b[0], i + 1, nil
	case 'b':
		return int8(b[0]), i + 1, nil
	case 's':
		return int16(binary.BigEndian.Uint16(b)), i + 2, nil
	case 'u':
		return binary.BigEndian.Uint16(b), i + 2, nil
	case 'I':
		return int32(binary.BigEndian.Uint32(b)), i + 4, nil
	case 'i':
		return binary.BigEndian.Uint32(b), i + 4, nil
	case 'f':
		return math.Float32frombits(binary.BigEndian.Uint32(b)), i + 4, nil
	case 'D':
		return d.decimal(b[0], int32(binary.BigEndian.Uint32(b[1:]))), i + 5, nil
	case 'l':
		return int64(binary.BigEndian.Uint64(b)), i + 8, nil
	case 'd':
		return math.Float64frombits(binary.BigEndian.Uint64(b)), i + 8, nil
	case 'T':
		return time.Unix(int64(binary.BigEndian.Uint64(b)), 0), i + 8, nil
	}
	if size >= 0 || size == sizeUnknown { // 'L' and 'U' were retyped before packing
		return nil, 0, fmt.Errorf("amqpwire: packed headers: unknown field type %q", typ)
	}
	if len(b) < 4 {
		return nil, 0, errPacked
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return nil, 0, errPacked
	}
	i += 4
	stop := i + int(n)
	switch typ {
	case 'S':
		return d.str(i, stop), stop, nil
	case 'x':
		return d.b[i:stop:stop], stop, nil
	case 'F':
		t, err := d.table(i, stop, depth+1)
		return t, stop, err
	case 'A':
		a, err := d.array(i, stop, depth+1)
		return a, stop, err
	}
	return nil, 0, fmt.Errorf("amqpwire: packed headers: unknown field type %q", typ)
}

// array decodes the field values in b[i:end]; no values is a nil slice, as
// amqp091-go gives it.
func (d *fieldDecoder[T, D]) array(i, end, depth int) ([]any, error) {
	if depth > maxDepth {
		return nil, errPacked
	}
	var a []any
	for i < end {
		v, next, err := d.value(i, end, depth)
		if err != nil {
			return nil, err
		}
		if len(a) >= maxElements {
			return nil, errPacked
		}
		a = append(a, v)
		i = next
	}
	return a, nil
}
