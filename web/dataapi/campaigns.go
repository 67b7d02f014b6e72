package dataapi

import (
	"database/sql"
	"time"

	"github.com/lib/pq"

	"github.com/forumads/forumads/ads/feed"
	"github.com/forumads/forumads/web/httpx"
)

// campaignRow is a row of campaigns.
type campaignRow struct {
	ID                int64               `db:"id"`
	ExternalID        string              `db:"external_id"`
	AdvertiserID      int64               `db:"advertiser_id"`
	Name              string              `db:"name"`
	Status            string              `db:"status"`
	BidMicros         int64               `db:"bid_micros"`
	DailyBudgetMicros int64               `db:"daily_budget_micros"`
	StartAt           time.Time           `db:"start_at"`
	EndAt             sql.Null[time.Time] `db:"end_at"`
	TargetForums      pq.StringArray      `db:"target_forums"`
	TargetCategories  pq.StringArray      `db:"target_categories"`
	TargetCountries   pq.StringArray      `db:"target_countries"`
	TargetPlacements  pq.StringArray      `db:"target_placements"`
	CreatedAt         time.Time           `db:"created_at"`
	UpdatedAt         time.Time           `db:"updated_at"`
	Version           int                 `db:"version"`
}

// Campaign is a campaign as the API shows it. Money is decimal text ("0.35").
type Campaign struct {
	ID               int64    `json:"id"`
	ExternalID       string   `json:"external_id"`
	AdvertiserID     int64    `json:"advertiser_id"`
	Name             string   `json:"name"`
	Status           string   `json:"status"`
	Bid              string   `json:"bid"`
	DailyBudget      string   `json:"daily_budget"`
	StartAt          string   `json:"start_at"`
	EndAt            *string  `json:"end_at"`
	TargetForums     []string `json:"target_forums"`
	TargetCategories []string `json:"target_categories"`
	TargetCountries  []string `json:"target_countries"`
	TargetPlacements []string `json:"target_placements"`
	CreatedAt        string   `json:"created_at"`
	UpdatedAt        string   `json:"updated_at"`
	Version          int      `json:"version"`
	// Totals is set by the dashboard lists (?with=totals).
	Totals *Totals `json:"totals,omitempty"`
}

// CampaignBody is the body of POST /v1/campaigns and PATCH /v1/campaigns/{id}. Targeting lists
// that are empty or null mean "any".
type CampaignBody struct {
	ExternalID       Opt[string]   `json:"external_id"`
	AdvertiserID     Opt[int64]    `json:"advertiser_id"`
	Name             Opt[string]   `json:"name"`
	Status           Opt[string]   `json:"status"`
	Bid              Opt[Decimal]  `json:"bid"`
	DailyBudget      Opt[Decimal]  `json:"daily_budget"`
	StartAt          Opt[string]   `json:"start_at"`
	EndAt            Opt[string]   `json:"end_at"` // null clears it
	TargetForums     Opt[[]string] `json:"target_forums"`
	TargetCategories Opt[[]string] `json:"target_categories"`
	TargetCountries  Opt[[]string] `json:"target_countries"`
	TargetPlacements Opt[[]string] `json:"target_placements"`
}

func campaignView(r *campaignRow) Campaign {
	c := Campaign{ID: r.ID, ExternalID: r.ExternalID, AdvertiserID: r.AdvertiserID, Name: r.Name, Status: r.Status,
		Bid: feed.FormatMicros(r.BidMicros), DailyBudget: feed.FormatMicros(r.DailyBudgetMicros),
		StartAt: fmtTime(r.StartAt), TargetForums: nonNil(r.TargetForums), TargetCategories: nonNil(r.TargetCategories),
		TargetCountries: nonNil(r.TargetCountries), TargetPlacements: nonNil(r.TargetPlacements),
		CreatedAt: fmtTime(r.CreatedAt), UpdatedAt: fmtTime(r.UpdatedAt), Version: r.Version}
	if r.EndAt.Valid {
		s := fmtTime(r.EndAt.V)
		c.EndAt = &s
	}
	return c
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func campaignKind() *kind[campaignRow, CampaignBody] {
	return &kind[campaignRow, CampaignBody]{
		tableInfo: tableInfo{singular: "campaign", table: "campaigns",
			fields: map[string]string{"bid_micros": "bid", "daily_budget_micros": "daily_budget"}}, plural: "campaigns",
		cols: "id, external_id, advertiser_id, name, status, bid_micros, daily_budget_micros, start_at, end_at, " +
			"target_forums, target_categories, target_countries, target_placements, created_at, updated_at, version",
		key:  func(r *campaignRow) (int64, int) { return r.ID, r.Version },
		view: func(r *campaignRow) any { return campaignView(r) },
		defaults: func() campaignRow {
			return campaignRow{Status: campaignStatuses[0], TargetForums: pq.StringArray{}, TargetCategories: pq.StringArray{},
				TargetCountries: pq.StringArray{}, TargetPlacements: pq.StringArray{}}
		},
		apply: applyCampaign,
		insertCols: []string{"external_id", "advertiser_id", "name", "status", "bid_micros", "daily_budget_micros",
			"start_at", "end_at", "target_forums", "target_categories", "target_countries", "target_placements"},
		values: func(r *campaignRow) []any {
			return []any{r.ExternalID, r.AdvertiserID, r.Name, r.Status, r.BidMicros, r.DailyBudgetMicros,
				r.StartAt, r.EndAt, r.TargetForums, r.TargetCategories, r.TargetCountries, r.TargetPlacements}
		},
		filterNames: []string{"advertiser_id", "status"},
		filter: func(q *query, w *where) {
			if id := q.id("advertiser_id"); id > 0 {
				w.add("advertiser_id = ?", id)
			}
			if s := q.enum("status", campaignStatuses); s != "" {
				w.add("status = ?", s)
			}
		},
	}
}

func applyCampaign(b *CampaignBody, r *campaignRow, creating bool) error {
	if creating {
		if err := firstError(
			required("external_id", b.ExternalID, externalIDRule),
			required("advertiser_id", b.AdvertiserID, "the advertiser's id"),
			required("name", b.Name, "1 to 200 characters"),
			required("bid", b.Bid, "the cost per click, a decimal such as \"0.35\""),
			required("daily_budget", b.DailyBudget, "a decimal such as \"100\""),
			required("start_at", b.StartAt, "a date such as 2026-03-01 or an RFC 3339 time"),
		); err != nil {
			return err
		}
	}
	if err := firstError(notNull("external_id", b.ExternalID), notNull("advertiser_id", b.AdvertiserID),
		notNull("name", b.Name), notNull("status", b.Status), notNull("bid", b.Bid),
		notNull("daily_budget", b.DailyBudget), notNull("start_at", b.StartAt)); err != nil {
		return err
	}
	if err := set("external_id", b.ExternalID, &r.ExternalID, checkExternalID); err != nil {
		return err
	}
	if err := set("advertiser_id", b.AdvertiserID, &r.AdvertiserID, checkRef); err != nil {
		return err
	}
	if err := set("name", b.Name, &r.Name, textRule(1, 200, false)); err != nil {
		return err
	}
	if err := set("status", b.Status, &r.Status, enumRule(campaignStatuses)); err != nil {
		return err
	}
	if err := set("bid", b.Bid, &r.BidMicros, moneyRule(maxBidMicros)); err != nil {
		return err
	}
	if err := set("daily_budget", b.DailyBudget, &r.DailyBudgetMicros, moneyRule(maxBudgetMicros)); err != nil {
		return err
	}
	if err := set("start_at", b.StartAt, &r.StartAt, timeValue); err != nil {
		return err
	}
	if err := setNullable("end_at", b.EndAt, &r.EndAt, timeValue); err != nil {
		return err
	}
	if r.EndAt.Valid && !r.EndAt.V.After(r.StartAt) {
		return httpx.FieldError("end_at", "must be after start_at (%s), got %s", fmtTime(r.StartAt), fmtTime(r.EndAt.V))
	}
	lists := []struct {
		field string
		o     Opt[[]string]
		dst   *pq.StringArray
		check func(string) (string, bool)
		what  string
	}{
		{"target_forums", b.TargetForums, &r.TargetForums, slugEntry, "a forum slug (1-64 characters of a-z, 0-9, _ and -)"},
		{"target_categories", b.TargetCategories, &r.TargetCategories, slugEntry, "a category (1-64 characters of a-z, 0-9, _ and -)"},
		{"target_countries", b.TargetCountries, &r.TargetCountries, countryEntry, "an ISO 3166-1 alpha-2 country code (such as US, GB, DE)"},
		{"target_placements", b.TargetPlacements, &r.TargetPlacements, placementEntry, "a placement (" + orList(placements) + ")"},
	}
	for _, l := range lists {
		if !l.o.Set {
			continue
		}
		v, err := list(l.field, l.o.V, l.check, l.what)
		if err != nil {
			return err
		}
		*l.dst = v
	}
	return nil
}
