package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/internal/testenv"
)

func TestParseCelerySettings(t *testing.T) {
	t.Parallel()
	f, err := Parse([]byte(`
broker_url: amqp://u:p@rabbit:5672//
result_backend: redis://r:6379/1
accept_content: [json, msgpack]
result_expires: 3600
task_acks_late: true
task_time_limit: 30.5
task_queues:
  - {name: ads, exchange: ads, routing_key: ads, max_priority: 10}
task_routes:
  ads.import_feed: {queue: ads.import, priority: 5}
  ads.*: ads
worker_prefetch_multiplier: 1
beat_schedule: {hourly: {task: ads.import_feed, schedule: 3600}}
database_url: postgres://x
`))
	if err != nil {
		t.Fatal(err)
	}
	c := f.Celery
	if c.BrokerURL != "amqp://u:p@rabbit:5672//" || c.ResultBackend != "redis://r:6379/1" || !c.TaskAcksLate ||
		*c.ResultExpires != 3600 || *c.TaskTimeLimit != 30.5 || *c.WorkerPrefetchMultiplier != 1 ||
		len(c.AcceptContent) != 2 || len(c.TaskQueues) != 1 || *c.TaskQueues[0].MaxPriority != 10 {
		t.Fatalf("parsed %+v", c)
	}
	if len(c.TaskRoutes) != 2 || c.TaskRoutes[0].Pattern != "ads.import_feed" || c.TaskRoutes[0].Queue != "ads.import" ||
		*c.TaskRoutes[0].Priority != 5 || c.TaskRoutes[1].Queue != "ads" {
		t.Fatalf("routes must keep file order: %+v", c.TaskRoutes)
	}
	if c.DatabaseURL != "postgres://x" {
		t.Errorf("database_url = %q", c.DatabaseURL)
	}
	if strings.Join(f.Unknown, ",") != "beat_schedule" || f.Settings["beat_schedule"] == nil {
		t.Fatalf("unknown = %v", f.Unknown)
	}
}

// TestParseTransportOptions: Celery's transport options mappings reach celery.Config as YAML wrote
// them (nested mappings, numbers), for the adapters to read.
func TestParseTransportOptions(t *testing.T) {
	t.Parallel()
	f, err := Parse([]byte(`
result_backend: sentinel://:pw@127.0.0.1:26390/2;sentinel://127.0.0.1:26391
result_backend_transport_options: {master_name: mymaster, sentinel_kwargs: {password: sentinel-pw}}
broker_transport_options:
  master_name: other
  visibility_timeout: 3600
  socket_timeout: 0.5
`))
	if err != nil {
		t.Fatal(err)
	}
	rb, br := f.Celery.ResultBackendTransportOptions, f.Celery.BrokerTransportOptions
	kw, _ := rb["sentinel_kwargs"].(map[string]any)
	if rb["master_name"] != "mymaster" || kw["password"] != "sentinel-pw" {
		t.Errorf("result_backend_transport_options = %#v", rb)
	}
	if br["master_name"] != "other" || br["visibility_timeout"] != 3600 || br["socket_timeout"] != 0.5 {
		t.Errorf("broker_transport_options = %#v", br)
	}
	if len(f.Unknown) != 0 {
		t.Errorf("unknown settings %v: the transport options are Celery's", f.Unknown)
	}
}

func TestParseErrorsNameTheSetting(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ doc, want string }{
		{"task_acks_late: maybe", "task_acks_late"},
		{"worker_concurrency: many", "worker_concurrency"},
		{"task_routes: [1, 2]", "task_routes"},
		{"task_routes: {a.b: {queue: 1, exchange: [x]}}", `task_routes["a.b"]`},
		{"- just a list", "mapping"},
		{"broker_url: [unclosed", "line"},
		{"broker_transport_options: [master_name, mymaster]", "broker_transport_options"},
		{"result_backend_transport_options: mymaster", "result_backend_transport_options"},
	} {
		_, err := Parse([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error mentioning %q", tc.doc, err, tc.want)
		}
	}
}

func TestLoadEnvironmentOverridesAndDefaults(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(path, []byte("broker_url: amqp://file//\nresult_backend: redis://file/0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CELERY_BROKER_URL", "amqp://env//")
	t.Setenv("CELERY_RESULT_BACKEND", "redis://env/2")
	t.Setenv("CELERY_DATABASE_URL", "postgres://env/db")
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Celery.BrokerURL != "amqp://env//" || f.Celery.ResultBackend != "redis://env/2" || f.Celery.DatabaseURL != "postgres://env/db" {
		t.Fatalf("environment did not override: %+v", f.Celery)
	}
	if f.Celery.TaskDefaultQueue != "celery" || *f.Celery.WorkerPrefetchMultiplier != 4 {
		t.Fatalf("defaults not filled: %+v", f.Celery)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("an explicit missing file must be an error")
	}
	if err := os.WriteFile(path, []byte("task_serializer: pickle\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "pickle") {
		t.Fatalf("pickle must be refused at load: %v", err)
	}
}

func TestShippedConfigLoads(t *testing.T) {
	t.Parallel()
	f, err := Load(filepath.Join(testenv.RepoRoot(), DefaultPath))
	if err != nil {
		t.Fatalf("the repository's celeryconfig.yaml does not load: %v", err)
	}
	if r, ok := f.Celery.TaskRoutes.Match("ads.import_feed"); !ok || r.Queue != "ads.import" {
		t.Fatalf("shipped routes: %+v", f.Celery.TaskRoutes)
	}
}

// FuzzParse: any document either parses or returns an error; never a panic.
func FuzzParse(f *testing.F) {
	f.Add("broker_url: amqp://x//\ntask_routes: {a.*: q}\n")
	f.Add("task_queues: [{name: a, queue_arguments: {x-max-priority: 10}}]\n")
	f.Add("worker_prefetch_multiplier: -3\n")
	f.Add("{")
	f.Fuzz(func(t *testing.T, doc string) {
		file, err := Parse([]byte(doc))
		if err == nil && file == nil {
			t.Fatal("nil file without error")
		}
		if err == nil {
			_ = file.Celery.WithDefaults().Validate()
		}
	})
}

// TestBrokerURLFailoverList: broker_url may be a list, as kombu takes it: the same failover list
// as the ';'-separated string; entries that are not one URL each are refused naming the setting.
func TestBrokerURLFailoverList(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		doc, want, err string
	}{
		{"broker_url:\n  - amqp://a:5681//\n  - amqp://b:5682//\nbroker_failover_strategy: shuffle\n", "amqp://a:5681//;amqp://b:5682//", ""},
		{"broker_url: amqp://a//;amqp://b//\n", "amqp://a//;amqp://b//", ""},
		{"broker_url: []\n", "", "broker_url: an empty list"},
		{"broker_url:\n  - amqp://a//;amqp://b//\n", "", "one URL per list entry"},
		{"broker_url:\n  - {host: a}\n", "", "a failover list holds URLs"},
	} {
		f, err := Parse([]byte(tc.doc))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%q) error %v, want %q", tc.doc, err, tc.err)
			}
			continue
		}
		if err != nil || f.Celery.BrokerURL != tc.want {
			t.Errorf("Parse(%q) = %q, %v; want %q", tc.doc, f.Celery.BrokerURL, err, tc.want)
		}
		if len(f.Unknown) != 0 {
			t.Errorf("Parse(%q): unknown settings %v", tc.doc, f.Unknown)
		}
	}
}

// TestBrokerConnectionSettings: broker_connection_timeout, broker_heartbeat,
// broker_connection_max_retries (null is Celery's None: forever, as 0) and
// broker_connection_retry_on_startup are read with Celery's defaults, and impossible values are
// refused naming the setting.
func TestBrokerConnectionSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, doc string
		want      celery.BrokerConnection
		err       string
	}{
		{"defaults", "", celery.BrokerConnection{Timeout: 4 * time.Second, Heartbeat: 120 * time.Second, MaxRetries: 100, RetryOnStartup: true}, ""},
		{"all set", "broker_connection_timeout: 0.5\nbroker_heartbeat: 10\nbroker_connection_max_retries: 3\nbroker_connection_retry_on_startup: false\n",
			celery.BrokerConnection{Timeout: 500 * time.Millisecond, Heartbeat: 10 * time.Second, MaxRetries: 3}, ""},
		{"heartbeat off", "broker_heartbeat: 0\n", celery.BrokerConnection{Timeout: 4 * time.Second, MaxRetries: 100, RetryOnStartup: true}, ""},
		{"max retries null is forever", "broker_connection_max_retries: null\n",
			celery.BrokerConnection{Timeout: 4 * time.Second, Heartbeat: 120 * time.Second, RetryOnStartup: true}, ""},
		{"max retries 0 is forever", "broker_connection_max_retries: 0\n",
			celery.BrokerConnection{Timeout: 4 * time.Second, Heartbeat: 120 * time.Second, RetryOnStartup: true}, ""},
		{"timeout 0", "broker_connection_timeout: 0\n", celery.BrokerConnection{}, "broker_connection_timeout: must be > 0"},
		{"negative heartbeat", "broker_heartbeat: -1\n", celery.BrokerConnection{}, "broker_heartbeat: must be 0 (none) to 65535"},
		{"negative retries", "broker_connection_max_retries: -2\n", celery.BrokerConnection{}, "broker_connection_max_retries: must be >= 0"},
		{"retries not a number", "broker_connection_max_retries: many\n", celery.BrokerConnection{}, "broker_connection_max_retries (line 1)"},
		{"retry on startup not a bool", "broker_connection_retry_on_startup: maybe\n", celery.BrokerConnection{}, "broker_connection_retry_on_startup (line 1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := Parse([]byte(tc.doc))
			if err == nil {
				err = f.Celery.WithDefaults().Validate()
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Unknown) != 0 {
				t.Fatalf("unknown settings %v", f.Unknown)
			}
			if got := f.Celery.BrokerConnectionSettings(); got != tc.want {
				t.Fatalf("BrokerConnectionSettings = %+v, want %+v", got, tc.want)
			}
		})
	}
}
