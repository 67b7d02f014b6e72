// Package config loads celeryconfig.yaml, a YAML file using Celery's own setting names, into a
// celery.Config, then applies the environment overrides every program of this repository honours:
//
//	CELERY_BROKER_URL      broker_url
//	CELERY_RESULT_BACKEND  result_backend
//	CELERY_DATABASE_URL    database_url
//
// Settings this implementation does not know are reported (so typos show) but do not stop a
// program: the same file also carries settings for beat and the ads services.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/forumads/forumads/celery"
)

// DefaultPath is the configuration file programs read when --config is not given.
const DefaultPath = "celeryconfig.yaml"

// File is a loaded configuration.
type File struct {
	Path   string
	Celery celery.Config
	// Settings holds every top-level setting as YAML, for the parts of the system with their own
	// settings (beat_schedule, the ads services).
	Settings map[string]*yaml.Node
	// Unknown lists top-level settings nothing in celery.Config reads.
	Unknown []string
}

// Load reads path (DefaultPath when empty; a missing default file means Celery's defaults),
// applies the environment overrides, fills in defaults and validates.
func Load(path string) (*File, error) {
	explicit := path != ""
	if !explicit {
		path = DefaultPath
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if explicit || !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("config: %w", err)
		}
		data = nil
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	f.Path = path
	if v := os.Getenv("CELERY_BROKER_URL"); v != "" {
		f.Celery.BrokerURL = v
	}
	if v := os.Getenv("CELERY_RESULT_BACKEND"); v != "" {
		f.Celery.ResultBackend = v
	}
	if v := os.Getenv("CELERY_DATABASE_URL"); v != "" {
		f.Celery.DatabaseURL = v
	}
	f.Celery = f.Celery.WithDefaults()
	if err := f.Celery.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return f, nil
}

// Parse decodes a configuration document without defaults or environment.
func Parse(data []byte) (*File, error) {
	f := &File{Settings: map[string]*yaml.Node{}}
	if len(bytes.TrimSpace(data)) == 0 {
		return f, nil
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, err
	}
	if len(root.Content) == 0 {
		return f, nil
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: the configuration must be a mapping of setting names to values", doc.Line)
	}
	known := knownKeys()
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		f.Settings[k.Value] = v
		switch {
		case k.Value == "task_routes":
			routes, err := parseRoutes(v)
			if err != nil {
				return nil, err
			}
			f.Celery.TaskRoutes = routes
		case k.Value == "broker_url" && v.Kind == yaml.SequenceNode:
			// kombu takes a failover list as a list too: the same as the ';'-separated string.
			urls, err := parseURLList(v)
			if err != nil {
				return nil, err
			}
			f.Celery.BrokerURL = urls
		case k.Value == "broker_connection_max_retries" && v.Tag == "!!null":
			// Celery's None: retry forever, as 0.
			f.Celery.BrokerConnectionMaxRetries = new(int)
		case known[k.Value]:
		default:
			f.Unknown = append(f.Unknown, k.Value)
		}
	}
	// Decode the known settings strictly so that a wrong type names its setting.
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		if !known[k.Value] || (k.Value == "broker_url" && v.Kind == yaml.SequenceNode) ||
			(k.Value == "broker_connection_max_retries" && v.Tag == "!!null") {
			continue
		}
		single := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{k, v}}
		if err := single.Decode(&f.Celery); err != nil {
			return nil, fmt.Errorf("%s (line %d): %w", k.Value, k.Line, unwrapYAML(err))
		}
	}
	return f, nil
}

// parseURLList joins a broker_url list into the ';'-separated failover string.
func parseURLList(n *yaml.Node) (string, error) {
	var urls []string
	for _, e := range n.Content {
		if e.Kind != yaml.ScalarNode || strings.TrimSpace(e.Value) == "" {
			return "", fmt.Errorf("broker_url (line %d): a failover list holds URLs (strings), one per entry", e.Line)
		}
		if strings.Contains(e.Value, ";") {
			return "", fmt.Errorf("broker_url (line %d): one URL per list entry (no ';')", e.Line)
		}
		urls = append(urls, strings.TrimSpace(e.Value))
	}
	if len(urls) == 0 {
		return "", errors.New("broker_url: an empty list")
	}
	return strings.Join(urls, ";"), nil
}

func unwrapYAML(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		return errors.New(strings.Join(te.Errors, "; "))
	}
	return err
}

func knownKeys() map[string]bool {
	keys := map[string]bool{}
	t := reflect.TypeFor[celery.Config]()
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			keys[name] = true
		}
	}
	return keys
}

// parseRoutes reads task_routes: a mapping (in file order) or a list of mappings, each from a task
// name or glob pattern to a queue name or to {queue, exchange, routing_key, priority}.
func parseRoutes(n *yaml.Node) (celery.Routes, error) {
	var maps []*yaml.Node
	switch n.Kind {
	case yaml.MappingNode:
		maps = []*yaml.Node{n}
	case yaml.SequenceNode:
		maps = n.Content
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return nil, nil
		}
		fallthrough
	default:
		return nil, fmt.Errorf("task_routes (line %d): want a mapping of task name patterns to queues", n.Line)
	}
	var routes celery.Routes
	for group, m := range maps {
		if m.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("task_routes (line %d): want a mapping", m.Line)
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			if k.Value == "" {
				return nil, fmt.Errorf("task_routes (line %d): an empty task name or pattern", k.Line)
			}
			if first, dup := seen[k.Value]; dup {
				return nil, fmt.Errorf("task_routes[%q] (line %d): given twice (first on line %d)", k.Value, k.Line, first)
			}
			seen[k.Value] = k.Line
			r := celery.Route{Pattern: k.Value, Group: group}
			switch v.Kind {
			case yaml.ScalarNode:
				if v.Tag == "!!null" {
					return nil, fmt.Errorf("task_routes[%q] (line %d): a route needs a queue, got null", k.Value, v.Line)
				}
				r.Queue = v.Value
			case yaml.MappingNode:
				if err := v.Decode(&r); err != nil {
					return nil, fmt.Errorf("task_routes[%q] (line %d): %w", k.Value, v.Line, unwrapYAML(err))
				}
			default:
				return nil, fmt.Errorf("task_routes[%q] (line %d): want a queue name or a mapping", k.Value, v.Line)
			}
			if r.Queue == "" && r.Exchange == "" {
				return nil, fmt.Errorf("task_routes[%q] (line %d): a route needs a queue", k.Value, v.Line)
			}
			routes = append(routes, r)
		}
	}
	return routes, nil
}
