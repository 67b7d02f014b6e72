package dataapi

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/forumads/forumads/web/httpx"
)

// Pagination limits.
const (
	DefaultLimit = 50
	MaxLimit     = 200
	// maxCursor bounds a cursor's text (a forum slug is the longest key: 64 bytes).
	maxCursor = 160
)

var cursorEnc = base64.RawURLEncoding.Strict()

// EncodeCursor returns the opaque cursor of a list of resource (e.g. "ads") positioned after the
// row whose key is key: base64url of "v1|<resource>|<key>".
func EncodeCursor(resource, key string) string {
	return cursorEnc.EncodeToString([]byte("v1|" + resource + "|" + key))
}

// DecodeCursor reads a cursor made by EncodeCursor for the same resource and returns its key.
// Anything else (not base64url, another version or resource, an empty key) is an error. A cursor
// it accepts is the one EncodeCursor makes from the key: decoding is canonical.
func DecodeCursor(resource, cursor string) (string, error) {
	if len(cursor) > maxCursor {
		return "", errf("invalid_cursor", "cursor: not a cursor of this list (too long)")
	}
	raw, err := cursorEnc.DecodeString(cursor)
	if err != nil {
		return "", errf("invalid_cursor", "cursor: not a cursor of this list")
	}
	rest, ok := strings.CutPrefix(string(raw), "v1|")
	if !ok {
		return "", errf("invalid_cursor", "cursor: not a cursor of this list")
	}
	res, key, ok := strings.Cut(rest, "|")
	if !ok || res != resource {
		return "", errf("invalid_cursor", "cursor: not a cursor of the %s list", resource)
	}
	// The decoder skips line breaks: only the canonical text of a cursor is one.
	if key == "" || EncodeCursor(resource, key) != cursor {
		return "", errf("invalid_cursor", "cursor: not a cursor of this list")
	}
	return key, nil
}

// decodeIDCursor decodes a cursor whose key is a row id.
func decodeIDCursor(resource, cursor string) (int64, error) {
	key, err := DecodeCursor(resource, cursor)
	if err != nil {
		return 0, err
	}
	id, ok := parseID(key)
	if !ok {
		return 0, errf("invalid_cursor", "cursor: not a cursor of the %s list", resource)
	}
	return id, nil
}

// parseID reads a canonical positive decimal id (no sign, no leading zero).
func parseID(s string) (int64, bool) {
	if s == "" || s[0] < '1' || s[0] > '9' || len(s) > 19 {
		return 0, false
	}
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil && id > 0
}

// query reads a list's query parameters strictly: each at most once, only known names.
type query struct {
	v   url.Values
	err error
}

func newQuery(r *http.Request, known ...string) *query {
	v, err := url.ParseQuery(r.URL.RawQuery)
	q := &query{v: v}
	if err != nil {
		q.err = errf("invalid_query", "the query string is malformed: %v", err)
		return q
	}
	for name, vals := range v {
		found := false
		for _, k := range known {
			if name == k {
				found = true
				break
			}
		}
		if !found {
			q.err = errf("unknown_parameter", "%s: unknown query parameter (this list takes %s)", quote(name), strings.Join(known, ", "))
			return q
		}
		if len(vals) > 1 {
			q.err = errf("invalid_parameter", "%s: given %d times, at most once", name, len(vals))
			return q
		}
	}
	return q
}

// get returns a parameter's value and whether it was given.
func (q *query) get(name string) (string, bool) {
	vals, ok := q.v[name]
	if !ok {
		return "", false
	}
	return vals[0], true
}

func (q *query) fail(name, format string, args ...any) {
	if q.err == nil {
		e := httpx.Errorf(http.StatusBadRequest, "invalid_parameter", name+": "+format, args...)
		e.Field = name
		q.err = e
	}
}

// limit reads ?limit= (1..200, default 50).
func (q *query) limit() int {
	s, ok := q.get("limit")
	if !ok {
		return DefaultLimit
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxLimit {
		q.fail("limit", "must be an integer from 1 to %d, got %s", MaxLimit, quote(s))
		return 0
	}
	return n
}

// id reads a positive id filter; 0 when absent.
func (q *query) id(name string) int64 {
	s, ok := q.get(name)
	if !ok {
		return 0
	}
	id, valid := parseID(s)
	if !valid {
		q.fail(name, "must be a positive integer id, got %s", quote(s))
	}
	return id
}

// enum reads a filter that must be one of allowed; "" when absent.
func (q *query) enum(name string, allowed []string) string {
	s, ok := q.get(name)
	if !ok {
		return ""
	}
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	q.fail(name, "must be %s, got %s", orList(allowed), quote(s))
	return ""
}

// text reads a free-text filter of at most maxLen characters without control characters.
func (q *query) text(name string, maxLen int) (string, bool) {
	s, ok := q.get(name)
	if !ok {
		return "", false
	}
	if _, err := text(name, s, 1, maxLen, false); err != nil || strings.TrimSpace(s) != s {
		q.fail(name, "must be 1 to %d characters without control characters or surrounding spaces, got %s", maxLen, quote(s))
		return "", false
	}
	return s, true
}

// cursor reads ?cursor= for a list keyed by id; 0 when absent.
func (q *query) cursor(resource string) int64 {
	s, ok := q.get("cursor")
	if !ok {
		return 0
	}
	id, err := decodeIDCursor(resource, s)
	if err != nil && q.err == nil {
		q.err = err
	}
	return id
}

// page is a list answer.
type page struct {
	Items      []any   `json:"items"`
	NextCursor *string `json:"next_cursor"`
}
