// Package argsplan decodes Celery's positional and keyword arguments (a message's args and
// kwargs) into a Go struct with Python's calling rules, reading the struct's `celery` tags: the
// worker decodes a task's arguments with a [Plan], and the client encodes them with the same one,
// so both sides agree on the names. Errors speak Python's TypeError messages ("missing 1 required
// argument: 'y'").
package argsplan

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode"
)

// Error is a refused call: the parameter it is about ("" for the call as a whole) and why.
type Error struct {
	Param string
	Err   error
}

// Error is the reason, after the parameter it is about when there is one.
func (e *Error) Error() string {
	if e.Param == "" {
		return e.Err.Error()
	}
	return fmt.Sprintf("argument %q: %v", e.Param, e.Err)
}

// Unwrap returns the decoding error.
func (e *Error) Unwrap() error { return e.Err }

// Plan describes how a struct's fields take Python-style arguments. Fields are parameters in
// declaration order; positional args fill them in that order and keyword args by name:
//
//	X int    `celery:"x"`          // parameter x (required)
//	Y int    `celery:"y,optional"` // may be missing (pointer fields are optional too)
//	Rest []any `celery:"*"`        // *args: positional args beyond the named parameters
//	More map[string]any `celery:"**"` // **kwargs: keyword args that match no parameter
//	Skip int `celery:"-"`
//
// An untagged exported field is a parameter named after the field in snake_case (RowLimit → row_limit).
type Plan struct {
	// Params are the named parameters in declaration order.
	Params []Param
	// Star is the field index of *args, nil if none.
	Star []int
	// Kwargs is the field index of **kwargs, nil if none.
	Kwargs []int

	byName  map[string]int
	starTyp reflect.Type
	kwTyp   reflect.Type
}

// Param is one named parameter.
type Param struct {
	Name     string // the Python name, as a keyword argument spells it
	Index    []int  // the field's index for reflect.Value.FieldByIndex
	Optional bool   // it may be missing: tagged optional, or a pointer
}

var rawMessageType = reflect.TypeOf(json.RawMessage(nil))

// New makes the plan of struct type t; it refuses a type that is not a struct, a *args field
// that is not a slice, a **kwargs field that is not a map with string keys and a parameter named
// twice.
func New(t reflect.Type) (*Plan, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("task argument type %s must be a struct", t)
	}
	p := &Plan{byName: map[string]int{}}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("celery")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		switch name {
		case "*":
			if f.Type.Kind() != reflect.Slice {
				return nil, fmt.Errorf("field %s: *args needs a slice", f.Name)
			}
			p.Star, p.starTyp = f.Index, f.Type
			continue
		case "**":
			if f.Type.Kind() != reflect.Map || f.Type.Key().Kind() != reflect.String {
				return nil, fmt.Errorf("field %s: **kwargs needs a map with string keys", f.Name)
			}
			p.Kwargs, p.kwTyp = f.Index, f.Type
			continue
		case "":
			name = snake(f.Name)
		}
		if _, dup := p.byName[name]; dup {
			return nil, fmt.Errorf("field %s: parameter %q named twice", f.Name, name)
		}
		p.byName[name] = len(p.Params)
		p.Params = append(p.Params, Param{
			Name:     name,
			Index:    f.Index,
			Optional: opts == "optional" || f.Type.Kind() == reflect.Pointer,
		})
	}
	return p, nil
}

func snake(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			if i > 0 && (unicode.IsLower(rs[i-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]))) {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Decode fills dst (a pointer to the struct) from args and kwargs with Python's calling rules.
// Its errors are *[Error]s.
func (p *Plan) Decode(dst reflect.Value, args []json.RawMessage, kwargs map[string]json.RawMessage) error {
	v := dst.Elem()
	if len(args) > len(p.Params) && p.Star == nil {
		return &Error{Err: fmt.Errorf("takes %d positional argument%s but %d %s given",
			len(p.Params), plural(len(p.Params)), len(args), wasWere(len(args)))}
	}
	set := make([]bool, len(p.Params))
	for i, raw := range args {
		if i >= len(p.Params) {
			break
		}
		if err := setField(v.FieldByIndex(p.Params[i].Index), raw); err != nil {
			return &Error{Param: p.Params[i].Name, Err: err}
		}
		set[i] = true
	}
	if p.Star != nil && len(args) > len(p.Params) {
		rest := args[len(p.Params):]
		sv := reflect.MakeSlice(p.starTyp, len(rest), len(rest))
		for i, raw := range rest {
			if err := setField(sv.Index(i), raw); err != nil {
				return &Error{Param: fmt.Sprintf("*args[%d]", i), Err: err}
			}
		}
		v.FieldByIndex(p.Star).Set(sv)
	}
	var extra reflect.Value
	for name, raw := range kwargs {
		i, ok := p.byName[name]
		if !ok {
			if p.Kwargs == nil {
				return &Error{Err: fmt.Errorf("got an unexpected keyword argument '%s'", name)}
			}
			if !extra.IsValid() {
				extra = reflect.MakeMapWithSize(p.kwTyp, len(kwargs))
			}
			ev := reflect.New(p.kwTyp.Elem()).Elem()
			if err := setField(ev, raw); err != nil {
				return &Error{Param: name, Err: err}
			}
			extra.SetMapIndex(reflect.ValueOf(name).Convert(p.kwTyp.Key()), ev)
			continue
		}
		if set[i] {
			return &Error{Err: fmt.Errorf("got multiple values for argument '%s'", name)}
		}
		if err := setField(v.FieldByIndex(p.Params[i].Index), raw); err != nil {
			return &Error{Param: name, Err: err}
		}
		set[i] = true
	}
	if p.Kwargs != nil {
		if !extra.IsValid() {
			extra = reflect.MakeMap(p.kwTyp)
		}
		v.FieldByIndex(p.Kwargs).Set(extra)
	}
	var missing []string
	for i, ok := range set {
		if !ok && !p.Params[i].Optional {
			missing = append(missing, "'"+p.Params[i].Name+"'")
		}
	}
	if len(missing) > 0 {
		return &Error{Err: fmt.Errorf("missing %d required argument%s: %s",
			len(missing), plural(len(missing)), strings.Join(missing, ", "))}
	}
	return nil
}

func setField(f reflect.Value, raw json.RawMessage) error {
	if f.Type() == rawMessageType {
		f.SetBytes(append([]byte(nil), raw...))
		return nil
	}
	if err := json.Unmarshal(raw, f.Addr().Interface()); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return fmt.Errorf("cannot use %s %s as %s", ute.Value, truncate(string(raw), 64), f.Type())
		}
		return err
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func wasWere(n int) string {
	if n == 1 {
		return "was"
	}
	return "were"
}
