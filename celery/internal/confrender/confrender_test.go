package confrender

import (
	"encoding/json"
	"strings"
	"testing"
)

type route struct {
	Pattern string `yaml:"pattern"`
	Queue   string `yaml:"queue"`
	hidden  string
}

// settings stands in for celery.Config: yaml-tagged fields of the kinds Config has.
type settings struct {
	BrokerURL     string            `yaml:"broker_url"`
	ResultBackend string            `yaml:"result_backend"`
	RedisPassword string            `yaml:"redis_password"`
	APIToken      *string           `yaml:"api_token"`
	DefaultQueue  string            `yaml:"task_default_queue"`
	Prefetch      int               `yaml:"worker_prefetch_multiplier"`
	TimeLimit     *float64          `yaml:"task_time_limit"`
	Accept        []string          `yaml:"accept_content"`
	Annotations   map[string]int    `yaml:"task_annotations,omitempty"`
	Routes        []route           `yaml:"-"`
	Internal      string            `yaml:"-"`
	Untagged      string            // no yaml name: not a setting
	Headers       map[string]string `yaml:"headers"`
	Transport     map[string]any    `yaml:"broker_transport_options"`
}

func defaults() settings {
	return settings{BrokerURL: "amqp://guest:guest@localhost//", DefaultQueue: "celery", Prefetch: 4, Accept: []string{"json"}}
}

func TestTableShowsOnlyChangedSettings(t *testing.T) {
	t.Parallel()
	cfg := defaults()
	cfg.DefaultQueue = "q"
	got := Table(cfg, defaults(), Options{})
	if len(got) != 1 || got["task_default_queue"] != "q" {
		t.Fatalf("Table = %v, want only task_default_queue", got)
	}
	all := Table(cfg, defaults(), Options{WithDefaults: true})
	if all["worker_prefetch_multiplier"] != 4 || all["task_default_queue"] != "q" || all["task_time_limit"] != nil {
		t.Fatalf("Table with defaults = %v", all)
	}
	if _, ok := all["Untagged"]; ok {
		t.Fatalf("a field without a yaml name is shown: %v", all)
	}
	for k := range all {
		if k == "" || k == "-" {
			t.Fatalf("a field tagged %q is shown: %v", k, all)
		}
	}
}

func TestTableMasksSecrets(t *testing.T) {
	t.Parallel()
	tok := "tok123"
	cfg := defaults()
	cfg.BrokerURL = "amqp://u:secret@h1//;amqp://u:other@h2//"
	cfg.ResultBackend = "redis://:pw@r:6379/0"
	cfg.RedisPassword = "hunter2"
	cfg.APIToken = &tok
	got := Table(cfg, defaults(), Options{})
	b, _ := json.Marshal(got)
	for _, secret := range []string{"secret", "other", ":pw@", "hunter2", "tok123"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("Table shows %q: %s", secret, b)
		}
	}
	if got["broker_url"] != "amqp://u:**@h1//;amqp://u:**@h2//" || got["result_backend"] != "redis://:**@r:6379/0" ||
		got["redis_password"] != "********" || got["api_token"] != "********" {
		t.Errorf("Table = %s", b)
	}
}

// broker_transport_options is shown with its options, and secrets inside it (at any depth) masked
// as Celery's filter_hidden_settings masks them: it recurses into every mapping and censors each key.
func TestTableCensorsTransportOptionsKeyByKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts map[string]any
		want string // the JSON of broker_transport_options
	}{
		{"plain options shown", map[string]any{"visibility_timeout": 10, "fanout_prefix": true},
			`{"fanout_prefix":true,"visibility_timeout":10}`},
		{"sentinel passwords masked", map[string]any{"master_name": "mymaster", "password": "redis-pw",
			"sentinel_kwargs": map[string]any{"password": "sentinel-pw", "socket_timeout": 0.5}},
			`{"master_name":"mymaster","password":"********","sentinel_kwargs":{"password":"********","socket_timeout":0.5}}`},
		{"url inside masked", map[string]any{"backup_url": "redis://:pw@h:6379/0", "api_token": "t"},
			`{"api_token":"********","backup_url":"redis://:**@h:6379/0"}`},
		{"unset secret stays null", map[string]any{"password": nil}, `{"password":null}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaults()
			cfg.Transport = tc.opts
			got := Table(cfg, defaults(), Options{})
			b, err := json.Marshal(got["broker_transport_options"])
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Errorf("broker_transport_options = %s, want %s", b, tc.want)
			}
			if raw, _ := json.Marshal(tc.opts); strings.Contains(string(raw), "**") {
				t.Errorf("Table masked the worker's own settings, not a copy: %s", raw)
			}
		})
	}
}

// A secret-named setting that is unset (nil) stays null: masking it would claim a value.
func TestTableLeavesUnsetSecretsNull(t *testing.T) {
	t.Parallel()
	got := Table(defaults(), defaults(), Options{WithDefaults: true})
	if v, ok := got["api_token"]; !ok || v != nil {
		t.Fatalf("api_token = %#v (present %v), want null", v, ok)
	}
}

func TestTableRendersNestedValuesByYAMLName(t *testing.T) {
	t.Parallel()
	five := 5.0
	cfg := defaults()
	cfg.TimeLimit = &five
	cfg.Annotations = map[string]int{"a": 1}
	cfg.Routes = []route{{Pattern: "a.*", Queue: "qa", hidden: "x"}}
	cfg.Internal = "not shown"
	got := Table(cfg, defaults(), Options{Named: map[string]string{"Routes": "task_routes"}})
	if got["task_time_limit"] != 5.0 {
		t.Errorf("task_time_limit = %#v, want 5.0 (the pointer followed)", got["task_time_limit"])
	}
	if m, _ := got["task_annotations"].(map[string]any); m["a"] != 1 {
		t.Errorf("task_annotations = %#v", got["task_annotations"])
	}
	routes, _ := got["task_routes"].([]any)
	if len(routes) != 1 {
		t.Fatalf("task_routes = %#v", got["task_routes"])
	}
	r := routes[0].(map[string]any)
	if r["pattern"] != "a.*" || r["queue"] != "qa" || len(r) != 2 {
		t.Errorf("route = %#v, want pattern and queue only", r)
	}
	if _, ok := got["Internal"]; ok {
		t.Errorf("a yaml:\"-\" field not in Named is shown: %v", got)
	}
	for _, v := range got {
		if v == "not shown" {
			t.Errorf("a yaml:\"-\" field not in Named is shown: %v", got)
		}
	}
}

func TestTablePanicsOnMismatchedTypes(t *testing.T) {
	t.Parallel()
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "two structs of one type") {
			t.Fatalf("recover() = %v, want the mismatch panic", r)
		}
	}()
	Table(defaults(), struct{}{}, Options{})
}

func TestMaskURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"amqp://guest:guest@localhost:5672//": "amqp://guest:**@localhost:5672//",
		"redis://:pw@r:6379/0":                "redis://:**@r:6379/0",
		"amqp://u@h//":                        "amqp://u@h//",
		"amqp://h//":                          "amqp://h//",
		"memory://":                           "memory://",
		"":                                    "",
		"not a url":                           "not a url",
		"amqp://a:b@h1//;amqp://c:d@h2//":     "amqp://a:**@h1//;amqp://c:**@h2//",
		"amqp://u:p@ss@h//":                   "amqp://u:**@h//",
		"sentinel://:s1@h1:26379;sentinel://h2:263": "sentinel://:**@h1:26379;sentinel://h2:263",
	} {
		if got := MaskURL(in); got != want {
			t.Errorf("MaskURL(%q) = %q, want %q", in, got, want)
		}
	}
}
