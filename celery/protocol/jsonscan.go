package protocol

import (
	"bytes"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxNesting bounds the nesting depth of every decoder in this package. Python's
// json module fails with RecursionError at roughly the same depth (the default
// recursion limit is 1000), so nothing a Python worker accepts is refused here.
const maxNesting = 1000

// jsonError reports malformed JSON. Offset is the byte offset of the problem.
type jsonError struct {
	offset int
	msg    string
}

func (e *jsonError) Error() string {
	return "invalid JSON at offset " + strconv.Itoa(e.offset) + ": " + e.msg
}

func errAt(off int, msg string) error { return &jsonError{offset: off, msg: msg} }

// skipSpace returns the index of the first non-whitespace byte at or after i.
func skipSpace(d []byte, i int) int {
	for i < len(d) {
		switch d[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// topValue validates that d holds exactly one JSON value (surrounding
// whitespace allowed) and returns it without the whitespace.
func topValue(d []byte) ([]byte, error) {
	i := skipSpace(d, 0)
	end, err := scanValue(d, i, 0)
	if err != nil {
		return nil, err
	}
	if j := skipSpace(d, end); j != len(d) {
		return nil, errAt(j, "extra data after the JSON value")
	}
	return d[i:end], nil
}

// scanValue validates the JSON value starting at d[i] and returns the index just
// past it. It follows RFC 8259 plus Python's rules: strings must be valid UTF-8
// without raw control characters. NaN and Infinity are refused.
func scanValue(d []byte, i, depth int) (int, error) {
	if i >= len(d) {
		return i, errAt(i, "unexpected end of input")
	}
	switch c := d[i]; c {
	case '{':
		return scanObject(d, i, depth+1)
	case '[':
		return scanArray(d, i, depth+1)
	case '"':
		end, _, err := scanString(d, i)
		return end, err
	case 't':
		return scanLiteral(d, i, "true")
	case 'f':
		return scanLiteral(d, i, "false")
	case 'n':
		return scanLiteral(d, i, "null")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			end, _, err := scanNumber(d, i)
			return end, err
		}
		return i, errAt(i, "unexpected character "+strconv.QuoteRune(rune(c)))
	}
}

func scanLiteral(d []byte, i int, lit string) (int, error) {
	if len(d)-i >= len(lit) && string(d[i:i+len(lit)]) == lit {
		return i + len(lit), nil
	}
	return i, errAt(i, "invalid literal")
}

// scanNumber validates a JSON number and reports whether it is an integer
// literal (no fraction, no exponent).
func scanNumber(d []byte, i int) (end int, isInt bool, err error) {
	j := i
	if d[j] == '-' {
		j++
	}
	switch {
	case j < len(d) && d[j] == '0':
		j++
	case j < len(d) && d[j] >= '1' && d[j] <= '9':
		for j < len(d) && d[j] >= '0' && d[j] <= '9' {
			j++
		}
	default:
		return j, false, errAt(j, "invalid number")
	}
	isInt = true
	if j < len(d) && d[j] == '.' {
		isInt = false
		j++
		k := j
		for j < len(d) && d[j] >= '0' && d[j] <= '9' {
			j++
		}
		if j == k {
			return j, false, errAt(j, "invalid number: no digits after the decimal point")
		}
	}
	if j < len(d) && (d[j] == 'e' || d[j] == 'E') {
		isInt = false
		j++
		if j < len(d) && (d[j] == '+' || d[j] == '-') {
			j++
		}
		k := j
		for j < len(d) && d[j] >= '0' && d[j] <= '9' {
			j++
		}
		if j == k {
			return j, false, errAt(j, "invalid number: no digits in the exponent")
		}
	}
	return j, isInt, nil
}

// scanString validates the string starting at d[i] (the opening quote) and
// returns the index after the closing quote and whether it has escapes.
func scanString(d []byte, i int) (end int, escaped bool, err error) {
	j := i + 1
	for j < len(d) {
		c := d[j]
		switch {
		case c == '"':
			return j + 1, escaped, nil
		case c == '\\':
			escaped = true
			if j+1 >= len(d) {
				return j, true, errAt(j, "unterminated escape")
			}
			switch d[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+6 > len(d) {
					return j, true, errAt(j, "short \\u escape")
				}
				if _, ok := hex4(d[j+2 : j+6]); !ok {
					return j, true, errAt(j, "invalid \\u escape")
				}
				j += 6
			default:
				return j, true, errAt(j, "invalid escape")
			}
		case c < 0x20:
			return j, escaped, errAt(j, "control character in string")
		case c < utf8.RuneSelf:
			j++
		default:
			r, size := utf8.DecodeRune(d[j:])
			if r == utf8.RuneError && size == 1 {
				return j, escaped, errAt(j, "invalid UTF-8")
			}
			j += size
		}
	}
	return j, escaped, errAt(j, "unterminated string")
}

func scanArray(d []byte, i, depth int) (int, error) {
	if depth > maxNesting {
		return i, errAt(i, "nesting too deep")
	}
	j := skipSpace(d, i+1)
	if j < len(d) && d[j] == ']' {
		return j + 1, nil
	}
	for {
		var err error
		if j, err = scanValue(d, j, depth); err != nil {
			return j, err
		}
		j = skipSpace(d, j)
		if j >= len(d) {
			return j, errAt(j, "unterminated array")
		}
		switch d[j] {
		case ',':
			j = skipSpace(d, j+1)
		case ']':
			return j + 1, nil
		default:
			return j, errAt(j, "expected ',' or ']' in array")
		}
	}
}

func scanObject(d []byte, i, depth int) (int, error) {
	if depth > maxNesting {
		return i, errAt(i, "nesting too deep")
	}
	j := skipSpace(d, i+1)
	if j < len(d) && d[j] == '}' {
		return j + 1, nil
	}
	for {
		if j >= len(d) || d[j] != '"' {
			return j, errAt(j, "expected a string key")
		}
		var err error
		if j, _, err = scanString(d, j); err != nil {
			return j, err
		}
		j = skipSpace(d, j)
		if j >= len(d) || d[j] != ':' {
			return j, errAt(j, "expected ':' after object key")
		}
		if j, err = scanValue(d, skipSpace(d, j+1), depth); err != nil {
			return j, err
		}
		j = skipSpace(d, j)
		if j >= len(d) {
			return j, errAt(j, "unterminated object")
		}
		switch d[j] {
		case ',':
			j = skipSpace(d, j+1)
		case '}':
			return j + 1, nil
		default:
			return j, errAt(j, "expected ',' or '}' in object")
		}
	}
}

// eachElem calls fn for every element of the JSON array raw (which starts with
// '['). Elements are sub-slices of raw.
func eachElem(raw []byte, fn func(elem []byte) error) error {
	j := skipSpace(raw, 1)
	if j < len(raw) && raw[j] == ']' {
		return nil
	}
	for {
		end, err := scanValue(raw, j, 1)
		if err != nil {
			return err
		}
		if err := fn(raw[j:end]); err != nil {
			return err
		}
		j = skipSpace(raw, end)
		if j >= len(raw) {
			return errAt(j, "unterminated array")
		}
		if raw[j] == ']' {
			return nil
		}
		if raw[j] != ',' {
			return errAt(j, "expected ',' or ']' in array")
		}
		j = skipSpace(raw, j+1)
	}
}

// eachMember calls fn for every member of the JSON object raw (which starts with
// '{'), in wire order, duplicates included. key is the raw key with its quotes.
func eachMember(raw []byte, fn func(key, val []byte) error) error {
	j := skipSpace(raw, 1)
	if j < len(raw) && raw[j] == '}' {
		return nil
	}
	for {
		if j >= len(raw) || raw[j] != '"' {
			return errAt(j, "expected a string key")
		}
		kend, _, err := scanString(raw, j)
		if err != nil {
			return err
		}
		v := skipSpace(raw, kend)
		if v >= len(raw) || raw[v] != ':' {
			return errAt(v, "expected ':' after object key")
		}
		v = skipSpace(raw, v+1)
		vend, err := scanValue(raw, v, 1)
		if err != nil {
			return err
		}
		if err := fn(raw[j:kend], raw[v:vend]); err != nil {
			return err
		}
		j = skipSpace(raw, vend)
		if j >= len(raw) {
			return errAt(j, "unterminated object")
		}
		if raw[j] == '}' {
			return nil
		}
		if raw[j] != ',' {
			return errAt(j, "expected ',' or '}' in object")
		}
		j = skipSpace(raw, j+1)
	}
}

// countElems returns the number of elements in a JSON array that is known to be
// valid. It is a cheap pre-sizing helper.
func countElems(raw []byte) int {
	n := 0
	_ = eachElem(raw, func([]byte) error { n++; return nil })
	return n
}

func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

// decodeCodePoints walks a valid JSON string literal (with quotes) and calls fn
// for each code point, exactly as Python's json module decodes it: escaped
// surrogate pairs are joined, lone surrogates are passed through as values in
// U+D800..U+DFFF.
func decodeCodePoints(raw []byte, fn func(r rune)) {
	s := raw[1 : len(raw)-1]
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			if c < utf8.RuneSelf {
				fn(rune(c))
				i++
				continue
			}
			r, size := utf8.DecodeRune(s[i:])
			fn(r)
			i += size
			continue
		}
		switch s[i+1] {
		case 'b':
			fn('\b')
		case 'f':
			fn('\f')
		case 'n':
			fn('\n')
		case 'r':
			fn('\r')
		case 't':
			fn('\t')
		case 'u':
			r, _ := hex4(s[i+2:])
			i += 6
			if utf16.IsSurrogate(r) && r < 0xdc00 && i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
				if r2, ok := hex4(s[i+2:]); ok && r2 >= 0xdc00 && r2 <= 0xdfff {
					fn(utf16.DecodeRune(r, r2))
					i += 6
					continue
				}
			}
			fn(r)
			continue
		default: // '"', '\\', '/'
			fn(rune(s[i+1]))
		}
		i += 2
	}
}

// unquote decodes a valid JSON string literal into a Go string. Lone surrogates
// become U+FFFD, as with encoding/json.
func unquote(raw []byte) string {
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner)
	}
	buf := make([]byte, 0, len(inner))
	decodeCodePoints(raw, func(r rune) { buf = utf8.AppendRune(buf, r) })
	return string(buf)
}

// rawKeyIs reports whether the raw JSON key literal equals name. Keys with
// escapes are decoded first.
func rawKeyIs(raw []byte, name string) bool {
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner) == name
	}
	return unquote(raw) == name
}

// jsonKind classifies a valid JSON value by its first byte.
func jsonKind(raw []byte) byte {
	if len(raw) == 0 {
		return 0
	}
	switch c := raw[0]; c {
	case '{', '[', '"', 't', 'f', 'n':
		return c
	default:
		return '0'
	}
}

func isNull(raw []byte) bool { return len(raw) == 4 && string(raw) == "null" }
