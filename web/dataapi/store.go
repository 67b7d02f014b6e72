package dataapi

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/forumads/forumads/web/httpx"
)

// kind is one table the API serves as a resource with create, read, update (optimistic, by
// version) and delete. R is its row (sqlx db tags), B its request body (a create and a patch).
type kind[R any, B any] struct {
	tableInfo
	plural string // "advertisers": paths and cursors
	cols   string // the SELECT list, also RETURNING
	key    func(*R) (id int64, version int)
	view   func(*R) any
	// defaults is a new row before a create's body is applied.
	defaults func() R
	// apply validates the body and writes its fields into r; creating requires the required ones.
	apply func(b *B, r *R, creating bool) error
	// values are the columns a create or an update writes, in the order of insertCols.
	insertCols []string
	values     func(r *R) []any
	// filter adds the list's filters to w from q.
	filter func(q *query, w *where)
	// filterNames are the query parameters filter reads.
	filterNames []string
}

// tableInfo names a table for messages and maps its constraints to body fields.
type tableInfo struct {
	singular string // "advertiser"
	table    string
	// fields maps a column (or what a constraint's name says) to the body field it comes from
	// (default: the column's own name).
	fields map[string]string
}

// where builds a parameterised WHERE clause.
type where struct {
	conds []string
	args  []any
}

// add appends a condition; each '?' in cond is the next argument's placeholder.
func (w *where) add(cond string, args ...any) {
	for _, a := range args {
		w.args = append(w.args, a)
		cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(w.args)), 1)
	}
	w.conds = append(w.conds, cond)
}

func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// pathID reads the {id} path value.
func pathID(r *http.Request, singular string) (int64, error) {
	s := r.PathValue("id")
	id, ok := parseID(s)
	if !ok {
		return 0, httpx.Errorf(http.StatusBadRequest, "invalid_id", "%s id must be a positive integer, got %s", singular, quote(s))
	}
	return id, nil
}

func (k *kind[R, B]) notFound(id int64) error {
	return httpx.Errorf(http.StatusNotFound, "not_found", "no %s with id %d", k.singular, id)
}

func (k *kind[R, B]) location(id int64) string {
	return "/v1/" + k.plural + "/" + strconv.FormatInt(id, 10)
}

// etag is the ETag of a version.
func etag(version int) string { return `"` + strconv.Itoa(version) + `"` }

// get reads one row; a missing one is a 404.
func (k *kind[R, B]) get(ctx context.Context, db sqlx.QueryerContext, id int64) (*R, error) {
	var row R
	err := sqlx.GetContext(ctx, db, &row, "SELECT "+k.cols+" FROM "+k.table+" WHERE id = $1", id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, k.notFound(id)
	}
	if err != nil {
		return nil, k.dbError(err, "reading")
	}
	return &row, nil
}

// list reads a page after cursor (0: the first) in id order, with the kind's filters.
func (k *kind[R, B]) list(ctx context.Context, db *sqlx.DB, q *query) ([]R, *string, error) {
	limit := q.limit()
	after := q.cursor(k.plural)
	var w where
	if k.filter != nil {
		k.filter(q, &w)
	}
	if q.err != nil {
		return nil, nil, q.err
	}
	if after > 0 {
		w.add("id > ?", after)
	}
	w.args = append(w.args, limit+1)
	stmt := "SELECT " + k.cols + " FROM " + k.table + w.sql() + " ORDER BY id LIMIT $" + strconv.Itoa(len(w.args))
	var rows []R
	if err := sqlx.SelectContext(ctx, db, &rows, stmt, w.args...); err != nil {
		return nil, nil, k.dbError(err, "listing")
	}
	var next *string
	if len(rows) > limit {
		rows = rows[:limit]
		id, _ := k.key(&rows[limit-1])
		c := EncodeCursor(k.plural, strconv.FormatInt(id, 10))
		next = &c
	}
	return rows, next, nil
}

// insert creates a row from r's values.
func (k *kind[R, B]) insert(ctx context.Context, db *sqlx.DB, r *R) (*R, error) {
	vals := k.values(r)
	ph := make([]string, len(vals))
	for i := range vals {
		ph[i] = "$" + strconv.Itoa(i+1)
	}
	stmt := "INSERT INTO " + k.table + " (" + strings.Join(k.insertCols, ", ") + ") VALUES (" +
		strings.Join(ph, ", ") + ") RETURNING " + k.cols
	var out R
	if err := db.GetContext(ctx, &out, stmt, vals...); err != nil {
		return nil, k.dbError(err, "creating")
	}
	return &out, nil
}

// update writes r's values if the row is still at version, bumping version and updated_at.
// ok is false when no row matched (deleted, or its version moved).
func (k *kind[R, B]) update(ctx context.Context, db *sqlx.DB, id int64, version int, r *R) (*R, bool, error) {
	vals := k.values(r)
	sets := make([]string, len(vals))
	for i, c := range k.insertCols {
		sets[i] = c + " = $" + strconv.Itoa(i+3)
	}
	stmt := "UPDATE " + k.table + " SET " + strings.Join(sets, ", ") +
		", version = version + 1, updated_at = now() WHERE id = $1 AND version = $2 RETURNING " + k.cols
	var out R
	err := db.GetContext(ctx, &out, stmt, append([]any{id, version}, vals...)...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, k.dbError(err, "updating")
	}
	return &out, true, nil
}

// dbError turns a database error into an answer: a constraint violation names its field (409 for a
// duplicate, 422 otherwise); an unreachable or overloaded database is a 503; the rest is internal.
func (k *tableInfo) dbError(err error, doing string) error {
	var pe *pq.Error
	if errors.As(err, &pe) {
		field := k.constraintField(pe)
		switch pe.Code {
		case "23505": // unique_violation
			return &httpx.Error{Status: http.StatusConflict, Code: "conflict", Field: field,
				Message: fmt.Sprintf("%s: another %s already has this value", field, k.singular)}
		case "23503": // foreign_key_violation
			return &httpx.Error{Status: http.StatusUnprocessableEntity, Code: "invalid_reference", Field: field,
				Message: fmt.Sprintf("%s: no such %s", field, strings.TrimSuffix(field, "_id"))}
		case "23514", "23502": // check_violation, not_null_violation
			return &httpx.Error{Status: http.StatusUnprocessableEntity, Code: "invalid_field", Field: field,
				Message: fmt.Sprintf("%s: refused by the database (constraint %s)", field, pe.Constraint)}
		}
		switch pe.Code.Class() {
		case "22": // data exception: a value the checks above let through
			return &httpx.Error{Status: http.StatusUnprocessableEntity, Code: "invalid_value", Field: pe.Column,
				Message: "a value was refused by the database: " + pe.Message}
		case "08", "53", "57", "40": // connection, resources, operator intervention, rollback
			return unavailable("PostgreSQL", err)
		}
	}
	if isUnavailable(err) {
		return unavailable("PostgreSQL", err)
	}
	return fmt.Errorf("%s %s: %w", doing, k.singular, err)
}

// constraintField names the body field a violated constraint is about.
func (k *tableInfo) constraintField(pe *pq.Error) string {
	col := pe.Column
	if col == "" {
		c := strings.TrimPrefix(pe.Constraint, k.table+"_")
		for _, suf := range []string{"_fkey", "_key", "_check"} {
			c = strings.TrimSuffix(c, suf)
		}
		if c == "check" || c == k.table { // a table CHECK: campaigns' end_at > start_at
			c = "end_at"
		}
		col = c
	}
	if f, ok := k.fields[col]; ok {
		return f
	}
	return col
}

// unavailable is a 503 naming the dependency; the cause goes to the log only.
func unavailable(what string, err error) error {
	return &unavailableError{answer: &httpx.Error{Status: http.StatusServiceUnavailable, Code: "unavailable",
		Message: what + " is unavailable; try again shortly"}, cause: fmt.Errorf("%s: %w", what, err)}
}

// unavailableError is a 503 answer that keeps its cause for the log.
type unavailableError struct {
	answer *httpx.Error
	cause  error
}

func (e *unavailableError) Error() string { return e.cause.Error() }

// Unwrap gives httpx.WriteError the answer.
func (e *unavailableError) Unwrap() error { return e.answer }

// isUnavailable reports whether err is a lost or refused connection or a timeout.
func isUnavailable(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// same reports whether two views show the same values.
func same(a, b any) bool { return reflect.DeepEqual(a, b) }
