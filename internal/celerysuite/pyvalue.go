package celerysuite

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
)

// pyType is the Python type name of a JSON value, as Python's error messages name it.
func pyType(v json.RawMessage) string {
	b := bytes.TrimSpace(v)
	if len(b) == 0 {
		return "NoneType"
	}
	switch b[0] {
	case 'n':
		return "NoneType"
	case 't', 'f':
		return "bool"
	case '"':
		return "str"
	case '[':
		return "list"
	case '{':
		return "dict"
	}
	if bytes.ContainsAny(b, ".eE") {
		return "float"
	}
	return "int"
}

// pyTruthy is Python's bool(v) for a JSON value.
func pyTruthy(v json.RawMessage) bool {
	switch s := string(bytes.TrimSpace(v)); s {
	case "", "null", "false", "0", `""`, "[]", "{}", "0.0":
		return false
	default:
		if pyType(v) == "float" {
			var f float64
			if json.Unmarshal(v, &f) == nil {
				return f != 0
			}
		}
		if pyType(v) == "list" {
			var l []json.RawMessage
			if json.Unmarshal(v, &l) == nil {
				return len(l) > 0
			}
		}
		return true
	}
}

// typeError is Python's TypeError.
type typeError struct{ msg string }

func (e *typeError) Error() string     { return e.msg }
func (e *typeError) ExcType() string   { return "TypeError" }
func (e *typeError) ExcModule() string { return "builtins" }

// number reads an int (bools count, as in Python) or a float.
func number(v json.RawMessage) (i *big.Int, f float64, isInt, ok bool) {
	switch pyType(v) {
	case "bool":
		if string(bytes.TrimSpace(v)) == "true" {
			return big.NewInt(1), 0, true, true
		}
		return big.NewInt(0), 0, true, true
	case "int":
		n, good := new(big.Int).SetString(string(bytes.TrimSpace(v)), 10)
		return n, 0, true, good
	case "float":
		if err := json.Unmarshal(v, &f); err != nil {
			return nil, 0, false, false
		}
		return nil, f, false, true
	}
	return nil, 0, false, false
}

// pyAdd is Python's a + b for JSON values: numbers, strings and lists, with Python's TypeError
// messages otherwise.
func pyAdd(a, b json.RawMessage) (json.RawMessage, error) {
	ta, tb := pyType(a), pyType(b)
	ai, af, aInt, aNum := number(a)
	bi, bf, bInt, bNum := number(b)
	switch {
	case aNum && bNum && aInt && bInt:
		return json.RawMessage(new(big.Int).Add(ai, bi).String()), nil
	case aNum && bNum:
		if aInt {
			af, _ = new(big.Float).SetInt(ai).Float64()
		}
		if bInt {
			bf, _ = new(big.Float).SetInt(bi).Float64()
		}
		return json.Marshal(af + bf)
	case ta == "str" && tb == "str":
		var x, y string
		if err := json.Unmarshal(a, &x); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &y); err != nil {
			return nil, err
		}
		return marshal(x + y)
	case ta == "list" && tb == "list":
		var x, y []json.RawMessage
		if err := json.Unmarshal(a, &x); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &y); err != nil {
			return nil, err
		}
		return marshal(append(append([]json.RawMessage{}, x...), y...))
	case ta == "str" || ta == "list":
		return nil, &typeError{fmt.Sprintf("can only concatenate %s (not %q) to %s", ta, tb, ta)}
	}
	return nil, &typeError{fmt.Sprintf("unsupported operand type(s) for +: '%s' and '%s'", ta, tb)}
}

// pySum is Python's sum(nums): 0 + each item in turn.
func pySum(nums json.RawMessage) (json.RawMessage, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(nums, &items); err != nil {
		return nil, &typeError{fmt.Sprintf("'%s' object is not iterable", pyType(nums))}
	}
	acc := json.RawMessage("0")
	for _, it := range items {
		var err error
		if acc, err = pyAdd(acc, it); err != nil {
			return nil, err
		}
	}
	return acc, nil
}

// marshal encodes v as JSON without HTML escaping (Python's json.dumps leaves <, > and & alone).
func marshal(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// pyStrArgs is str(exc) of a Python exception with these arguments: the one argument's str, or the
// repr of the args tuple.
func pyStrArgs(args []any) string {
	switch len(args) {
	case 0:
		return ""
	case 1:
		if s, ok := args[0].(string); ok {
			return s
		}
	}
	parts := make([]string, len(args))
	for i, a := range args {
		parts[i] = pyRepr(a)
	}
	if len(parts) == 1 {
		return "(" + parts[0] + ",)"
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// pyRepr is a short Python repr of a decoded JSON value.
func pyRepr(v any) string {
	switch x := v.(type) {
	case string:
		return "'" + strings.ReplaceAll(strings.ReplaceAll(x, `\`, `\\`), "'", `\'`) + "'"
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case json.RawMessage:
		var d any
		if json.Unmarshal(x, &d) == nil {
			return pyRepr(d)
		}
		return string(x)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
