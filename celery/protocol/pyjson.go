package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// PyJSON serializes v exactly as Python's json.dumps does with its default
// settings, which is how Celery clients write message bodies:
//
//   - separators ", " and ": ";
//   - ensure_ascii: every character outside printable ASCII is written as a
//     lowercase \uXXXX escape, characters beyond the BMP as a surrogate pair, and
//     lone surrogates are kept as they came in;
//   - numbers as Python prints them after json.loads: integers unchanged (however
//     long, "-0" becomes "0"), other numbers as Python's float repr ("1E5" becomes
//     "100000.0"). A number too large for a double is kept as written, because the
//     "Infinity" Python would print is not JSON;
//   - objects keep their key order; a duplicate key keeps the position of its
//     first occurrence and the value of its last, as a Python dict does.
//
// v may be a [json.RawMessage] (validated and rewritten; nothing is re-ordered),
// a []json.RawMessage, a map[string]json.RawMessage or map[string]any (keys
// sorted, since Go maps have no order), []any, a string, bool, integer, float,
// [json.Number] or nil. Any other value goes through [json.Marshal] first.
// Invalid JSON, invalid UTF-8 in a raw message, nesting deeper than 1000 levels
// and non-finite floats are errors.
func PyJSON(v any) ([]byte, error) {
	return appendPyJSON(nil, v, 0)
}

func appendPyJSON(dst []byte, v any, depth int) ([]byte, error) {
	if depth > maxNesting {
		return dst, errors.New("protocol: PyJSON: nesting too deep")
	}
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case json.RawMessage:
		if x == nil {
			return append(dst, "null"...), nil
		}
		return appendPyRaw(dst, x)
	case []json.RawMessage:
		if x == nil {
			return append(dst, "null"...), nil
		}
		return appendPyRawList(dst, x)
	case map[string]json.RawMessage:
		if x == nil {
			return append(dst, "null"...), nil
		}
		return appendPyRawObject(dst, nil, x)
	case string:
		return appendPyString(dst, x), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int8:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int16:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case uint:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint8:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint16:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint32:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint64:
		return strconv.AppendUint(dst, x, 10), nil
	case float32:
		return appendPyJSON(dst, float64(x), depth)
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return dst, fmt.Errorf("protocol: PyJSON: unsupported float %v", x)
		}
		return appendPyFloat(dst, x), nil
	case json.Number:
		end, isInt, err := scanNumber([]byte(x), 0)
		if err != nil || end != len(x) {
			return dst, fmt.Errorf("protocol: PyJSON: invalid json.Number %q", string(x))
		}
		return appendPyNumber(dst, []byte(x), isInt), nil
	case []any:
		if x == nil {
			return append(dst, "null"...), nil
		}
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			var err error
			if dst, err = appendPyJSON(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case map[string]any:
		if x == nil {
			return append(dst, "null"...), nil
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendPyString(dst, k)
			dst = append(dst, ": "...)
			var err error
			if dst, err = appendPyJSON(dst, x[k], depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return dst, fmt.Errorf("protocol: PyJSON: %w", err)
		}
		return appendPyRaw(dst, b)
	}
}

// appendPyRaw validates one JSON value (surrounding whitespace allowed) and
// appends it in Python's format.
func appendPyRaw(dst, raw []byte) ([]byte, error) {
	i := skipSpace(raw, 0)
	dst, end, err := rewriteValue(dst, raw, i, 0)
	if err != nil {
		return dst, err
	}
	if j := skipSpace(raw, end); j != len(raw) {
		return dst, errAt(j, "extra data after the JSON value")
	}
	return dst, nil
}

func appendPyRawList(dst []byte, items []json.RawMessage) ([]byte, error) {
	dst = append(dst, '[')
	for i, it := range items {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		var err error
		if dst, err = appendPyRaw(dst, it); err != nil {
			return dst, err
		}
	}
	return append(dst, ']'), nil
}

// appendPyRawObject writes m in the order given by order (see [orderedKeys]).
func appendPyRawObject(dst []byte, order []string, m map[string]json.RawMessage) ([]byte, error) {
	dst = append(dst, '{')
	for i, k := range orderedKeys(order, m) {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = appendPyString(dst, k)
		dst = append(dst, ": "...)
		var err error
		if dst, err = appendPyRaw(dst, m[k]); err != nil {
			return dst, fmt.Errorf("protocol: value of key %q: %w", k, err)
		}
	}
	return append(dst, '}'), nil
}

// orderedKeys returns the keys of m: first those listed in order (each once,
// skipping names m lacks), then the rest sorted. It returns order itself when
// that already lists every key exactly once.
func orderedKeys[V any](order []string, m map[string]V) []string {
	if len(order) == len(m) && listsEachOnce(order, m) {
		return order
	}
	keys := make([]string, 0, len(m))
	seen := make(map[string]struct{}, len(m))
	for _, k := range order {
		if _, in := m[k]; in {
			if _, dup := seen[k]; !dup {
				seen[k] = struct{}{}
				keys = append(keys, k)
			}
		}
	}
	rest := len(keys)
	for k := range m {
		if _, done := seen[k]; !done {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys[rest:])
	return keys
}

// listsEachOnce reports whether every name in order is a key of m and no name
// repeats. With len(order) == len(m) that means order lists all of m.
func listsEachOnce[V any](order []string, m map[string]V) bool {
	for _, k := range order {
		if _, in := m[k]; !in {
			return false
		}
	}
	if len(order) <= 16 {
		for i := range order {
			if slices.Contains(order[:i], order[i]) {
				return false
			}
		}
		return true
	}
	seen := make(map[string]struct{}, len(order))
	for _, k := range order {
		seen[k] = struct{}{}
	}
	return len(seen) == len(order)
}

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

// appendPyStringRaw rewrites a valid JSON string literal in Python's
// ensure_ascii form.
func appendPyStringRaw(dst, raw []byte, esc bool) []byte {
	if !esc {
		plain := true
		for _, c := range raw[1 : len(raw)-1] {
			if c < 0x20 || c >= 0x7f {
				plain = false
				break
			}
		}
		if plain {
			return append(dst, raw...)
		}
	}
	dst = append(dst, '"')
	decodeCodePoints(raw, func(r rune) { dst = appendPyEscapedRune(dst, r) })
	return append(dst, '"')
}

// appendPyString writes a Go string as a Python ensure_ascii JSON string.
// Invalid UTF-8 bytes are written as U+FFFD.
func appendPyString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for _, r := range s {
		dst = appendPyEscapedRune(dst, r)
	}
	return append(dst, '"')
}

const lowerHex = "0123456789abcdef"

func appendPyEscapedRune(dst []byte, r rune) []byte {
	switch {
	case r == '"':
		return append(dst, '\\', '"')
	case r == '\\':
		return append(dst, '\\', '\\')
	case r >= 0x20 && r < 0x7f:
		return append(dst, byte(r))
	case r == '\n':
		return append(dst, '\\', 'n')
	case r == '\r':
		return append(dst, '\\', 'r')
	case r == '\t':
		return append(dst, '\\', 't')
	case r == '\b':
		return append(dst, '\\', 'b')
	case r == '\f':
		return append(dst, '\\', 'f')
	case r >= 0x10000:
		r1, r2 := utf16.EncodeRune(r)
		return appendU4(appendU4(dst, r1), r2)
	default:
		return appendU4(dst, r)
	}
}

func appendU4(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u', lowerHex[r>>12&0xf], lowerHex[r>>8&0xf], lowerHex[r>>4&0xf], lowerHex[r&0xf])
}

// appendPyNumber writes a valid JSON number literal the way Python prints the
// value json.loads makes of it.
func appendPyNumber(dst, lit []byte, isInt bool) []byte {
	if isInt {
		if len(lit) == 2 && lit[0] == '-' && lit[1] == '0' {
			return append(dst, '0')
		}
		return append(dst, lit...)
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil { // out of range: Python would print Infinity, which is not JSON
		return append(dst, lit...)
	}
	return appendPyFloat(dst, f)
}

// appendPyFloat writes f as Python's repr(float) does: the shortest digits that
// round-trip, positional notation for exponents -4 <= e < 16, scientific
// otherwise ("1e-05", "1e+16"), and always a ".0" on integral positional values.
// Infinities and NaN print as inf, -inf and nan.
func appendPyFloat(dst []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "nan"...)
	case math.IsInf(f, 1):
		return append(dst, "inf"...)
	case math.IsInf(f, -1):
		return append(dst, "-inf"...)
	case f == 0:
		if math.Signbit(f) {
			return append(dst, "-0.0"...)
		}
		return append(dst, "0.0"...)
	}
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64) // [-]d[.ddd]e±dd
	neg := e[0] == '-'
	if neg {
		e = e[1:]
	}
	var digits [24]byte
	nd := 0
	k := 0
	for ; e[k] != 'e'; k++ {
		if e[k] != '.' {
			digits[nd] = e[k]
			nd++
		}
	}
	exp, _ := strconv.Atoi(string(e[k+1:]))
	decpt := exp + 1
	if neg {
		dst = append(dst, '-')
	}
	if decpt > -4 && decpt <= 16 {
		switch {
		case decpt <= 0:
			dst = append(dst, '0', '.')
			for range -decpt {
				dst = append(dst, '0')
			}
			dst = append(dst, digits[:nd]...)
		case decpt >= nd:
			dst = append(dst, digits[:nd]...)
			for range decpt - nd {
				dst = append(dst, '0')
			}
			dst = append(dst, '.', '0')
		default:
			dst = append(dst, digits[:decpt]...)
			dst = append(dst, '.')
			dst = append(dst, digits[decpt:nd]...)
		}
		return dst
	}
	dst = append(dst, digits[0])
	if nd > 1 {
		dst = append(dst, '.')
		dst = append(dst, digits[1:nd]...)
	}
	dst = append(dst, 'e')
	x := decpt - 1
	if x < 0 {
		dst = append(dst, '-')
		x = -x
	} else {
		dst = append(dst, '+')
	}
	if x < 10 {
		dst = append(dst, '0')
	}
	return strconv.AppendInt(dst, int64(x), 10)
}
