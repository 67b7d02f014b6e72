package celery

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
)

type nested struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

type shapedArgs struct {
	Feed    string             `celery:"feed"`
	Limit   *int               `celery:"limit"`
	Verbose bool               `celery:"verbose,optional"`
	Page    int                `celery:",optional"`
	Item    nested             `celery:"item"`
	Rest    []string           `celery:"*"`
	Extra   map[string]float64 `celery:"**"`
}

// roundTrip sends args as TaskDef.Send encodes them and has the registered task return what it
// decoded: the encoding Send uses and the decoding the worker uses, through the same registry
// runner a worker calls.
func roundTrip[A any](t *testing.T, args A) A {
	t.Helper()
	def := NewTaskDef[A, A]("test.echo")
	reg := NewRegistry()
	def.Register(reg, func(_ context.Context, task *Task[A]) (A, error) { return task.Args, nil })
	pos, kw, err := encodeArgs(def.Name(), args)
	if err != nil {
		t.Fatalf("encodeArgs(%+v): %v", args, err)
	}
	raw, err := reg.Apply(context.Background(), def.Name(), pos, kw)
	if err != nil {
		t.Fatalf("the task refused what Send encodes for %+v (args %s, kwargs %v): %v", args, pos, kw, err)
	}
	var got A
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestTaskDefArgsRoundTrip: what TaskDef.Send encodes, the worker decodes into the same value,
// for named, optional, pointer, nested, *args and **kwargs fields, and for *args after optional
// parameters left at zero (which must then go positionally, not as holes).
func TestTaskDefArgsRoundTrip(t *testing.T) {
	t.Parallel()
	ten := 10
	for _, args := range []shapedArgs{
		{Feed: "feed.csv", Item: nested{Name: "n", Tags: []string{"a"}}},
		{Feed: "f", Limit: &ten, Verbose: true, Page: 3, Item: nested{Name: "x"}},
		{Feed: "f", Limit: &ten, Verbose: true, Page: 3, Rest: []string{"r1", "r2"}, Extra: map[string]float64{"k": 1.5}},
		{Feed: "f", Rest: []string{"r1"}}, // Verbose and Page zero, before *args
		{Feed: "f", Extra: map[string]float64{"other": 2}},
	} {
		got := roundTrip(t, args)
		if got.Extra == nil && args.Extra == nil {
			got.Extra = nil
		}
		if len(got.Extra) == 0 && len(args.Extra) == 0 {
			got.Extra, args.Extra = nil, nil
		}
		if !reflect.DeepEqual(got, args) {
			t.Errorf("sent %+v, the task decoded %+v", args, got)
		}
	}
	type optionalThenRest struct {
		Page int      `celery:"page,optional"`
		Rest []string `celery:"*"`
	}
	if got := roundTrip(t, optionalThenRest{Rest: []string{"a", "b"}}); got.Page != 0 || !reflect.DeepEqual(got.Rest, []string{"a", "b"}) {
		t.Errorf("only optional parameters, all zero, then *args: the task decoded %+v", got)
	}
	if got := roundTrip(t, addArgs{X: 2, Y: 3}); got != (addArgs{X: 2, Y: 3}) {
		t.Errorf("addArgs round trip = %+v", got)
	}
}

// TestNewTaskDefRefusesBadArgTypes: a declaration whose argument type the worker could not decode
// panics at declaration, as Register does.
func TestNewTaskDefRefusesBadArgTypes(t *testing.T) {
	t.Parallel()
	for name, declare := range map[string]func(){
		"not a struct": func() { NewTaskDef[int, int]("t") },
		"bad *args": func() {
			NewTaskDef[struct {
				X int `celery:"*"`
			}, int]("t")
		},
		"empty name": func() { NewTaskDef[addArgs, int]("") },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: NewTaskDef did not panic", name)
				}
			}()
			declare()
		}()
	}
	if err := NewTaskDef[addArgs, int]("t").RegisterE(NewRegistry(), nil); err == nil {
		t.Error("RegisterE accepted a nil function")
	}
}
