package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/forumads/forumads/internal/testdb"
	"github.com/forumads/forumads/internal/testenv"
)

// TestMain fails the run if a test leaves goroutines behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestTaskArgs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		words        []string
		flags        taskFlags
		args, kwargs string
		usageMistake bool
	}{
		{name: "none", args: `null`, kwargs: `{}`},
		{name: "JSON words", words: []string{"2", "3.5", `{"a":1}`, "true"}, args: `[2,3.5,{"a":1},true]`, kwargs: `{}`},
		{name: "bare word is a string", words: []string{"samples/feed.csv"}, args: `["samples/feed.csv"]`, kwargs: `{}`},
		{name: "flags then words", words: []string{"x"}, flags: taskFlags{args: `[1]`, kwargs: `{"batch_size": 10}`}, args: `[1,"x"]`, kwargs: `{"batch_size":10}`},
		{name: "args not a list", flags: taskFlags{args: `{"a":1}`}, usageMistake: true},
		{name: "kwargs not an object", flags: taskFlags{kwargs: `[1]`}, usageMistake: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args, kwargs, err := taskArgs(tc.words, tc.flags)
			var ue usageError
			if tc.usageMistake {
				if !errors.As(err, &ue) {
					t.Fatalf("want a usage error, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			a, _ := json.Marshal(args)
			k, _ := json.Marshal(kwargs)
			if string(a) != tc.args || string(k) != tc.kwargs {
				t.Fatalf("got %s %s, want %s %s", a, k, tc.args, tc.kwargs)
			}
		})
	}
}

func TestParseFlagsAnywhere(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	q := fs.String("queue", "", "")
	w := fs.Bool("wait", false, "")
	pos, err := parseFlagsAnywhere(fs, []string{"ads.score", "--queue", "q1", "a", "--wait", "--", "--not-a-flag"})
	if err != nil {
		t.Fatal(err)
	}
	if *q != "q1" || !*w || strings.Join(pos, " ") != "ads.score a --not-a-flag" {
		t.Fatalf("queue %q wait %v positional %q", *q, *w, pos)
	}
}

// manage runs the command in-process with the environment given (DATABASE_URL, REDIS_URL, ...).
func manage(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func emptyConfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "celeryconfig.yaml")
	if err := os.WriteFile(p, []byte("broker_url: "+testenv.AMQPURL()+"\nresult_backend: "+testenv.RedisURL()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunDiagTaskInForeground(t *testing.T) {
	cfg := emptyConfig(t)
	code, out, errs := manage(t, nil, "--config", cfg, "run", "diag.add", "2", "3")
	if code != 0 || strings.TrimSpace(out) != "5" {
		t.Fatalf("manage run diag.add 2 3: code %d, stdout %q, stderr %q", code, out, errs)
	}
	code, _, errs = manage(t, nil, "--config", cfg, "run", "diag.fail", "boom")
	if code != 1 || !strings.Contains(errs, "DiagError: boom") {
		t.Fatalf("a failing task: code %d, stderr %q", code, errs)
	}
	code, _, errs = manage(t, nil, "--config", cfg, "run", "no.such.task")
	if code != 1 || !strings.Contains(errs, "no.such.task") {
		t.Fatalf("an unknown task: code %d, stderr %q", code, errs)
	}
	code, _, _ = manage(t, nil, "--config", cfg, "frobnicate")
	if code != 2 {
		t.Fatalf("an unknown command: code %d, want 2", code)
	}
}

func TestTasksListsTheAdsTasks(t *testing.T) {
	code, out, errs := manage(t, nil, "--config", emptyConfig(t), "tasks")
	if code != 0 {
		t.Fatalf("code %d: %s", code, errs)
	}
	for _, name := range []string{"ads.import_feed", "ads.score", "ads.warm_cache", "ads.warm_timeseries", "diag.add"} {
		if !strings.Contains(out, name+"\n") {
			t.Errorf("manage tasks does not list %s:\n%s", name, out)
		}
	}
}

func TestCallPublishesACeleryMessage(t *testing.T) {
	queue := testenv.Name(t, "manage")
	testenv.DeleteQueuesAtCleanup(t, queue)
	code, out, errs := manage(t, nil, "--config", emptyConfig(t), "call", "diag.add", "2", "--kwargs", `{"y": 3}`, "--queue", queue, "--countdown", "30")
	if code != 0 {
		t.Fatalf("code %d: %s", code, errs)
	}
	id := strings.TrimSpace(out)
	ch, err := testenv.AMQP(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	d, ok, err := ch.Get(queue, true)
	if err != nil || !ok {
		t.Fatalf("no message in %s (%v)", queue, err)
	}
	if d.Headers["id"] != id || d.Headers["task"] != "diag.add" || d.Headers["eta"] == nil {
		t.Fatalf("headers %v, want id %s, task diag.add and an eta", d.Headers, id)
	}
	var body []json.RawMessage
	if err := json.Unmarshal(d.Body, &body); err != nil || len(body) != 3 || compact(body[0]) != "[2]" || compact(body[1]) != `{"y":3}` {
		t.Fatalf("body %s (%v)", d.Body, err)
	}
}

func TestRunImportFeedAgainstTheDatabase(t *testing.T) {
	pg := testdb.Postgres(t)
	feed := filepath.Join(t.TempDir(), "feed.csv")
	cfg := emptyConfig(t)
	env := map[string]string{"DATABASE_URL": pg.URL, "ADS_KEY_PREFIX": "t:" + testenv.Suffix() + ":"}
	if code, _, errs := manage(t, env, "--config", cfg, "gen-feed", "--advertisers", "3", "--forums", "2", "-o", feed); code != 0 {
		t.Fatalf("gen-feed: %s", errs)
	}
	code, out, errs := manage(t, env, "--config", cfg, "run", "ads.import_feed", feed, "--kwargs", `{"score": false}`)
	if code != 0 {
		t.Fatalf("run ads.import_feed: code %d: %s", code, errs)
	}
	var sum struct {
		RowsOK int `json:"rows_ok"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil || sum.RowsOK == 0 {
		t.Fatalf("summary %q (%v)", out, err)
	}
	if !strings.Contains(errs, "ads.import_feed PROGRESS {") {
		t.Errorf("no progress printed on stderr: %q", errs)
	}
	var n int
	if err := pg.DB.Get(&n, "SELECT count(*) FROM ads"); err != nil || n != 3*2*5 {
		t.Fatalf("%d ads imported (%v), want 30", n, err)
	}
	// The images are the serving program's own placeholders, under --image-base.
	var images []string
	if err := pg.DB.Select(&images, "SELECT image_url FROM ads WHERE image_url IS NOT NULL ORDER BY id"); err != nil || len(images) == 0 {
		t.Fatalf("image URLs: %v (%v)", images, err)
	}
	for _, u := range images {
		if !strings.HasPrefix(u, "http://127.0.0.1:5200/creatives/ad-") || !strings.HasSuffix(u, ".svg") {
			t.Errorf("image_url %q: want http://127.0.0.1:5200/creatives/<ad id>.svg", u)
		}
	}
	other := filepath.Join(t.TempDir(), "other.csv")
	if code, _, errs := manage(t, env, "--config", cfg, "gen-feed", "--advertisers", "3", "--image-base", "http://127.0.0.1:8080", "-o", other); code != 0 {
		t.Fatalf("gen-feed --image-base: %s", errs)
	}
	if data, err := os.ReadFile(other); err != nil || !strings.Contains(string(data), "http://127.0.0.1:8080/creatives/ad-") {
		t.Errorf("gen-feed --image-base http://127.0.0.1:8080 wrote no image under it (%v)", err)
	}
	if code, _, _ := manage(t, env, "--config", cfg, "gen-feed", "--image-base", "ftp://x", "-o", other); code == 0 {
		t.Error("gen-feed --image-base ftp://x succeeded, want an error")
	}
	if code, _, errs := manage(t, env, "--config", cfg, "gen-stats", "--days", "1"); code != 0 {
		t.Fatalf("gen-stats: %s", errs)
	}
	if err := pg.DB.Get(&n, "SELECT count(*) FROM ad_stats_hourly"); err != nil || n == 0 {
		t.Fatalf("gen-stats wrote %d rows (%v)", n, err)
	}
}

func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return "invalid JSON: " + string(raw)
	}
	return b.String()
}
