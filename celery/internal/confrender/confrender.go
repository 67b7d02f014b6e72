// Package confrender renders a worker's settings for `celery inspect conf`: each setting by its
// Celery name (the field's yaml tag), as JSON-ready values, only those that differ from the
// defaults unless asked for all, with passwords in URLs and settings named like secrets masked
// (Celery's maskurl and HIDDEN_SETTINGS). It works on any settings struct, so that it needs
// nothing from the root package.
package confrender

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
)

// hiddenSetting matches setting names whose values are secrets (Celery's HIDDEN_SETTINGS, without
// KEY, which would hide every routing key).
var hiddenSetting = regexp.MustCompile(`(?i)API|TOKEN|SECRET|PASS|SIGNATURE|DATABASE`)

// Options tune [Table].
type Options struct {
	// WithDefaults shows every setting, not only those that differ from the defaults.
	WithDefaults bool
	// Named shows fields tagged yaml:"-" all the same, under a setting name: Go field name →
	// setting name (such as TaskRoutes → task_routes, which is read from YAML by hand).
	Named map[string]string
}

// Table renders cfg, a settings struct whose fields carry yaml tags, as the reply to `celery
// inspect conf`: setting name → JSON-ready value. defaults is the same struct with the defaults
// filled in; a setting equal to its default is left out unless o.WithDefaults. Passwords in the
// URLs of settings named *_url and result_backend become "**" (amqp://guest:**@host//) and
// settings named like secrets (password, token, secret...) "********". Fields without a yaml name
// are left out. Mappings are censored key by key (so a password inside broker_transport_options is
// masked, the other options shown). Table panics if cfg and defaults are not structs of one type.
func Table(cfg, defaults any, o Options) map[string]any {
	v := reflect.ValueOf(cfg)
	d := reflect.ValueOf(defaults)
	if v.Kind() != reflect.Struct || d.Type() != v.Type() {
		panic(fmt.Sprintf("confrender.Table: want two structs of one type, got %T and %T", cfg, defaults))
	}
	t := v.Type()
	out := map[string]any{}
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		f := v.Field(i)
		if name == "-" {
			named, ok := o.Named[t.Field(i).Name]
			if !ok {
				continue
			}
			name = named
		}
		if name == "" {
			continue
		}
		if !o.WithDefaults && reflect.DeepEqual(f.Interface(), d.Field(i).Interface()) {
			continue
		}
		out[name] = censor(name, plain(f))
	}
	return out
}

// censor masks val, the value of the setting (or mapping key) name: a mapping is censored key by
// key, as Celery's filter_hidden_settings recurses into Mapping values, so that
// broker_transport_options shows its options with sentinel_kwargs.password and password hidden;
// URLs under *_url and result_backend keep all but their passwords; secret-named values become
// "********" unless unset (nil).
func censor(name string, val any) any {
	if m, ok := val.(map[string]any); ok {
		for k, v := range m {
			m[k] = censor(k, v)
		}
		return m
	}
	switch {
	case strings.HasSuffix(name, "_url") || name == "result_backend":
		if s, ok := val.(string); ok {
			return MaskURL(s)
		}
	case hiddenSetting.MatchString(name) && val != nil:
		return "********"
	}
	return val
}

// plain turns a setting into JSON-ready values named by their yaml tags.
func plain(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return plain(v.Elem())
	case reflect.Struct:
		m := map[string]any{}
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			m[name] = plain(v.Field(i))
		}
		return m
	case reflect.Slice:
		if v.IsNil() {
			return nil
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = plain(v.Index(i))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		m := map[string]any{}
		it := v.MapRange()
		for it.Next() {
			m[fmt.Sprint(it.Key().Interface())] = plain(it.Value())
		}
		return m
	}
	return v.Interface()
}

// MaskURL hides the passwords of a URL (or a ';'-separated list), as Celery's maskurl does:
// amqp://guest:**@host//. A URL without a password is returned as is.
func MaskURL(s string) string {
	parts := strings.Split(s, ";")
	for i, p := range parts {
		scheme, rest, ok := strings.Cut(p, "://")
		if !ok {
			continue
		}
		at := strings.LastIndex(rest, "@")
		if at < 0 {
			continue
		}
		if user, _, hasPass := strings.Cut(rest[:at], ":"); hasPass {
			parts[i] = scheme + "://" + user + ":**" + rest[at:]
		}
	}
	return strings.Join(parts, ";")
}
