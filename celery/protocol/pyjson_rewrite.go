// This file holds the rewriting of raw JSON into Python's json.dumps format: values, arrays and
// objects, with duplicate keys kept where Python keeps them.

package protocol

import (
	"strconv"
	"unicode/utf8"
)

func rewriteValue(dst, d []byte, i, depth int) ([]byte, int, error) {
	if i >= len(d) {
		return dst, i, errAt(i, "unexpected end of input")
	}
	switch c := d[i]; c {
	case '{':
		return rewriteObject(dst, d, i, depth+1)
	case '[':
		return rewriteArray(dst, d, i, depth+1)
	case '"':
		end, esc, err := scanString(d, i)
		if err != nil {
			return dst, end, err
		}
		return appendPyStringRaw(dst, d[i:end], esc), end, nil
	case 't', 'f', 'n':
		lit := "null"
		if c == 't' {
			lit = "true"
		} else if c == 'f' {
			lit = "false"
		}
		end, err := scanLiteral(d, i, lit)
		if err != nil {
			return dst, end, err
		}
		return append(dst, lit...), end, nil
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			end, isInt, err := scanNumber(d, i)
			if err != nil {
				return dst, end, err
			}
			return appendPyNumber(dst, d[i:end], isInt), end, nil
		}
		return dst, i, errAt(i, "unexpected character "+strconv.QuoteRune(rune(c)))
	}
}

func rewriteArray(dst, d []byte, i, depth int) ([]byte, int, error) {
	if depth > maxNesting {
		return dst, i, errAt(i, "nesting too deep")
	}
	dst = append(dst, '[')
	j := skipSpace(d, i+1)
	if j < len(d) && d[j] == ']' {
		return append(dst, ']'), j + 1, nil
	}
	for {
		var err error
		if dst, j, err = rewriteValue(dst, d, j, depth); err != nil {
			return dst, j, err
		}
		j = skipSpace(d, j)
		if j >= len(d) {
			return dst, j, errAt(j, "unterminated array")
		}
		switch d[j] {
		case ',':
			dst = append(dst, ", "...)
			j = skipSpace(d, j+1)
		case ']':
			return append(dst, ']'), j + 1, nil
		default:
			return dst, j, errAt(j, "expected ',' or ']' in array")
		}
	}
}

// rawKey is a JSON key literal (with quotes) and whether it has escapes.
type rawKey struct {
	raw []byte
	esc bool
}

func (k rawKey) equal(o rawKey) bool {
	if !k.esc && !o.esc {
		return string(k.raw) == string(o.raw)
	}
	return unquoteWTF(k.raw) == unquoteWTF(o.raw)
}

// unquoteWTF decodes a JSON string literal into a Go string that keeps lone
// surrogates distinct (they are encoded WTF-8 style), for key comparison only.
func unquoteWTF(raw []byte) string {
	buf := make([]byte, 0, len(raw))
	decodeCodePoints(raw, func(r rune) {
		if r >= 0xd800 && r <= 0xdfff {
			buf = append(buf, 0xed, byte(0x80|(r>>6)&0x3f), byte(0x80|r&0x3f))
			return
		}
		buf = utf8.AppendRune(buf, r)
	})
	return string(buf)
}

// keyTracker detects duplicate object keys: a linear scan for small objects, a
// map beyond that.
type keyTracker struct {
	buf  [16]rawKey
	keys []rawKey
	set  map[string]struct{}
}

// add records k and reports whether it was already present.
func (t *keyTracker) add(k rawKey) bool {
	if t.set != nil {
		s := unquoteWTF(k.raw)
		if _, dup := t.set[s]; dup {
			return true
		}
		t.set[s] = struct{}{}
		return false
	}
	if t.keys == nil {
		t.keys = t.buf[:0]
	}
	for _, o := range t.keys {
		if o.equal(k) {
			return true
		}
	}
	if len(t.keys) < len(t.buf) {
		t.keys = append(t.keys, k)
		return false
	}
	t.set = make(map[string]struct{}, 2*len(t.buf))
	for _, o := range t.keys {
		t.set[unquoteWTF(o.raw)] = struct{}{}
	}
	t.set[unquoteWTF(k.raw)] = struct{}{}
	return false
}

func rewriteObject(dst, d []byte, i, depth int) ([]byte, int, error) {
	if depth > maxNesting {
		return dst, i, errAt(i, "nesting too deep")
	}
	start := len(dst)
	dst = append(dst, '{')
	j := skipSpace(d, i+1)
	if j < len(d) && d[j] == '}' {
		return append(dst, '}'), j + 1, nil
	}
	var seen keyTracker
	for {
		if j >= len(d) || d[j] != '"' {
			return dst, j, errAt(j, "expected a string key")
		}
		kend, esc, err := scanString(d, j)
		if err != nil {
			return dst, kend, err
		}
		key := rawKey{raw: d[j:kend], esc: esc}
		if seen.add(key) {
			return rewriteObjectDedup(dst[:start], d, i, depth)
		}
		v := skipSpace(d, kend)
		if v >= len(d) || d[v] != ':' {
			return dst, v, errAt(v, "expected ':' after object key")
		}
		dst = appendPyStringRaw(dst, key.raw, key.esc)
		dst = append(dst, ": "...)
		if dst, j, err = rewriteValue(dst, d, skipSpace(d, v+1), depth); err != nil {
			return dst, j, err
		}
		j = skipSpace(d, j)
		if j >= len(d) {
			return dst, j, errAt(j, "unterminated object")
		}
		switch d[j] {
		case ',':
			dst = append(dst, ", "...)
			j = skipSpace(d, j+1)
		case '}':
			return append(dst, '}'), j + 1, nil
		default:
			return dst, j, errAt(j, "expected ',' or '}' in object")
		}
	}
}

// rewriteObjectDedup is the slow path of rewriteObject for objects with
// duplicate keys: Python keeps the first position and the last value.
func rewriteObjectDedup(dst, d []byte, i, depth int) ([]byte, int, error) {
	end, err := scanObject(d, i, depth)
	if err != nil {
		return dst, end, err
	}
	type member struct {
		key rawKey
		val []byte
	}
	var members []member
	index := map[string]int{}
	err = eachMember(d[i:end], func(k, v []byte) error {
		s := unquoteWTF(k)
		if at, dup := index[s]; dup {
			members[at].val = v
			return nil
		}
		index[s] = len(members)
		members = append(members, member{key: rawKey{raw: k, esc: true}, val: v})
		return nil
	})
	if err != nil {
		return dst, end, err
	}
	dst = append(dst, '{')
	for n, m := range members {
		if n > 0 {
			dst = append(dst, ", "...)
		}
		dst = appendPyStringRaw(dst, m.key.raw, true)
		dst = append(dst, ": "...)
		if dst, _, err = rewriteValue(dst, m.val, 0, depth); err != nil {
			return dst, end, err
		}
	}
	return append(dst, '}'), end, nil
}
