package feed

import (
	"errors"
	"strconv"
	"strings"
)

// MicrosPerUnit is how many micro-units make one unit of currency.
const MicrosPerUnit = 1_000_000

// Errors of [ParseMicros].
var (
	ErrNotDecimal = errors.New("not a decimal number")
	ErrTooPrecise = errors.New("more than 6 decimal places")
	ErrTooLarge   = errors.New("too large")
)

// ParseMicros parses decimal text ("0.35", "12", ".5", "1.", "2.5e-1") into integer micro-units,
// exactly: "0.1" is 100000, never a float's approximation. A sign is not accepted. A value with a
// non-zero digit below one micro-unit is ErrTooPrecise; one of 10^12 units or more is ErrTooLarge.
func ParseMicros(s string) (int64, error) {
	i := 0
	var digits []byte // significant digits, leading zeros dropped
	fracLen := 0
	seen := false
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		seen = true
		if len(digits) > 0 || s[i] != '0' {
			digits = append(digits, s[i])
		}
		if len(digits) > 40 {
			return 0, ErrTooLarge
		}
	}
	if i < len(s) && s[i] == '.' {
		i++
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			seen = true
			if len(digits) > 0 || s[i] != '0' {
				digits = append(digits, s[i])
			}
			fracLen++
			if fracLen > 40 {
				return 0, ErrTooPrecise
			}
		}
	}
	if !seen {
		return 0, ErrNotDecimal
	}
	exp := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		neg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			neg = s[i] == '-'
			i++
		}
		start := i
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			if exp > 1000 {
				continue // keep consuming; the magnitude is decided below
			}
			exp = exp*10 + int(s[i]-'0')
		}
		if i == start {
			return 0, ErrNotDecimal
		}
		if neg {
			exp = -exp
		}
	}
	if i != len(s) {
		return 0, ErrNotDecimal
	}
	if len(digits) == 0 {
		return 0, nil
	}
	// value = digits × 10^(exp - fracLen); micros = digits × 10^shift.
	shift := exp - fracLen + 6
	if shift < 0 {
		cut := -shift
		if cut > len(digits) {
			return 0, ErrTooPrecise
		}
		for _, d := range digits[len(digits)-cut:] {
			if d != '0' {
				return 0, ErrTooPrecise
			}
		}
		digits = digits[:len(digits)-cut]
		shift = 0
	}
	if len(digits)+shift > 18 {
		return 0, ErrTooLarge
	}
	var v int64
	for _, d := range digits {
		v = v*10 + int64(d-'0')
	}
	for ; shift > 0; shift-- {
		v *= 10
	}
	return v, nil
}

// FormatMicros writes micro-units as the shortest exact decimal: 350000 is "0.35", 2000000 is "2".
func FormatMicros(m int64) string {
	sign := ""
	u := uint64(m)
	if m < 0 {
		sign = "-"
		u = -u
	}
	whole := strconv.FormatUint(u/MicrosPerUnit, 10)
	frac := u % MicrosPerUnit
	if frac == 0 {
		return sign + whole
	}
	f := strconv.FormatUint(frac+MicrosPerUnit, 10)[1:] // 6 digits with leading zeros
	return sign + whole + "." + strings.TrimRight(f, "0")
}
