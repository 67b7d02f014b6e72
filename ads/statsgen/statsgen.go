// Package statsgen generates delivery statistics for the demo, the tests and the benchmarks,
// deterministically from a seed: [CreateAds] makes a catalog of active ads, [Historical] fills
// ad_stats_hourly with past hours as ads.warm_timeseries would have, and [Live] increments the Redis
// hourly counters as the serving API does.
//
// The numbers look like delivery: impressions follow a daily curve (peak at 15:00 UTC) with noise,
// each ad has its own click-through rate between 0.2 % and 3 %, and spend is clicks times the bid
// (cost per click), in micros.
package statsgen

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/forumads/forumads/ads/rkeys"
)

// AdsOptions configure [CreateAds].
type AdsOptions struct {
	// Ads is the number of ads to create (required, at most 10,000,000).
	Ads int
	// Campaigns is the number of campaigns they share (default Ads/10, at least 1); one advertiser
	// owns them all.
	Campaigns int
	// Seed chooses the bids (5 to 100 cents per click) and names the rows: external ids are
	// "<Prefix>-<Seed>-adv", "…-c<n>", "…-a<n>".
	Seed int64
	// Prefix starts every external id (default "gen"): letters, digits, '.', '_', ':' or '-'.
	Prefix string
	// TargetForums, when set, is every campaign's forum targeting (default: any forum).
	TargetForums []string
}

// CreateAds creates an advertiser, o.Campaigns active campaigns and o.Ads active ads in one
// transaction and returns the ads' ids in creation order. Rows that exist already (same external
// ids) are kept, so a second call with the same options returns the same ids.
func CreateAds(ctx context.Context, db *sqlx.DB, o AdsOptions) ([]int64, error) {
	if o.Ads <= 0 || o.Ads > 10_000_000 {
		return nil, fmt.Errorf("statsgen: ads: %d is not between 1 and 10000000", o.Ads)
	}
	if o.Campaigns < 0 {
		return nil, fmt.Errorf("statsgen: ads: campaigns %d is negative", o.Campaigns)
	}
	if o.Campaigns == 0 {
		o.Campaigns = max(1, o.Ads/10)
	}
	if o.Prefix == "" {
		o.Prefix = "gen"
	}
	if err := checkPrefix(o.Prefix); err != nil {
		return nil, err
	}
	for _, f := range o.TargetForums {
		if !rkeys.ValidSlug(f) {
			return nil, fmt.Errorf("statsgen: ads: target forum %q is not a forum slug", f)
		}
	}
	if o.TargetForums == nil {
		o.TargetForums = []string{}
	}
	p := fmt.Sprintf("%s-%d-", o.Prefix, o.Seed)
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("statsgen: ads: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var adv int64
	if err := tx.GetContext(ctx, &adv, `INSERT INTO advertisers (external_id, name) VALUES ($1, 'Generated advertiser')
		ON CONFLICT (external_id) DO UPDATE SET name = excluded.name RETURNING id`, p+"adv"); err != nil {
		return nil, fmt.Errorf("statsgen: ads: advertiser: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO campaigns (external_id, advertiser_id, name, bid_micros,
			daily_budget_micros, start_at, target_forums)
		SELECT $1 || 'c' || g, $2, 'Generated campaign ' || g,
		       50000 + (hashtextextended('bid:' || g, $4) & 1048575) * 950000 / 1048576,
		       100000000, now() - interval '30 days', $5
		FROM generate_series(1, $3) g
		ON CONFLICT (external_id) DO NOTHING`, p, adv, o.Campaigns, o.Seed, pq.StringArray(o.TargetForums)); err != nil {
		return nil, fmt.Errorf("statsgen: ads: campaigns: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO ads (external_id, campaign_id, title, body, click_url)
		SELECT $1 || 'a' || g, c.id, 'Generated ad ' || g, 'A generated ad for the demo.',
		       'https://example.com/ads/' || g
		FROM generate_series(1, $2) g JOIN campaigns c ON c.external_id = $1 || 'c' || ((g - 1) % $3 + 1)
		ON CONFLICT (external_id) DO NOTHING`, p, o.Ads, o.Campaigns); err != nil {
		return nil, fmt.Errorf("statsgen: ads: %w", err)
	}
	var ids []int64
	if err := tx.SelectContext(ctx, &ids, `SELECT a.id FROM generate_series(1, $2) g
		JOIN ads a ON a.external_id = $1 || 'a' || g ORDER BY g`, p, o.Ads); err != nil {
		return nil, fmt.Errorf("statsgen: ads: %w", err)
	}
	if len(ids) != o.Ads {
		return nil, fmt.Errorf("statsgen: ads: %d of %d ads exist after the insert (external ids %sa1… taken by other campaigns?)", len(ids), o.Ads, p)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("statsgen: ads: commit: %w", err)
	}
	return ids, nil
}

// HistOptions configure [Historical].
type HistOptions struct {
	// Days is how many days before End to fill (default 7, at most 3660).
	Days int
	// End is the hour after the last one filled (default: the current UTC hour, which stays Redis's).
	End time.Time
	// Seed makes the numbers; the same seed and data give the same rows.
	Seed int64
	// Forums an ad whose campaign targets no forum runs on (default: every forum in the forums
	// table, or "general" when it is empty). Ads of campaigns with target_forums run on those.
	Forums []string
	// ForumsPerAd is how many of Forums, on average, an untargeted ad runs on (default 3).
	ForumsPerAd int
	// Impressions is the mean impressions per ad, forum and hour (default 50).
	Impressions int
}

// Historical fills ad_stats_hourly for every active ad of an active campaign over o.Days days
// before o.End, in one INSERT … SELECT, and returns the number of rows written. Existing rows of
// those ads, forums and hours are replaced, so running it twice gives the same table.
func Historical(ctx context.Context, db *sqlx.DB, o HistOptions) (int64, error) {
	if o.Days == 0 {
		o.Days = 7
	}
	if o.Days < 0 || o.Days > 3660 {
		return 0, fmt.Errorf("statsgen: historical: days %d is not between 1 and 3660", o.Days)
	}
	if o.End.IsZero() {
		o.End = time.Now()
	}
	end := o.End.UTC().Truncate(time.Hour)
	if o.ForumsPerAd == 0 {
		o.ForumsPerAd = 3
	}
	if o.ForumsPerAd < 0 {
		return 0, fmt.Errorf("statsgen: historical: forums per ad %d is negative", o.ForumsPerAd)
	}
	if o.Impressions == 0 {
		o.Impressions = 50
	}
	if o.Impressions < 0 {
		return 0, fmt.Errorf("statsgen: historical: impressions %d is negative", o.Impressions)
	}
	forums := o.Forums
	if forums == nil {
		if err := db.SelectContext(ctx, &forums, `SELECT slug FROM forums ORDER BY slug`); err != nil {
			return 0, fmt.Errorf("statsgen: historical: reading forums: %w", err)
		}
		if len(forums) == 0 {
			forums = []string{"general"}
		}
	}
	for _, f := range forums {
		if !rkeys.ValidSlug(f) {
			return 0, fmt.Errorf("statsgen: historical: forum %q is not a forum slug", f)
		}
	}
	frac := 1.0
	if len(forums) > 0 {
		frac = min(1, float64(o.ForumsPerAd)/float64(len(forums)))
	}
	res, err := db.ExecContext(ctx, historicalSQL, end.Add(-time.Duration(o.Days)*24*time.Hour), end.Add(-time.Hour),
		pq.StringArray(forums), frac, o.Seed, o.Impressions)
	if err != nil {
		return 0, fmt.Errorf("statsgen: historical: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("statsgen: historical: %w", err)
	}
	return n, nil
}

// historicalSQL: $1 first hour, $2 last hour, $3 forums, $4 share of forums an untargeted ad runs on,
// $5 seed, $6 mean impressions. u(x) = (hashtextextended(x, seed) & (2^20-1)) / 2^20 is uniform in
// [0, 1).
const historicalSQL = `
WITH a AS (
    SELECT ads.id, c.bid_micros AS bid, c.target_forums,
           0.002 + 0.028 * (hashtextextended('ctr:' || ads.id, $5) & 1048575)::float8 / 1048576 AS ctr
    FROM ads JOIN campaigns c ON c.id = ads.campaign_id
    WHERE ads.status = 'active' AND c.status = 'active'
), pairs AS (
    SELECT a.id, a.bid, a.ctr, f.forum
    FROM a CROSS JOIN LATERAL (
        SELECT t AS forum FROM unnest(a.target_forums) t WHERE cardinality(a.target_forums) > 0
        UNION ALL
        SELECT fl FROM unnest($3::text[]) fl
        WHERE cardinality(a.target_forums) = 0
          AND (hashtextextended('forum:' || a.id || ':' || fl, $5) & 1048575)::float8 / 1048576 < $4
    ) f
), imps AS (
    SELECT p.id, p.forum, hr.hour, p.bid, p.ctr, extract(epoch FROM hr.hour)::bigint AS epoch,
           floor($6 * (1 + 0.5 * sin(2 * pi() * (extract(hour FROM hr.hour AT TIME ZONE 'UTC') - 9) / 24))
                 * (0.5 + (hashtextextended('imp:' || p.id || ':' || p.forum || ':' || extract(epoch FROM hr.hour)::bigint, $5)
                           & 1048575)::float8 / 1048576))::bigint AS n
    FROM pairs p CROSS JOIN generate_series($1::timestamptz, $2::timestamptz, interval '1 hour') hr(hour)
), clicks AS (
    SELECT id, forum, hour, bid, n,
           least(n, floor(n * ctr + (hashtextextended('clk:' || id || ':' || forum || ':' || epoch, $5)
                                     & 1048575)::float8 / 1048576)::bigint) AS c
    FROM imps
)
INSERT INTO ad_stats_hourly (ad_id, forum, hour, impressions, clicks, spend_micros)
SELECT id, forum, hour, n, c, c * bid FROM clicks
ON CONFLICT (ad_id, forum, hour) DO UPDATE SET
    impressions = excluded.impressions, clicks = excluded.clicks, spend_micros = excluded.spend_micros`

// checkPrefix validates an external id prefix.
func checkPrefix(p string) error {
	if len(p) > 32 {
		return fmt.Errorf("statsgen: prefix %q is longer than 32 bytes", p)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			i > 0 && (c == '.' || c == '_' || c == ':' || c == '-')
		if !ok {
			return fmt.Errorf("statsgen: prefix %q: only letters, digits and (after the first) '.', '_', ':', '-'", p)
		}
	}
	return nil
}
