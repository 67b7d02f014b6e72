package protocol

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// reprCase is one entry of testdata/repr_golden.json, produced by
// testdata/gen_golden.py with Debian's Celery 5.2.6 (celery.utils.saferepr)
// and Python 3.11's repr.
type reprCase struct {
	Kind         string `json:"kind"` // "args", "kwargs" or "value"
	JSON         string `json:"json"`
	SafeRepr     string `json:"saferepr"`      // saferepr(tuple(args) or kwargs, 1024)
	SafeReprList string `json:"saferepr_list"` // saferepr(list or dict) without limit
	Repr         string `json:"repr"`
}

func loadGolden[T any](t *testing.T, name string) []T {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var out []T
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("%s is empty", name)
	}
	return out
}

func TestReprGolden(t *testing.T) {
	t.Parallel()
	for i, tc := range loadGolden[reprCase](t, "repr_golden.json") {
		t.Run(tc.Kind+"/"+string(rune('a'+i%26)), func(t *testing.T) {
			t.Parallel()
			if got := Repr(json.RawMessage(tc.JSON)); got != tc.Repr {
				t.Errorf("Repr(%.80s)\n got %.200q\nwant %.200q", tc.JSON, got, tc.Repr)
			}
			top, err := topValue([]byte(tc.JSON))
			if err != nil {
				t.Fatal(err)
			}
			switch tc.Kind {
			case "args":
				args, err := rawArray(top)
				if err != nil {
					t.Fatal(err)
				}
				if got := ReprArgs(args); got != tc.SafeRepr {
					t.Errorf("ReprArgs(%.80s)\n got %q\nwant %q", tc.JSON, got, tc.SafeRepr)
				}
				if got := safeReprArgs(args, 0, false); got != tc.SafeReprList {
					t.Errorf("unbounded list saferepr(%.80s)\n got %.200q\nwant %.200q", tc.JSON, got, tc.SafeReprList)
				}
			case "kwargs":
				kw, order, err := rawObject(top)
				if err != nil {
					t.Fatal(err)
				}
				if got := ReprKwargs(order, kw); got != tc.SafeRepr {
					t.Errorf("ReprKwargs(%.80s)\n got %q\nwant %q", tc.JSON, got, tc.SafeRepr)
				}
				if got := SafeRepr(json.RawMessage(tc.JSON), ReprMaxSize); got != tc.SafeRepr {
					t.Errorf("SafeRepr(%.80s)\n got %q\nwant %q", tc.JSON, got, tc.SafeRepr)
				}
				if got := SafeRepr(json.RawMessage(tc.JSON), 0); got != tc.SafeReprList {
					t.Errorf("SafeRepr unbounded(%.80s)\n got %.200q\nwant %.200q", tc.JSON, got, tc.SafeReprList)
				}
			}
		})
	}
}

func TestRepr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"none", "null", "None"},
		{"bools", "[true, false]", "[True, False]"},
		{"unicode printable", `"Zo\u00eb \u65e5\ud83d\ude80"`, "'Zoë 日🚀'"},
		{"single quote switches to double", `"it's"`, `"it's"`},
		{"both quotes", `"it's \"x\""`, `'it\'s "x"'`},
		{"escapes", `"a\\b\n\t\r\u0007"`, `'a\\b\n\t\r\x07'`},
		{"non-printable unicode", `"\u00a0\u2028\ud800"`, `'\xa0\u2028\ud800'`},
		{"astral non-printable", `"\udb40\udc01"`, `'\U000e0001'`},
		{"float integral", "3.0", "3.0"},
		{"float exponent", "1e20", "1e+20"},
		{"float small", "0.00001", "1e-05"},
		{"float overflow", "-1e999", "-inf"},
		{"int unbounded", "123456789012345678901234567890", "123456789012345678901234567890"},
		{"negative zero int", "-0", "0"},
		{"nested", `{"a": [1, {"b": null}], "c": "d"}`, "{'a': [1, {'b': None}], 'c': 'd'}"},
		{"duplicate keys", `{"a": 1, "b": 2, "a": 3}`, "{'a': 3, 'b': 2}"},
		{"invalid JSON", `{"a": }`, "<invalid JSON>"},
		{"whitespace around", " [ ] ", "[]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Repr(json.RawMessage(tc.in)); got != tc.want {
				t.Errorf("Repr(%s) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}

func TestReprArgsAndKwargs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   []json.RawMessage
		order  []string
		kwargs map[string]json.RawMessage
		want   string
	}{
		{name: "no args", args: nil, want: "()"},
		{name: "one arg", args: raws("2"), want: "(2,)"},
		{name: "two args", args: raws("2", "3"), want: "(2, 3)"},
		{name: "saferepr quoting", args: raws(`"it's\nhere"`), want: "('it\\'s\nhere',)"},
		{name: "nesting limit", args: raws(`[[[1]]]`), want: "([[[...]]],)"},
		{name: "invalid arg", args: raws(`{`), want: "(<invalid JSON>,)"},
		{name: "kwargs empty", kwargs: map[string]json.RawMessage{}, want: "{}"},
		{name: "kwargs nil", kwargs: nil, want: "{}"},
		{name: "kwargs in order", order: []string{"b", "a"}, kwargs: map[string]json.RawMessage{"a": json.RawMessage("1"), "b": json.RawMessage("2")}, want: "{'b': 2, 'a': 1}"},
		{name: "kwargs order missing keys sorted after", order: []string{"z"}, kwargs: map[string]json.RawMessage{"y": json.RawMessage("1"), "x": json.RawMessage("2"), "z": json.RawMessage("3")}, want: "{'z': 3, 'x': 2, 'y': 1}"},
		{name: "kwargs order with unknown and duplicate names", order: []string{"a", "ghost", "a"}, kwargs: map[string]json.RawMessage{"a": json.RawMessage("null")}, want: "{'a': None}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got string
			if tc.want[0] == '{' {
				got = ReprKwargs(tc.order, tc.kwargs)
			} else {
				got = ReprArgs(tc.args)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
