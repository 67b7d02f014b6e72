package beatdb_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"

	"github.com/forumads/forumads/internal/testdb"
	"github.com/forumads/forumads/internal/testenv"
)

var beatBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	bins, cleanup, err := testenv.BuildPrograms(true, "./beat")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	beatBin = bins["./beat"]
	code := m.Run()
	if code == 0 {
		// Not goleak.VerifyTestMain: the binaries' cleanup must run before os.Exit.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "beatdb: leaked goroutines:", err)
			return 1
		}
	}
	return code
}

// python is /usr/bin/python3 (Debian's Django 3.2, Celery 5.2 and django-celery-beat 2.4), or PYTHON.
func python() string {
	if p := os.Getenv("PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}

// djangoDir is the example Django project.
func djangoDir() string { return filepath.Join(testenv.RepoRoot(), "examples", "django") }

// django is a test's Django database: a PostgreSQL schema of its own with the example project's
// real migrations applied (django_celery_beat's among them), and a queue for what beat sends.
type django struct {
	pg    *testdb.PG
	queue string
	env   []string
}

func newDjango(t *testing.T) *django {
	t.Helper()
	out, err := exec.Command(python(), "-c", "import django, celery, django_celery_beat, psycopg2; print(django.get_version())").CombinedOutput()
	if err != nil {
		t.Fatalf("%s with python3-django, python3-celery, python3-django-celery-beat and python3-psycopg2 is required: %v\n%s", python(), err, out)
	}
	testenv.AMQP(t)
	d := &django{pg: testdb.Postgres(t), queue: testenv.Name(t, "djbeat")}
	testenv.DeleteQueuesAtCleanup(t, d.queue)
	cfg := filepath.Join(t.TempDir(), "celeryconfig.yaml")
	d.writeConfig(t, cfg, nil)
	d.env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "DJANGO_SETTINGS_MODULE=forumads_site.settings",
		"DJANGO_DATABASE_URL="+d.pg.URL, "FORUMADS_CONFIG="+cfg, "CELERY_BROKER_URL="+testenv.AMQPURL(),
		"CELERY_RESULT_BACKEND=")
	d.python(t, 2*time.Minute, nil, "manage.py", "migrate", "--noinput", "-v", "0")
	return d
}

// writeConfig writes a celeryconfig.yaml for the test: its queue, the database scheduler on its
// schema, the change marker read every second; extra adds settings.
func (d *django) writeConfig(t *testing.T, path string, extra map[string]any) {
	t.Helper()
	settings := map[string]any{
		"broker_url":             testenv.AMQPURL(),
		"task_default_queue":     d.queue,
		"beat_scheduler":         "django_celery_beat.schedulers:DatabaseScheduler",
		"beat_database_url":      d.pg.URL,
		"beat_max_loop_interval": 1,
	}
	for k, v := range extra {
		settings[k] = v
	}
	b, err := yaml.Marshal(settings)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// python runs /usr/bin/python3 args in the Django project with the test's environment.
func (d *django) python(t *testing.T, timeout time.Duration, stdin []byte, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, python(), args...)
	cmd.Dir, cmd.Env = djangoDir(), d.env
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(stdin), &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("python %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.Bytes()
}

// models runs operations of testdata/periodic.py (the real django-celery-beat models) and returns
// their results.
func (d *django) models(t *testing.T, ops ...map[string]any) []map[string]any {
	t.Helper()
	in, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs(filepath.Join("testdata", "periodic.py"))
	if err != nil {
		t.Fatal(err)
	}
	out := d.python(t, time.Minute, in, script)
	var res []map[string]any
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("periodic.py said %q: %v", out, err)
	}
	return res
}

// row is a PeriodicTask as periodic.py's get returns it.
type row struct {
	ID            int64
	Enabled       bool
	TotalRunCount int64
	LastRunAt     *time.Time
}

func (d *django) get(t *testing.T, name string) row {
	t.Helper()
	r := d.models(t, map[string]any{"op": "get", "name": name})[0]
	out := row{ID: int64(r["id"].(float64)), Enabled: r["enabled"].(bool), TotalRunCount: int64(r["total_run_count"].(float64))}
	if s, ok := r["last_run_at"].(string); ok {
		tm, err := time.Parse("2006-01-02T15:04:05.999999-07:00", s)
		if err != nil {
			t.Fatalf("last_run_at %q: %v", s, err)
		}
		out.LastRunAt = &tm
	}
	return out
}

// process is a program the test started; its output is shown when the test fails.
type process struct {
	name string
	cmd  *exec.Cmd
	log  *testenv.LogBuffer
	done chan struct{}
}

func start(t *testing.T, name string, cmd *exec.Cmd) *process {
	t.Helper()
	p := &process{name: name, cmd: cmd, log: &testenv.LogBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, p.log.String())
		}
	})
	return p
}

// stop sends SIGTERM and waits (killing after 20 s); stopping twice is fine.
func (p *process) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s did not stop within 20 s of SIGTERM; killed", p.name)
	}
}

// goBeat starts the Go beat on the test's tables; extra adds settings to its configuration.
func (d *django) goBeat(t *testing.T, name string, extra map[string]any) *process {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "celeryconfig.yaml")
	d.writeConfig(t, cfg, extra)
	cmd := exec.Command(beatBin, "--config", cfg, "-l", "debug", "--metrics-addr", "")
	cmd.Env = append(os.Environ(), "CELERY_BROKER_URL="+testenv.AMQPURL())
	p := start(t, name, cmd)
	testenv.Eventually(t, 30*time.Second, func() bool { return p.log.Count("beat: Starting...") > 0 }, "%s did not start:\n%s", name, p.log)
	return p
}

// pythonBeat starts `celery beat -S django` (Python's DatabaseScheduler) on the test's tables.
func (d *django) pythonBeat(t *testing.T) *process {
	t.Helper()
	cmd := exec.Command(python(), "-m", "celery", "-A", "forumads_site", "beat", "-S", "django", "-l", "info", "--max-interval", "1")
	cmd.Dir, cmd.Env = djangoDir(), d.env
	return start(t, "python beat", cmd)
}

// sent is one message beat published.
type sent struct {
	Task, ID string
	Slot     time.Time // the beat_slot header (the Go beat's; zero from Python)
	Got      time.Time // when the test read it
	Args     json.RawMessage
	Kwargs   json.RawMessage
	Headers  amqp.Table
	Priority uint8
}

// queue reads what beat sends to the test's queue, in the background, until the test ends.
type queue struct{ *testenv.Collector }

func (d *django) consume(t *testing.T, name string) *queue {
	t.Helper()
	return &queue{testenv.Collect(t, name)}
}

// of returns the messages of task, in arrival order.
func (q *queue) of(task string) []sent {
	var out []sent
	for _, m := range q.Received() {
		s := sent{Got: m.At, Headers: m.Headers, Priority: m.Priority}
		s.Task, _ = m.Headers["task"].(string)
		s.ID, _ = m.Headers["id"].(string)
		if s.Task != task {
			continue
		}
		if v, ok := m.Headers["beat_slot"].(string); ok {
			ms, _ := strconv.ParseInt(v, 10, 64)
			s.Slot = time.UnixMilli(ms)
		}
		var body []json.RawMessage
		if err := json.Unmarshal(m.Body, &body); err == nil && len(body) == 3 {
			s.Args, s.Kwargs = body[0], body[1]
		}
		out = append(out, s)
	}
	return out
}
