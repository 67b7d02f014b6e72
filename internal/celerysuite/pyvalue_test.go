package celerysuite

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestPyAdd(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b, want, err string
	}{
		{"1", "2", "3", ""},
		{"9007199254740993", "1", "9007199254740994", ""},
		{"1.5", "2", "3.5", ""},
		{"true", "1", "2", ""},
		{`"Hello "`, `"world"`, `"Hello world"`, ""},
		{`[1]`, `[2, 3]`, `[1,2,3]`, ""},
		{`"a"`, "1", "", `can only concatenate str (not "int") to str`},
		{"1", `"a"`, "", "unsupported operand type(s) for +: 'int' and 'str'"},
		{"null", "1", "", "unsupported operand type(s) for +: 'NoneType' and 'int'"},
		{`{}`, `{}`, "", "unsupported operand type(s) for +: 'dict' and 'dict'"},
	} {
		got, err := pyAdd(json.RawMessage(tc.a), json.RawMessage(tc.b))
		if tc.err != "" {
			var te *typeError
			if !errors.As(err, &te) || te.Error() != tc.err {
				t.Errorf("%s + %s: error %v, want TypeError %q", tc.a, tc.b, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("%s + %s = %s, %v; want %s", tc.a, tc.b, got, err, tc.want)
		}
	}
}

func TestPySumAndTruthiness(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ nums, want string }{
		{"[]", "0"}, {"[1, 2, 3]", "6"}, {"[1, 2.5]", "3.5"},
	} {
		if got, err := pySum(json.RawMessage(tc.nums)); err != nil || string(got) != tc.want {
			t.Errorf("sum(%s) = %s, %v; want %s", tc.nums, got, err, tc.want)
		}
	}
	if _, err := pySum(json.RawMessage("5")); err == nil {
		t.Error("sum(5): no TypeError")
	}
	if _, err := pySum(json.RawMessage(`[[1], [2]]`)); err == nil {
		t.Error("sum([[1], [2]]): no TypeError (0 + list)")
	}
	for v, want := range map[string]bool{"null": false, "0": false, "0.0": false, `""`: false, "[]": false, "{}": false,
		"1": true, "-1": true, "0.5": true, `"x"`: true, "[0]": true, "true": true, "false": false, "": false} {
		if got := pyTruthy(json.RawMessage(v)); got != want {
			t.Errorf("bool(%s) = %v, want %v", v, got, want)
		}
	}
}

func TestExpectedExceptionStr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{}, ""},
		{[]any{"Task expected to fail"}, "Task expected to fail"},
		{[]any{"Task expected to fail", "test"}, "('Task expected to fail', 'test')"},
		{[]any{json.RawMessage("1")}, "(1,)"},
		{[]any{"it's"}, "it's"},
		{[]any{"it's", nil}, `('it\'s', None)`},
	} {
		e := &ExpectedException{Args: tc.args}
		if e.Error() != tc.want {
			t.Errorf("str(ExpectedException%v) = %q, want %q", tc.args, e.Error(), tc.want)
		}
	}
}

// FuzzPyAdd: any two JSON values add or fail with a TypeError, never panic, and a sum is JSON.
func FuzzPyAdd(f *testing.F) {
	for _, s := range [][2]string{{"1", "2"}, {`"a"`, `"b"`}, {"[1]", "[2]"}, {"1.5", "true"}, {"null", "{}"}, {"1e400", "1"}, {"", "-"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		got, err := pyAdd(json.RawMessage(a), json.RawMessage(b))
		if err != nil {
			return
		}
		if !json.Valid(got) {
			t.Fatalf("%q + %q = %q: not JSON", a, b, got)
		}
	})
}
