package celery

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode"
)

// ArgsUnmarshaler is implemented by argument types that decode Celery's args and kwargs themselves.
type ArgsUnmarshaler interface {
	UnmarshalCelery(args []json.RawMessage, kwargs map[string]json.RawMessage) error
}

// Raw receives a task's arguments undecoded: the positional args and the keyword args as JSON.
type Raw struct {
	Args   []json.RawMessage          `celery:"*"`
	Kwargs map[string]json.RawMessage `celery:"**"`
}

// argsPlan describes how a struct's fields take Python-style arguments. Fields are parameters in
// declaration order; positional args fill them in that order and keyword args by name:
//
//	X int    `celery:"x"`          // parameter x (required)
//	Y int    `celery:"y,optional"` // may be missing (pointer fields are optional too)
//	Rest []any `celery:"*"`        // *args: positional args beyond the named parameters
//	More map[string]any `celery:"**"` // **kwargs: keyword args that match no parameter
//	Skip int `celery:"-"`
//
// An untagged exported field is a parameter named after the field in snake_case (RowLimit → row_limit).
type argsPlan struct {
	params  []paramField
	byName  map[string]int
	star    []int // field index of *args, nil if none
	starTyp reflect.Type
	kw      []int // field index of **kwargs
	kwTyp   reflect.Type
}

type paramField struct {
	name     string
	index    []int
	optional bool
}

var rawMessageType = reflect.TypeOf(json.RawMessage(nil))

func planArgs(t reflect.Type) (*argsPlan, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("task argument type %s must be a struct", t)
	}
	p := &argsPlan{byName: map[string]int{}}
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
			p.star, p.starTyp = f.Index, f.Type
			continue
		case "**":
			if f.Type.Kind() != reflect.Map || f.Type.Key().Kind() != reflect.String {
				return nil, fmt.Errorf("field %s: **kwargs needs a map with string keys", f.Name)
			}
			p.kw, p.kwTyp = f.Index, f.Type
			continue
		case "":
			name = snake(f.Name)
		}
		if _, dup := p.byName[name]; dup {
			return nil, fmt.Errorf("field %s: parameter %q named twice", f.Name, name)
		}
		p.byName[name] = len(p.params)
		p.params = append(p.params, paramField{
			name:     name,
			index:    f.Index,
			optional: opts == "optional" || f.Type.Kind() == reflect.Pointer,
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

// decode fills dst (a pointer to the struct) from args and kwargs with Python's calling rules.
func (p *argsPlan) decode(task string, dst reflect.Value, args []json.RawMessage, kwargs map[string]json.RawMessage) error {
	v := dst.Elem()
	if len(args) > len(p.params) && p.star == nil {
		return &ArgsError{Task: task, Err: fmt.Errorf("takes %d positional argument%s but %d %s given",
			len(p.params), plural(len(p.params)), len(args), wasWere(len(args)))}
	}
	set := make([]bool, len(p.params))
	for i, raw := range args {
		if i >= len(p.params) {
			break
		}
		if err := setField(v.FieldByIndex(p.params[i].index), raw); err != nil {
			return &ArgsError{Task: task, Param: p.params[i].name, Err: err}
		}
		set[i] = true
	}
	if p.star != nil && len(args) > len(p.params) {
		rest := args[len(p.params):]
		sv := reflect.MakeSlice(p.starTyp, len(rest), len(rest))
		for i, raw := range rest {
			if err := setField(sv.Index(i), raw); err != nil {
				return &ArgsError{Task: task, Param: fmt.Sprintf("*args[%d]", i), Err: err}
			}
		}
		v.FieldByIndex(p.star).Set(sv)
	}
	var extra reflect.Value
	for name, raw := range kwargs {
		i, ok := p.byName[name]
		if !ok {
			if p.kw == nil {
				return &ArgsError{Task: task, Err: fmt.Errorf("got an unexpected keyword argument '%s'", name)}
			}
			if !extra.IsValid() {
				extra = reflect.MakeMapWithSize(p.kwTyp, len(kwargs))
			}
			ev := reflect.New(p.kwTyp.Elem()).Elem()
			if err := setField(ev, raw); err != nil {
				return &ArgsError{Task: task, Param: name, Err: err}
			}
			extra.SetMapIndex(reflect.ValueOf(name).Convert(p.kwTyp.Key()), ev)
			continue
		}
		if set[i] {
			return &ArgsError{Task: task, Err: fmt.Errorf("got multiple values for argument '%s'", name)}
		}
		if err := setField(v.FieldByIndex(p.params[i].index), raw); err != nil {
			return &ArgsError{Task: task, Param: name, Err: err}
		}
		set[i] = true
	}
	if p.kw != nil {
		if !extra.IsValid() {
			extra = reflect.MakeMap(p.kwTyp)
		}
		v.FieldByIndex(p.kw).Set(extra)
	}
	var missing []string
	for i, ok := range set {
		if !ok && !p.params[i].optional {
			missing = append(missing, "'"+p.params[i].name+"'")
		}
	}
	if len(missing) > 0 {
		return &ArgsError{Task: task, Err: fmt.Errorf("missing %d required argument%s: %s",
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
