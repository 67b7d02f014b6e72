package protocol

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"
)

// isCeleryHeader reports whether name is one of the headers Celery itself
// defines for a v2 task message (plus kombu's compression). Any other header
// is carried in ExtraHeaders.
func isCeleryHeader(name string) bool {
	switch name {
	case "lang", "task", "id", "shadow", "eta", "expires", "group", "group_index", "retries",
		"timelimit", "root_id", "parent_id", "argsrepr", "kwargsrepr", "origin", "ignore_result",
		"compression":
		return true
	}
	return false
}

var (
	errNotString = errors.New("not a string")
	errNotInt    = errors.New("not an integer")
	errNotBool   = errors.New("not a boolean")
)

// hdrString accepts a string, []byte (AMQP 'x', read as UTF-8 text) or nil ("").
func hdrString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case nil:
		return "", nil
	case []byte:
		return string(x), nil
	default:
		return "", errNotString
	}
}

// hdrInt accepts any Go integer type or an integral float (never a string or
// bool); nil is reported through isNil.
func hdrInt(v any) (n int64, isNil bool, err error) {
	switch x := v.(type) {
	case nil:
		return 0, true, nil
	case int:
		return int64(x), false, nil
	case int8:
		return int64(x), false, nil
	case int16:
		return int64(x), false, nil
	case int32:
		return int64(x), false, nil
	case int64:
		return x, false, nil
	case uint8:
		return int64(x), false, nil
	case uint16:
		return int64(x), false, nil
	case uint32:
		return int64(x), false, nil
	case uint:
		if uint64(x) > math.MaxInt64 {
			return 0, false, errNotInt
		}
		return int64(x), false, nil
	case uint64:
		if x > math.MaxInt64 {
			return 0, false, errNotInt
		}
		return int64(x), false, nil
	case float64:
		return floatToInt(x)
	case float32:
		return floatToInt(float64(x))
	default:
		return 0, false, errNotInt
	}
}

func floatToInt(f float64) (int64, bool, error) {
	if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false, errNotInt
	}
	return int64(f), false, nil
}

// hdrNumber accepts any integer or float type (not bool) for a time limit.
func hdrNumber(v any) (f float64, isNil bool, err error) {
	switch x := v.(type) {
	case nil:
		return 0, true, nil
	case float64:
		f = x
	case float32:
		f = float64(x)
	default:
		n, _, err := hdrInt(v)
		if err != nil {
			return 0, false, errors.New("not a number")
		}
		f = float64(n)
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false, errors.New("not a finite number")
	}
	return f, false, nil
}

func hdrBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case nil:
		return false, nil
	default:
		return false, errNotBool
	}
}

// hdrTime accepts an ISO-8601 string, a time.Time (AMQP 'T') or nil/"" (no
// time; Celery's maybe_iso8601 treats an empty string as None).
func hdrTime(v any) (*time.Time, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case time.Time:
		return &x, nil
	default:
		s, err := hdrString(v)
		if err != nil {
			return nil, err
		}
		if s == "" {
			return nil, nil
		}
		t, err := ParseTime(s)
		if err != nil {
			return nil, err
		}
		return &t, nil
	}
}

// hdrTimeLimit accepts nil, an empty list (both: no limits) or [hard, soft].
func hdrTimeLimit(v any) (TimeLimit, error) {
	var tl TimeLimit
	if v == nil {
		return tl, nil
	}
	list, ok := v.([]any)
	if !ok {
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Slice || rv.Type().Elem().Kind() == reflect.Uint8 {
			return tl, errors.New("timelimit is not a list")
		}
		list = make([]any, rv.Len())
		for i := range list {
			list[i] = rv.Index(i).Interface()
		}
	}
	if len(list) == 0 {
		return tl, nil
	}
	if len(list) != 2 {
		return tl, errors.New("timelimit must have two elements [hard, soft]")
	}
	for i, p := range []**float64{&tl.Hard, &tl.Soft} {
		f, isNil, err := hdrNumber(list[i])
		if err != nil {
			return tl, fmt.Errorf("timelimit[%d]: %w", i, err)
		}
		if !isNil {
			v := f // a heap copy only for a limit that is set
			*p = &v
		}
	}
	return tl, nil
}

// normalizeHeader converts a decoded AMQP header value to the package's
// canonical forms: int64, float64, string, bool, nil, []byte, time.Time, []any
// and map[string]any. Other values are kept as they are.
func normalizeHeader(v any, depth int) any {
	switch x := v.(type) {
	case nil, string, bool, int64, float64, []byte, time.Time:
		return v
	case float32:
		return float64(x)
	case int, int8, int16, int32, uint8, uint16, uint32:
		n, _, _ := hdrInt(x)
		return n
	case uint, uint64:
		if n, _, err := hdrInt(x); err == nil {
			return n
		}
		return v
	case []any:
		if depth > maxNesting {
			return v
		}
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalizeHeader(e, depth+1)
		}
		return out
	case map[string]any:
		if depth > maxNesting {
			return v
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalizeHeader(e, depth+1)
		}
		return out
	}
	if depth > maxNesting {
		return v
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return v
		}
		out := make(map[string]any, rv.Len())
		it := rv.MapRange()
		for it.Next() {
			out[it.Key().String()] = normalizeHeader(it.Value().Interface(), depth+1)
		}
		return out
	case reflect.Slice, reflect.Array:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			return v
		}
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = normalizeHeader(rv.Index(i).Interface(), depth+1)
		}
		return out
	}
	return v
}

// encodeHeaderValue converts a header value to the types EncodeV2 produces:
// string, bool, int32 (when -(2^31-1) <= v <= 2^31-1, as py-amqp chooses),
// int64, float64, nil, []any and map[string]any. []byte becomes a string (an
// AMQP 'x' value would reach Python as bytes) and time.Time a FormatTime
// string. Anything else is an error.
func encodeHeaderValue(v any, depth int) (any, error) {
	if depth > maxNesting {
		return nil, errors.New("header nested too deep")
	}
	switch x := v.(type) {
	case nil, string, bool, float64:
		return v, nil
	case float32:
		return float64(x), nil
	case []byte:
		return string(x), nil
	case time.Time:
		return FormatTime(x), nil
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		n, _, err := hdrInt(x)
		if err != nil {
			return nil, fmt.Errorf("integer %v out of range", v)
		}
		return intHeader(n), nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			c, err := encodeHeaderValue(e, depth+1)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = c
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			c, err := encodeHeaderValue(e, depth+1)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", k, err)
			}
			out[k] = c
		}
		return out, nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Map:
		if rv.Type().Key().Kind() == reflect.String {
			return encodeHeaderValue(normalizeHeader(v, depth), depth)
		}
	case reflect.Slice, reflect.Array:
		if rv.Type().Elem().Kind() != reflect.Uint8 {
			return encodeHeaderValue(normalizeHeader(v, depth), depth)
		}
		if rv.Kind() == reflect.Slice {
			return string(rv.Bytes()), nil
		}
	case reflect.String:
		return rv.String(), nil
	case reflect.Bool:
		return rv.Bool(), nil
	}
	return nil, fmt.Errorf("unsupported header type %T", v)
}

// intHeader picks int32 or int64 the way py-amqp picks 'I' or 'L'.
func intHeader(n int64) any {
	if n >= -math.MaxInt32 && n <= math.MaxInt32 {
		return int32(n)
	}
	return n
}

// numberToInt parses a JSON number that must be integral and fit in an int.
func numberToInt(s string) (int, error) {
	if n, err := strconv.ParseInt(s, 10, strconv.IntSize); err == nil {
		return int(n), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || f < math.MinInt || f >= math.MaxInt {
		return 0, errNotInt
	}
	return int(f), nil
}
