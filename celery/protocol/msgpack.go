package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
)

// msgpackToJSON converts a msgpack body to JSON in Python's format, the way
// Python's msgpack.unpackb(raw=False) followed by json.dumps would see it. Map
// keys must be strings; bin, ext and non-finite floats have no JSON form and
// are errors, as is any data after the first value.
func msgpackToJSON(body []byte) ([]byte, error) {
	r := mpReader{b: body}
	out, err := r.value(make([]byte, 0, 2*len(body)), 0)
	if err != nil {
		return nil, err
	}
	if r.p != len(body) {
		return nil, fmt.Errorf("msgpack: extra data at offset %d", r.p)
	}
	return out, nil
}

type mpReader struct {
	b []byte
	p int
}

var errMsgpackShort = errors.New("msgpack: unexpected end of data")

func (r *mpReader) take(n int) ([]byte, error) {
	if n < 0 || len(r.b)-r.p < n {
		return nil, errMsgpackShort
	}
	s := r.b[r.p : r.p+n]
	r.p += n
	return s, nil
}

func (r *mpReader) uint(n int) (uint64, error) {
	s, err := r.take(n)
	if err != nil {
		return 0, err
	}
	switch n {
	case 1:
		return uint64(s[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(s)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(s)), nil
	default:
		return binary.BigEndian.Uint64(s), nil
	}
}

func (r *mpReader) value(dst []byte, depth int) ([]byte, error) {
	if depth > maxNesting {
		return dst, errors.New("msgpack: nesting too deep")
	}
	s, err := r.take(1)
	if err != nil {
		return dst, err
	}
	c := s[0]
	switch {
	case c <= 0x7f:
		return strconv.AppendInt(dst, int64(c), 10), nil
	case c >= 0xe0:
		return strconv.AppendInt(dst, int64(int8(c)), 10), nil
	case c >= 0x80 && c <= 0x8f:
		return r.mapN(dst, int(c&0x0f), depth)
	case c >= 0x90 && c <= 0x9f:
		return r.arrayN(dst, int(c&0x0f), depth)
	case c >= 0xa0 && c <= 0xbf:
		return r.str(dst, int(c&0x1f))
	}
	switch c {
	case 0xc0:
		return append(dst, "null"...), nil
	case 0xc2:
		return append(dst, "false"...), nil
	case 0xc3:
		return append(dst, "true"...), nil
	case 0xca, 0xcb:
		var f float64
		if c == 0xca {
			u, err := r.uint(4)
			if err != nil {
				return dst, err
			}
			f = float64(math.Float32frombits(uint32(u)))
		} else {
			u, err := r.uint(8)
			if err != nil {
				return dst, err
			}
			f = math.Float64frombits(u)
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return dst, errors.New("msgpack: non-finite float has no JSON form")
		}
		return appendPyFloat(dst, f), nil
	case 0xcc, 0xcd, 0xce, 0xcf:
		u, err := r.uint(1 << (c - 0xcc))
		if err != nil {
			return dst, err
		}
		return strconv.AppendUint(dst, u, 10), nil
	case 0xd0, 0xd1, 0xd2, 0xd3:
		n := 1 << (c - 0xd0)
		u, err := r.uint(n)
		if err != nil {
			return dst, err
		}
		var v int64
		switch n {
		case 1:
			v = int64(int8(u))
		case 2:
			v = int64(int16(u))
		case 4:
			v = int64(int32(u))
		default:
			v = int64(u)
		}
		return strconv.AppendInt(dst, v, 10), nil
	case 0xd9, 0xda, 0xdb:
		n, err := r.uint(1 << (c - 0xd9))
		if err != nil {
			return dst, err
		}
		return r.str(dst, int(min(n, math.MaxInt32)))
	case 0xdc, 0xdd:
		n, err := r.uint(2 << (c - 0xdc))
		if err != nil {
			return dst, err
		}
		return r.arrayN(dst, int(min(n, math.MaxInt32)), depth)
	case 0xde, 0xdf:
		n, err := r.uint(2 << (c - 0xde))
		if err != nil {
			return dst, err
		}
		return r.mapN(dst, int(min(n, math.MaxInt32)), depth)
	case 0xc4, 0xc5, 0xc6:
		return dst, errors.New("msgpack: bin values have no JSON form")
	case 0xc7, 0xc8, 0xc9, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		return dst, errors.New("msgpack: ext values have no JSON form")
	default:
		return dst, fmt.Errorf("msgpack: invalid code 0x%02x", c)
	}
}

func (r *mpReader) str(dst []byte, n int) ([]byte, error) {
	s, err := r.take(n)
	if err != nil {
		return dst, err
	}
	if !utf8.Valid(s) {
		return dst, errors.New("msgpack: string is not valid UTF-8")
	}
	dst = append(dst, '"')
	for len(s) > 0 {
		c := s[0]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			dst = append(dst, c)
			s = s[1:]
			continue
		}
		ru, size := utf8.DecodeRune(s)
		dst = appendPyEscapedRune(dst, ru)
		s = s[size:]
	}
	return append(dst, '"'), nil
}

func (r *mpReader) arrayN(dst []byte, n, depth int) ([]byte, error) {
	dst = append(dst, '[')
	for i := range n {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		var err error
		if dst, err = r.value(dst, depth+1); err != nil {
			return dst, err
		}
	}
	return append(dst, ']'), nil
}

func (r *mpReader) mapN(dst []byte, n, depth int) ([]byte, error) {
	dst = append(dst, '{')
	for i := range n {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		if r.p >= len(r.b) {
			return dst, errMsgpackShort
		}
		c := r.b[r.p]
		if !(c >= 0xa0 && c <= 0xbf) && c != 0xd9 && c != 0xda && c != 0xdb {
			return dst, errors.New("msgpack: map key is not a string")
		}
		var err error
		if dst, err = r.value(dst, depth+1); err != nil {
			return dst, err
		}
		dst = append(dst, ": "...)
		if dst, err = r.value(dst, depth+1); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// jsonToMsgpack converts a valid JSON value to msgpack as Python's
// msgpack.packb(use_bin_type=True) packs the value json.loads makes of it:
// the smallest integer encoding, floats as float64, strings as str, dicts in
// key order with duplicate keys merged.
func jsonToMsgpack(raw []byte) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	if err := encodeMsgpack(enc, raw, 0); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func encodeMsgpack(enc *msgpack.Encoder, raw []byte, depth int) error {
	if depth > maxNesting {
		return errors.New("msgpack: nesting too deep")
	}
	switch jsonKind(raw) {
	case 'n':
		return enc.EncodeNil()
	case 't':
		return enc.EncodeBool(true)
	case 'f':
		return enc.EncodeBool(false)
	case '"':
		return enc.EncodeString(unquote(raw))
	case '[':
		if err := enc.EncodeArrayLen(countElems(raw)); err != nil {
			return err
		}
		return eachElem(raw, func(e []byte) error { return encodeMsgpack(enc, e, depth+1) })
	case '{':
		members, err := dedupMembers(raw)
		if err != nil {
			return err
		}
		if err := enc.EncodeMapLen(len(members)); err != nil {
			return err
		}
		for _, m := range members {
			if err := enc.EncodeString(m.key); err != nil {
				return err
			}
			if err := encodeMsgpack(enc, m.val, depth+1); err != nil {
				return err
			}
		}
		return nil
	default:
		s := string(raw)
		if _, isInt, _ := scanNumber(raw, 0); isInt {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				return enc.EncodeInt(n)
			}
			if u, err := strconv.ParseUint(s, 10, 64); err == nil {
				return enc.EncodeUint(u)
			}
			return fmt.Errorf("msgpack: integer %s does not fit in 64 bits", s)
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("msgpack: number %s is out of range", s)
		}
		return enc.EncodeFloat64(f)
	}
}

// member is one key/value pair of a JSON object.
type member struct {
	key string
	val []byte
}

// dedupMembers returns the members of a JSON object as a Python dict holds
// them: first position, last value.
func dedupMembers(raw []byte) ([]member, error) {
	var members []member
	var index map[string]int
	err := eachMember(raw, func(k, v []byte) error {
		key := unquote(k)
		if index == nil {
			index = make(map[string]int)
		}
		if at, dup := index[key]; dup {
			members[at].val = v
			return nil
		}
		index[key] = len(members)
		members = append(members, member{key: key, val: v})
		return nil
	})
	return members, err
}
