package protocol

import (
	"encoding/json"
	"errors"
	"math/big"
	"strconv"
	"testing"
)

func jsonValueEqual(a, b any) bool {
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		return ok && numbersEqual(string(x), string(y))
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonValueEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !jsonValueEqual(v, w) {
				return false
			}
		}
		return true
	default:
		return a == b
	}
}

func isIntLiteral(s string) bool {
	for _, c := range []byte(s) {
		if c == '.' || c == 'e' || c == 'E' {
			return false
		}
	}
	return true
}

// numbersEqual compares two JSON number literals as Python values: ints
// exactly, floats as doubles (every overflowing literal is inf), and an int
// never equals a float literal (they decode to different Python types).
func numbersEqual(a, b string) bool {
	ai, bi := isIntLiteral(a), isIntLiteral(b)
	if ai != bi {
		return false
	}
	if ai {
		x, ok1 := new(big.Int).SetString(a, 10)
		y, ok2 := new(big.Int).SetString(b, 10)
		return ok1 && ok2 && x.Cmp(y) == 0
	}
	fa, _ := strconv.ParseFloat(a, 64)
	fb, _ := strconv.ParseFloat(b, 64)
	return fa == fb
}

func mustPyJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := PyJSON(v)
	if err != nil {
		tb.Fatalf("PyJSON(%v): %v", v, err)
	}
	return b
}

// raws converts JSON texts to raw messages.
func raws(s ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(s))
	for i, x := range s {
		out[i] = json.RawMessage(x)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// checkMessageError asserts that err is a *MessageError of the given kind and
// of no other kind.
func checkMessageError(tb testing.TB, err error, kind ErrorKind) *MessageError {
	tb.Helper()
	if err == nil {
		tb.Fatalf("got no error, want %v", kind)
	}
	var me *MessageError
	if !errors.As(err, &me) {
		tb.Fatalf("error %v (%T) is not a *MessageError", err, err)
	}
	for _, k := range []ErrorKind{ErrContentDisallowed, ErrUndecodable, ErrInvalidTask, ErrUnknownMessage} {
		if got := errors.Is(err, k); got != (k == kind) {
			tb.Fatalf("errors.Is(%v, %v) = %v (kind %v)", err, k, got, me.Kind)
		}
	}
	return me
}
