// This file holds configuration rendering: the conf inspect reply and ConfTable, with secrets masked.

package celery

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
)

func (c *controller) conf(_ context.Context, args json.RawMessage) (any, error) {
	withDefaults, err := decodeConfArgs(args)
	if err != nil {
		return nil, err
	}
	return ConfTable(c.w.cfg, withDefaults), nil
}

// hiddenSetting matches setting names whose values are secrets (Celery's HIDDEN_SETTINGS, without
// KEY, which would hide every routing key).
var hiddenSetting = regexp.MustCompile(`(?i)API|TOKEN|SECRET|PASS|SIGNATURE|DATABASE`)

// ConfTable is the reply to `celery inspect conf`: the settings by their Celery names, only
// those that differ from the defaults unless withDefaults. Passwords in URLs are replaced with
// "**" (as Celery's maskurl does) and settings named like secrets (password, token, secret...)
// with "********".
func ConfTable(cfg Config, withDefaults bool) map[string]any {
	defaults := reflect.ValueOf(Config{}.WithDefaults())
	v := reflect.ValueOf(cfg)
	t := v.Type()
	out := map[string]any{}
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		f := v.Field(i)
		if name == "-" {
			if t.Field(i).Name != "TaskRoutes" {
				continue
			}
			name = "task_routes"
		}
		if name == "" {
			continue
		}
		if !withDefaults && reflect.DeepEqual(f.Interface(), defaults.Field(i).Interface()) {
			continue
		}
		val := plain(f)
		switch {
		case strings.HasSuffix(name, "_url") || name == "result_backend":
			if s, ok := val.(string); ok {
				val = maskURL(s)
			}
		case hiddenSetting.MatchString(name) && val != nil:
			val = "********"
		}
		out[name] = val
	}
	return out
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

// maskURL hides the passwords of a URL (or a ';'-separated list): amqp://guest:**@host//.
func maskURL(s string) string {
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
