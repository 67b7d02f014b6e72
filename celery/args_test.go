package celery

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

type mixedArgs struct {
	Feed     string         `celery:"feed"`
	Limit    *int           `celery:"limit"`
	Verbose  bool           `celery:"verbose,optional"`
	RowLimit int            `celery:",optional"`
	Rest     []string       `celery:"*"`
	Extra    map[string]any `celery:"**"`
	Ignored  int            `celery:"-"`
}

func raws(ss ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(ss))
	for i, s := range ss {
		out[i] = json.RawMessage(s)
	}
	return out
}

func kws(kv ...string) map[string]json.RawMessage {
	m := map[string]json.RawMessage{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = json.RawMessage(kv[i+1])
	}
	return m
}

func TestDecodeArgsPythonCallingRules(t *testing.T) {
	t.Parallel()
	plan, err := planArgs(reflect.TypeFor[addArgs]())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		args    []json.RawMessage
		kwargs  map[string]json.RawMessage
		want    addArgs
		wantErr string
	}{
		{"positional", raws("2", "3"), nil, addArgs{2, 3}, ""},
		{"keywords", nil, kws("x", "2", "y", "3"), addArgs{2, 3}, ""},
		{"mixed", raws("2"), kws("y", "3"), addArgs{2, 3}, ""},
		{"too many", raws("1", "2", "3"), nil, addArgs{}, "takes 2 positional arguments but 3 were given"},
		{"missing", raws("1"), nil, addArgs{}, "missing 1 required argument: 'y'"},
		{"missing both", nil, nil, addArgs{}, "missing 2 required arguments: 'x', 'y'"},
		{"unexpected kw", raws("1", "2"), kws("z", "1"), addArgs{}, "unexpected keyword argument 'z'"},
		{"twice", raws("1", "2"), kws("x", "1"), addArgs{}, "multiple values for argument 'x'"},
		{"wrong type", raws(`"a"`, "2"), nil, addArgs{}, `argument "x": cannot use string "a" as int`},
		{"float for int", raws("1.5", "2"), nil, addArgs{}, `argument "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got addArgs
			err := plan.decode("diag.add", reflect.ValueOf(&got), tc.args, tc.kwargs)
			if tc.wantErr != "" {
				var ae *ArgsError
				if !errors.As(err, &ae) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want an ArgsError containing %q", err, tc.wantErr)
				}
				if typ, mod, _ := ExceptionOf(err); typ != "TypeError" || mod != "builtins" {
					t.Fatalf("ArgsError is %s.%s in Python, want builtins.TypeError", mod, typ)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDecodeArgsStarAndOptional(t *testing.T) {
	t.Parallel()
	plan, err := planArgs(reflect.TypeFor[mixedArgs]())
	if err != nil {
		t.Fatal(err)
	}
	var got mixedArgs
	err = plan.decode("ads.import_feed", reflect.ValueOf(&got),
		raws(`"feed.csv"`, "10", "true", "7", `"a"`, `"b"`), kws("other", `{"k": [1]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got.Feed != "feed.csv" || got.Limit == nil || *got.Limit != 10 || !got.Verbose || got.RowLimit != 7 {
		t.Fatalf("named params wrong: %+v", got)
	}
	if !reflect.DeepEqual(got.Rest, []string{"a", "b"}) {
		t.Fatalf("*args = %v", got.Rest)
	}
	if !reflect.DeepEqual(got.Extra, map[string]any{"other": map[string]any{"k": []any{1.0}}}) {
		t.Fatalf("**kwargs = %v", got.Extra)
	}
	var only mixedArgs
	if err := plan.decode("t", reflect.ValueOf(&only), raws(`"f"`), nil); err != nil {
		t.Fatalf("optional params must be optional: %v", err)
	}
	if only.Limit != nil || only.Rest != nil || only.Extra == nil {
		t.Fatalf("defaults wrong: %+v", only)
	}
}

func TestPlanArgsRejectsBadTypes(t *testing.T) {
	t.Parallel()
	type badStar struct {
		A int `celery:"*"`
	}
	type badKw struct {
		A []int `celery:"**"`
	}
	type dup struct {
		A int `celery:"a"`
		B int `celery:"a"`
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[int](), reflect.TypeFor[badStar](), reflect.TypeFor[badKw](), reflect.TypeFor[dup]()} {
		if _, err := planArgs(typ); err == nil {
			t.Errorf("planArgs(%s) accepted a bad argument type", typ)
		}
	}
}
