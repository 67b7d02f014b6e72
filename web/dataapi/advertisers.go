package dataapi

import (
	"database/sql"
	"time"
)

// advertiserRow is a row of advertisers.
type advertiserRow struct {
	ID         int64          `db:"id"`
	ExternalID string         `db:"external_id"`
	Name       string         `db:"name"`
	Email      sql.NullString `db:"email"`
	Status     string         `db:"status"`
	CreatedAt  time.Time      `db:"created_at"`
	UpdatedAt  time.Time      `db:"updated_at"`
	Version    int            `db:"version"`
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
				a.Email = &r.Email.String
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
		if err := required("external_id", b.ExternalID, "1-64 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'"); err != nil {
			return err
		}
		if err := required("name", b.Name, "1 to 200 characters"); err != nil {
			return err
		}
	}
	for _, err := range []error{notNull("external_id", b.ExternalID), notNull("name", b.Name), notNull("status", b.Status)} {
		if err != nil {
			return err
		}
	}
	if b.ExternalID.Set {
		if err := checkExternalID("external_id", b.ExternalID.V); err != nil {
			return err
		}
		r.ExternalID = b.ExternalID.V
	}
	if b.Name.Set {
		v, err := text("name", b.Name.V, 1, 200, false)
		if err != nil {
			return err
		}
		r.Name = v
	}
	if b.Email.Set {
		if b.Email.Null {
			r.Email = sql.NullString{}
		} else {
			v, err := checkEmail("email", b.Email.V)
			if err != nil {
				return err
			}
			r.Email = sql.NullString{String: v, Valid: true}
		}
	}
	if b.Status.Set {
		v, err := enum("status", b.Status.V, advertiserStatuses)
		if err != nil {
			return err
		}
		r.Status = v
	}
	return nil
}
