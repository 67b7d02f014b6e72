package dataapi

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/web/httpx"
)

// Forums are keyed by slug and have no version column: their ETag is a digest of their content,
// and an update is guarded by the values it read.

// forumRow is a row of forums.
type forumRow struct {
	Slug      string    `db:"slug"`
	Name      string    `db:"name"`
	Category  string    `db:"category"`
	CreatedAt time.Time `db:"created_at"`
}

// Forum is a forum as the API shows it.
type Forum struct {
	Slug      string `json:"slug"`
	Name      string `json:"name"`
	Category  string `json:"category"`
	CreatedAt string `json:"created_at"`
}

// ForumBody is the body of POST /v1/forums and PATCH /v1/forums/{slug} (where slug, if given,
// must be the forum's own: a slug cannot change).
type ForumBody struct {
	Slug     Opt[string] `json:"slug"`
	Name     Opt[string] `json:"name"`
	Category Opt[string] `json:"category"`
}

type forums struct{}

var forumTable = tableInfo{singular: "forum", table: "forums", fields: map[string]string{"pkey": "slug"}}

const forumCols = "slug, name, category, created_at"

func forumView(r *forumRow) Forum {
	return Forum{Slug: r.Slug, Name: r.Name, Category: r.Category, CreatedAt: fmtTime(r.CreatedAt)}
}

// forumTag is the content digest a forum's ETag holds.
func forumTag(r *forumRow) string {
	h := sha256.Sum256([]byte(r.Slug + "\x00" + r.Name + "\x00" + r.Category))
	return hex.EncodeToString(h[:8])
}

func writeForum(w http.ResponseWriter, status int, r *forumRow) {
	w.Header().Set("ETag", `"`+forumTag(r)+`"`)
	httpx.WriteJSON(w, status, forumView(r))
}

func forumSlug(r *http.Request) (string, error) {
	s := r.PathValue("slug")
	if !rkeys.ValidSlug(s) {
		return "", httpx.Errorf(http.StatusBadRequest, "invalid_id", "a forum slug is 1-64 characters of a-z, 0-9, _ and -; got %s", quote(s))
	}
	return s, nil
}

func (forums) get(a *api, r *http.Request, slug string) (*forumRow, error) {
	var row forumRow
	err := a.db.GetContext(r.Context(), &row, "SELECT "+forumCols+" FROM forums WHERE slug = $1", slug)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, httpx.Errorf(http.StatusNotFound, "not_found", "no forum %s", quote(slug))
	}
	if err != nil {
		return nil, forumTable.dbError(err, "reading")
	}
	return &row, nil
}

func applyForum(b *ForumBody, r *forumRow, creating bool) error {
	if creating {
		if err := firstError(
			required("slug", b.Slug, "1-64 characters of a-z, 0-9, _ and -"),
			required("name", b.Name, "1 to 200 characters"),
			required("category", b.Category, "1-64 characters of a-z, 0-9, _ and -"),
		); err != nil {
			return err
		}
	}
	if err := firstError(notNull("slug", b.Slug), notNull("name", b.Name), notNull("category", b.Category)); err != nil {
		return err
	}
	if b.Slug.Set {
		if _, err := checkSlug("slug", b.Slug.V); err != nil {
			return err
		}
		if !creating && b.Slug.V != r.Slug {
			return httpx.FieldError("slug", "a forum's slug cannot change (it is %s)", quote(r.Slug))
		}
		r.Slug = b.Slug.V
	}
	if err := set("name", b.Name, &r.Name, textRule(1, 200, false)); err != nil {
		return err
	}
	return set("category", b.Category, &r.Category, checkSlug)
}

func (f forums) handleList(a *api) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := newQuery(r, "limit", "cursor", "category")
		limit := q.limit()
		var wh where
		if s, ok := q.get("cursor"); ok {
			key, err := DecodeCursor("forums", s)
			if err == nil && !rkeys.ValidSlug(key) {
				err = errf("invalid_cursor", "cursor: not a cursor of the forums list")
			}
			if err != nil && q.err == nil {
				q.err = err
			}
			wh.add(`slug COLLATE "C" > ?`, key)
		}
		if s, ok := q.get("category"); ok {
			if !rkeys.ValidSlug(s) {
				q.fail("category", "must be 1-64 characters of a-z, 0-9, _ and -, got %s", quote(s))
			}
			wh.add("category = ?", s)
		}
		if q.err != nil {
			a.fail(w, r, q.err)
			return
		}
		var rows []forumRow
		err := a.db.SelectContext(r.Context(), &rows, "SELECT "+forumCols+" FROM forums"+wh.sql()+
			" ORDER BY slug COLLATE \"C\" LIMIT "+strconv.Itoa(limit+1), wh.args...)
		if err != nil {
			a.fail(w, r, forumTable.dbError(err, "listing"))
			return
		}
		var next *string
		if len(rows) > limit {
			rows = rows[:limit]
			c := EncodeCursor("forums", rows[limit-1].Slug)
			next = &c
		}
		items := make([]any, len(rows))
		for i := range rows {
			items[i] = forumView(&rows[i])
		}
		httpx.WriteJSON(w, http.StatusOK, page{Items: items, NextCursor: next})
	}
}

func (f forums) handleGet(a *api) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		slug, err := forumSlug(r)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		row, err := f.get(a, r, slug)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeForum(w, http.StatusOK, row)
	}
}

func (f forums) handleCreate(a *api) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var b ForumBody
		if err := decodeBody(w, r, &b); err != nil {
			a.fail(w, r, err)
			return
		}
		var row forumRow
		if err := applyForum(&b, &row, true); err != nil {
			a.fail(w, r, err)
			return
		}
		var out forumRow
		if err := a.db.GetContext(r.Context(), &out, "INSERT INTO forums (slug, name, category) VALUES ($1, $2, $3) RETURNING "+forumCols,
			row.Slug, row.Name, row.Category); err != nil {
			a.fail(w, r, forumTable.dbError(err, "creating"))
			return
		}
		w.Header().Set("Location", "/v1/forums/"+out.Slug)
		writeForum(w, http.StatusCreated, &out)
	}
}

func (f forums) handlePatch(a *api) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		slug, err := forumSlug(r)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		tags, err := ifMatchTags(r)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		var b ForumBody
		if err := decodeBody(w, r, &b); err != nil {
			a.fail(w, r, err)
			return
		}
		cur, err := f.matching(a, r, slug, tags)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		next := *cur
		if err := applyForum(&b, &next, false); err != nil {
			a.fail(w, r, err)
			return
		}
		if next == *cur {
			writeForum(w, http.StatusOK, cur)
			return
		}
		var out forumRow
		err = a.db.GetContext(r.Context(), &out, `UPDATE forums SET name = $4, category = $5
			WHERE slug = $1 AND name = $2 AND category = $3 RETURNING `+forumCols, slug, cur.Name, cur.Category, next.Name, next.Category)
		if errors.Is(err, sql.ErrNoRows) {
			a.fail(w, r, f.moved(a, r, slug))
			return
		}
		if err != nil {
			a.fail(w, r, forumTable.dbError(err, "updating"))
			return
		}
		writeForum(w, http.StatusOK, &out)
	}
}

// matching reads forum slug and checks it against the If-Match tags: none matching is a 412 naming
// its current ETag.
func (f forums) matching(a *api, r *http.Request, slug string, tags []string) (*forumRow, error) {
	cur, err := f.get(a, r, slug)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(tags, forumTag(cur)) {
		return nil, forumMoved(cur)
	}
	return cur, nil
}

// moved is the error of a conditional write that matched no row: the forum changed after it was
// read (a 412 with its ETag now), or is gone (the read's 404).
func (f forums) moved(a *api, r *http.Request, slug string) error {
	now, err := f.get(a, r, slug)
	if err != nil {
		return err
	}
	return forumMoved(now)
}

func forumMoved(cur *forumRow) error {
	return httpx.Errorf(http.StatusPreconditionFailed, "version_mismatch",
		"the forum has changed (its ETag is now \"%s\"): read it again and reapply your change", forumTag(cur))
}

func (f forums) handleDelete(a *api) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		slug, err := forumSlug(r)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		stmt, args := "DELETE FROM forums WHERE slug = $1", []any{slug}
		if r.Header.Get("If-Match") != "" {
			tags, err := ifMatchTags(r)
			if err != nil {
				a.fail(w, r, err)
				return
			}
			cur, err := f.matching(a, r, slug, tags)
			if err != nil {
				a.fail(w, r, err)
				return
			}
			stmt, args = stmt+" AND name = $2 AND category = $3", append(args, cur.Name, cur.Category)
		}
		res, err := a.db.ExecContext(r.Context(), stmt, args...)
		if err != nil {
			a.fail(w, r, forumTable.dbError(err, "deleting"))
			return
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			if err != nil {
				a.fail(w, r, forumTable.dbError(err, "deleting"))
				return
			}
			a.fail(w, r, f.moved(a, r, slug))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}
