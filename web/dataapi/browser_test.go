package dataapi

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/browsertest"
	"github.com/forumads/forumads/internal/testenv"
)

// seedDashboard creates two campaigns with ads and a day of hourly stats; it returns the campaign
// ids and the first campaign's ads.
func seedDashboard(e *env) (camps []int64, ads []int64) {
	e.t.Helper()
	_, c1, a1 := e.seed("spring", 2)
	_, c2, a2 := e.seed("winter", 1)
	// Text from the API is text, never markup.
	if r := e.send(req{method: "PATCH", path: fmt.Sprintf("/v1/campaigns/%d", c2), body: map[string]any{"name": xssName},
		header: map[string]string{"If-Match": `"1"`}}); r.status != 200 {
		e.t.Fatalf("rename: %d %s", r.status, r.body)
	}
	now := time.Now().UTC().Truncate(time.Hour)
	for h := range 24 {
		hour := now.Add(-time.Duration(h) * time.Hour)
		i := int64(1000 + 40*h)
		e.stat(a1[0], "rust", hour, i, int64(10+h%7), int64(10+h%7)*350_000)
		e.stat(a1[1], "go", hour, i/2, int64(3+h%3), int64(3+h%3)*350_000)
		e.stat(a2[0], "chess", hour, 300, int64(h%4), int64(h%4)*350_000)
	}
	return []int64{c1, c2}, a1
}

func TestDashboardInBrowser(t *testing.T) {
	t.Parallel()
	client, _ := celeryClient(t, testenv.AMQPURL())
	e := newEnv(t, func(o *Options) { o.Client = client })
	camps, ads := seedDashboard(e)
	// The first ad's series is in Redis, with a marker value the chart must show.
	now := time.Now().UTC()
	w := newWindow(now)
	hourly, daily := w.empty()
	hourly[23].Impressions, hourly[23].Clicks = 4242, 42
	daily[6].Impressions, daily[6].Clicks = 4242, 42
	raw, _ := json.Marshal(rkeys.Series{Ad: ads[0], GeneratedAt: now, Hourly: hourly, Daily: daily})
	if err := e.rc.Set(context.Background(), e.keys.Series(ads[0]), raw, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}

	b := browsertest.Start(t, browsertest.WindowSize(1280, 1400))
	b.Navigate(e.srv.URL + "/dashboard#token=" + e.token)

	// The campaigns table and the first campaign's chart are drawn.
	var page struct {
		Rows     [][]string `json:"rows"`
		Points   string     `json:"points"`
		Lines    []int      `json:"lines"`
		Circles  int        `json:"circles"`
		Title    string     `json:"title"`
		Hash     string     `json:"hash"`
		Stored   bool       `json:"stored"`
		AdsShown int        `json:"adsShown"`
		Markup   int        `json:"markup"`
	}
	b.WaitFor(`document.querySelector('#chart').dataset.points > 0 && document.querySelectorAll('#campaigns tbody tr').length === 2 && {
		rows: [...document.querySelectorAll('#campaigns tbody tr')].map((tr) => [...tr.cells].map((c) => c.textContent)),
		points: document.querySelector('#chart').dataset.points,
		lines: [...document.querySelectorAll('#chart polyline')].map((p) => p.getAttribute('points').trim().split(/\s+/).length),
		circles: document.querySelectorAll('#chart circle').length,
		title: document.querySelector('#chart-title').textContent,
		hash: location.hash,
		stored: sessionStorage.getItem('forumads.dataapi.token') === `+browsertest.JSString(e.token)+`,
		adsShown: document.querySelectorAll('#ads button[data-ad]').length,
		markup: document.querySelectorAll('#campaigns img').length + (window.pwned ? 100 : 0),
	}`, &page)
	var imp1 int64
	for h := range 24 {
		imp1 += int64(1000+40*h) + int64(1000+40*h)/2
	}
	if len(page.Rows) != 2 || page.Rows[0][0] != "Campaign spring" || page.Rows[0][3] != fmtThousands(imp1) || page.Rows[1][0] != xssName || page.Markup != 0 {
		t.Errorf("campaign rows %q (want %s impressions first), markup %d", page.Rows, fmtThousands(imp1), page.Markup)
	}
	if fmt.Sprint(page.Lines) != "[24 24 24]" || page.Circles != 72 || page.Points != "72" {
		t.Errorf("chart: polylines %v, %d circles, data-points %s", page.Lines, page.Circles, page.Points)
	}
	if page.Title != "Campaign spring" || page.Hash != "" || !page.Stored || page.AdsShown != 2 {
		t.Errorf("title %q, hash %q (the token must leave the URL), stored %v, %d ad buttons", page.Title, page.Hash, page.Stored, page.AdsShown)
	}
	b.Screenshot("dataapi-dashboard.png")

	// The ad's chart comes from its Redis series: its last hour holds the marker.
	var adChart struct {
		Title string `json:"title"`
		Max   string `json:"max"`
	}
	b.Eval(`document.querySelector('#ads button[data-ad="`+fmt.Sprint(ads[0])+`"]').click()`, nil)
	b.WaitFor(`document.querySelector('#chart-title').textContent.includes(' › ') && {
		title: document.querySelector('#chart-title').textContent,
		max: document.querySelector('#chart g[data-series="impressions"] text:nth-of-type(2)').textContent,
	}`, &adChart)
	if adChart.Title != "Campaign spring › Ad spring 0" || adChart.Max != "4,242" {
		t.Errorf("ad chart %+v", adChart)
	}
	// Daily view: 7 points a line.
	b.Eval(`document.querySelector('.toolbar button[data-view="daily"]').click()`, nil)
	var dailyPoints int
	b.WaitFor(`document.querySelector('#chart').dataset.view === 'daily' && Number(document.querySelector('#chart').dataset.points)`, &dailyPoints)
	if dailyPoints != 21 {
		t.Errorf("daily chart: %d points, want 21", dailyPoints)
	}

	// An import: the form sends it, the bar follows the task's PROGRESS, then its SUCCESS.
	b.Eval(`document.querySelector('#source').value = 'https://feeds.example.com/acme.csv'; document.querySelector('#import-form button').click()`, nil)
	var taskID string
	b.WaitFor(`document.querySelector('#import-task').textContent`, &taskID)
	ctx := context.Background()
	if err := e.results.Store(ctx, protocol.ResultMeta{TaskID: taskID, Status: "PROGRESS", Result: json.RawMessage(`{"current": 50, "total": 200}`)}); err != nil {
		t.Fatal(err)
	}
	var progress struct {
		Width  string `json:"width"`
		Detail string `json:"detail"`
	}
	b.WaitFor(`document.querySelector('#import-state').textContent === 'PROGRESS' && {
		width: document.querySelector('#bar-fill').style.width, detail: document.querySelector('#import-detail').textContent }`, &progress)
	if progress.Width != "25%" || progress.Detail != "50 of 200 rows" {
		t.Errorf("progress %+v", progress)
	}
	b.Screenshot("dataapi-dashboard-import.png")
	if err := e.results.Store(ctx, protocol.ResultMeta{TaskID: taskID, Status: protocol.StateSuccess,
		Result: json.RawMessage(`{"rows_total": 200, "rows_ok": 198, "rows_failed": 2}`)}); err != nil {
		t.Fatal(err)
	}
	var done string
	b.WaitFor(`document.querySelector('#import-state').textContent === 'SUCCESS' && document.querySelector('#bar-fill').className === 'done' &&
		document.querySelector('#import-detail').textContent`, &done)
	if done != "198 of 200 rows imported, 2 refused" {
		t.Errorf("import done: %q", done)
	}
	// A refused import shows the API's message.
	b.Eval(`document.querySelector('#source').value = 'ftp://nope'; document.querySelector('#import-form button').click()`, nil)
	var refused string
	b.WaitFor(`document.querySelector('#import-state').textContent === 'REFUSED' && document.querySelector('#import-detail').textContent`, &refused)
	if !strings.HasPrefix(refused, "source: ") {
		t.Errorf("refused import: %q", refused)
	}

	// Without a stored token the page asks for one; a wrong one is refused, the right one opens it.
	b.Eval(`sessionStorage.clear()`, nil)
	b.Navigate(e.srv.URL + "/dashboard")
	b.WaitFor(`!document.querySelector('#login').hidden && document.querySelector('#app').hidden`, nil)
	b.Eval(`document.querySelector('#token').value = 'wrong'; document.querySelector('#login-form button').click()`, nil)
	var loginErr string
	b.WaitFor(`!document.querySelector('#login').hidden && document.querySelector('#login-error').textContent`, &loginErr)
	if !strings.Contains(loginErr, "refused") {
		t.Errorf("wrong token: %q", loginErr)
	}
	b.Eval(`document.querySelector('#token').value = `+browsertest.JSString(e.token)+`; document.querySelector('#login-form button').click()`, nil)
	var rows int
	b.WaitFor(`document.querySelectorAll('#campaigns tbody tr').length`, &rows)
	if rows != len(camps) {
		t.Errorf("after signing in: %d rows", rows)
	}
}

// xssName is a campaign name that would run script if the page used it as HTML.
const xssName = `Campaign <img src=x onerror="window.pwned=1">`

// fmtThousands writes n as the page does (en-US grouping).
func fmtThousands(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
