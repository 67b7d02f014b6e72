package dataapi

import (
	"database/sql"
	"time"
)

// adRow is a row of ads.
type adRow struct {
	ID         int64            `db:"id"`
	ExternalID string           `db:"external_id"`
	CampaignID int64            `db:"campaign_id"`
	Title      string           `db:"title"`
	Body       string           `db:"body"`
	ImageURL   sql.Null[string] `db:"image_url"`
	ClickURL   string           `db:"click_url"`
	Status     string           `db:"status"`
	CreatedAt  time.Time        `db:"created_at"`
	UpdatedAt  time.Time        `db:"updated_at"`
	Version    int              `db:"version"`
}

// Ad is an ad (creative) as the API shows it.
type Ad struct {
	ID         int64   `json:"id"`
	ExternalID string  `json:"external_id"`
	CampaignID int64   `json:"campaign_id"`
	Title      string  `json:"title"`
	Body       string  `json:"body"`
	ImageURL   *string `json:"image_url"`
	ClickURL   string  `json:"click_url"`
	Status     string  `json:"status"`
	CreatedAt  string  `json:"created_at"`
	UpdatedAt  string  `json:"updated_at"`
	Version    int     `json:"version"`
}

// AdBody is the body of POST /v1/ads and PATCH /v1/ads/{id}.
type AdBody struct {
	ExternalID Opt[string] `json:"external_id"`
	CampaignID Opt[int64]  `json:"campaign_id"`
	Title      Opt[string] `json:"title"`
	Body       Opt[string] `json:"body"`      // null is ""
	ImageURL   Opt[string] `json:"image_url"` // null clears it
	ClickURL   Opt[string] `json:"click_url"`
	Status     Opt[string] `json:"status"`
}

func adKind() *kind[adRow, AdBody] {
	return &kind[adRow, AdBody]{
		tableInfo: tableInfo{singular: "ad", table: "ads"}, plural: "ads",
		cols: "id, external_id, campaign_id, title, body, image_url, click_url, status, created_at, updated_at, version",
		key:  func(r *adRow) (int64, int) { return r.ID, r.Version },
		view: func(r *adRow) any {
			a := Ad{ID: r.ID, ExternalID: r.ExternalID, CampaignID: r.CampaignID, Title: r.Title, Body: r.Body,
				ClickURL: r.ClickURL, Status: r.Status, CreatedAt: fmtTime(r.CreatedAt), UpdatedAt: fmtTime(r.UpdatedAt),
				Version: r.Version}
			if r.ImageURL.Valid {
				a.ImageURL = &r.ImageURL.V
			}
			return a
		},
		defaults:   func() adRow { return adRow{Status: adStatuses[0]} },
		apply:      applyAd,
		insertCols: []string{"external_id", "campaign_id", "title", "body", "image_url", "click_url", "status"},
		values: func(r *adRow) []any {
			return []any{r.ExternalID, r.CampaignID, r.Title, r.Body, r.ImageURL, r.ClickURL, r.Status}
		},
		filterNames: []string{"campaign_id", "advertiser_id", "status"},
		filter: func(q *query, w *where) {
			if id := q.id("campaign_id"); id > 0 {
				w.add("campaign_id = ?", id)
			}
			if id := q.id("advertiser_id"); id > 0 {
				w.add("campaign_id IN (SELECT id FROM campaigns WHERE advertiser_id = ?)", id)
			}
			if s := q.enum("status", adStatuses); s != "" {
				w.add("status = ?", s)
			}
		},
	}
}

func applyAd(b *AdBody, r *adRow, creating bool) error {
	if creating {
		if err := firstError(
			required("external_id", b.ExternalID, externalIDRule),
			required("campaign_id", b.CampaignID, "the campaign's id"),
			required("title", b.Title, "1 to 90 characters"),
			required("click_url", b.ClickURL, "an http:// or https:// URL"),
		); err != nil {
			return err
		}
	}
	if err := firstError(notNull("external_id", b.ExternalID), notNull("campaign_id", b.CampaignID),
		notNull("title", b.Title), notNull("click_url", b.ClickURL), notNull("status", b.Status)); err != nil {
		return err
	}
	if err := set("external_id", b.ExternalID, &r.ExternalID, checkExternalID); err != nil {
		return err
	}
	if err := set("campaign_id", b.CampaignID, &r.CampaignID, checkRef); err != nil {
		return err
	}
	if err := set("title", b.Title, &r.Title, textRule(1, 90, false)); err != nil {
		return err
	}
	if err := set("body", b.Body, &r.Body, textRule(0, 300, true)); err != nil {
		return err
	}
	if err := setNullable("image_url", b.ImageURL, &r.ImageURL, checkURL); err != nil {
		return err
	}
	if err := set("click_url", b.ClickURL, &r.ClickURL, checkURL); err != nil {
		return err
	}
	return set("status", b.Status, &r.Status, enumRule(adStatuses))
}
