package protocol

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// TestPyJSONGolden compares with Python's json.dumps(json.loads(in)), from
// testdata/pyjson_golden.json (testdata/gen_golden.py).
func TestPyJSONGolden(t *testing.T) {
	t.Parallel()
	type golden struct {
		In  string `json:"in"`
		Out string `json:"out"`
	}
	for _, tc := range loadGolden[golden](t, "pyjson_golden.json") {
		got, err := PyJSON(json.RawMessage(tc.In))
		if err != nil {
			t.Errorf("PyJSON(%s): %v", tc.In, err)
			continue
		}
		if string(got) != tc.Out {
			t.Errorf("PyJSON(%s)\n got %s\nwant %s", tc.In, got, tc.Out)
		}
	}
}

type pyJSONStruct struct {
	B string  `json:"b"`
	A float64 `json:"a"`
}

func TestPyJSONValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"nil", nil, "null"},
		{"nil raw", json.RawMessage(nil), "null"},
		{"nil raw list", []json.RawMessage(nil), "null"},
		{"raw list", raws("1", ` "x" `), `[1, "x"]`},
		{"raw map sorted", map[string]json.RawMessage{"b": json.RawMessage("1"), "a": json.RawMessage("[]")}, `{"a": [], "b": 1}`},
		{"string", "é\"\\/<", `"\u00e9\"\\/<"`},
		{"invalid UTF-8 Go string", "a\xffb", `"a\ufffdb"`},
		{"astral", "🚀", `"\ud83d\ude80"`},
		{"bool", true, "true"},
		{"ints", []any{int8(-1), uint64(math.MaxUint64), int64(math.MinInt64)}, "[-1, 18446744073709551615, -9223372036854775808]"},
		{"float integral", 3.0, "3.0"},
		{"float32", float32(0.5), "0.5"},
		{"float exponent", 1e22, "1e+22"},
		{"float small", 1.5e-7, "1.5e-07"},
		{"negative zero", math.Copysign(0, -1), "-0.0"},
		{"json.Number", json.Number("1E2"), "100.0"},
		{"map any sorted", map[string]any{"z": nil, "a": []any{"x", 1.5}}, `{"a": ["x", 1.5], "z": null}`},
		{"struct via encoding/json", pyJSONStruct{B: "<&>", A: 2}, `{"b": "<&>", "a": 2}`},
		{"signature value", Signature{Task: "t"}, `{"task": "t", "args": [], "kwargs": {}, "options": {}, "subtask_type": null, "immutable": false}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := PyJSON(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestPyJSONErrors(t *testing.T) {
	t.Parallel()
	cyclic := []any{nil}
	cyclic[0] = cyclic
	tests := []struct {
		name string
		in   any
	}{
		{"invalid raw", json.RawMessage(`{"a" 1}`)},
		{"trailing data", json.RawMessage(`1 2`)},
		{"NaN literal", json.RawMessage(`NaN`)},
		{"invalid UTF-8 in raw", json.RawMessage("\"\xff\"")},
		{"control char", json.RawMessage("\"\x01\"")},
		{"bad escape", json.RawMessage(`"\x"`)},
		{"NaN float", math.NaN()},
		{"Inf float", math.Inf(1)},
		{"bad json.Number", json.Number("1x")},
		{"too deep", json.RawMessage(strings.Repeat("[", maxNesting+1) + strings.Repeat("]", maxNesting+1))},
		{"cyclic", cyclic},
		{"unmarshalable", make(chan int)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got, err := PyJSON(tc.in); err == nil {
				t.Errorf("PyJSON = %s, want an error", got)
			}
		})
	}
}

func TestPyJSONDepthLimitAccepted(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat("[", maxNesting) + strings.Repeat("]", maxNesting)
	got, err := PyJSON(json.RawMessage(deep))
	if err != nil || string(got) != deep {
		t.Errorf("depth %d: %v", maxNesting, err)
	}
}

func TestPyFloat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   float64
		want string
	}{
		{1.5, "1.5"}, {3, "3.0"}, {100, "100.0"}, {0.1, "0.1"}, {1e16, "1e+16"},
		{1234567890123456, "1234567890123456.0"}, {0.0001, "0.0001"}, {0.00001, "1e-05"},
		{-2.5e-5, "-2.5e-05"}, {5e-324, "5e-324"}, {math.MaxFloat64, "1.7976931348623157e+308"},
		{1e100, "1e+100"}, {123.456, "123.456"}, {math.Inf(-1), "-inf"}, {math.NaN(), "nan"},
	}
	for _, tc := range tests {
		if got := string(appendPyFloat(nil, tc.in)); got != tc.want {
			t.Errorf("appendPyFloat(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
