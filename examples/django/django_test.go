// Package djangoexample_test runs the Django example project (examples/django) against the real
// services and the Go worker: a FeedSource saved by `manage.py enqueue_import` sends ads.import_feed
// through the routes of a shared celeryconfig.yaml, the worker imports the feed into the test's
// PostgreSQL schema, the Django progress view follows it to SUCCESS and then sends ads.score, which
// the worker runs too. It also runs the project's own Python tests, and fuzzes the Django side's
// reading of task_routes against the Go configuration parser.
package djangoexample_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/internal/testenv"
)

// pythonPath is PYTHON, default /usr/bin/python3 (Debian's python3-django and python3-celery).
func pythonPath() string {
	if p := os.Getenv("PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}

// projectDir is the Django project's directory (this package's).
func projectDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// requirePython fails the test unless python3 can import what the project needs.
func requirePython(t testing.TB) {
	t.Helper()
	out, err := exec.Command(pythonPath(), "-c", "import django, celery, celery_progress, kombu, redis, yaml; print(django.get_version())").CombinedOutput()
	if err != nil {
		t.Fatalf("%s with python3-django, python3-celery, python3-celery-progress, python3-redis and python3-yaml is required (apt-get install python3-django python3-celery python3-celery-progress python3-yaml): %v\n%s",
			pythonPath(), err, out)
	}
}

// djangoEnv is the environment of the project's processes: ours, pinned to the test's services and
// configuration.
func djangoEnv(config, db string) []string {
	return append(os.Environ(),
		"PYTHONDONTWRITEBYTECODE=1",
		"DJANGO_SETTINGS_MODULE=forumads_site.settings",
		"DJANGO_DB_PATH="+db,
		"DJANGO_ALLOWED_HOSTS=127.0.0.1,localhost,testserver",
		"FORUMADS_CONFIG="+config,
		"CELERY_BROKER_URL="+testenv.AMQPURL(),
		"CELERY_RESULT_BACKEND="+testenv.RedisURL(),
		"FEEDS_LOG_LEVEL=WARNING",
	)
}

// manage runs manage.py with args to completion and returns its stdout and stderr; a failure fails
// the test with both.
func manage(t *testing.T, env []string, timeout time.Duration, args ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, pythonPath(), append([]string{"manage.py"}, args...)...)
	cmd.Dir, cmd.Env = projectDir(t), env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("manage.py %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), stderr.String()
}

// process is a started subprocess whose combined output is collected.
type process struct {
	name   string
	cmd    *exec.Cmd
	log    *testenv.LogBuffer
	exited chan struct{}
	err    error // Wait's result, valid once exited is closed
}

// start starts cmd; its output is logged when the test fails.
func start(t *testing.T, name string, cmd *exec.Cmd) *process {
	t.Helper()
	p := &process{name: name, cmd: cmd, log: &testenv.LogBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, p.log.String())
		}
	})
	return p
}

// stop sends sig and waits for the exit (killing the process after deadline); it returns Wait's
// error.
func (p *process) stop(sig os.Signal, deadline time.Duration) error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s had already exited: %v", p.name, p.err)
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signalling %s: %w", p.name, err)
	}
	select {
	case <-p.exited:
		return p.err
	case <-time.After(deadline):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s did not exit within %s; killed", p.name, deadline)
	}
}

// waitUntil polls cond (testenv.Poll) until it returns true, the process exits or the deadline passes.
func (p *process) waitUntil(t *testing.T, what string, deadline time.Duration, cond func() bool) {
	t.Helper()
	err := testenv.Poll(deadline, func() (bool, error) {
		if cond() {
			return true, nil
		}
		select {
		case <-p.exited:
			return false, fmt.Errorf("%s exited (%v) before %s", p.name, p.err, what)
		default:
			return false, nil
		}
	})
	if errors.Is(err, testenv.ErrTimeout) {
		t.Fatalf("%s: not %s within %s", p.name, what, deadline)
	} else if err != nil {
		t.Fatal(err)
	}
}

// feedHeader is the CSV header of ads/feed.
var feedHeader = []string{"kind", "external_id", "name", "email", "status", "advertiser", "campaign", "bid",
	"daily_budget", "start_at", "end_at", "forums", "categories", "countries", "placements", "title", "body",
	"image_url", "click_url", "category"}

// feedRows is the test feed: 20 rows, of which one (ad-11, a click_url that is not a URL) is refused.
// Serving-eligible after import: the 6 active ads of the active campaigns cmp-1..cmp-3 (cmp-4 is
// paused, cmp-5's advertiser is paused, ad-5 is paused).
var feedRows = []map[string]string{
	{"kind": "forum", "external_id": "general", "name": "General", "category": "tech"},
	{"kind": "advertiser", "external_id": "adv-1", "name": "Acme", "email": "ads@acme.example.com"},
	{"kind": "advertiser", "external_id": "adv-2", "name": "Globex", "status": "active"},
	{"kind": "advertiser", "external_id": "adv-3", "name": "Initech", "status": "paused"},
	campaign("cmp-1", "adv-1", "active", map[string]string{"forums": "general", "countries": "US|DE", "placements": "sidebar|inline"}),
	campaign("cmp-2", "adv-1", "active", map[string]string{"end_at": "2099-01-01T00:00:00Z"}),
	campaign("cmp-3", "adv-2", "active", map[string]string{"categories": "tech"}),
	campaign("cmp-4", "adv-2", "paused", nil),
	campaign("cmp-5", "adv-3", "active", nil),
	ad("ad-1", "cmp-1", "active", "https://acme.example.com/1"),
	ad("ad-2", "cmp-1", "active", "https://acme.example.com/2"),
	ad("ad-3", "cmp-1", "active", "https://acme.example.com/3"),
	ad("ad-4", "cmp-2", "active", "https://acme.example.com/4"),
	ad("ad-5", "cmp-2", "paused", "https://acme.example.com/5"),
	ad("ad-6", "cmp-3", "active", "https://globex.example.com/6"),
	ad("ad-7", "cmp-3", "active", "https://globex.example.com/7"),
	ad("ad-8", "cmp-4", "active", "https://globex.example.com/8"),
	ad("ad-9", "cmp-5", "active", "https://initech.example.com/9"),
	ad("ad-10", "cmp-5", "active", "https://initech.example.com/10"),
	ad("ad-11", "cmp-1", "active", "not a url"),
}

const (
	feedOK        = 19 // rows imported
	feedFailed    = 1  // ad-11
	feedEligible  = 6  // ads ads.score ranks
	feedAdsStored = 10 // ad rows imported
)

func campaign(id, adv, status string, extra map[string]string) map[string]string {
	r := map[string]string{"kind": "campaign", "external_id": id, "advertiser": adv, "name": "Campaign " + id,
		"status": status, "bid": "0.35", "daily_budget": "50", "start_at": "2024-01-01"}
	for k, v := range extra {
		r[k] = v
	}
	return r
}

func ad(id, cmp, status, click string) map[string]string {
	return map[string]string{"kind": "ad", "external_id": id, "campaign": cmp, "status": status,
		"title": "Ad " + id, "body": "Buy " + id + ", now \"with\" quotes,\nand a second line", "click_url": click}
}

// writeFeed writes feedRows as CSV into dir.
func writeFeed(t *testing.T, dir string) string {
	t.Helper()
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write(feedHeader)
	for _, r := range feedRows {
		rec := make([]string, len(feedHeader))
		for i, col := range feedHeader {
			rec[i] = r[col]
		}
		_ = w.Write(rec)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "feed.csv")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// testConfig writes a celeryconfig.yaml routing the ads tasks to the test's own queues; the worker
// and Django both read it.
func testConfig(t *testing.T, importQueue, adsQueue, deadLetter string) string {
	t.Helper()
	cfg := fmt.Sprintf(`# examples/django end-to-end test
broker_url: %q
result_backend: %q
accept_content: [json]
result_expires: 900
worker_concurrency: 2
worker_prefetch_multiplier: 1
worker_dead_letter_queue: %q
task_routes:
  ads.import_feed: {queue: %q}
  ads.*: {queue: %q}
`, testenv.AMQPURL(), testenv.RedisURL(), deadLetter, importQueue, adsQueue)
	path := filepath.Join(t.TempDir(), "celeryconfig.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// freePort returns a TCP port that was free a moment ago on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// progressDoc is the JSON of /imports/<task_id>.json.
type progressDoc struct {
	TaskID  string `json:"task_id"`
	State   string `json:"state"`
	Ready   bool   `json:"ready"`
	Done    bool   `json:"done"`
	Current *int64 `json:"current"`
	Total   *int64 `json:"total"`
	Result  *struct {
		RunID      int64 `json:"run_id"`
		RowsTotal  int64 `json:"rows_total"`
		RowsOK     int64 `json:"rows_ok"`
		RowsFailed int64 `json:"rows_failed"`
	} `json:"result"`
	Error  *string `json:"error"`
	Source struct {
		URLOrPath string `json:"url_or_path"`
	} `json:"source"`
	Score *struct {
		TaskID string `json:"task_id"`
		State  string `json:"state"`
	} `json:"score"`
}

// get fetches url and returns the status code and body.
func get(ctx context.Context, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

var taskIDPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// receivedPattern finds the ids of the tasks the worker logged as received.
var receivedPattern = regexp.MustCompile(`Task [a-z_.]+\[([0-9a-f-]{36})\] received`)

// TestDjangoImportThroughGoWorker is the whole path: Django model save -> ads.import_feed on the
// routed queue -> the Go worker imports into PostgreSQL -> the Django view follows the progress to
// SUCCESS and records it -> post_save sends ads.score -> the worker ranks the ads into Redis.
func TestDjangoImportThroughGoWorker(t *testing.T) {
	t.Parallel()
	rig := newImportRig(t, "djt")
	pg, rc, prefix := rig.pg, rig.rc, rig.prefix
	// Its cleanup also deletes the results of the import, ads.score and the ads.warm_cache that
	// ads.score sends.
	worker := rig.startWorker(t, "djt")
	worker.waitUntil(t, "ready", 60*time.Second, func() bool { return strings.Contains(worker.log.String(), "worker ready") })

	dir := t.TempDir()
	env := djangoEnv(rig.config, filepath.Join(dir, "db.sqlite3"))
	manage(t, env, 2*time.Minute, "migrate", "--noinput", "-v", "0")
	feedPath := writeFeed(t, dir)

	out, _ := manage(t, env, time.Minute, "enqueue_import", feedPath, "--name", "e2e feed")
	taskID := strings.TrimSpace(out)
	if !taskIDPattern.MatchString(taskID) {
		t.Fatalf("enqueue_import printed %q, want a task id", out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	web, base := startRunserver(t, ctx, env)

	// Follow the import as the page's script does, until nothing changes any more.
	var doc progressDoc
	states := map[string]bool{}
	web.waitUntil(t, "done with the import", 2*time.Minute, func() bool {
		code, body, err := get(ctx, base+"/imports/"+taskID+".json")
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET /imports/%s.json: %d %v\n%s", taskID, code, err, body)
		}
		doc = progressDoc{}
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatalf("the progress JSON does not decode: %v\n%s", err, body)
		}
		states[doc.State] = true
		if doc.State == "FAILURE" {
			t.Fatalf("the import failed: %+v %s", doc, body)
		}
		return doc.Done
	})
	t.Logf("states seen: %v", states)

	if doc.State != "SUCCESS" || doc.Error != nil || doc.Result == nil {
		t.Fatalf("final progress: %+v", doc)
	}
	r := doc.Result
	if r.RowsTotal != int64(len(feedRows)) || r.RowsOK != feedOK || r.RowsFailed != feedFailed {
		t.Errorf("summary rows total/ok/failed = %d/%d/%d, want %d/%d/%d", r.RowsTotal, r.RowsOK, r.RowsFailed, len(feedRows), feedOK, feedFailed)
	}
	if doc.Current == nil || doc.Total == nil || *doc.Current != int64(len(feedRows)) || *doc.Total != int64(len(feedRows)) {
		t.Errorf("a finished import shows current/total %v/%v, want %d/%d", doc.Current, doc.Total, len(feedRows), len(feedRows))
	}
	if doc.Source.URLOrPath != feedPath {
		t.Errorf("source %q, want %q", doc.Source.URLOrPath, feedPath)
	}

	// The rows are in the test's schema.
	for table, want := range map[string]int{"advertisers": 3, "campaigns": 5, "ads": feedAdsStored, "forums": 1} {
		var n int
		if err := pg.DB.Get(&n, "SELECT count(*) FROM "+table); err != nil || n != want {
			t.Errorf("%s: %d rows (%v), want %d", table, n, err, want)
		}
	}
	var run struct {
		ID     int64  `db:"id"`
		Status string `db:"status"`
		RowsOK int64  `db:"rows_ok"`
		Source string `db:"source"`
	}
	if err := pg.DB.Get(&run, `SELECT id, status, rows_ok, source FROM import_runs WHERE task_id = $1`, taskID); err != nil {
		t.Fatalf("import_runs row of task %s: %v", taskID, err)
	}
	if run.Status != "succeeded" || run.RowsOK != feedOK || run.Source != feedPath || run.ID != r.RunID {
		t.Errorf("import_runs: %+v, want succeeded, rows_ok %d, source %s, id %d", run, feedOK, feedPath, r.RunID)
	}
	var refused []string
	if err := pg.DB.Select(&refused, `SELECT coalesce(external_id, '') FROM import_errors WHERE run_id = $1`, run.ID); err != nil ||
		len(refused) != 1 || refused[0] != "ad-11" {
		t.Errorf("import_errors: %v (%v), want [ad-11]", refused, err)
	}

	// The recorded import sent ads.score through the routed ads queue, and the worker ran it.
	if doc.Score == nil || !taskIDPattern.MatchString(doc.Score.TaskID) || doc.Score.State != "SUCCESS" {
		t.Fatalf("ads.score after the import: %+v, want a task in SUCCESS", doc.Score)
	}
	scoreID := doc.Score.TaskID
	var meta struct {
		Status string `json:"status"`
		Result struct {
			Ads int `json:"ads"`
		} `json:"result"`
	}
	raw, err := rc.Get(ctx, "celery-task-meta-"+scoreID).Bytes()
	if err != nil || json.Unmarshal(raw, &meta) != nil || meta.Status != "SUCCESS" {
		t.Fatalf("ads.score's stored result: %s (%v)", raw, err)
	}
	if meta.Result.Ads != feedEligible {
		t.Errorf("ads.score ranked %d ads, want %d: %s", meta.Result.Ads, feedEligible, raw)
	}
	if gen, err := rc.HGet(ctx, prefix+"rank:meta", "generation").Int(); err != nil || gen < 1 {
		t.Errorf("ads.score wrote no rank generation under the test prefix %s: %d (%v)", prefix, gen, err)
	}
	if n := worker.log.Count("ads.score["+scoreID+"]", "received"); n != 1 {
		t.Errorf("the worker received ads.score[%s] %d times, want 1", scoreID, n)
	}
	// Django sent the import with score=False: the worker chained no ads.score of its own.
	if n := worker.log.Count("Task ads.score[", "received"); n != 1 {
		t.Errorf("the worker received %d ads.score tasks, want only Django's", n)
	}

	// The page shows the finished import with a full celery-progress bar.
	code, body, err := get(ctx, base+"/imports/"+taskID+"/")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /imports/%s/: %d %v", taskID, code, err)
	}
	for _, want := range []string{`aria-valuenow="100"`, "width: 100%;", `<div id="progress-bar-message">Success!</div>`, "SUCCESS", "19 rows ok, 1 failed, of 20", "ads.score <code>" + scoreID} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("the progress page lacks %q:\n%s", want, body)
		}
	}
}

// deletePrefix deletes every Redis key starting with prefix.
func deletePrefix(t *testing.T, prefix string) {
	rc := testenv.Redis(t)
	ctx := context.Background()
	var cursor uint64
	for {
		keys, next, err := rc.Scan(ctx, cursor, prefix+"*", 500).Result()
		if err != nil {
			t.Errorf("cleanup: scanning %s*: %v", prefix, err)
			return
		}
		if len(keys) > 0 {
			if err := rc.Del(ctx, keys...).Err(); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		if cursor = next; cursor == 0 {
			return
		}
	}
}

// TestDjangoProjectTests runs the project's Python tests (manage.py test): the post_save hooks send
// the right task names, arguments and routes only after the commit, the progress view and the
// management command, and the configuration reader. They use Celery's in-memory transport.
func TestDjangoProjectTests(t *testing.T) {
	t.Parallel()
	requirePython(t)
	q := testenv.Name(t, "djt.unit")
	config := testConfig(t, q+".import", q+".ads", q+".dlq")
	env := djangoEnv(config, filepath.Join(t.TempDir(), "db.sqlite3"))
	_, stderr := manage(t, env, 5*time.Minute, "test", "--noinput", "-v", "2")
	// manage failed the test on a non-zero exit; make sure the tests were found and all ran.
	m := regexp.MustCompile(`(?m)^Ran (\d+) tests? in .*\n\nOK`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("manage.py test did not report success:\n%s", stderr)
	}
	if n, _ := strconv.Atoi(m[1]); n < 20 {
		t.Errorf("manage.py test ran %d tests, want the project's 20 or more:\n%s", n, stderr)
	}
}
