// This file holds strings and numbers written as Python's json.dumps writes them: ensure_ascii
// escapes, and integers and floats as Python prints them.

package protocol

import (
	"math"
	"strconv"
	"unicode/utf16"
)

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
