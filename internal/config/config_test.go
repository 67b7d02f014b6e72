package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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

func TestParseErrorsNameTheSetting(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ doc, want string }{
		{"task_acks_late: maybe", "task_acks_late"},
		{"worker_concurrency: many", "worker_concurrency"},
		{"task_routes: [1, 2]", "task_routes"},
		{"task_routes: {a.b: {queue: 1, exchange: [x]}}", `task_routes["a.b"]`},
		{"- just a list", "mapping"},
		{"broker_url: [unclosed", "line"},
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
