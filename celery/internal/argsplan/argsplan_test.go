package argsplan

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

type addArgs struct {
	X int `celery:"x"`
	Y int `celery:"y"`
}

func raws(ss ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(ss))
	for i, s := range ss {
		out[i] = json.RawMessage(s)
	}
	return out
}

func mustPlan[T any](t *testing.T) *Plan {
	t.Helper()
	p, err := New(reflect.TypeFor[T]())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Errors are *Error naming the parameter they are about, or none for the call as a whole, with
// Python's TypeError wording.
func TestDecodeErrorsNameTheParameter(t *testing.T) {
	t.Parallel()
	p := mustPlan[addArgs](t)
	for _, tc := range []struct {
		name    string
		args    []json.RawMessage
		kwargs  map[string]json.RawMessage
		param   string
		message string
	}{
		{"wrong type", raws(`"a"`, "2"), nil, "x", `argument "x": cannot use string "a" as int`},
		{"wrong keyword type", raws("1"), map[string]json.RawMessage{"y": json.RawMessage(`[1]`)}, "y", `argument "y": cannot use array [1] as int`},
		{"too many", raws("1", "2", "3"), nil, "", "takes 2 positional arguments but 3 were given"},
		{"missing both", nil, nil, "", "missing 2 required arguments: 'x', 'y'"},
	} {
		var got addArgs
		err := p.Decode(reflect.ValueOf(&got), tc.args, tc.kwargs)
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("%s: error %T (%v), want *Error", tc.name, err, err)
		}
		if e.Param != tc.param || err.Error() != tc.message {
			t.Errorf("%s: Param %q, Error() %q; want %q, %q", tc.name, e.Param, err.Error(), tc.param, tc.message)
		}
		if errors.Unwrap(err) != e.Err {
			t.Errorf("%s: Unwrap does not return Err", tc.name)
		}
	}
}

// A long wrong value is cut short in the message.
func TestDecodeTruncatesLongValues(t *testing.T) {
	t.Parallel()
	p := mustPlan[addArgs](t)
	long := `"` + strings.Repeat("a", 200) + `"`
	var got addArgs
	err := p.Decode(reflect.ValueOf(&got), raws(long, "1"), nil)
	if err == nil || strings.Contains(err.Error(), long) || !strings.Contains(err.Error(), "...") {
		t.Fatalf("error = %v, want the value cut to 64 bytes and ...", err)
	}
}

// A json.RawMessage field receives the argument's bytes as they came, copied.
func TestDecodeRawMessageFieldKeepsBytes(t *testing.T) {
	t.Parallel()
	type rawArgs struct {
		Payload json.RawMessage `celery:"payload"`
	}
	p := mustPlan[rawArgs](t)
	in := raws(`{"b": [1, 2],  "a": null}`)
	var got rawArgs
	if err := p.Decode(reflect.ValueOf(&got), in, nil); err != nil {
		t.Fatal(err)
	}
	if string(got.Payload) != `{"b": [1, 2],  "a": null}` {
		t.Fatalf("Payload = %s", got.Payload)
	}
	in[0][0] = 'X'
	if got.Payload[0] != '{' {
		t.Fatal("Payload shares the message's bytes")
	}
}

// New lists the parameters in declaration order with their names, skipping unexported and
// "-" fields, and finds *args and **kwargs.
func TestNewPlansParameters(t *testing.T) {
	t.Parallel()
	type args struct {
		FeedURL  string `celery:"feed"`
		RowLimit int
		Maybe    *int
		Verbose  bool           `celery:"verbose,optional"`
		hidden   int            // an unexported field is not a parameter
		Skip     int            `celery:"-"`
		Rest     []string       `celery:"*"`
		More     map[string]any `celery:"**"`
	}
	_ = args{}.hidden
	p := mustPlan[args](t)
	var got []string
	for _, prm := range p.Params {
		s := prm.Name
		if prm.Optional {
			s += "?"
		}
		got = append(got, s)
	}
	if strings.Join(got, " ") != "feed row_limit maybe? verbose?" {
		t.Fatalf("Params = %v, want [feed row_limit maybe? verbose?]", got)
	}
	if !reflect.DeepEqual(p.Star, []int{6}) || !reflect.DeepEqual(p.Kwargs, []int{7}) {
		t.Fatalf("Star %v, Kwargs %v; want [6], [7]", p.Star, p.Kwargs)
	}
}

func TestNewRefusesBadTypes(t *testing.T) {
	t.Parallel()
	type badStar struct {
		A int `celery:"*"`
	}
	type badKw struct {
		A []int `celery:"**"`
	}
	type intKeys struct {
		A map[int]any `celery:"**"`
	}
	type dup struct {
		A int `celery:"a"`
		B int `celery:"a"`
	}
	for typ, want := range map[reflect.Type]string{
		reflect.TypeFor[int]():     "must be a struct",
		reflect.TypeFor[badStar](): "*args needs a slice",
		reflect.TypeFor[badKw]():   "**kwargs needs a map",
		reflect.TypeFor[intKeys](): "**kwargs needs a map with string keys",
		reflect.TypeFor[dup]():     `parameter "a" named twice`,
	} {
		if _, err := New(typ); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(%s) = %v, want an error containing %q", typ, err, want)
		}
	}
}
