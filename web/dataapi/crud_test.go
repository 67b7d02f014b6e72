package dataapi

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/internal/metrics"
	"github.com/forumads/forumads/internal/testdb"
	"github.com/forumads/forumads/internal/testenv"
	"github.com/forumads/forumads/web/httpx"
)

func TestNewRefusesBadOptions(t *testing.T) {
	t.Parallel()
	pg := testdb.Postgres(t)
	rc := testenv.Redis(t)
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"no db", Options{Redis: rc}},
		{"no redis", Options{DB: pg.DB}},
		{"empty token", Options{DB: pg.DB, Redis: rc, Tokens: []string{"a", ""}}},
		{"token with space", Options{DB: pg.DB, Redis: rc, Tokens: []string{" a"}}},
	} {
		if _, err := New(tc.o); err == nil {
			t.Errorf("%s: New accepted %+v", tc.name, tc.o)
		}
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) { o.Metrics = metrics.NewHTTP(nil) }) // routes observed, unregistered
	for _, tc := range []struct {
		name   string
		header map[string]string
		path   string
		want   int
	}{
		{"no token", nil, "/v1/advertisers", 401},
		{"wrong token", map[string]string{"Authorization": "Bearer nope"}, "/v1/advertisers", 401},
		{"basic auth", map[string]string{"Authorization": "Basic " + e.token}, "/v1/advertisers", 401},
		{"bearer without token", map[string]string{"Authorization": "Bearer "}, "/v1/advertisers", 401},
		{"token prefix", map[string]string{"Authorization": "Bearer " + e.token[:len(e.token)-1]}, "/v1/advertisers", 401},
		{"valid", map[string]string{"Authorization": "Bearer " + e.token}, "/v1/advertisers", 200},
		{"second valid token", map[string]string{"Authorization": "Bearer other-token"}, "/v1/advertisers", 200},
		{"lower-case scheme", map[string]string{"Authorization": "bearer " + e.token}, "/v1/advertisers", 200},
		{"tasks need a token", nil, "/v1/tasks/abc", 401},
		{"series need a token", nil, "/v1/ads/1/timeseries", 401},
		{"health is open", nil, "/healthz", 200},
		{"readiness is open", nil, "/readyz", 200},
		{"dashboard is open", nil, "/dashboard", 200},
		{"dashboard assets are open", nil, "/dashboard/assets/app.js", 200},
	} {
		r := e.send(req{method: "GET", path: tc.path, header: tc.header, noAuth: true})
		if r.status != tc.want {
			t.Errorf("%s: GET %s = %d, want %d: %s", tc.name, tc.path, r.status, tc.want, r.body)
			continue
		}
		if tc.want == 401 {
			if code, _ := r.errField(t); code != "unauthorized" || r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s: code %q, WWW-Authenticate %q", tc.name, code, r.header.Get("WWW-Authenticate"))
			}
		}
	}
	// Without tokens every API call is refused.
	closed := newEnv(t, func(o *Options) { o.Tokens = nil })
	if r := closed.get("/v1/ads"); r.status != 401 {
		t.Errorf("no tokens configured: %d, want 401", r.status)
	}
	if r := closed.send(req{method: "GET", path: "/healthz", noAuth: true}); r.status != 200 {
		t.Errorf("no tokens configured: /healthz %d", r.status)
	}
}

func TestDashboardHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.send(req{method: "GET", path: "/dashboard", noAuth: true})
	if !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !strings.Contains(string(r.body), "/dashboard/assets/app.js") {
		t.Fatalf("dashboard: %s %s", r.header.Get("Content-Type"), r.body)
	}
	csp := r.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	for _, p := range []string{"/dashboard/assets/app.css", "/dashboard/assets/app.js"} {
		r := e.send(req{method: "GET", path: p, noAuth: true})
		if r.status != 200 || len(r.body) < 100 {
			t.Errorf("%s: %d (%d bytes)", p, r.status, len(r.body))
		}
		if strings.Contains(string(r.body), "http://") && p == "/dashboard/assets/app.js" && strings.Contains(string(r.body), "cdn") {
			t.Errorf("%s loads from a CDN", p)
		}
	}
	for _, p := range []string{"/dashboard/assets/nope.js", "/dashboard/assets/", "/dashboard/assets/../dataapi.go"} {
		if r := e.send(req{method: "GET", path: p, noAuth: true}); r.status != 404 && r.status != 301 {
			t.Errorf("GET %s: %d %s", p, r.status, r.body)
		}
	}
}

func TestUnknownRoutesAndMethods(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.get("/v1/nothing")
	if code, _ := r.errField(t); r.status != 404 || code != "not_found" {
		t.Errorf("unknown path: %d %s", r.status, r.body)
	}
	r = e.send(req{method: "PUT", path: "/v1/advertisers/1", body: "{}"})
	if code, _ := r.errField(t); r.status != 405 || code != "method_not_allowed" || !strings.Contains(r.header.Get("Allow"), "PATCH") {
		t.Errorf("PUT: %d %s Allow=%q", r.status, r.body, r.header.Get("Allow"))
	}
	for _, p := range []string{"/v1/advertisers/abc", "/v1/advertisers/0", "/v1/advertisers/-1", "/v1/advertisers/01",
		"/v1/advertisers/99999999999999999999", "/v1/ads/1.5/timeseries", "/v1/forums/NOT_A_SLUG"} {
		r := e.get(p)
		if code, _ := r.errField(t); r.status != 400 || code != "invalid_id" {
			t.Errorf("GET %s: %d %s", p, r.status, r.body)
		}
	}
	if r := e.get("/v1/advertisers/12345"); r.status != 404 {
		t.Errorf("missing advertiser: %d", r.status)
	}
}

// badBodies are the malformed-body classes every create and patch refuses; field is the field
// a 422 must name.
var badBodies = []struct {
	name   string
	body   string
	status int
	code   string
}{
	{"empty", "", 400, "malformed_json"},
	{"not json", "name=x", 400, "malformed_json"},
	{"truncated", `{"name": "x"`, 400, "malformed_json"},
	{"array", `[{"name": "x"}]`, 400, "malformed_json"},
	{"string", `"x"`, 400, "malformed_json"},
	{"two objects", `{} {}`, 400, "malformed_json"},
	{"trailing garbage", `{}x`, 400, "malformed_json"},
	{"invalid utf-8", "{\"name\": \"\xff\xfe\"}", 400, "malformed_json"},
	{"lone surrogate", `{"name": "\ud800x"}`, 400, "malformed_json"},
	{"lone low surrogate", `{"name": "\udc00"}`, 400, "malformed_json"},
	{"unknown field", `{"colour": "red"}`, 422, "unknown_field"},
	{"oversized", `{"name": "` + strings.Repeat("a", MaxBody) + `"}`, 413, "body_too_large"},
}

func TestCreateRefusesBadBodies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, path := range []string{"/v1/advertisers", "/v1/campaigns", "/v1/ads", "/v1/forums", "/v1/imports"} {
		for _, tc := range badBodies {
			r := e.post(path, tc.body)
			code, _ := r.errField(t)
			if r.status != tc.status || code != tc.code {
				t.Errorf("POST %s %s: %d %s, want %d %s", path, tc.name, r.status, r.body, tc.status, tc.code)
			}
		}
		r := e.send(req{method: "POST", path: path, body: `{}`, header: map[string]string{"Content-Type": "text/plain"}})
		if r.status != 415 {
			t.Errorf("POST %s text/plain: %d %s", path, r.status, r.body)
		}
	}
	for _, table := range []string{"advertisers", "campaigns", "ads", "forums"} {
		if n := e.count(table); n != 0 {
			t.Errorf("%d rows written to %s", n, table)
		}
	}
}

// fieldCase is a body that must be refused with a 422 naming field.
type fieldCase struct {
	name  string
	body  map[string]any
	field string
}

// with returns base with changes applied (a nil value deletes the field).
func with(base map[string]any, changes map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range changes {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// null is a JSON null in a body built by with.
var null = json.RawMessage("null")

func TestCreateValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	adv, camp, _ := e.seed("base", 0)
	long := func(n int) string { return strings.Repeat("x", n) }
	many := make([]string, 501)
	for i := range many {
		many[i] = "f"
	}
	advertiser := map[string]any{"external_id": "a-1", "name": "Acme", "email": "ads@acme.example"}
	campaign := map[string]any{"external_id": "c-1", "advertiser_id": adv, "name": "Spring", "bid": "0.35",
		"daily_budget": "100", "start_at": "2026-03-01"}
	ad := map[string]any{"external_id": "ad-1", "campaign_id": camp, "title": "Buy", "click_url": "https://acme.example/x"}
	forum := map[string]any{"slug": "rust", "name": "Rust", "category": "programming"}
	cases := map[string][]fieldCase{
		"/v1/advertisers": {
			{"missing external_id", with(advertiser, map[string]any{"external_id": nil}), "external_id"},
			{"null name", with(advertiser, map[string]any{"name": null}), "name"},
			{"bad external_id", with(advertiser, map[string]any{"external_id": "-x"}), "external_id"},
			{"external_id too long", with(advertiser, map[string]any{"external_id": long(65)}), "external_id"},
			{"external_id with space", with(advertiser, map[string]any{"external_id": "a b"}), "external_id"},
			{"empty name", with(advertiser, map[string]any{"name": "  "}), "name"},
			{"long name", with(advertiser, map[string]any{"name": long(201)}), "name"},
			{"control in name", with(advertiser, map[string]any{"name": "a\u0007b"}), "name"},
			{"NUL in name", with(advertiser, map[string]any{"name": "a\u0000b"}), "name"},
			{"newline in name", with(advertiser, map[string]any{"name": "a\nb"}), "name"},
			{"bad email", with(advertiser, map[string]any{"email": "nobody"}), "email"},
			{"email with space", with(advertiser, map[string]any{"email": "a b@c.de"}), "email"},
			{"bad status", with(advertiser, map[string]any{"status": "deleted"}), "status"},
			{"name is a number", with(advertiser, map[string]any{"name": 5}), "name"},
			{"name is a list", with(advertiser, map[string]any{"name": []string{"a"}}), "name"},
			{"status is an object", with(advertiser, map[string]any{"status": map[string]any{}}), "status"},
		},
		"/v1/campaigns": {
			{"missing bid", with(campaign, map[string]any{"bid": nil}), "bid"},
			{"missing start_at", with(campaign, map[string]any{"start_at": nil}), "start_at"},
			{"missing advertiser", with(campaign, map[string]any{"advertiser_id": nil}), "advertiser_id"},
			{"advertiser_id is a string", with(campaign, map[string]any{"advertiser_id": "1"}), "advertiser_id"},
			{"advertiser_id is fractional", with(campaign, map[string]any{"advertiser_id": 1.5}), "advertiser_id"},
			{"advertiser_id overflows", with(campaign, map[string]any{"advertiser_id": json.RawMessage("99999999999999999999")}), "advertiser_id"},
			{"advertiser_id zero", with(campaign, map[string]any{"advertiser_id": 0}), "advertiser_id"},
			{"unknown advertiser", with(campaign, map[string]any{"advertiser_id": adv + 1000}), "advertiser_id"},
			{"bid not decimal", with(campaign, map[string]any{"bid": "abc"}), "bid"},
			{"bid negative", with(campaign, map[string]any{"bid": "-1"}), "bid"},
			{"bid zero", with(campaign, map[string]any{"bid": "0"}), "bid"},
			{"bid too precise", with(campaign, map[string]any{"bid": "0.0000001"}), "bid"},
			{"bid too large", with(campaign, map[string]any{"bid": "1000.000001"}), "bid"},
			{"bid huge", with(campaign, map[string]any{"bid": "1e300"}), "bid"},
			{"bid is a bool", with(campaign, map[string]any{"bid": true}), "bid"},
			{"bid is null", with(campaign, map[string]any{"bid": null}), "bid"},
			{"budget too large", with(campaign, map[string]any{"daily_budget": "1000000001"}), "daily_budget"},
			{"bad start_at", with(campaign, map[string]any{"start_at": "yesterday"}), "start_at"},
			{"start_at year 10000", with(campaign, map[string]any{"start_at": "10000-01-01"}), "start_at"},
			{"end before start", with(campaign, map[string]any{"end_at": "2026-02-01"}), "end_at"},
			{"end equals start", with(campaign, map[string]any{"end_at": "2026-03-01T00:00:00Z"}), "end_at"},
			{"bad country", with(campaign, map[string]any{"target_countries": []string{"US", "XX"}}), "target_countries"},
			{"bad placement", with(campaign, map[string]any{"target_placements": []string{"top"}}), "target_placements"},
			{"bad forum slug", with(campaign, map[string]any{"target_forums": []string{"Rust Lang"}}), "target_forums"},
			{"empty category", with(campaign, map[string]any{"target_categories": []string{""}}), "target_categories"},
			{"too many forums", with(campaign, map[string]any{"target_forums": many}), "target_forums"},
			{"forums not a list", with(campaign, map[string]any{"target_forums": "rust"}), "target_forums"},
			{"forums of numbers", with(campaign, map[string]any{"target_forums": []int{1}}), "target_forums"},
			{"bad status", with(campaign, map[string]any{"status": "running"}), "status"},
		},
		"/v1/ads": {
			{"missing title", with(ad, map[string]any{"title": nil}), "title"},
			{"missing click_url", with(ad, map[string]any{"click_url": nil}), "click_url"},
			{"long title", with(ad, map[string]any{"title": long(91)}), "title"},
			{"long body", with(ad, map[string]any{"body": long(301)}), "body"},
			{"ftp click_url", with(ad, map[string]any{"click_url": "ftp://acme.example/"}), "click_url"},
			{"click_url with space", with(ad, map[string]any{"click_url": "https://acme.example/a b"}), "click_url"},
			{"click_url without host", with(ad, map[string]any{"click_url": "https://"}), "click_url"},
			{"javascript click_url", with(ad, map[string]any{"click_url": "javascript:alert(1)"}), "click_url"},
			{"long image_url", with(ad, map[string]any{"image_url": "https://a.example/" + long(2040)}), "image_url"},
			{"unknown campaign", with(ad, map[string]any{"campaign_id": camp + 1000}), "campaign_id"},
			{"campaign_id is a bool", with(ad, map[string]any{"campaign_id": false}), "campaign_id"},
			{"bad status", with(ad, map[string]any{"status": "live"}), "status"},
		},
		"/v1/forums": {
			{"bad slug", with(forum, map[string]any{"slug": "Rust"}), "slug"},
			{"missing category", with(forum, map[string]any{"category": nil}), "category"},
			{"bad category", with(forum, map[string]any{"category": "a b"}), "category"},
		},
	}
	for path, list := range cases {
		for _, tc := range list {
			r := e.post(path, tc.body)
			if r.status != 422 {
				t.Errorf("POST %s %s: %d %s, want 422", path, tc.name, r.status, r.body)
				continue
			}
			if _, field := r.errField(t); field != tc.field {
				t.Errorf("POST %s %s: field %q, want %q: %s", path, tc.name, field, tc.field, r.body)
			}
		}
	}
	// Nothing was written but the seed.
	for table, want := range map[string]int{"advertisers": 1, "campaigns": 1, "ads": 0, "forums": 0} {
		if n := e.count(table); n != want {
			t.Errorf("%s: %d rows, want %d", table, n, want)
		}
	}
	// The valid bodies pass, once: the second is a duplicate external_id (409 naming it).
	for path, body := range map[string]map[string]any{"/v1/advertisers": advertiser, "/v1/campaigns": campaign, "/v1/ads": ad, "/v1/forums": forum} {
		e.mustCreate(path, body)
		r := e.post(path, body)
		want := "external_id"
		if path == "/v1/forums" {
			want = "slug"
		}
		if code, field := r.errField(t); r.status != 409 || code != "conflict" || field != want {
			t.Errorf("POST %s twice: %d %s", path, r.status, r.body)
		}
	}
}

func TestSQLMetacharactersAreData(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	names := []string{`Robert'); DROP TABLE advertisers;--`, `50% off _sale_ \ "quoted"`, `' OR '1'='1`, `$1 $$ ;`}
	for i, n := range names {
		a := e.mustCreate("/v1/advertisers", map[string]any{"external_id": fmt.Sprintf("a%d", i), "name": n})
		if a["name"] != n {
			t.Errorf("name %q stored as %q", n, a["name"])
		}
	}
	if n := e.count("advertisers"); n != len(names) {
		t.Fatalf("%d advertisers", n)
	}
	// The prefix filter treats % and _ as characters, not patterns.
	r := e.get("/v1/advertisers?q=" + urlq("50%"))
	if items := r.json(t)["items"].([]any); r.status != 200 || len(items) != 1 {
		t.Errorf("q=50%%: %d %s", r.status, r.body)
	}
	r = e.get("/v1/advertisers?q=" + urlq("'"))
	if items := r.json(t)["items"].([]any); len(items) != 1 || items[0].(map[string]any)["name"] != `' OR '1'='1` {
		t.Errorf("q=': %s", r.body)
	}
	r = e.get("/v1/advertisers?q=" + urlq("_"))
	if items := r.json(t)["items"].([]any); len(items) != 0 {
		t.Errorf("q=_ matched %s", r.body)
	}
}

func TestCRUDRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	adv, camp, ads := e.seed("rt", 1)
	c := e.get(fmt.Sprintf("/v1/campaigns/%d", camp))
	if c.status != 200 || c.header.Get("ETag") != `"1"` {
		t.Fatalf("GET campaign: %d %s ETag %q", c.status, c.body, c.header.Get("ETag"))
	}
	cm := c.json(t)
	if cm["bid"] != "0.35" || cm["daily_budget"] != "100" || cm["start_at"] != "2026-01-01T00:00:00Z" || cm["end_at"] != nil {
		t.Errorf("campaign as created: %s", c.body)
	}
	for _, k := range []string{"target_forums", "target_categories", "target_countries", "target_placements"} {
		if l, ok := cm[k].([]any); !ok || len(l) != 0 {
			t.Errorf("%s = %v, want []", k, cm[k])
		}
	}
	path := fmt.Sprintf("/v1/campaigns/%d", camp)
	patch := map[string]any{"bid": 1.25, "target_countries": []string{"us", "GB"}, "target_placements": []string{"Sidebar"}, "end_at": "2026-12-31T23:00:00+01:00"}

	// PATCH needs If-Match.
	r := e.send(req{method: "PATCH", path: path, body: patch})
	if code, _ := r.errField(t); r.status != 428 || code != "precondition_required" {
		t.Errorf("PATCH without If-Match: %d %s", r.status, r.body)
	}
	for _, bad := range []string{"*", `W/"1"`, "1", `"abc"`, `"01"`, `""`} {
		r := e.send(req{method: "PATCH", path: path, body: patch, header: map[string]string{"If-Match": bad}})
		if r.status != 400 {
			t.Errorf("If-Match %s: %d %s", bad, r.status, r.body)
		}
	}
	r = e.send(req{method: "PATCH", path: path, body: patch, header: map[string]string{"If-Match": `"7"`}})
	if code, _ := r.errField(t); r.status != 412 || code != "version_mismatch" {
		t.Errorf("stale If-Match: %d %s", r.status, r.body)
	}
	r = e.send(req{method: "PATCH", path: path, body: patch, header: map[string]string{"If-Match": `"1"`}})
	if r.status != 200 || r.header.Get("ETag") != `"2"` {
		t.Fatalf("PATCH: %d %s ETag %q", r.status, r.body, r.header.Get("ETag"))
	}
	pm := r.json(t)
	if pm["bid"] != "1.25" || pm["end_at"] != "2026-12-31T22:00:00Z" || fmt.Sprint(pm["target_countries"]) != "[US GB]" ||
		fmt.Sprint(pm["target_placements"]) != "[sidebar]" || pm["name"] != "Campaign rt" || pm["version"] != 2.0 {
		t.Errorf("patched: %s", r.body)
	}
	if pm["updated_at"] == cm["updated_at"] {
		t.Errorf("updated_at did not move: %v", pm["updated_at"])
	}
	var micros int64
	if err := e.pg.DB.Get(&micros, "SELECT bid_micros FROM campaigns WHERE id = $1", camp); err != nil || micros != 1_250_000 {
		t.Errorf("bid_micros %d (%v)", micros, err)
	}
	// The old version is refused now; a list of tags matches any.
	r = e.send(req{method: "PATCH", path: path, body: map[string]any{"name": "x"}, header: map[string]string{"If-Match": `"1"`}})
	if r.status != 412 {
		t.Errorf("old version: %d", r.status)
	}
	// A patch that changes nothing keeps the version.
	r = e.send(req{method: "PATCH", path: path, body: map[string]any{"bid": "1.250000"}, header: map[string]string{"If-Match": `"1", "2"`}})
	if r.status != 200 || r.header.Get("ETag") != `"2"` {
		t.Errorf("no-op patch: %d ETag %s", r.status, r.header.Get("ETag"))
	}
	// A patch is validated against the merged row: end_at before the new start_at.
	r = e.send(req{method: "PATCH", path: path, body: map[string]any{"start_at": "2027-01-01"}, header: map[string]string{"If-Match": `"2"`}})
	if _, field := r.errField(t); r.status != 422 || field != "end_at" {
		t.Errorf("start after end: %d %s", r.status, r.body)
	}
	// null clears end_at; a wrong type in a patch is a 422; nothing half-applies.
	r = e.send(req{method: "PATCH", path: path, body: map[string]any{"end_at": nil, "name": 7}, header: map[string]string{"If-Match": `"2"`}})
	if _, field := r.errField(t); r.status != 422 || field != "name" {
		t.Errorf("bad patch: %d %s", r.status, r.body)
	}
	r = e.send(req{method: "PATCH", path: path, body: `{"end_at": null}`, header: map[string]string{"If-Match": `"2"`}})
	if r.status != 200 || r.json(t)["end_at"] != nil {
		t.Errorf("clear end_at: %d %s", r.status, r.body)
	}
	// Moving to a missing advertiser names the field.
	r = e.send(req{method: "PATCH", path: path, body: map[string]any{"advertiser_id": adv + 99}, header: map[string]string{"If-Match": `"3"`}})
	if _, field := r.errField(t); r.status != 422 || field != "advertiser_id" {
		t.Errorf("missing advertiser: %d %s", r.status, r.body)
	}

	// Advertiser: null clears the email.
	ap := fmt.Sprintf("/v1/advertisers/%d", adv)
	r = e.send(req{method: "PATCH", path: ap, body: map[string]any{"email": "x@y.example"}, header: map[string]string{"If-Match": `"1"`}})
	if r.status != 200 || r.json(t)["email"] != "x@y.example" {
		t.Fatalf("set email: %d %s", r.status, r.body)
	}
	r = e.send(req{method: "PATCH", path: ap, body: `{"email": null}`, header: map[string]string{"If-Match": `"2"`}})
	if r.status != 200 || r.json(t)["email"] != nil {
		t.Errorf("clear email: %d %s", r.status, r.body)
	}

	// Ad: DELETE with a stale If-Match is refused; without one it deletes.
	adp := fmt.Sprintf("/v1/ads/%d", ads[0])
	r = e.send(req{method: "DELETE", path: adp, header: map[string]string{"If-Match": `"5"`}})
	if r.status != 412 {
		t.Errorf("DELETE stale: %d %s", r.status, r.body)
	}
	r = e.send(req{method: "DELETE", path: adp, header: map[string]string{"If-Match": `"1"`}})
	if r.status != 204 {
		t.Errorf("DELETE: %d %s", r.status, r.body)
	}
	if r := e.get(adp); r.status != 404 {
		t.Errorf("GET deleted: %d", r.status)
	}
	if r := e.send(req{method: "DELETE", path: adp}); r.status != 404 {
		t.Errorf("DELETE twice: %d", r.status)
	}
	if r := e.send(req{method: "PATCH", path: adp, body: "{}", header: map[string]string{"If-Match": `"1"`}}); r.status != 404 {
		t.Errorf("PATCH deleted: %d", r.status)
	}
	// Deleting the advertiser cascades to its campaigns.
	if r := e.send(req{method: "DELETE", path: ap}); r.status != 204 {
		t.Errorf("DELETE advertiser: %d", r.status)
	}
	if n := e.count("campaigns"); n != 0 {
		t.Errorf("%d campaigns left", n)
	}
}

func TestForums(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.post("/v1/forums", map[string]any{"slug": "rust", "name": "Rust", "category": "programming"})
	if r.status != 201 || r.header.Get("Location") != "/v1/forums/rust" {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	tag := r.header.Get("ETag")
	for _, s := range []string{"go", "zig", "c", "python"} {
		e.mustCreate("/v1/forums", map[string]any{"slug": s, "name": s, "category": "programming"})
	}
	e.mustCreate("/v1/forums", map[string]any{"slug": "chess", "name": "Chess", "category": "games"})
	var got []string
	next := ""
	for {
		p := "/v1/forums?limit=2&category=programming"
		if next != "" {
			p += "&cursor=" + next
		}
		r := e.get(p)
		if r.status != 200 {
			t.Fatalf("list: %d %s", r.status, r.body)
		}
		var pg struct {
			Items      []Forum
			NextCursor *string `json:"next_cursor"`
		}
		if err := json.Unmarshal(r.body, &pg); err != nil {
			t.Fatal(err)
		}
		for _, f := range pg.Items {
			got = append(got, f.Slug)
		}
		if pg.NextCursor == nil {
			break
		}
		next = *pg.NextCursor
	}
	if fmt.Sprint(got) != "[c go python rust zig]" {
		t.Errorf("forums %v", got)
	}
	r = e.send(req{method: "PATCH", path: "/v1/forums/rust", body: map[string]any{"slug": "rusty"}, header: map[string]string{"If-Match": tag}})
	if _, f := r.errField(t); r.status != 422 || f != "slug" {
		t.Errorf("change slug: %d %s", r.status, r.body)
	}
	r = e.send(req{method: "PATCH", path: "/v1/forums/rust", body: map[string]any{"name": "Rust users"}, header: map[string]string{"If-Match": tag}})
	if r.status != 200 || r.header.Get("ETag") == tag {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	r = e.send(req{method: "PATCH", path: "/v1/forums/rust", body: map[string]any{"name": "Again"}, header: map[string]string{"If-Match": tag}})
	if r.status != 412 {
		t.Errorf("stale patch: %d %s", r.status, r.body)
	}
	if r := e.send(req{method: "DELETE", path: "/v1/forums/rust"}); r.status != 204 {
		t.Errorf("delete: %d", r.status)
	}
	if r := e.get("/v1/forums?cursor=" + EncodeCursor("forums", "Not A Slug")); r.status != 400 {
		t.Errorf("bad forum cursor: %d", r.status)
	}
}

// Two clients patch from the same version at once: exactly one wins, the other gets a 412.
func TestConcurrentPatches(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	adv, _, _ := e.seed("cc", 0)
	path := fmt.Sprintf("/v1/advertisers/%d", adv)
	const n = 8
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := e.send(req{method: "PATCH", path: path, body: map[string]any{"name": fmt.Sprintf("writer %d", i)},
				header: map[string]string{"If-Match": `"1"`}})
			codes[i] = r.status
		})
	}
	wg.Wait()
	won := 0
	for _, c := range codes {
		switch c {
		case 200:
			won++
		case 412:
		default:
			t.Errorf("status %d", c)
		}
	}
	if won != 1 {
		t.Errorf("%d patches won (%v), want 1", won, codes)
	}
	if r := e.get(path); r.header.Get("ETag") != `"2"` {
		t.Errorf("ETag after the race %s", r.header.Get("ETag"))
	}
}

func TestPaginationIsStableUnderInserts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, camp, initial := e.seed("pg", 23)
	seen := map[int64]int{}
	var order []int64
	next, pages, added := "", 0, 0
	for {
		p := fmt.Sprintf("/v1/ads?limit=5&campaign_id=%d", camp)
		if next != "" {
			p += "&cursor=" + next
		}
		r := e.get(p)
		if r.status != 200 {
			t.Fatalf("GET %s: %d %s", p, r.status, r.body)
		}
		var pg struct {
			Items      []Ad
			NextCursor *string `json:"next_cursor"`
		}
		if err := json.Unmarshal(r.body, &pg); err != nil {
			t.Fatal(err)
		}
		for _, a := range pg.Items {
			seen[a.ID]++
			order = append(order, a.ID)
		}
		pages++
		if pages <= 3 { // rows inserted mid-walk land at the end
			ad := e.mustCreate("/v1/ads", map[string]any{"external_id": fmt.Sprintf("late-%d", pages), "campaign_id": camp,
				"title": "late", "click_url": "https://example.com/late"})
			initial = append(initial, id(ad))
			added++
		}
		if pg.NextCursor == nil {
			if len(pg.Items) > 5 {
				t.Errorf("page of %d", len(pg.Items))
			}
			break
		}
		next = *pg.NextCursor
		if pages > 50 {
			t.Fatal("pagination does not end")
		}
	}
	for i := 1; i < len(order); i++ {
		if order[i] <= order[i-1] {
			t.Fatalf("not in id order: %v", order)
		}
	}
	for _, id := range initial {
		if seen[id] != 1 {
			t.Errorf("ad %d seen %d times", id, seen[id])
		}
	}
	if len(seen) != 23+added {
		t.Errorf("saw %d ads, want %d", len(seen), 23+added)
	}
	// A full last page still ends with next_cursor on it, then an empty page with null.
	r := e.get(fmt.Sprintf("/v1/ads?limit=%d&campaign_id=%d", 23+added, camp))
	if m := r.json(t); m["next_cursor"] != nil || len(m["items"].([]any)) != 23+added {
		t.Errorf("one page of all: next %v, %d items", m["next_cursor"], len(m["items"].([]any)))
	}
}

func TestListParameters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	adv1, camp1, _ := e.seed("one", 3)
	_, camp2, ads2 := e.seed("two", 2)
	pausedAd := fmt.Sprintf("/v1/ads/%d", ads2[0])
	if r := e.send(req{method: "PATCH", path: pausedAd, body: map[string]any{"status": "PAUSED"}, header: map[string]string{"If-Match": `"1"`}}); r.status != 200 {
		t.Fatalf("pause: %d %s", r.status, r.body)
	}
	if r := e.send(req{method: "PATCH", path: fmt.Sprintf("/v1/campaigns/%d", camp2), body: map[string]any{"status": "ended"}, header: map[string]string{"If-Match": `"1"`}}); r.status != 200 {
		t.Fatalf("end: %d %s", r.status, r.body)
	}
	count := func(p string) int {
		t.Helper()
		r := e.get(p)
		if r.status != 200 {
			t.Fatalf("GET %s: %d %s", p, r.status, r.body)
		}
		return len(r.json(t)["items"].([]any))
	}
	for p, want := range map[string]int{
		"/v1/ads": 5,
		fmt.Sprintf("/v1/ads?campaign_id=%d", camp1):        3,
		fmt.Sprintf("/v1/ads?advertiser_id=%d", adv1):       3,
		"/v1/ads?status=paused":                             1,
		"/v1/ads?status=active&limit=200":                   4,
		fmt.Sprintf("/v1/campaigns?advertiser_id=%d", adv1): 1,
		"/v1/campaigns?status=ended":                        1,
		"/v1/advertisers?status=active":                     2,
		"/v1/advertisers?q=Advertiser%20t":                  1,
		"/v1/advertisers?q=advertiser":                      0, // a prefix, case-sensitive
		"/v1/advertisers?status=archived":                   0,
	} {
		if n := count(p); n != want {
			t.Errorf("GET %s: %d items, want %d", p, n, want)
		}
	}
	other := EncodeCursor("campaigns", "1")
	for _, p := range []string{
		"/v1/ads?limit=0", "/v1/ads?limit=201", "/v1/ads?limit=x", "/v1/ads?limit=1.5", "/v1/ads?limit=-1",
		"/v1/ads?limit=99999999999999999999",
		"/v1/ads?cursor=", "/v1/ads?cursor=!!", "/v1/ads?cursor=" + other, "/v1/ads?cursor=" + EncodeCursor("ads", "0"),
		"/v1/ads?cursor=" + EncodeCursor("ads", "x"), "/v1/ads?cursor=" + strings.Repeat("A", 400),
		"/v1/ads?campaign_id=abc", "/v1/ads?campaign_id=0", "/v1/ads?campaign_id=1%27%20OR%201=1",
		"/v1/ads?advertiser_id=-2", "/v1/ads?status=deleted", "/v1/ads?status=", "/v1/ads?colour=red",
		"/v1/ads?status=active&status=paused", "/v1/ads?%zz", "/v1/advertisers?q=", "/v1/advertisers?q=%00",
		"/v1/advertisers?q=" + strings.Repeat("x", 201), "/v1/campaigns?with=everything", "/v1/campaigns?status=rejected",
		"/v1/campaigns?advertiser_id=1;DROP", "/v1/forums?category=Bad%20Cat",
	} {
		r := e.get(p)
		if r.status != 400 {
			t.Errorf("GET %s: %d %s, want 400", p, r.status, r.body)
			continue
		}
		r.errField(t)
	}
}

func TestReadiness(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if r := e.send(req{method: "GET", path: "/readyz", noAuth: true}); r.status != 200 || r.json(t)["postgres"] != "ok" || r.json(t)["redis"] != "ok" {
		t.Errorf("readyz: %d %s", r.status, r.body)
	}
	// Redis gone (nothing listens on port 1): not ready, and a series falls back to PostgreSQL.
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200e6})
	t.Cleanup(func() { _ = dead.Close() })
	down := newEnv(t, func(o *Options) { o.Redis = dead })
	r := down.send(req{method: "GET", path: "/readyz", noAuth: true})
	if r.status != 503 || r.json(t)["postgres"] != "ok" || r.json(t)["redis"] == "ok" {
		t.Errorf("readyz without Redis: %d %s", r.status, r.body)
	}
	_, _, ads := down.seed("rd", 1)
	if r := down.get(fmt.Sprintf("/v1/ads/%d/timeseries", ads[0])); r.status != 200 || r.header.Get("X-Series-Source") != "postgres" {
		t.Errorf("series without Redis: %d %s", r.status, r.body)
	}
	// PostgreSQL gone (nothing listens on port 1): 503 with a JSON error, never a 500.
	deadDB, err := sqlx.Open("postgres", "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = deadDB.Close() })
	down = newEnv(t, func(o *Options) { o.Redis, o.DB = dead, deadDB })
	for _, p := range []string{"/v1/ads", "/v1/ads/1", "/v1/campaigns?with=totals", "/v1/ads/1/timeseries"} {
		r := down.get(p)
		if code, _ := r.errField(t); r.status != 503 || code != "unavailable" || r.header.Get("Retry-After") == "" {
			t.Errorf("GET %s without PostgreSQL: %d %s", p, r.status, r.body)
		}
	}
	if r := down.post("/v1/advertisers", map[string]any{"external_id": "x", "name": "x"}); r.status != 503 {
		t.Errorf("POST without PostgreSQL: %d %s", r.status, r.body)
	}
	if r := down.send(req{method: "GET", path: "/readyz", noAuth: true}); r.status != 503 {
		t.Errorf("readyz without either: %d", r.status)
	}
}

func urlq(s string) string {
	return strings.NewReplacer("%", "%25", " ", "%20", "'", "%27", "_", "_").Replace(s)
}

// The database's own constraints back the validation: a row that got past it (here, inserted
// directly) is refused with an answer naming the field, never a 500.
func TestConstraintErrorsNameTheField(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	adv, camp, _ := e.seed("ck", 0)
	ctx := t.Context()
	advs, camps, ads := advertiserKind(), campaignKind(), adKind()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	base := campaignRow{ExternalID: "c2", AdvertiserID: adv, Name: "n", Status: "active", BidMicros: 1, DailyBudgetMicros: 1,
		StartAt: t0, TargetForums: pq.StringArray{}, TargetCategories: pq.StringArray{}, TargetCountries: pq.StringArray{}, TargetPlacements: pq.StringArray{}}
	for _, tc := range []struct {
		name   string
		insert func() error
		status int
		field  string
	}{
		{"empty name", func() error {
			_, err := advs.insert(ctx, e.pg.DB, &advertiserRow{ExternalID: "a2", Name: "", Status: "active"})
			return err
		}, 422, "name"},
		{"bad status", func() error {
			_, err := advs.insert(ctx, e.pg.DB, &advertiserRow{ExternalID: "a3", Name: "x", Status: "gone"})
			return err
		}, 422, "status"},
		{"duplicate", func() error {
			_, err := advs.insert(ctx, e.pg.DB, &advertiserRow{ExternalID: "adv-ck", Name: "x", Status: "active"})
			return err
		}, 409, "external_id"},
		{"zero bid", func() error {
			r := base
			r.BidMicros = 0
			_, err := camps.insert(ctx, e.pg.DB, &r)
			return err
		}, 422, "bid"},
		{"end before start", func() error {
			r := base
			r.EndAt = sql.Null[time.Time]{V: t0.Add(-time.Hour), Valid: true}
			_, err := camps.insert(ctx, e.pg.DB, &r)
			return err
		}, 422, "end_at"},
		{"bad placement", func() error {
			r := base
			r.TargetPlacements = pq.StringArray{"top"}
			_, err := camps.insert(ctx, e.pg.DB, &r)
			return err
		}, 422, "target_placements"},
		{"missing advertiser", func() error {
			r := base
			r.AdvertiserID = adv + 100
			_, err := camps.insert(ctx, e.pg.DB, &r)
			return err
		}, 422, "advertiser_id"},
		{"missing campaign", func() error {
			_, err := ads.insert(ctx, e.pg.DB, &adRow{ExternalID: "x", CampaignID: camp + 100, Title: "t", ClickURL: "https://a.example/", Status: "active"})
			return err
		}, 422, "campaign_id"},
		{"bad click_url", func() error {
			_, err := ads.insert(ctx, e.pg.DB, &adRow{ExternalID: "y", CampaignID: camp, Title: "t", ClickURL: "ftp://a", Status: "active"})
			return err
		}, 422, "click_url"},
	} {
		err := tc.insert()
		var he *httpx.Error
		if !errors.As(err, &he) || he.Status != tc.status || he.Field != tc.field {
			t.Errorf("%s: %v (%+v), want %d naming %s", tc.name, err, he, tc.status, tc.field)
		}
	}
}
