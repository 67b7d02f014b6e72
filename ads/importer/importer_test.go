package importer_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/forumads/forumads/ads/feed"
	"github.com/forumads/forumads/ads/feedgen"
	"github.com/forumads/forumads/ads/importer"
	"github.com/forumads/forumads/internal/testdb"
)

func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func gz(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func generate(t testing.TB, o feedgen.Options) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := feedgen.Write(&b, o); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func importOK(t testing.TB, db *sqlx.DB, source string, o importer.Options) importer.Summary {
	t.Helper()
	sum, err := importer.Import(context.Background(), db, source, o)
	if err != nil {
		t.Fatalf("import %s: %v", source, err)
	}
	if sum.Status != "succeeded" || sum.RowsOK+sum.RowsFailed != sum.RowsTotal || sum.Created+sum.Updated+sum.Unchanged != sum.RowsOK {
		t.Fatalf("inconsistent summary: %+v", sum)
	}
	return sum
}

func count(t testing.TB, db *sqlx.DB, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.Get(&n, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

type run struct {
	Status     string  `db:"status"`
	TaskID     *string `db:"task_id"`
	Source     string  `db:"source"`
	RowsTotal  int64   `db:"rows_total"`
	RowsOK     int64   `db:"rows_ok"`
	RowsFailed int64   `db:"rows_failed"`
	Error      *string `db:"error"`
	Finished   bool    `db:"finished"`
}

func getRun(t testing.TB, db *sqlx.DB, id int64) run {
	t.Helper()
	var r run
	if err := db.Get(&r, `SELECT status, task_id, source, rows_total, rows_ok, rows_failed, error, finished_at IS NOT NULL AS finished FROM import_runs WHERE id = $1`, id); err != nil {
		t.Fatalf("import_runs %d: %v", id, err)
	}
	return r
}

type importError struct {
	Line       int64   `db:"line"`
	Kind       *string `db:"kind"`
	ExternalID *string `db:"external_id"`
	Field      *string `db:"field"`
	Reason     string  `db:"reason"`
	Raw        *string `db:"raw"`
}

func (e importError) String() string {
	s := func(p *string) string {
		if p == nil {
			return "NULL"
		}
		return *p
	}
	return fmt.Sprintf("line %d %s %s [%s] %s", e.Line, s(e.Kind), s(e.ExternalID), s(e.Field), e.Reason)
}

func getErrors(t testing.TB, db *sqlx.DB, runID int64) []importError {
	t.Helper()
	var errs []importError
	if err := db.Select(&errs, `SELECT line, kind, external_id, field, reason, raw FROM import_errors WHERE run_id = $1 ORDER BY line, id`, runID); err != nil {
		t.Fatal(err)
	}
	return errs
}

// snapshot is every column of every row of the four tables (ids, versions, timestamps included).
func snapshot(t testing.TB, db *sqlx.DB) string {
	t.Helper()
	var parts []string
	for _, q := range []string{
		`SELECT coalesce(string_agg(t::text, E'\n' ORDER BY slug), '') FROM forums t`,
		`SELECT coalesce(string_agg(t::text, E'\n' ORDER BY id), '') FROM advertisers t`,
		`SELECT coalesce(string_agg(t::text, E'\n' ORDER BY id), '') FROM campaigns t`,
		`SELECT coalesce(string_agg(t::text, E'\n' ORDER BY id), '') FROM ads t`,
		`SELECT concat_ws(',', (SELECT last_value FROM advertisers_id_seq), (SELECT last_value FROM campaigns_id_seq), (SELECT last_value FROM ads_id_seq))`,
	} {
		var s string
		if err := db.Get(&s, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "\n--\n")
}

// content is the imported data without ids and timestamps, in a stable order.
func content(t testing.TB, db *sqlx.DB) string {
	t.Helper()
	var s string
	err := db.Get(&s, `SELECT coalesce(string_agg(x, E'\n' ORDER BY x), '') FROM (
		SELECT concat_ws('|', 'f', slug, name, category) x FROM forums
		UNION ALL SELECT concat_ws('|', 'a', external_id, name, email, status, version) FROM advertisers
		UNION ALL SELECT concat_ws('|', 'c', c.external_id, a.external_id, c.name, c.status, c.bid_micros, c.daily_budget_micros,
			c.start_at, c.end_at, c.target_forums::text, c.target_categories::text, c.target_countries::text, c.target_placements::text, c.version)
			FROM campaigns c JOIN advertisers a ON a.id = c.advertiser_id
		UNION ALL SELECT concat_ws('|', 'd', d.external_id, c.external_id, d.title, d.body, d.image_url, d.click_url, d.status, d.version)
			FROM ads d JOIN campaigns c ON c.id = d.campaign_id) s`)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestImportHappyPath(t *testing.T) {
	t.Parallel()
	pg := testdb.Postgres(t)
	// The campaign comes before its advertiser, the ad before its campaign: references are
	// resolved across the whole feed.
	data := "Kind,external_id,advertiser,campaign,name,email,status,bid,daily_budget,start_at,end_at,forums,categories,countries,placements,title,body,image_url,click_url,category\n" +
		"ad,ad-1,,cmp-1,,,paused,,,,,,,,,Fresh coffee,\"Roasted today.\nShipped tomorrow.\",,https://beans.example/shop?x=1,\n" +
		"campaign,cmp-1,adv-1,,Spring beans,,,0.35,100.5,2026-03-01,2026-04-01T12:30:00+02:00,coffee-talk,food|drinks,us|gb,sidebar|Inline,,,,,\n" +
		"advertiser,adv-1,,,Bean Co,ads@beans.example,,,,,,,,,,,,,,\n" +
		"advertiser,adv-2,,,No Mail Ltd,,archived,,,,,,,,,,,,,\n" +
		"forum,coffee-talk,,,Coffee Talk,,,,,,,,,,,,,,,food\n"
	path := writeFile(t, "feed.csv", []byte(data))
	sum := importOK(t, pg.DB, path, importer.Options{TaskID: "task-123"})
	if sum.RowsTotal != 5 || sum.RowsOK != 5 || sum.RowsFailed != 0 || sum.Created != 5 || sum.Format != feed.CSV || sum.Gzip || sum.Bytes != int64(len(data)) {
		t.Errorf("summary: %+v", sum)
	}
	if k := sum.Kinds[feed.KindAdvertiser]; k.Rows != 2 || k.Created != 2 {
		t.Errorf("advertiser counts: %+v", k)
	}
	r := getRun(t, pg.DB, sum.RunID)
	if r.Status != "succeeded" || r.TaskID == nil || *r.TaskID != "task-123" || r.Source != path || r.RowsTotal != 5 || r.RowsOK != 5 || r.Error != nil || !r.Finished {
		t.Errorf("import_runs: %+v", r)
	}
	var adv []struct {
		ExternalID string  `db:"external_id"`
		Name       string  `db:"name"`
		Email      *string `db:"email"`
		Status     string  `db:"status"`
		Version    int     `db:"version"`
	}
	if err := pg.DB.Select(&adv, `SELECT external_id, name, email, status, version FROM advertisers ORDER BY external_id`); err != nil {
		t.Fatal(err)
	}
	if len(adv) != 2 || adv[0].Name != "Bean Co" || adv[0].Email == nil || *adv[0].Email != "ads@beans.example" || adv[0].Status != "active" ||
		adv[1].Email != nil || adv[1].Status != "archived" || adv[0].Version != 1 {
		t.Errorf("advertisers: %+v", adv)
	}
	var c struct {
		Advertiser string     `db:"advertiser"`
		Status     string     `db:"status"`
		Bid        int64      `db:"bid_micros"`
		Budget     int64      `db:"daily_budget_micros"`
		Start      time.Time  `db:"start_at"`
		End        *time.Time `db:"end_at"`
		Targets    string     `db:"targets"`
	}
	if err := pg.DB.Get(&c, `SELECT a.external_id AS advertiser, c.status, c.bid_micros, c.daily_budget_micros, c.start_at, c.end_at,
		concat_ws(' ', c.target_forums::text, c.target_categories::text, c.target_countries::text, c.target_placements::text) AS targets
		FROM campaigns c JOIN advertisers a ON a.id = c.advertiser_id WHERE c.external_id = 'cmp-1'`); err != nil {
		t.Fatal(err)
	}
	if c.Advertiser != "adv-1" || c.Status != "active" || c.Bid != 350000 || c.Budget != 100500000 ||
		!c.Start.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) || c.End == nil || !c.End.Equal(time.Date(2026, 4, 1, 10, 30, 0, 0, time.UTC)) ||
		c.Targets != "{coffee-talk} {food,drinks} {US,GB} {sidebar,inline}" {
		t.Errorf("campaign: %+v", c)
	}
	var ad struct {
		Campaign string  `db:"campaign"`
		Title    string  `db:"title"`
		Body     string  `db:"body"`
		Image    *string `db:"image_url"`
		Click    string  `db:"click_url"`
		Status   string  `db:"status"`
	}
	if err := pg.DB.Get(&ad, `SELECT c.external_id AS campaign, d.title, d.body, d.image_url, d.click_url, d.status
		FROM ads d JOIN campaigns c ON c.id = d.campaign_id WHERE d.external_id = 'ad-1'`); err != nil {
		t.Fatal(err)
	}
	if ad.Campaign != "cmp-1" || ad.Title != "Fresh coffee" || ad.Body != "Roasted today.\nShipped tomorrow." || ad.Image != nil ||
		ad.Click != "https://beans.example/shop?x=1" || ad.Status != "paused" {
		t.Errorf("ad: %+v", ad)
	}
	if n := count(t, pg.DB, `SELECT count(*) FROM forums WHERE slug = 'coffee-talk' AND category = 'food'`); n != 1 {
		t.Errorf("forum rows: %d", n)
	}
}

func TestImportFormats(t *testing.T) {
	t.Parallel()
	o := feedgen.Options{Advertisers: 12, CampaignsPer: 2, AdsPer: 3, Forums: 10, Seed: 7}
	csvData := generate(t, o)
	o.Format = feed.JSONL
	jsonData := generate(t, o)
	want, _ := feedgen.Count(o)

	ref := testdb.Postgres(t)
	importOK(t, ref.DB, writeFile(t, "ref.csv", csvData), importer.Options{})
	wantContent := content(t, ref.DB)

	cases := []struct {
		name   string
		data   []byte
		format feed.Format
		gzip   bool
	}{
		{"feed.csv", csvData, feed.CSV, false},
		{"feed.jsonl", jsonData, feed.JSONL, false},
		{"feed.ndjson", jsonData, feed.JSONL, false},
		{"feed.csv.gz", gz(t, csvData), feed.CSV, true},
		{"feed.jsonl.gz", gz(t, jsonData), feed.JSONL, true},
		{"csv-without-extension", csvData, feed.CSV, false},
		{"jsonl-without-extension", jsonData, feed.JSONL, false},
		{"gzip-jsonl-named.dat", gz(t, jsonData), feed.JSONL, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pg := testdb.Postgres(t)
			path := writeFile(t, tc.name, tc.data)
			sum := importOK(t, pg.DB, "file://"+path, importer.Options{BatchSize: 17})
			if sum.RowsTotal != int64(want.Rows()) || sum.Created != sum.RowsTotal || sum.Format != tc.format || sum.Gzip != tc.gzip || sum.Bytes != int64(len(tc.data)) {
				t.Errorf("summary %+v, want %d rows", sum, want.Rows())
			}
			if got := content(t, pg.DB); got != wantContent {
				t.Errorf("stored content differs from the CSV import")
			}
		})
	}
}

func TestImportIdempotent(t *testing.T) {
	t.Parallel()
	pg := testdb.Postgres(t)
	data := generate(t, feedgen.Options{Advertisers: 30, CampaignsPer: 2, AdsPer: 4, Forums: 20, Seed: 3, Invalid: 0.1})
	path := writeFile(t, "feed.csv", data)
	first := importOK(t, pg.DB, path, importer.Options{BatchSize: 50})
	if first.RowsFailed == 0 || first.Created != first.RowsOK {
		t.Fatalf("first import: %+v", first)
	}
	before := snapshot(t, pg.DB)
	time.Sleep(10 * time.Millisecond) // so a wrongly bumped updated_at would differ
	second := importOK(t, pg.DB, path, importer.Options{BatchSize: 50})
	if second.Created != 0 || second.Updated != 0 || second.Unchanged != first.RowsOK || second.RowsFailed != first.RowsFailed {
		t.Errorf("second import changed rows: %+v (first %+v)", second, first)
	}
	if after := snapshot(t, pg.DB); after != before {
		t.Errorf("the second import changed the tables:\nbefore %.500s\nafter  %.500s", before, after)
	}
	if n := count(t, pg.DB, `SELECT count(*) FROM import_errors WHERE run_id = $1`, second.RunID); n != count(t, pg.DB, `SELECT count(*) FROM import_errors WHERE run_id = $1`, first.RunID) {
		t.Errorf("the runs recorded different errors")
	}
}

func TestImportUpdate(t *testing.T) {
	t.Parallel()
	pg := testdb.Postgres(t)
	v1 := "kind,external_id,advertiser,campaign,name,status,bid,daily_budget,start_at,title,click_url,category,countries\n" +
		"forum,f1,,,Forum,,,,,,,misc,\n" +
		"advertiser,a1,,,Acme,,,,,,,,\n" +
		"advertiser,a2,,,Other,,,,,,,,\n" +
		"campaign,c1,a1,,Camp,,0.10,10,2026-01-01,,,,us\n" +
		"ad,d1,,c1,,,,,,Title one,https://a.example/1,,\n" +
		"ad,d2,,c1,,,,,,Title two,https://a.example/2,,\n"
	first := importOK(t, pg.DB, writeFile(t, "v1.csv", []byte(v1)), importer.Options{})
	if first.Created != 6 {
		t.Fatalf("first: %+v", first)
	}
	type ver struct {
		ID      string    `db:"external_id"`
		Version int       `db:"version"`
		Created time.Time `db:"created_at"`
		Updated time.Time `db:"updated_at"`
	}
	versions := func() map[string]ver {
		var vs []ver
		if err := pg.DB.Select(&vs, `SELECT external_id, version, created_at, updated_at FROM advertisers
			UNION ALL SELECT external_id, version, created_at, updated_at FROM campaigns
			UNION ALL SELECT external_id, version, created_at, updated_at FROM ads`); err != nil {
			t.Fatal(err)
		}
		m := map[string]ver{}
		for _, v := range vs {
			m[v.ID] = v
		}
		return m
	}
	old := versions()
	time.Sleep(10 * time.Millisecond)
	// The campaign moves to a2 with a new bid and countries; d1 changes title; forum renamed.
	v2 := strings.NewReplacer("Forum,", "Renamed forum,", "c1,a1,,Camp,,0.10,10,2026-01-01,,,,us", "c1,a2,,Camp,paused,0.25,10,2026-01-01,,,,us|de",
		"Title one", "Title 1").Replace(v1)
	second := importOK(t, pg.DB, writeFile(t, "v2.csv", []byte(v2)), importer.Options{})
	if second.Updated != 3 || second.Unchanged != 3 || second.Created != 0 {
		t.Errorf("second: %+v", second)
	}
	now := versions()
	for id, changed := range map[string]bool{"a1": false, "a2": false, "c1": true, "d1": true, "d2": false} {
		o, n := old[id], now[id]
		if !n.Created.Equal(o.Created) {
			t.Errorf("%s: created_at changed", id)
		}
		if changed && (n.Version != o.Version+1 || !n.Updated.After(o.Updated)) {
			t.Errorf("%s: changed but version %d→%d, updated_at %v→%v", id, o.Version, n.Version, o.Updated, n.Updated)
		}
		if !changed && (n.Version != o.Version || !n.Updated.Equal(o.Updated)) {
			t.Errorf("%s: unchanged but version %d→%d, updated_at %v→%v", id, o.Version, n.Version, o.Updated, n.Updated)
		}
	}
	var got string
	if err := pg.DB.Get(&got, `SELECT concat_ws(' ', a.external_id, c.status, c.bid_micros, c.target_countries::text, (SELECT title FROM ads WHERE external_id = 'd1'), (SELECT name FROM forums WHERE slug = 'f1'))
		FROM campaigns c JOIN advertisers a ON a.id = c.advertiser_id WHERE c.external_id = 'c1'`); err != nil {
		t.Fatal(err)
	}
	if want := "a2 paused 250000 {US,DE} Title 1 Renamed forum"; got != want {
		t.Errorf("updated values %q, want %q", got, want)
	}
	// A feed of children only: the parents are found in the database.
	v3 := "kind,external_id,advertiser,campaign,name,bid,daily_budget,start_at,title,click_url\n" +
		"campaign,c2,a1,,New camp,1,5,2026-02-01,,\n" +
		"ad,d3,,c1,,,,,Third,https://a.example/3\n"
	third := importOK(t, pg.DB, writeFile(t, "v3.csv", []byte(v3)), importer.Options{})
	if third.Created != 2 || third.RowsFailed != 0 {
		t.Errorf("third: %+v", third)
	}
}

func TestImportBadRows(t *testing.T) {
	t.Parallel()
	pg := testdb.Postgres(t)
	pg.DB.SetMaxOpenConns(1) // the import and its bookkeeping share one connection without deadlock
	// A constraint the feed validation does not know: the database refuses the row, alone.
	if _, err := pg.DB.Exec(`ALTER TABLE ads ADD CONSTRAINT ads_title_check1 CHECK (title <> 'Forbidden title')`); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 3000)
	lines := []string{
		"kind,external_id,advertiser,campaign,name,email,bid,daily_budget,start_at,title,body,image_url,click_url,category,colour",
		/* 2 */ "advertiser,a1,,,Good advertiser,,,,,,,,,,red",
		/* 3 */ "advertiser,a2,,,Bad \xff name,,,,,,,,,,",
		/* 4 */ "advertiser,a3,,,,,,,,,,,,,",
		/* 5 */ "advertiser,a1,,,Duplicate,,,,,,,,,,",
		/* 6 */ "campaign,c1,a1,,Good campaign,,0.5,10,2026-01-01,,,,,,",
		/* 7 */ "campaign,c2,ghost,,Unknown advertiser,,0.5,10,2026-01-01,,,,,,",
		/* 8 */ "campaign,c3,a1,,Bad bid,,abc,10,2026-01-01,,,,,,",
		/* 9 */ "ad,d1,,c1,,,,,,Good ad,,,https://a.example/,,",
		/* 10 */ "ad,d2,,c3,,,,,,Refused campaign,,,https://a.example/,,",
		/* 11 */ "ad,d3,,c1,,,,,,Bad URL,,,ftp://a.example/,,",
		/* 12 */ "ad,d4,,c1,,,,,," + strings.Repeat("T", 91) + ",,,https://a.example/,,",
		/* 13 */ "ad,d5,,c1,,,,,,Forbidden title,,,https://a.example/,,",
		/* 14 */ "ad,d6,,c1,,,,,,Another good ad,,https://i.example/x.png,https://a.example/,,",
		/* 15 */ "ad,d7,,c1,,,,,,Long body," + long + ",,https://a.example/,,",
		/* 16 */ "ad,d1,,c1,,,,,,Duplicate ad,,,https://a.example/,,",
		/* 17 */ "forum,Bad Slug,,,Forum,,,,,,,,,misc,",
		/* 18 */ "ad,d8,,c9,,,,,,Missing campaign,,,https://a.example/,,",
		/* 19 */ "ad,d9,,,,,,,,No campaign,,,https://a.example/,,",
		/* 20 */ "ad,d10,,c1,,,,,,Too,many,fields",
	}
	path := writeFile(t, "bad.csv", []byte(strings.Join(lines, "\n")+"\n"))
	sum := importOK(t, pg.DB, path, importer.Options{BatchSize: 3})
	if sum.RowsTotal != 19 || sum.RowsOK != 4 || sum.RowsFailed != 15 || sum.Notices != 1 {
		t.Errorf("summary: %+v", sum)
	}
	want := []struct {
		line            int64
		kind, id, field string
		reason          string
	}{
		{1, "", "", "colour", `unknown field "colour" ignored`},
		{3, "advertiser", "a2", "name", "not valid UTF-8"},
		{4, "advertiser", "a3", "name", "name: required"},
		{5, "advertiser", "a1", "external_id", "first row, on line 2"},
		{7, "campaign", "c2", "advertiser", `unknown advertiser "ghost"`},
		{8, "campaign", "c3", "bid", `bid: must be a positive decimal, got "abc"`},
		{10, "ad", "d2", "campaign", `unknown campaign "c3"`},
		{11, "ad", "d3", "click_url", "http:// or https://"},
		{12, "ad", "d4", "title", "at most 90 characters, got 91"},
		{13, "ad", "d5", "title", "rejected by the database"},
		{15, "ad", "d7", "body", "at most 300 characters, got 3000"},
		{16, "ad", "d1", "external_id", "first row, on line 9"},
		{17, "forum", "Bad Slug", "external_id", "slug"},
		{18, "ad", "d8", "campaign", `unknown campaign "c9"`},
		{19, "ad", "d9", "campaign", "campaign: required"},
		{20, "ad", "d10", "", "has 12 fields but the header has 15"},
	}
	got := getErrors(t, pg.DB, sum.RunID)
	if len(got) != len(want) {
		t.Errorf("%d errors, want %d:", len(got), len(want))
		for _, e := range got {
			t.Log(e)
		}
	}
	for i := 0; i < len(want) && i < len(got); i++ {
		w, g := want[i], got[i]
		str := func(p *string) string {
			if p == nil {
				return ""
			}
			return *p
		}
		if g.Line != w.line || str(g.Kind) != w.kind || str(g.ExternalID) != w.id || str(g.Field) != w.field || !strings.Contains(g.Reason, w.reason) {
			t.Errorf("error %d: got %v\nwant line %d %s %s [%s] ~%s", i, g, w.line, w.kind, w.id, w.field, w.reason)
		}
		if g.Raw == nil || len(*g.Raw) > feed.MaxRawBytes {
			t.Errorf("error %d: raw %v", i, g.Raw)
		}
	}
	if n := count(t, pg.DB, `SELECT count(*) FROM ads WHERE external_id IN ('d1', 'd6') AND title IN ('Good ad', 'Another good ad')`); n != 2 {
		t.Errorf("good ads stored: %d", n)
	}
	if n := count(t, pg.DB, `SELECT count(*) FROM advertisers`) + count(t, pg.DB, `SELECT count(*) FROM campaigns`) + count(t, pg.DB, `SELECT count(*) FROM ads`) + count(t, pg.DB, `SELECT count(*) FROM forums`); n != 4 {
		t.Errorf("rows stored: %d, want 4", n)
	}
	r := getRun(t, pg.DB, sum.RunID)
	if r.Status != "succeeded" || r.RowsFailed != 15 || r.RowsOK != 4 {
		t.Errorf("run: %+v", r)
	}
}

func TestImportFeedgenInvalid(t *testing.T) {
	t.Parallel()
	pg := testdb.Postgres(t)
	o := feedgen.Options{Advertisers: 40, CampaignsPer: 2, AdsPer: 5, Forums: 5, Seed: 11, Invalid: 0.05, Format: feed.JSONL}
	c, err := feedgen.Count(o)
	if err != nil {
		t.Fatal(err)
	}
	sum := importOK(t, pg.DB, writeFile(t, "f.jsonl", generate(t, o)), importer.Options{BatchSize: 64})
	if sum.RowsTotal != int64(c.Rows()) || sum.RowsFailed != int64(c.InvalidAds) || c.InvalidAds != 20 {
		t.Errorf("summary %+v, want %d rows with %d invalid", sum, c.Rows(), c.InvalidAds)
	}
	if n := count(t, pg.DB, `SELECT count(DISTINCT line) FROM import_errors WHERE run_id = $1`, sum.RunID); n != int64(c.InvalidAds) {
		t.Errorf("%d lines in import_errors, want %d", n, c.InvalidAds)
	}
}

func TestImportHTTP(t *testing.T) {
	t.Parallel()
	data := generate(t, feedgen.Options{Advertisers: 30, CampaignsPer: 2, AdsPer: 3, Forums: 5, Seed: 5})
	mux := http.NewServeMux()
	mux.HandleFunc("/feed.csv", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(data) })
	mux.HandleFunc("/feed.csv.gz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(gz(t, data)) })
	mux.HandleFunc("/download", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(data) }) // no extension
	mux.HandleFunc("/error.csv", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "database on fire", http.StatusInternalServerError)
	})
	mux.HandleFunc("/slow.csv", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	cut := func(body []byte, withLength bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if withLength {
				w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			}
			_, _ = w.Write(body[:len(body)/2])
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		}
	}
	mux.HandleFunc("/cut.csv", cut(data, true))
	mux.HandleFunc("/cut-chunked.csv", cut(data, false))
	mux.HandleFunc("/cut.csv.gz", cut(gz(t, data), false))
	mux.HandleFunc("/big.csv", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		_, _ = w.Write(data)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	client := &http.Client{Timeout: 500 * time.Millisecond}

	cases := []struct {
		path    string
		opts    importer.Options
		wantErr string // "" = success
	}{
		{"/feed.csv", importer.Options{}, ""},
		{"/feed.csv.gz", importer.Options{}, ""},
		{"/download", importer.Options{HTTPClient: client}, ""},
		{"/error.csv", importer.Options{}, "HTTP 500 Internal Server Error: database on fire"},
		{"/slow.csv", importer.Options{HTTPClient: client}, "timed out"},
		{"/cut.csv", importer.Options{}, "unexpected EOF"},
		{"/cut-chunked.csv", importer.Options{}, "unexpected EOF"},
		{"/cut.csv.gz", importer.Options{}, "gzip"},
		{"/big.csv", importer.Options{MaxBytes: int64(len(data) - 1)}, "more than the limit"},
		{"/missing.csv", importer.Options{}, "HTTP 404"},
	}
	for _, tc := range cases {
		t.Run(strings.TrimPrefix(tc.path, "/"), func(t *testing.T) {
			t.Parallel()
			pg := testdb.Postgres(t)
			u := srv.URL + tc.path
			sum, err := importer.Import(context.Background(), pg.DB, u, tc.opts)
			if tc.wantErr == "" {
				if err != nil || sum.RowsOK != sum.RowsTotal || sum.RowsTotal == 0 {
					t.Fatalf("import: %v %+v", err, sum)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), u) {
				t.Fatalf("err = %v, want one naming %s and ~%q", err, u, tc.wantErr)
			}
			r := getRun(t, pg.DB, sum.RunID)
			if r.Status != "failed" || r.Error == nil || !strings.Contains(*r.Error, tc.wantErr) || !r.Finished || r.RowsTotal != 0 {
				t.Errorf("run: %+v", r)
			}
			if n := count(t, pg.DB, `SELECT (SELECT count(*) FROM forums) + (SELECT count(*) FROM advertisers) + (SELECT count(*) FROM import_errors)`); n != 0 {
				t.Errorf("a failed download applied %d rows", n)
			}
		})
	}
}

func TestImportSourceErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	big := writeFile(t, "big.csv", []byte("kind,external_id,name\nadvertiser,a,A\n"))
	noHeader := writeFile(t, "noheader.csv", []byte("advertiser,a,A\n"))
	badGzip := writeFile(t, "bad.csv.gz", gz(t, []byte("kind,external_id,name\nadvertiser,a,A\n"))[:20])
	cases := []struct {
		name, source string
		opts         importer.Options
		want         string
	}{
		{"missing file", filepath.Join(dir, "nope.csv"), importer.Options{}, "no such file"},
		{"directory", dir, importer.Options{}, "is a directory"},
		{"scheme", "ftp://example.com/feed.csv", importer.Options{}, `unsupported scheme "ftp"`},
		{"empty", "", importer.Options{}, "source is empty"},
		{"remote file URL", "file://host/feed.csv", importer.Options{}, "local file"},
		{"too big", big, importer.Options{MaxBytes: 10}, "more than the limit"},
		{"no header", noHeader, importer.Options{}, `required column "kind"`},
		{"truncated gzip", badGzip, importer.Options{}, "gzip"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pg := testdb.Postgres(t)
			sum, err := importer.Import(context.Background(), pg.DB, tc.source, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ~%q", err, tc.want)
			}
			r := getRun(t, pg.DB, sum.RunID)
			if r.Status != "failed" || r.Error == nil || !strings.Contains(*r.Error, tc.want) {
				t.Errorf("run: %+v", r)
			}
			if n := count(t, pg.DB, `SELECT count(*) FROM advertisers`); n != 0 {
				t.Errorf("%d advertisers applied", n)
			}
		})
	}
	// A password in a URL never reaches import_runs.
	pg := testdb.Postgres(t)
	sum, err := importer.Import(context.Background(), pg.DB, "https://user:secret@127.0.0.1:1/feed.csv", importer.Options{})
	if err == nil || strings.Contains(err.Error(), "secret") || strings.Contains(getRun(t, pg.DB, sum.RunID).Source, "secret") {
		t.Errorf("password leaked or no error: %v", err)
	}
}

func TestImportProgress(t *testing.T) {
	t.Parallel()
	pg := testdb.Postgres(t)
	data := generate(t, feedgen.Options{Advertisers: 40, CampaignsPer: 2, AdsPer: 5, Forums: 10, Seed: 9, Invalid: 0.1})
	var mu sync.Mutex
	var calls [][2]int64
	sum := importOK(t, pg.DB, writeFile(t, "f.csv", data), importer.Options{BatchSize: 10, Progress: func(cur, total int64) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, [2]int64{cur, total})
	}})
	mu.Lock()
	defer mu.Unlock()
	if len(calls) == 0 {
		t.Fatal("no progress calls")
	}
	for i, c := range calls {
		if c[1] != sum.RowsTotal || c[0] < 0 || c[0] > c[1] || (i > 0 && c[0] < calls[i-1][0]) {
			t.Fatalf("call %d of %v is not monotonic within [0, %d]", i, calls, sum.RowsTotal)
		}
	}
	if last := calls[len(calls)-1]; last[0] != sum.RowsTotal {
		t.Errorf("last call %v, want current = total = %d", last, sum.RowsTotal)
	}
}

func TestImportCancel(t *testing.T) {
	t.Parallel()
	pg := testdb.Postgres(t)
	data := generate(t, feedgen.Options{Advertisers: 20, CampaignsPer: 2, AdsPer: 3, Forums: 30, Seed: 2})
	path := writeFile(t, "f.csv", data)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Cancel as soon as the first batch is applied: the import stops dispatching batches; those
	// under way (one per connection) finish.
	sum, err := importer.Import(ctx, pg.DB, path, importer.Options{BatchSize: 10, Progress: func(cur, total int64) { cancel() }})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	r := getRun(t, pg.DB, sum.RunID)
	if r.Status != "failed" || r.Error == nil || *r.Error != "cancelled" || r.RowsOK == 0 || r.RowsOK%10 != 0 || r.RowsOK >= r.RowsTotal || r.RowsTotal != 210 {
		t.Errorf("run: %+v", r)
	}
	stored := count(t, pg.DB, `SELECT (SELECT count(*) FROM forums) + (SELECT count(*) FROM advertisers) + (SELECT count(*) FROM campaigns) + (SELECT count(*) FROM ads)`)
	if stored != r.RowsOK {
		t.Errorf("%d rows stored, the run says %d (whole batches only)", stored, r.RowsOK)
	}
	// Re-running completes the work.
	again := importOK(t, pg.DB, path, importer.Options{BatchSize: 10})
	if again.Unchanged != r.RowsOK || again.Created != again.RowsTotal-r.RowsOK {
		t.Errorf("re-run: %+v", again)
	}
	// Cancelled before it starts: recorded, nothing applied.
	pg2 := testdb.Postgres(t)
	done, stop := context.WithCancel(context.Background())
	stop()
	sum, err = importer.Import(done, pg2.DB, path, importer.Options{})
	if !errors.Is(err, context.Canceled) || getRun(t, pg2.DB, sum.RunID).Status != "failed" || count(t, pg2.DB, `SELECT count(*) FROM forums`) != 0 {
		t.Errorf("cancelled before the start: %v %+v", err, sum)
	}
}

func TestImportFailedBatchKeepsErrors(t *testing.T) {
	t.Parallel()
	pg := testdb.Postgres(t)
	o := feedgen.Options{Advertisers: 20, CampaignsPer: 2, AdsPer: 5, Forums: 5, Seed: 4, Invalid: 0.1}
	path := writeFile(t, "f.csv", generate(t, o))
	var once sync.Once
	// Once the import applies, the ads table goes away: the ads batches fail.
	sum, err := importer.Import(context.Background(), pg.DB, path, importer.Options{BatchSize: 20, Progress: func(cur, total int64) {
		once.Do(func() {
			if _, err := pg.DB.Exec(`ALTER TABLE ads RENAME TO ads_gone`); err != nil {
				t.Error(err)
			}
		})
	}})
	if err == nil || !strings.Contains(err.Error(), `relation "ads" does not exist`) || !strings.Contains(err.Error(), "apply") {
		t.Fatalf("err = %v", err)
	}
	r := getRun(t, pg.DB, sum.RunID)
	if r.Status != "failed" || r.Error == nil || !strings.Contains(*r.Error, "ads") || r.RowsFailed == 0 {
		t.Errorf("run: %+v", r)
	}
	// The rows refused before the failure are all recorded.
	if n := count(t, pg.DB, `SELECT count(*) FROM import_errors WHERE run_id = $1`, sum.RunID); n != r.RowsFailed {
		t.Errorf("%d errors recorded, the run refused %d rows", n, r.RowsFailed)
	}
}

func TestImportConcurrentSameFeed(t *testing.T) {
	t.Parallel()
	pg := testdb.Postgres(t)
	path := writeFile(t, "f.csv", generate(t, feedgen.Options{Advertisers: 40, CampaignsPer: 2, AdsPer: 4, Forums: 10, Seed: 8}))
	var wg sync.WaitGroup
	sums := make([]importer.Summary, 2)
	errs := make([]error, 2)
	for i := range sums {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sums[i], errs[i] = importer.Import(context.Background(), pg.DB, path, importer.Options{BatchSize: 25})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("import %d: %v", i, err)
		}
	}
	total := sums[0].RowsTotal
	if sums[0].Created+sums[1].Created != total || sums[0].Updated+sums[1].Updated != 0 || sums[0].RowsOK != total || sums[1].RowsOK != total {
		t.Errorf("two imports of one feed: %+v / %+v", sums[0], sums[1])
	}
	if n := count(t, pg.DB, `SELECT count(*) FROM ads WHERE version <> 1`); n != 0 {
		t.Errorf("%d ads updated", n)
	}
}

func BenchmarkImport(b *testing.B) {
	data := generate(b, feedgen.Options{Advertisers: 1540, CampaignsPer: 2, AdsPer: 5, Forums: 20, Seed: 1}) // ~20,000 rows
	path := writeFile(b, "bench.csv", data)
	var rows int64
	for b.Loop() {
		b.StopTimer()
		pg := testdb.Postgres(b)
		b.StartTimer()
		sum, err := importer.Import(context.Background(), pg.DB, path, importer.Options{})
		if err != nil {
			b.Fatal(err)
		}
		rows = sum.RowsTotal
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
