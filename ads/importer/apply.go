package importer

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/forumads/forumads/ads/feed"
)

// stage describes how one kind is loaded: its staging table (a temporary table of the import's
// connection) and one set-based statement that resolves the parent (for campaigns and ads),
// inserts new rows, updates the rows that differ and selects (created, updated, the lines whose
// parent does not exist).
//
// Every statement joins the staged batch to tables by a unique key; the batch transaction turns
// hash and merge joins off so those joins are index lookups whatever the table sizes (a hash join
// would read the whole target table for every batch).
type stage struct {
	table    string   // in pg_temp
	columns  []string // COPY columns, "line" first
	create   string
	refField string    // the feed field naming the parent; "" when none
	parent   feed.Kind // the parent's kind
	upsert   string
}

// tail counts what the upsert did and lists the rows without a parent.
const tail = `
SELECT (SELECT count(*) FROM up WHERE created), (SELECT count(*) FROM up WHERE NOT created),
	coalesce((SELECT array_agg(line ORDER BY line) FROM src WHERE NOT has_parent), '{}')`

var stages = map[feed.Kind]stage{
	feed.KindForum: {
		table:   "import_stage_forums",
		columns: []string{"line", "slug", "name", "category"},
		create:  `CREATE TEMP TABLE IF NOT EXISTS import_stage_forums (line bigint NOT NULL, slug text NOT NULL, name text NOT NULL, category text NOT NULL)`,
		upsert: `WITH src AS MATERIALIZED (
	SELECT s.line, true AS has_parent, s.slug, s.name, s.category FROM pg_temp.import_stage_forums s
), up AS (
	INSERT INTO forums AS t (slug, name, category)
	SELECT s.slug, s.name, s.category
	FROM src s LEFT JOIN forums o ON o.slug = s.slug
	WHERE o.slug IS NULL OR (o.name, o.category) IS DISTINCT FROM (s.name, s.category)
	ON CONFLICT (slug) DO UPDATE SET name = excluded.name, category = excluded.category
	WHERE (t.name, t.category) IS DISTINCT FROM (excluded.name, excluded.category)
	RETURNING (t.xmax = 0) AS created
)` + tail,
	},
	feed.KindAdvertiser: {
		table:   "import_stage_advertisers",
		columns: []string{"line", "external_id", "name", "email", "status"},
		create:  `CREATE TEMP TABLE IF NOT EXISTS import_stage_advertisers (line bigint NOT NULL, external_id text NOT NULL, name text NOT NULL, email text, status text NOT NULL)`,
		upsert: `WITH src AS MATERIALIZED (
	SELECT s.line, true AS has_parent, s.external_id, s.name, s.email, s.status FROM pg_temp.import_stage_advertisers s
), up AS (
	INSERT INTO advertisers AS t (external_id, name, email, status)
	SELECT s.external_id, s.name, s.email, s.status
	FROM src s LEFT JOIN advertisers o ON o.external_id = s.external_id
	WHERE o.id IS NULL OR (o.name, o.email, o.status) IS DISTINCT FROM (s.name, s.email, s.status)
	ON CONFLICT (external_id) DO UPDATE
	SET name = excluded.name, email = excluded.email, status = excluded.status,
	    updated_at = now(), version = t.version + 1
	WHERE (t.name, t.email, t.status) IS DISTINCT FROM (excluded.name, excluded.email, excluded.status)
	RETURNING (t.xmax = 0) AS created
)` + tail,
	},
	feed.KindCampaign: {
		table: "import_stage_campaigns",
		columns: []string{"line", "external_id", "advertiser", "name", "status", "bid_micros", "daily_budget_micros",
			"start_at", "end_at", "target_forums", "target_categories", "target_countries", "target_placements"},
		create: `CREATE TEMP TABLE IF NOT EXISTS import_stage_campaigns (line bigint NOT NULL, external_id text NOT NULL,
	advertiser text NOT NULL, name text NOT NULL, status text NOT NULL, bid_micros bigint NOT NULL,
	daily_budget_micros bigint NOT NULL, start_at timestamptz NOT NULL, end_at timestamptz,
	target_forums text[] NOT NULL, target_categories text[] NOT NULL, target_countries text[] NOT NULL,
	target_placements text[] NOT NULL)`,
		refField: "advertiser",
		parent:   feed.KindAdvertiser,
		upsert: `WITH src AS MATERIALIZED (
	SELECT s.line, a.id IS NOT NULL AS has_parent, s.external_id, a.id AS advertiser_id, s.name, s.status,
	       s.bid_micros, s.daily_budget_micros, s.start_at, s.end_at, s.target_forums, s.target_categories,
	       s.target_countries, s.target_placements
	FROM pg_temp.import_stage_campaigns s LEFT JOIN advertisers a ON a.external_id = s.advertiser
), up AS (
	INSERT INTO campaigns AS t (external_id, advertiser_id, name, status, bid_micros, daily_budget_micros,
	       start_at, end_at, target_forums, target_categories, target_countries, target_placements)
	SELECT s.external_id, s.advertiser_id, s.name, s.status, s.bid_micros, s.daily_budget_micros,
	       s.start_at, s.end_at, s.target_forums, s.target_categories, s.target_countries, s.target_placements
	FROM src s LEFT JOIN campaigns o ON o.external_id = s.external_id
	WHERE s.has_parent AND (o.id IS NULL OR (o.advertiser_id, o.name, o.status, o.bid_micros, o.daily_budget_micros,
	       o.start_at, o.end_at, o.target_forums, o.target_categories, o.target_countries, o.target_placements)
	    IS DISTINCT FROM (s.advertiser_id, s.name, s.status, s.bid_micros, s.daily_budget_micros, s.start_at,
	       s.end_at, s.target_forums, s.target_categories, s.target_countries, s.target_placements))
	ON CONFLICT (external_id) DO UPDATE
	SET advertiser_id = excluded.advertiser_id, name = excluded.name, status = excluded.status,
	    bid_micros = excluded.bid_micros, daily_budget_micros = excluded.daily_budget_micros,
	    start_at = excluded.start_at, end_at = excluded.end_at, target_forums = excluded.target_forums,
	    target_categories = excluded.target_categories, target_countries = excluded.target_countries,
	    target_placements = excluded.target_placements, updated_at = now(), version = t.version + 1
	WHERE (t.advertiser_id, t.name, t.status, t.bid_micros, t.daily_budget_micros, t.start_at, t.end_at,
	       t.target_forums, t.target_categories, t.target_countries, t.target_placements)
	    IS DISTINCT FROM (excluded.advertiser_id, excluded.name, excluded.status, excluded.bid_micros,
	       excluded.daily_budget_micros, excluded.start_at, excluded.end_at, excluded.target_forums,
	       excluded.target_categories, excluded.target_countries, excluded.target_placements)
	RETURNING (t.xmax = 0) AS created
)` + tail,
	},
	feed.KindAd: {
		table:   "import_stage_ads",
		columns: []string{"line", "external_id", "campaign", "title", "body", "image_url", "click_url", "status"},
		create: `CREATE TEMP TABLE IF NOT EXISTS import_stage_ads (line bigint NOT NULL, external_id text NOT NULL,
	campaign text NOT NULL, title text NOT NULL, body text NOT NULL, image_url text, click_url text NOT NULL,
	status text NOT NULL)`,
		refField: "campaign",
		parent:   feed.KindCampaign,
		upsert: `WITH src AS MATERIALIZED (
	SELECT s.line, c.id IS NOT NULL AS has_parent, s.external_id, c.id AS campaign_id, s.title, s.body,
	       s.image_url, s.click_url, s.status
	FROM pg_temp.import_stage_ads s LEFT JOIN campaigns c ON c.external_id = s.campaign
), up AS (
	INSERT INTO ads AS t (external_id, campaign_id, title, body, image_url, click_url, status)
	SELECT s.external_id, s.campaign_id, s.title, s.body, s.image_url, s.click_url, s.status
	FROM src s LEFT JOIN ads o ON o.external_id = s.external_id
	WHERE s.has_parent AND (o.id IS NULL OR (o.campaign_id, o.title, o.body, o.image_url, o.click_url, o.status)
	    IS DISTINCT FROM (s.campaign_id, s.title, s.body, s.image_url, s.click_url, s.status))
	ON CONFLICT (external_id) DO UPDATE
	SET campaign_id = excluded.campaign_id, title = excluded.title, body = excluded.body,
	    image_url = excluded.image_url, click_url = excluded.click_url, status = excluded.status,
	    updated_at = now(), version = t.version + 1
	WHERE (t.campaign_id, t.title, t.body, t.image_url, t.click_url, t.status)
	    IS DISTINCT FROM (excluded.campaign_id, excluded.title, excluded.body, excluded.image_url,
	       excluded.click_url, excluded.status)
	RETURNING (t.xmax = 0) AS created
)` + tail,
	},
}

// copyArgs are a row's values in the order of its stage's columns.
func copyArgs(r *feed.Row) []any {
	null := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	switch r.Kind {
	case feed.KindForum:
		f := r.Forum
		return []any{r.Line, f.Slug, f.Name, f.Category}
	case feed.KindAdvertiser:
		a := r.Advertiser
		return []any{r.Line, a.ExternalID, a.Name, null(a.Email), a.Status}
	case feed.KindCampaign:
		c := r.Campaign
		var end any
		if !c.EndAt.IsZero() {
			end = c.EndAt
		}
		return []any{r.Line, c.ExternalID, c.Advertiser, c.Name, c.Status, c.BidMicros, c.DailyBudgetMicros,
			c.StartAt, end, pqArray(c.Forums), pqArray(c.Categories), pqArray(c.Countries), pqArray(c.Placements)}
	case feed.KindAd:
		a := r.Ad
		return []any{r.Line, a.ExternalID, a.Campaign, a.Title, a.Body, null(a.ImageURL), a.ClickURL, a.Status}
	}
	return nil
}

// pqArray encodes a list as a text[] literal with every element quoted (so "null" stays text).
func pqArray(l []string) any {
	if l == nil {
		l = []string{}
	}
	return pq.StringArray(l)
}

// batchResult is what applying one batch did.
type batchResult struct {
	created, updated, unchanged int64
	issues                      []feed.Issue // rows refused at this stage
	failed                      int64        // rows refused at this stage, one issue each
}

func (b *batchResult) add(o batchResult) {
	b.created += o.created
	b.updated += o.updated
	b.unchanged += o.unchanged
	b.failed += o.failed
	b.issues = append(b.issues, o.issues...)
}

// batchSettings start every batch transaction: index lookups for the batch's joins (see
// stage), and an asynchronous commit: a crash may lose the last batches, never a part of one,
// and the synchronous commit that ends the run makes them all durable.
const batchSettings = `SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; SET LOCAL synchronous_commit = off`

// stageAndUpsert loads rows into the staging table and applies them.
func stageAndUpsert(ctx context.Context, tx *sqlx.Tx, st stage, rows []*feed.Row) (batchResult, error) {
	var res batchResult
	if _, err := tx.ExecContext(ctx, "TRUNCATE pg_temp."+st.table); err != nil {
		return res, fmt.Errorf("truncate %s: %w", st.table, err)
	}
	stmt, err := tx.PrepareContext(ctx, "COPY pg_temp."+st.table+" ("+strings.Join(st.columns, ", ")+") FROM STDIN")
	if err != nil {
		return res, fmt.Errorf("copy into %s: %w", st.table, err)
	}
	for _, r := range rows {
		if _, err := stmt.ExecContext(ctx, copyArgs(r)...); err != nil {
			_ = stmt.Close()
			return res, fmt.Errorf("copy into %s: %w", st.table, err)
		}
	}
	if _, err := stmt.ExecContext(ctx); err != nil {
		_ = stmt.Close()
		return res, fmt.Errorf("copy into %s: %w", st.table, err)
	}
	if err := stmt.Close(); err != nil {
		return res, fmt.Errorf("copy into %s: %w", st.table, err)
	}
	var missing pq.Int64Array
	if err := tx.QueryRowContext(ctx, st.upsert).Scan(&res.created, &res.updated, &missing); err != nil {
		return res, fmt.Errorf("upsert from %s: %w", st.table, err)
	}
	if len(missing) > 0 {
		issues, err := missingParents(st, rows, missing)
		if err != nil {
			return res, err
		}
		res.issues = issues
		res.failed = int64(len(issues))
	}
	res.unchanged = int64(len(rows)) - res.failed - res.created - res.updated
	return res, nil
}

// missingParents makes the row errors of rows whose parent does not exist.
func missingParents(st stage, rows []*feed.Row, lines []int64) ([]feed.Issue, error) {
	byLine := make(map[int64]*feed.Row, len(rows))
	for _, r := range rows {
		byLine[r.Line] = r
	}
	issues := make([]feed.Issue, 0, len(lines))
	for _, l := range lines {
		r := byLine[l]
		if r == nil {
			return nil, fmt.Errorf("upsert from %s: line %d is not in the batch", st.table, l)
		}
		ref := ""
		if r.Campaign != nil {
			ref = r.Campaign.Advertiser
		} else if r.Ad != nil {
			ref = r.Ad.Campaign
		}
		issues = append(issues, feed.Issue{
			Line: r.Line, Kind: r.Kind, ExternalID: r.ExternalID(), Field: st.refField, Raw: r.Raw,
			Reason: fmt.Sprintf("%s: unknown %s %q (not in the database, and no valid %s row with this external_id in the feed)", st.refField, st.parent, ref, st.parent),
		})
	}
	return issues, nil
}

// isRowError reports whether err is PostgreSQL refusing data (a constraint or a value out of
// range), which a single row can cause: SQLSTATE classes 22 and 23.
func isRowError(err error) (*pq.Error, bool) {
	var pe *pq.Error
	if errors.As(err, &pe) && (strings.HasPrefix(string(pe.Code), "22") || strings.HasPrefix(string(pe.Code), "23")) {
		return pe, true
	}
	return nil, false
}

// isRetryable reports a serialization failure or a deadlock: the batch can simply run again.
func isRetryable(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// bisect applies rows under savepoints, halving a part the database refuses until the single
// rows at fault are found; they become row errors and the others are applied.
func bisect(ctx context.Context, tx *sqlx.Tx, st stage, rows []*feed.Row) (batchResult, error) {
	if _, err := tx.ExecContext(ctx, "SAVEPOINT import_part"); err != nil {
		return batchResult{}, fmt.Errorf("savepoint: %w", err)
	}
	res, err := stageAndUpsert(ctx, tx, st, rows)
	if err == nil {
		if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT import_part"); err != nil {
			return batchResult{}, fmt.Errorf("release savepoint: %w", err)
		}
		return res, nil
	}
	pe, rowErr := isRowError(err)
	if !rowErr {
		return batchResult{}, err
	}
	if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT import_part; RELEASE SAVEPOINT import_part"); err != nil {
		return batchResult{}, fmt.Errorf("rollback to savepoint: %w", err)
	}
	if len(rows) == 1 {
		r := rows[0]
		return batchResult{failed: 1, issues: []feed.Issue{{
			Line: r.Line, Kind: r.Kind, ExternalID: r.ExternalID(), Field: fieldOf(pe), Raw: r.Raw,
			Reason: "rejected by the database: " + feed.SafeText(pe.Message, 500),
		}}}, nil
	}
	half := len(rows) / 2
	var total batchResult
	for _, part := range [][]*feed.Row{rows[:half], rows[half:]} {
		r, err := bisect(ctx, tx, st, part)
		if err != nil {
			return batchResult{}, err
		}
		total.add(r)
	}
	return total, nil
}

// columnFields maps table columns to feed fields, to name the field of a database refusal.
var columnFields = map[string]string{
	"bid_micros": "bid", "daily_budget_micros": "daily_budget", "target_forums": "forums",
	"target_categories": "categories", "target_countries": "countries", "target_placements": "placements",
	"slug": "external_id", "advertiser_id": "advertiser", "campaign_id": "campaign",
}

// fieldOf guesses the feed field of a database error from its column or constraint name
// (PostgreSQL names a column CHECK <table>_<column>_check, then _check1, _check2...).
func fieldOf(pe *pq.Error) string {
	col := pe.Column
	if col == "" && pe.Constraint != "" {
		c := strings.TrimSuffix(strings.TrimRight(pe.Constraint, "0123456789"), "_check")
		for _, t := range []string{"forums_", "advertisers_", "campaigns_", "ads_"} {
			if strings.HasPrefix(c, t) {
				col = strings.TrimPrefix(c, t)
				break
			}
		}
	}
	if f, ok := columnFields[col]; ok {
		return f
	}
	return col
}

// createStages creates the staging tables on the import's connection.
func createStages(ctx context.Context, conn *sqlx.Conn) error {
	for _, k := range feed.Kinds() {
		if _, err := conn.ExecContext(ctx, stages[k].create); err != nil {
			return fmt.Errorf("create staging table %s: %w", stages[k].table, err)
		}
	}
	return nil
}

// dropStages removes the staging tables so the pooled connection goes back clean.
func dropStages(ctx context.Context, conn *sqlx.Conn) {
	names := make([]string, 0, len(stages))
	for _, k := range feed.Kinds() {
		names = append(names, "pg_temp."+stages[k].table)
	}
	_, _ = conn.ExecContext(ctx, "DROP TABLE IF EXISTS "+strings.Join(names, ", "))
}
