package dataapi

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/forumads/forumads/ads/rkeys"
)

// stat inserts an ad_stats_hourly row.
func (e *env) stat(ad int64, forum string, hour time.Time, i, c, s int64) {
	e.t.Helper()
	if _, err := e.pg.DB.Exec(`INSERT INTO ad_stats_hourly (ad_id, forum, hour, impressions, clicks, spend_micros)
		VALUES ($1, $2, $3, $4, $5, $6)`, ad, forum, hour.UTC().Truncate(time.Hour), i, c, s); err != nil {
		e.t.Fatal(err)
	}
}

// bucket finds the point starting at t.
func bucket(t *testing.T, pts []rkeys.Point, at time.Time) rkeys.Point {
	t.Helper()
	for _, p := range pts {
		if p.T.Equal(at) {
			return p
		}
	}
	t.Fatalf("no bucket at %s in %v", at, pts)
	return rkeys.Point{}
}

func TestSeries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, camp, ads := e.seed("ts", 2)
	_, quiet, _ := e.seed("quiet", 1)
	now := time.Now().UTC()
	hour := now.Truncate(time.Hour).Add(-time.Hour)
	threeDays := now.Truncate(24 * time.Hour).Add(-3 * 24 * time.Hour).Add(5 * time.Hour)
	e.stat(ads[0], "rust", hour, 100, 5, 1_750_000)
	e.stat(ads[0], "go", hour, 50, 1, 350_000)
	e.stat(ads[0], "rust", threeDays, 10, 0, 0)
	e.stat(ads[0], "rust", now.Add(-10*24*time.Hour), 999, 99, 99) // outside the 7 days
	e.stat(ads[1], "rust", hour, 20, 2, 700_000)

	// ads[0] has no series in Redis: it is computed from PostgreSQL.
	r := e.get(fmt.Sprintf("/v1/ads/%d/timeseries", ads[0]))
	if r.status != 200 || r.header.Get("X-Series-Source") != "postgres" {
		t.Fatalf("ad series: %d %s %s", r.status, r.header.Get("X-Series-Source"), r.body)
	}
	var s rkeys.Series
	if err := json.Unmarshal(r.body, &s); err != nil {
		t.Fatal(err)
	}
	if s.Ad != ads[0] || len(s.Hourly) != 24 || len(s.Daily) != 7 {
		t.Fatalf("series shape: ad %d, %d hourly, %d daily", s.Ad, len(s.Hourly), len(s.Daily))
	}
	if p := bucket(t, s.Hourly, hour); p.Impressions != 150 || p.Clicks != 6 || p.Spend != 2_100_000 {
		t.Errorf("hour bucket %+v", p)
	}
	if p := bucket(t, s.Daily, threeDays.Truncate(24*time.Hour)); p.Impressions != 10 {
		t.Errorf("day bucket %+v", p)
	}
	var total int64
	for _, p := range s.Daily {
		total += p.Impressions
	}
	if total != 160 {
		t.Errorf("7-day impressions %d, want 160", total)
	}

	// ads[1] has one in Redis: it is answered as stored.
	stored := rkeys.Series{Ad: ads[1], GeneratedAt: now.Truncate(time.Second), Hourly: []rkeys.Point{{T: hour, Impressions: 7, Clicks: 1}},
		Daily: []rkeys.Point{{T: hour.Truncate(24 * time.Hour), Impressions: 7, Clicks: 1}}}
	raw, _ := json.Marshal(stored)
	ctx := context.Background()
	if err := e.rc.Set(ctx, e.keys.Series(ads[1]), raw, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	r = e.get(fmt.Sprintf("/v1/ads/%d/timeseries", ads[1]))
	var got rkeys.Series
	if err := json.Unmarshal(r.body, &got); err != nil || r.header.Get("X-Series-Source") != "redis" || got.Hourly[0].Impressions != 7 {
		t.Errorf("redis series: %s %s (%v)", r.header.Get("X-Series-Source"), r.body, err)
	}
	// A value that is not a series of this ad, or a stale one, is not trusted.
	stale, _ := json.Marshal(rkeys.Series{Ad: ads[0], GeneratedAt: now.Add(-3 * time.Hour), Hourly: stored.Hourly, Daily: stored.Daily})
	for _, bad := range []string{"not json", `{"ad": 0}`, string(stale)} {
		if err := e.rc.Set(ctx, e.keys.Series(ads[0]), bad, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		if r := e.get(fmt.Sprintf("/v1/ads/%d/timeseries", ads[0])); r.status != 200 || r.header.Get("X-Series-Source") != "postgres" {
			t.Errorf("bad redis value %q: %d %s", bad, r.status, r.header.Get("X-Series-Source"))
		}
	}

	// The campaign's series sums its ads from PostgreSQL.
	r = e.get(fmt.Sprintf("/v1/campaigns/%d/timeseries", camp))
	var cs CampaignSeries
	if err := json.Unmarshal(r.body, &cs); err != nil || r.status != 200 {
		t.Fatalf("campaign series: %d %s", r.status, r.body)
	}
	if p := bucket(t, cs.Hourly, hour); cs.Campaign != camp || p.Impressions != 170 || p.Clicks != 8 || p.Spend != 2_800_000 {
		t.Errorf("campaign hour bucket %+v", p)
	}

	// Totals for the dashboard: the last 7 days.
	for _, p := range []string{"/v1/dashboard/campaigns", "/v1/campaigns?with=totals"} {
		r := e.get(p)
		var pg struct{ Items []Campaign }
		if err := json.Unmarshal(r.body, &pg); err != nil || len(pg.Items) != 2 {
			t.Fatalf("GET %s: %d %s", p, r.status, r.body)
		}
		for _, c := range pg.Items {
			want := Totals{Since: c.Totals.Since, Impressions: 180, Clicks: 8, Spend: "2.8", CTR: 8.0 / 180}
			if c.ID == quiet {
				want = Totals{Since: c.Totals.Since, Spend: "0"}
			}
			if *c.Totals != want {
				t.Errorf("GET %s: campaign %d totals %+v, want %+v", p, c.ID, *c.Totals, want)
			}
		}
	}
	if r := e.get("/v1/campaigns"); r.json(t)["items"].([]any)[0].(map[string]any)["totals"] != nil {
		t.Errorf("totals without with=totals: %s", r.body)
	}
	for _, p := range []string{"/v1/ads/999999/timeseries", "/v1/campaigns/999999/timeseries"} {
		if r := e.get(p); r.status != 404 {
			t.Errorf("GET %s: %d", p, r.status)
		}
	}
}
