// This file holds PyJSON, which serializes Go values as Python's json.dumps does, and its Go-value side
// (lists, objects, key order); the raw-JSON rewriting and the scalars are in pyjson_rewrite.go and
// pyjson_scalar.go.

package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
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
