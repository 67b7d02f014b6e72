package protocol

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestMsgpackToJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      []byte
		want    string
		wantErr bool
	}{
		{name: "fixints", in: []byte{0x93, 0x00, 0x7f, 0xff}, want: "[0, 127, -1]"},
		{name: "unsigned", in: []byte{0x94, 0xcc, 0xff, 0xcd, 0x01, 0x00, 0xce, 0, 1, 0, 0, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, want: "[255, 256, 65536, 18446744073709551615]"},
		{name: "signed", in: []byte{0x94, 0xd0, 0x80, 0xd1, 0x80, 0x00, 0xd2, 0x80, 0, 0, 0, 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}, want: "[-128, -32768, -2147483648, -9223372036854775808]"},
		{name: "floats", in: []byte{0x92, 0xca, 0x3f, 0xc0, 0, 0, 0xcb, 0x40, 0x04, 0, 0, 0, 0, 0, 0}, want: "[1.5, 2.5]"},
		{name: "float32 widened like Python", in: []byte{0xca, 0x3d, 0xcc, 0xcc, 0xcd}, want: "0.10000000149011612"},
		{name: "literals", in: []byte{0x93, 0xc0, 0xc2, 0xc3}, want: "[null, false, true]"},
		{name: "str8 and escapes", in: append([]byte{0xd9, 0x05}, "\"é\n\\"...), want: `"\"\u00e9\n\\"`},
		{name: "str16", in: append([]byte{0xda, 0x00, 0x02}, "ab"...), want: `"ab"`},
		{name: "array16 and map16", in: []byte{0xdc, 0x00, 0x01, 0xde, 0x00, 0x01, 0xa1, 'k', 0x90}, want: `[{"k": []}]`},
		{name: "nested map keeps order", in: []byte{0x82, 0xa1, 'b', 0x01, 0xa1, 'a', 0x80}, want: `{"b": 1, "a": {}}`},
		{name: "bin", in: []byte{0xc4, 0x01, 0x00}, wantErr: true},
		{name: "ext", in: []byte{0xd4, 0x01, 0x00}, wantErr: true},
		{name: "never used code", in: []byte{0xc1}, wantErr: true},
		{name: "non-finite float", in: []byte{0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0}, wantErr: true},
		{name: "truncated", in: []byte{0x92, 0x01}, wantErr: true},
		{name: "short length", in: []byte{0xdb, 0xff, 0xff, 0xff, 0xff, 'a'}, wantErr: true},
		{name: "huge array count", in: []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, wantErr: true},
		{name: "invalid UTF-8 str", in: []byte{0xa1, 0xff}, wantErr: true},
		{name: "non-string key", in: []byte{0x81, 0xc0, 0x01}, wantErr: true},
		{name: "trailing data", in: []byte{0x01, 0x02}, wantErr: true},
		{name: "empty", in: nil, wantErr: true},
		{name: "too deep", in: []byte(strings.Repeat("\x91", maxNesting+2) + "\x01"), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := msgpackToJSON(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Errorf("got %s, want an error", got)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Errorf("got %s (%v), want %s", got, err, tc.want)
			}
		})
	}
}

func TestJSONToMsgpackRoundTrip(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		`[0, -1, -33, -129, -32769, -2147483649, 255, 65536, 4294967296, 18446744073709551615]`,
		`{"a": 1, "a": 2, "b": [1.5, null, true, false, "\u00fc"]}`, `-0.0`, `1e-07`,
	} {
		mp, err := jsonToMsgpack([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		back, err := msgpackToJSON(mp)
		if err != nil {
			t.Fatal(err)
		}
		want := mustPyJSON(t, json.RawMessage(in))
		if string(back) != string(want) {
			t.Errorf("%s -> %x -> %s, want %s", in, mp, back, want)
		}
	}
	if _, err := jsonToMsgpack([]byte("-18446744073709551616")); err == nil {
		t.Error("an int below -2^63 must not encode")
	}
}

func TestYAMLToJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{name: "celery fixture shape", in: "- []\n- n:\n  - 1\n  - 2.5\n  - null\n  s: \"\\xFC\"\n- callbacks: null\n", want: `[[], {"n": [1, 2.5, null], "s": "\u00fc"}, {"callbacks": null}]`},
		{name: "empty stream is null", in: "", want: "null"},
		{name: "explicit null document", in: "~\n", want: "null"},
		{name: "bools and ints", in: "[true, false, 0x1F, 0o17, -0, 123456789012345678901234567890]", want: "[true, false, 31, 15, 0, 123456789012345678901234567890]"},
		{name: "floats", in: "[1.0, 1e3, -2.5e-5, .5]", want: "[1.0, 1000.0, -2.5e-05, 0.5]"},
		{name: "strings stay strings", in: `["yes", "1", 'x', plain text, "2024-01-01"]`, want: `["yes", "1", "x", "plain text", "2024-01-01"]`},
		{name: "timestamp kept as text", in: "2024-01-01T00:00:00Z", want: `"2024-01-01T00:00:00Z"`},
		{name: "aliases", in: "a: &x [1, 2]\nb: *x\n", want: `{"a": [1, 2], "b": [1, 2]}`},
		{name: "alias as key", in: "- &k name\n- {*k : 1}\n", want: `["name", {"name": 1}]`},
		{name: "int key", in: "{1: a}", wantErr: true},
		{name: "null key", in: "{~: a}", wantErr: true},
		{name: "binary", in: "!!binary aGk=", wantErr: true},
		{name: "python tag", in: "!!python/object:os.system x", wantErr: true},
		{name: "infinity", in: ".inf", wantErr: true},
		{name: "two documents", in: "1\n---\n2\n", wantErr: true},
		{name: "syntax error", in: "[1, 2", wantErr: true},
		{name: "alias bomb", in: yamlBomb(), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := yamlToJSON([]byte(tc.in))
			if tc.wantErr {
				if err == nil {
					t.Errorf("got %.100s, want an error", got)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Errorf("got %s (%v), want %s", got, err, tc.want)
			}
		})
	}
}

// yamlBomb is a "billion laughs" document.
func yamlBomb() string {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 12; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	return b.String()
}

// TestManyKeys covers the map-based duplicate detection used past 16 keys.
func TestManyKeys(t *testing.T) {
	t.Parallel()
	var in, want, repr []string
	for i := range 20 {
		in = append(in, fmt.Sprintf(`"k%d": %d`, i, i))
	}
	in = append(in, `"k3": "last"`, `"k19": null`)
	for i := range 20 {
		switch i {
		case 3:
			want = append(want, `"k3": "last"`)
			repr = append(repr, `'k3': 'last'`)
		case 19:
			want = append(want, `"k19": null`)
			repr = append(repr, `'k19': None`)
		default:
			want = append(want, fmt.Sprintf(`"k%d": %d`, i, i))
			repr = append(repr, fmt.Sprintf(`'k%d': %d`, i, i))
		}
	}
	raw := json.RawMessage("{" + strings.Join(in, ", ") + "}")
	if got := string(mustPyJSON(t, raw)); got != "{"+strings.Join(want, ", ")+"}" {
		t.Errorf("PyJSON = %s", got)
	}
	if got := Repr(raw); got != "{"+strings.Join(repr, ", ")+"}" {
		t.Errorf("Repr = %s", got)
	}
	order := make([]string, 20)
	kw := map[string]json.RawMessage{}
	for i := range order {
		order[19-i] = fmt.Sprintf("k%d", i)
		kw[order[19-i]] = json.RawMessage("1")
	}
	if got := orderedKeys(order, kw); !equalStrings(got, order) {
		t.Errorf("orderedKeys = %v", got)
	}
	dup := append(append([]string{}, order[:19]...), order[0])
	if got := orderedKeys(dup, kw); len(got) != 20 || got[19] != "k0" {
		t.Errorf("orderedKeys with a duplicate = %v", got)
	}
}

func equalStrings(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}
