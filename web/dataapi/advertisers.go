package dataapi

import (
	"database/sql"
	"time"
)

// advertiserRow is a row of advertisers.
type advertiserRow struct {
	ID         int64            `db:"id"`
	ExternalID string           `db:"external_id"`
	Name       string           `db:"name"`
	Email      sql.Null[string] `db:"email"`
	Status     string           `db:"status"`
	CreatedAt  time.Time        `db:"created_at"`
	UpdatedAt  time.Time        `db:"updated_at"`
	Version    int              `db:"version"`
}

// Advertiser is an advertiser as the API shows it.
type Advertiser struct {
	ID         int64   `json:"id"`
	ExternalID string  `json:"external_id"`
	Name       string  `json:"name"`
	Email      *string `json:"email"`
	Status     string  `json:"status"`
	CreatedAt  string  `json:"created_at"`
	UpdatedAt  string  `json:"updated_at"`
	Version    int     `json:"version"`
}

// AdvertiserBody is the body of POST /v1/advertisers and PATCH /v1/advertisers/{id}.
type AdvertiserBody struct {
	ExternalID Opt[string] `json:"external_id"`
	Name       Opt[string] `json:"name"`
	Email      Opt[string] `json:"email"` // null clears it
	Status     Opt[string] `json:"status"`
}

func advertiserKind() *kind[advertiserRow, AdvertiserBody] {
	return &kind[advertiserRow, AdvertiserBody]{
		tableInfo: tableInfo{singular: "advertiser", table: "advertisers"}, plural: "advertisers",
		cols: "id, external_id, name, email, status, created_at, updated_at, version",
		key:  func(r *advertiserRow) (int64, int) { return r.ID, r.Version },
		view: func(r *advertiserRow) any {
			a := Advertiser{ID: r.ID, ExternalID: r.ExternalID, Name: r.Name, Status: r.Status,
				CreatedAt: fmtTime(r.CreatedAt), UpdatedAt: fmtTime(r.UpdatedAt), Version: r.Version}
			if r.Email.Valid {
				a.Email = &r.Email.V
			}
			return a
		},
		defaults:   func() advertiserRow { return advertiserRow{Status: advertiserStatuses[0]} },
		apply:      applyAdvertiser,
		insertCols: []string{"external_id", "name", "email", "status"},
		values: func(r *advertiserRow) []any {
			return []any{r.ExternalID, r.Name, r.Email, r.Status}
		},
		filterNames: []string{"status", "q"},
		filter: func(q *query, w *where) {
			if s := q.enum("status", advertiserStatuses); s != "" {
				w.add("status = ?", s)
			}
			if s, ok := q.text("q", 200); ok {
				w.add("starts_with(name, ?)", s)
			}
		},
	}
}

func applyAdvertiser(b *AdvertiserBody, r *advertiserRow, creating bool) error {
	if creating {
		if err := firstError(
			required("external_id", b.ExternalID, externalIDRule),
			required("name", b.Name, "1 to 200 characters"),
		); err != nil {
			return err
		}
	}
	if err := firstError(notNull("external_id", b.ExternalID), notNull("name", b.Name), notNull("status", b.Status)); err != nil {
		return err
	}
	if err := set("external_id", b.ExternalID, &r.ExternalID, checkExternalID); err != nil {
		return err
	}
	if err := set("name", b.Name, &r.Name, textRule(1, 200, false)); err != nil {
		return err
	}
	if err := setNullable("email", b.Email, &r.Email, checkEmail); err != nil {
		return err
	}
	return set("status", b.Status, &r.Status, enumRule(advertiserStatuses))
}
