package djangoexample_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/ads/feedgen"
	"github.com/forumads/forumads/internal/browsertest"
)

// progressFeed is the generated feed of the browser test: about 100,000 rows, so the import runs
// for seconds and celery-progress's bar (polling every 500 ms) sees it between 0 and 100. One ad
// in 1,000 is invalid (a bad image or click URL, a missing title, ...): refused one by one.
var progressFeed = feedgen.Options{Advertisers: 8000, CampaignsPer: 2, AdsPer: 5, Forums: 50, Seed: 15, Invalid: 0.001}

// barRecorder runs in the page before its own scripts: it records every width the bar is given
// and every message shown under it, in order, without repeats.
const barRecorder = `
window.__bar = {widths: [], messages: [], colors: []};
document.addEventListener("DOMContentLoaded", () => {
  const bar = document.getElementById("progress-bar"), msg = document.getElementById("progress-bar-message");
  if (!bar || !msg) return;
  const push = (list, v) => { if (list[list.length - 1] !== v) list.push(v); };
  const rec = () => {
    push(window.__bar.widths, bar.style.width);
    push(window.__bar.messages, msg.textContent);
    push(window.__bar.colors, bar.style.backgroundColor);
  };
  rec();
  new MutationObserver(rec).observe(bar, {attributes: true});
  new MutationObserver(rec).observe(msg, {childList: true, characterData: true, subtree: true});
});`

// barSeen is what barRecorder and the page show.
type barSeen struct {
	Widths   []string `json:"widths"`
	Messages []string `json:"messages"`
	Colors   []string `json:"colors"`
	Result   string   `json:"result"`
	State    string   `json:"state"`
	Score    string   `json:"score"`
	Error    string   `json:"error"`
	Polls    int      `json:"polls"`
}

const readBar = `({...window.__bar, result: document.getElementById("celery-result").textContent,
  state: document.getElementById("state").textContent, score: document.getElementById("score").textContent,
  error: document.getElementById("error").textContent,
  polls: performance.getEntriesByType("resource").filter((e) => e.name.includes("/celery-progress/")).length})`

// TestDjangoProgressBarInBrowser: a generated feed enqueued from Django (manage.py
// enqueue_import) waits in its queue while chromium shows the import page, whose bar is
// celery-progress's own (celery_progress.js polling celery_progress.urls' view); then the Go
// worker starts and imports it. The bar moves from 0 through intermediate percents, with
// celery-progress's "N of M processed." messages, to 100 and "Success!", the summary and the
// ads.score sent after it are shown, and the browser asked for nothing outside 127.0.0.0/8.
func TestDjangoProgressBarInBrowser(t *testing.T) {
	t.Parallel()
	rig := newImportRig(t, "djp")

	dir := t.TempDir()
	env := djangoEnv(rig.config, filepath.Join(dir, "db.sqlite3"))
	manage(t, env, 2*time.Minute, "migrate", "--noinput", "-v", "0")
	o := progressFeed
	o.Now = time.Now().UTC()
	counts, err := feedgen.Count(o)
	if err != nil {
		t.Fatal(err)
	}
	rows := counts.Rows()
	feedPath := filepath.Join(dir, "feed.csv")
	f, err := os.Create(feedPath)
	if err != nil {
		t.Fatal(err)
	}
	err = feedgen.Write(f, o)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	// runserver with DEBUG off serves the apps' static files (celery_progress.js) with --insecure.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, base := startRunserver(t, ctx, env, "--insecure")

	out, _ := manage(t, env, time.Minute, "enqueue_import", feedPath, "--name", "generated feed")
	taskID := strings.TrimSpace(out)
	if !taskIDPattern.MatchString(taskID) {
		t.Fatalf("enqueue_import printed %q, want a task id", out)
	}

	b := browsertest.Start(t)
	b.Call("Page.addScriptToEvaluateOnNewDocument", map[string]any{"source": barRecorder}, nil)
	b.Navigate(base + "/imports/" + taskID + "/")
	// No worker yet: celery-progress's script polls its view and shows the task waiting.
	b.WaitFor(`(() => { const polls = performance.getEntriesByType("resource").filter((e) => e.name.includes("/celery-progress/`+taskID+`/")).length;
		return polls >= 2 && document.getElementById("progress-bar-message").textContent === "Waiting for task to start..."; })()`, nil)

	worker := rig.startWorker(t, "djp")

	// Until the import and the ads.score sent after it are done (the bounds only stop a hang).
	var seen barSeen
	worker.waitUntil(t, "done with the import and its ads.score", 4*time.Minute, func() bool {
		if !b.TryEval(readBar, &seen) {
			return false
		}
		if strings.HasPrefix(seen.Error, "cannot reach") || strings.Contains(seen.Error, "did not load") {
			t.Fatalf("the page: %s", seen.Error)
		}
		return seen.State == "SUCCESS" && strings.HasSuffix(seen.Score, " SUCCESS")
	})
	t.Logf("bar widths %v; %d messages, %d polls", seen.Widths, len(seen.Messages), seen.Polls)
	// ads.score sends ads.warm_cache: let it finish, so the worker stops warm with nothing running.
	worker.waitUntil(t, "done with ads.warm_cache", 2*time.Minute, func() bool {
		return worker.log.Count("Task ads.warm_cache[", "succeeded") == 1
	})
	b.Screenshot("django-celery-progress.png")

	// The bar: 0 at first, at least one width strictly between, non-decreasing, 100 at the end.
	var widths []float64
	for _, w := range seen.Widths {
		v, err := strconv.ParseFloat(strings.TrimSuffix(w, "%"), 64)
		if err != nil || !strings.HasSuffix(w, "%") {
			t.Fatalf("bar width %q is not a percent (all: %v)", w, seen.Widths)
		}
		widths = append(widths, v)
	}
	intermediate := 0
	for i, v := range widths {
		if i > 0 && v < widths[i-1] {
			t.Errorf("the bar went back from %v%% to %v%%: %v", widths[i-1], v, seen.Widths)
		}
		if v > 0 && v < 100 {
			intermediate++
		}
	}
	if len(widths) == 0 || widths[0] != 0 || widths[len(widths)-1] != 100 || intermediate == 0 {
		t.Errorf("bar widths %v: want 0 first, at least one between 0 and 100, 100 last", seen.Widths)
	}
	// celery-progress's messages, from the Go worker's PROGRESS meta.
	progressMsg := regexp.MustCompile(`^(\d+) of ` + strconv.Itoa(rows) + ` processed\. feed rows checked and applied$`)
	progressMsgs := 0
	for _, m := range seen.Messages {
		if sm := progressMsg.FindStringSubmatch(m); sm != nil {
			if n, _ := strconv.Atoi(sm[1]); n <= 0 || n > rows {
				t.Errorf("message %q: current outside 1..%d", m, rows)
			}
			progressMsgs++
		}
	}
	if len(seen.Messages) == 0 || seen.Messages[0] != "Waiting for task to start..." || progressMsgs == 0 ||
		!strings.HasPrefix(seen.Messages[len(seen.Messages)-1], "Success!") {
		t.Errorf("messages %q: want waiting, then %q, then Success!", seen.Messages, progressMsg)
	}
	if c := seen.Colors[len(seen.Colors)-1]; c != "rgb(118, 206, 96)" {
		t.Errorf("final bar colour %q, want celery-progress's success colour #76ce60", c)
	}
	failed := counts.InvalidAds
	if want := fmt.Sprintf("Imported: %d rows ok, %d failed, of %d.", rows-failed, failed, rows); seen.Result != want {
		t.Errorf("result %q, want %q", seen.Result, want)
	}
	exceptions, console := b.ErrorsSeen()
	if len(exceptions)+len(console) > 0 {
		t.Errorf("the page threw %v and logged errors %v", exceptions, console)
	}

	// celery-progress's view on the finished task: complete, successful, the import's summary.
	code, body, err := get(ctx, base+"/celery-progress/"+taskID+"/")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /celery-progress/%s/: %d %v\n%s", taskID, code, err, body)
	}
	var info struct {
		State    string `json:"state"`
		Complete bool   `json:"complete"`
		Success  *bool  `json:"success"`
		Progress struct {
			Percent float64 `json:"percent"`
		} `json:"progress"`
		Result struct {
			RowsTotal int    `json:"rows_total"`
			RowsOK    int    `json:"rows_ok"`
			Status    string `json:"status"`
		} `json:"result"`
	}
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatalf("celery-progress's JSON: %v\n%s", err, body)
	}
	if info.State != "SUCCESS" || !info.Complete || info.Success == nil || !*info.Success || info.Progress.Percent != 100 ||
		info.Result.RowsTotal != rows || info.Result.RowsOK != rows-failed || info.Result.Status != "succeeded" {
		t.Errorf("celery-progress's view of the finished import: %s", body)
	}
	var ads int
	if err := rig.pg.DB.Get(&ads, "SELECT count(*) FROM ads"); err != nil || ads != counts.Ads-failed {
		t.Errorf("%d ads in PostgreSQL (%v), want %d", ads, err, counts.Ads-failed)
	}
	// A row with a bad image URL is refused with its line, field and reason; the others landed.
	var badImages []string
	if err := rig.pg.DB.Select(&badImages, `SELECT reason FROM import_errors WHERE field = 'image_url' ORDER BY line`); err != nil ||
		len(badImages) == 0 || !strings.Contains(badImages[0], "must start with http:// or https://") {
		t.Errorf("import_errors for image_url: %q (%v), want the bad image URLs refused with the reason", badImages, err)
	}
}
