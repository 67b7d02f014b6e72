package dataapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/feed"
	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/web/httpx"
)

const day = 24 * time.Hour

// window is the span of a series at one instant, as ads/timeseries writes it: 24 hourly buckets
// ending with the current hour and 7 daily buckets ending with today (UTC).
type window struct {
	now, curHour, hourStart, today, dayStart time.Time
}

func newWindow(now time.Time) window {
	now = now.UTC()
	w := window{now: now, curHour: now.Truncate(time.Hour), today: now.Truncate(day)}
	w.hourStart = w.curHour.Add(-23 * time.Hour)
	w.dayStart = w.today.Add(-6 * day)
	return w
}

// empty returns zero-filled buckets.
func (w window) empty() (hourly, daily []rkeys.Point) {
	hourly, daily = make([]rkeys.Point, 24), make([]rkeys.Point, 7)
	for i := range hourly {
		hourly[i].T = w.hourStart.Add(time.Duration(i) * time.Hour)
	}
	for i := range daily {
		daily[i].T = w.dayStart.Add(time.Duration(i) * day)
	}
	return hourly, daily
}

// hourCounts is one hour's sums.
type hourCounts struct {
	Hour        time.Time `db:"hour"`
	Impressions int64     `db:"impressions"`
	Clicks      int64     `db:"clicks"`
	Spend       int64     `db:"spend"`
}

// fill adds hours into the buckets; hours outside the window are ignored.
func (w window) fill(hours []hourCounts) (hourly, daily []rkeys.Point) {
	hourly, daily = w.empty()
	for _, h := range hours {
		t := h.Hour.UTC()
		if t.Before(w.dayStart) || t.After(w.curHour) {
			continue
		}
		bump := func(p *rkeys.Point) {
			p.Impressions += h.Impressions
			p.Clicks += h.Clicks
			p.Spend += h.Spend
		}
		if !t.Before(w.hourStart) {
			bump(&hourly[t.Sub(w.hourStart)/time.Hour])
		}
		bump(&daily[t.Truncate(day).Sub(w.dayStart)/day])
	}
	return hourly, daily
}

// CampaignSeries is a campaign's delivery: the sum of its ads' series, from PostgreSQL.
type CampaignSeries struct {
	Campaign    int64         `json:"campaign"`
	GeneratedAt time.Time     `json:"generated_at"`
	Hourly      []rkeys.Point `json:"hourly"`
	Daily       []rkeys.Point `json:"daily"`
}

const hoursSQL = `SELECT s.hour, sum(s.impressions)::bigint AS impressions, sum(s.clicks)::bigint AS clicks,
	sum(s.spend_micros)::bigint AS spend FROM ad_stats_hourly s `

// maxSeriesAge is how old a series in Redis may be before it is recomputed from PostgreSQL:
// ads.warm_timeseries rewrites every ad's series each run (every minute), so an older one means the
// task is not running and its window has slid.
const maxSeriesAge = time.Hour

// handleAdSeries answers the ad's rkeys.Series from Redis, or computed from ad_stats_hourly when
// the key is missing, unreadable or stale (X-Series-Source says which).
func (a *api) handleAdSeries(w http.ResponseWriter, r *http.Request) {
	ads := a.ads
	id, err := pathID(r, "ad")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ctx := r.Context()
	if _, err := ads.get(ctx, a.db, id); err != nil {
		a.fail(w, r, err)
		return
	}
	raw, err := a.rc.Get(ctx, a.keys.Series(id)).Bytes()
	switch {
	case err == nil:
		var s rkeys.Series
		jerr := json.Unmarshal(raw, &s)
		switch {
		case jerr != nil || s.Ad != id:
			a.log.Warn("unreadable series in Redis; reading PostgreSQL", "key", a.keys.Series(id))
		case time.Since(s.GeneratedAt) > maxSeriesAge:
			a.log.Warn("stale series in Redis (is ads.warm_timeseries running?); reading PostgreSQL",
				"key", a.keys.Series(id), "generated_at", s.GeneratedAt)
		default:
			w.Header().Set("X-Series-Source", "redis")
			httpx.WriteJSON(w, http.StatusOK, s)
			return
		}
	case errors.Is(err, redis.Nil):
	default:
		a.log.Warn("Redis unavailable for a series; reading PostgreSQL", "key", a.keys.Series(id), "error", err)
	}
	win := newWindow(time.Now())
	var hours []hourCounts
	if err := a.db.SelectContext(ctx, &hours, hoursSQL+`WHERE s.ad_id = $1 AND s.hour >= $2 AND s.hour <= $3 GROUP BY s.hour`,
		id, win.dayStart, win.curHour); err != nil {
		a.fail(w, r, ads.dbError(err, "reading the series of"))
		return
	}
	s := rkeys.Series{Ad: id, GeneratedAt: win.now}
	s.Hourly, s.Daily = win.fill(hours)
	w.Header().Set("X-Series-Source", "postgres")
	httpx.WriteJSON(w, http.StatusOK, s)
}

// handleCampaignSeries answers the sum of the campaign's ads' delivery from ad_stats_hourly.
func (a *api) handleCampaignSeries(w http.ResponseWriter, r *http.Request) {
	campaigns := a.campaigns
	id, err := pathID(r, "campaign")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ctx := r.Context()
	if _, err := campaigns.get(ctx, a.db, id); err != nil {
		a.fail(w, r, err)
		return
	}
	win := newWindow(time.Now())
	var hours []hourCounts
	if err := a.db.SelectContext(ctx, &hours, hoursSQL+`JOIN ads a ON a.id = s.ad_id
		WHERE a.campaign_id = $1 AND s.hour >= $2 AND s.hour <= $3 GROUP BY s.hour`,
		id, win.dayStart, win.curHour); err != nil {
		a.fail(w, r, campaigns.dbError(err, "reading the series of"))
		return
	}
	s := CampaignSeries{Campaign: id, GeneratedAt: win.now}
	s.Hourly, s.Daily = win.fill(hours)
	httpx.WriteJSON(w, http.StatusOK, s)
}

// Totals are a campaign's delivery over the series' 7 days (from PostgreSQL: flushed hours).
type Totals struct {
	Since       time.Time `json:"since"`
	Impressions int64     `json:"impressions"`
	Clicks      int64     `json:"clicks"`
	Spend       string    `json:"spend"` // decimal, like bids
	CTR         float64   `json:"ctr"`   // clicks / impressions; 0 without impressions
}

// totals sums the delivery of campaigns since the start of the window.
func totals(ctx context.Context, db *sqlx.DB, ids []int64, since time.Time) (map[int64]*Totals, error) {
	out := make(map[int64]*Totals, len(ids))
	for _, id := range ids {
		out[id] = &Totals{Since: since, Spend: "0"}
	}
	if len(ids) == 0 {
		return out, nil
	}
	var rows []struct {
		Campaign    int64 `db:"campaign_id"`
		Impressions int64 `db:"impressions"`
		Clicks      int64 `db:"clicks"`
		Spend       int64 `db:"spend"`
	}
	err := db.SelectContext(ctx, &rows, `SELECT a.campaign_id, sum(s.impressions)::bigint AS impressions,
		sum(s.clicks)::bigint AS clicks, sum(s.spend_micros)::bigint AS spend
		FROM ads a JOIN ad_stats_hourly s ON s.ad_id = a.id
		WHERE a.campaign_id = ANY($1) AND s.hour >= $2 GROUP BY a.campaign_id`, pq.Array(ids), since)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		t := out[r.Campaign]
		t.Impressions, t.Clicks, t.Spend = r.Impressions, r.Clicks, feed.FormatMicros(r.Spend)
		if r.Impressions > 0 {
			t.CTR = float64(r.Clicks) / float64(r.Impressions)
		}
	}
	return out, nil
}

// handleCampaignList is GET /v1/campaigns; with=totals (always, for /v1/dashboard/campaigns) adds
// each campaign's Totals.
func (a *api) handleCampaignList(alwaysTotals bool) http.HandlerFunc {
	k := a.campaigns
	names := append([]string{"limit", "cursor", "with"}, k.filterNames...)
	return func(w http.ResponseWriter, r *http.Request) {
		q := newQuery(r, names...)
		withTotals := alwaysTotals
		if s, ok := q.get("with"); ok {
			if s != "totals" {
				q.fail("with", "must be totals, got %s", quote(s))
			}
			withTotals = true
		}
		rows, next, err := k.list(r.Context(), a.db, q)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		items := make([]any, len(rows))
		if !withTotals {
			for i := range rows {
				items[i] = campaignView(&rows[i])
			}
			httpx.WriteJSON(w, http.StatusOK, page{Items: items, NextCursor: next})
			return
		}
		ids := make([]int64, len(rows))
		for i := range rows {
			ids[i] = rows[i].ID
		}
		tot, err := totals(r.Context(), a.db, ids, newWindow(time.Now()).dayStart)
		if err != nil {
			a.fail(w, r, k.dbError(err, "summing the delivery of"))
			return
		}
		for i := range rows {
			c := campaignView(&rows[i])
			c.Totals = tot[rows[i].ID]
			items[i] = c
		}
		httpx.WriteJSON(w, http.StatusOK, page{Items: items, NextCursor: next})
	}
}
