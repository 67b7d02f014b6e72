package protocol

import (
	"strconv"
	"time"
)

// FormatTime formats t as Python's datetime.isoformat() does for an aware
// datetime, which is how Celery clients write eta and expires:
// "2024-05-01T12:00:00.123456+00:00". The fraction is truncated (not rounded)
// to microseconds and left out when that is zero; the offset is t's own, always
// written ±HH:MM (±HH:MM:SS if it has seconds), never "Z". Both the Celery 5.2
// parser and 5.3+ read this form exactly.
func FormatTime(t time.Time) string {
	var buf [40]byte
	b := buf[:0]
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	if y < 0 {
		b = append(b, '-')
		y = -y
	}
	b = appendPad(b, y, 4)
	b = append(b, '-')
	b = appendPad(b, int(mo), 2)
	b = append(b, '-')
	b = appendPad(b, d, 2)
	b = append(b, 'T')
	b = appendPad(b, h, 2)
	b = append(b, ':')
	b = appendPad(b, mi, 2)
	b = append(b, ':')
	b = appendPad(b, s, 2)
	if us := t.Nanosecond() / 1000; us != 0 {
		b = append(b, '.')
		b = appendPad(b, us, 6)
	}
	_, off := t.Zone()
	if off < 0 {
		b = append(b, '-')
		off = -off
	} else {
		b = append(b, '+')
	}
	b = appendPad(b, off/3600, 2)
	b = append(b, ':')
	b = appendPad(b, off/60%60, 2)
	if off%60 != 0 {
		b = append(b, ':')
		b = appendPad(b, off%60, 2)
	}
	return string(b)
}

func appendPad(b []byte, n, width int) []byte {
	var tmp [20]byte
	s := strconv.AppendInt(tmp[:0], int64(n), 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// ParseTime parses the ISO-8601 date-times Celery clients send in eta and
// expires, 5.2 and 5.3+ alike: "YYYY-MM-DDTHH:MM[:SS[.f]]" with a 'T' or ' '
// separator, a fraction of 1 to 9 digits (a real fraction: ".5" is 500 ms, not
// the 5 µs Celery 5.2's own parser makes of it), and an offset "Z", "±HH:MM",
// "±HHMM", "±HH" or none. A value without offset is UTC, as a Celery worker
// treats it. The result is in time.UTC for a zero offset, otherwise in a fixed
// zone. Errors are *time.ParseError.
func ParseTime(s string) (time.Time, error) {
	fail := func(msg string) (time.Time, error) {
		return time.Time{}, &time.ParseError{Value: s, Message: ": " + msg}
	}
	p := 0
	num := func(width int) (int, bool) {
		if p+width > len(s) {
			return 0, false
		}
		n := 0
		for _, c := range []byte(s[p : p+width]) {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		p += width
		return n, true
	}
	lit := func(c byte) bool {
		if p < len(s) && s[p] == c {
			p++
			return true
		}
		return false
	}
	year, ok := num(4)
	if !ok || !lit('-') {
		return fail("expected YYYY-")
	}
	month, ok := num(2)
	if !ok || !lit('-') {
		return fail("expected MM-")
	}
	day, ok := num(2)
	if !ok {
		return fail("expected DD")
	}
	if p >= len(s) || (s[p] != 'T' && s[p] != 't' && s[p] != ' ') {
		return fail("expected a time after the date")
	}
	p++
	hour, ok := num(2)
	if !ok || !lit(':') {
		return fail("expected HH:")
	}
	minute, ok := num(2)
	if !ok {
		return fail("expected MM")
	}
	sec, nsec := 0, 0
	if lit(':') {
		if sec, ok = num(2); !ok {
			return fail("expected SS")
		}
		if lit('.') || lit(',') {
			start := p
			for p < len(s) && s[p] >= '0' && s[p] <= '9' {
				p++
			}
			digits := p - start
			if digits == 0 || digits > 9 {
				return fail("fraction must have 1 to 9 digits")
			}
			for i := start; i < start+9; i++ {
				nsec *= 10
				if i < p {
					nsec += int(s[i] - '0')
				}
			}
		}
	}
	loc := time.UTC
	if p < len(s) {
		switch s[p] {
		case 'Z', 'z':
			p++
		case '+', '-':
			sign := 1
			if s[p] == '-' {
				sign = -1
			}
			p++
			oh, ok := num(2)
			if !ok {
				return fail("expected offset hours")
			}
			om := 0
			if p < len(s) {
				lit(':')
				if om, ok = num(2); !ok {
					return fail("expected offset minutes")
				}
			}
			if oh > 23 || om > 59 {
				return fail("offset out of range")
			}
			if off := sign * (oh*3600 + om*60); off != 0 {
				loc = time.FixedZone("", off)
			}
		default:
			return fail("unexpected text after the time")
		}
	}
	if p != len(s) {
		return fail("unexpected text after the offset")
	}
	if year < 1 || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return fail("field out of range")
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc), nil
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	default:
		return 31
	}
}
