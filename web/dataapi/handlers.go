package dataapi

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/forumads/forumads/web/httpx"
)

// The CRUD handlers of a kind.

func (k *kind[R, B]) handleList(a *api) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := newQuery(r, append([]string{"limit", "cursor"}, k.filterNames...)...)
		rows, next, err := k.list(r.Context(), a.db, q)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		items := make([]any, len(rows))
		for i := range rows {
			items[i] = k.view(&rows[i])
		}
		httpx.WriteJSON(w, http.StatusOK, page{Items: items, NextCursor: next})
	}
}

func (k *kind[R, B]) handleGet(a *api) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r, k.singular)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		row, err := k.get(r.Context(), a.db, id)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		k.writeRow(w, http.StatusOK, row)
	}
}

func (k *kind[R, B]) writeRow(w http.ResponseWriter, status int, row *R) {
	_, version := k.key(row)
	w.Header().Set("ETag", etag(version))
	httpx.WriteJSON(w, status, k.view(row))
}

func (k *kind[R, B]) handleCreate(a *api) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var b B
		if err := decodeBody(w, r, &b); err != nil {
			a.fail(w, r, err)
			return
		}
		row := k.defaults()
		if err := k.apply(&b, &row, true); err != nil {
			a.fail(w, r, err)
			return
		}
		out, err := k.insert(r.Context(), a.db, &row)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		id, _ := k.key(out)
		w.Header().Set("Location", k.location(id))
		k.writeRow(w, http.StatusCreated, out)
	}
}

// handlePatch applies a partial body under optimistic concurrency: If-Match must name the version
// the client read (428 without it, 412 when the row has moved on since).
func (k *kind[R, B]) handlePatch(a *api) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r, k.singular)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		want, err := ifMatch(r)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		var b B
		if err := decodeBody(w, r, &b); err != nil {
			a.fail(w, r, err)
			return
		}
		cur, err := k.get(r.Context(), a.db, id)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if _, version := k.key(cur); !want.matches(version) {
			a.fail(w, r, k.moved(version))
			return
		}
		next := *cur
		if err := k.apply(&b, &next, false); err != nil {
			a.fail(w, r, err)
			return
		}
		if same(k.view(cur), k.view(&next)) { // nothing changes: no new version
			k.writeRow(w, http.StatusOK, cur)
			return
		}
		_, version := k.key(cur)
		out, ok, err := k.update(r.Context(), a.db, id, version, &next)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if !ok { // deleted or changed since it was read
			cur, err := k.get(r.Context(), a.db, id)
			if err != nil {
				a.fail(w, r, err)
				return
			}
			_, v := k.key(cur)
			a.fail(w, r, k.moved(v))
			return
		}
		k.writeRow(w, http.StatusOK, out)
	}
}

func (k *kind[R, B]) moved(version int) error {
	return httpx.Errorf(http.StatusPreconditionFailed, "version_mismatch",
		"the %s has changed (it is now at version %d, ETag %s): read it again and reapply your change", k.singular, version, etag(version))
}

// handleDelete deletes a row (and, by the schema's cascades, what belongs to it). An If-Match, when
// given, must name the current version.
func (k *kind[R, B]) handleDelete(a *api) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r, k.singular)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		var res interface{ RowsAffected() (int64, error) }
		if r.Header.Get("If-Match") == "" {
			res, err = a.db.ExecContext(r.Context(), "DELETE FROM "+k.table+" WHERE id = $1", id)
		} else {
			want, perr := ifMatch(r)
			if perr != nil {
				a.fail(w, r, perr)
				return
			}
			cur, gerr := k.get(r.Context(), a.db, id)
			if gerr != nil {
				a.fail(w, r, gerr)
				return
			}
			_, version := k.key(cur)
			if !want.matches(version) {
				a.fail(w, r, k.moved(version))
				return
			}
			res, err = a.db.ExecContext(r.Context(), "DELETE FROM "+k.table+" WHERE id = $1 AND version = $2", id, version)
		}
		if err != nil {
			a.fail(w, r, k.dbError(err, "deleting"))
			return
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			if err != nil {
				a.fail(w, r, k.dbError(err, "deleting"))
				return
			}
			if cur, gerr := k.get(r.Context(), a.db, id); gerr != nil {
				a.fail(w, r, gerr)
			} else {
				_, v := k.key(cur)
				a.fail(w, r, k.moved(v))
			}
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// versions are the versions an If-Match header names.
type versions []int

func (vs versions) matches(v int) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// ifMatchTags reads If-Match: one or more strong entity tags ("3", "4"), returned unquoted. Absent
// is a 428; "*" and weak tags are refused, since they would skip the version check.
func ifMatchTags(r *http.Request) ([]string, error) {
	h := strings.TrimSpace(strings.Join(r.Header.Values("If-Match"), ","))
	if h == "" {
		return nil, httpx.Errorf(http.StatusPreconditionRequired, "precondition_required",
			"If-Match is required: send the ETag of the version you read (GET answers with it)")
	}
	var out []string
	for _, t := range strings.Split(h, ",") {
		t = strings.TrimSpace(t)
		if len(t) < 3 || t[0] != '"' || t[len(t)-1] != '"' || strings.ContainsAny(t[1:len(t)-1], `"`) {
			return nil, httpx.Errorf(http.StatusBadRequest, "invalid_if_match",
				"If-Match must be the ETag a GET gave, such as \"3\"; got %s", quote(t))
		}
		out = append(out, t[1:len(t)-1])
	}
	return out, nil
}

// ifMatch reads If-Match as row versions.
func ifMatch(r *http.Request) (versions, error) {
	tags, err := ifMatchTags(r)
	if err != nil {
		return nil, err
	}
	out := make(versions, 0, len(tags))
	for _, t := range tags {
		v, err := strconv.Atoi(t)
		if err != nil || v < 1 || strconv.Itoa(v) != t {
			return nil, httpx.Errorf(http.StatusBadRequest, "invalid_if_match",
				"If-Match must be the ETag a GET gave, such as \"3\"; got %s", quote(`"`+t+`"`))
		}
		out = append(out, v)
	}
	return out, nil
}
