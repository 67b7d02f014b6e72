package dataapi

import (
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/forumads/forumads/ads/feed"
	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/web/httpx"
)

// The rules below are schema.sql's CHECKs and ads/feed's validation (whose field checks are not
// exported; ads/feed's ParseMicros, FormatMicros, ParseTime and IsCountry are used as they are).
// As in the feed, text is trimmed of surrounding white space and enums are matched case-insensitively.

// Statuses each entity accepts; the first is the default.
var (
	advertiserStatuses = []string{"active", "paused", "archived"}
	campaignStatuses   = []string{"active", "paused", "ended", "archived"}
	adStatuses         = []string{"active", "paused", "rejected", "archived"}
	placements         = []string{"sidebar", "inline", "header", "footer"}
)

// Limits, as in the feed and the schema.
const (
	maxBidMicros    = 1000 * feed.MicrosPerUnit
	maxBudgetMicros = 1_000_000_000 * feed.MicrosPerUnit
	maxListEntries  = feed.MaxListEntries
)

// quote shows a value in a message: quoted, escaped, at most 80 characters.
func quote(v string) string {
	if utf8.RuneCountInString(v) > 80 {
		n := 0
		for i := range v {
			if n == 80 {
				return strconv.Quote(v[:i]) + "…"
			}
			n++
		}
	}
	return strconv.Quote(v)
}

// required refuses an absent or null field of a create.
func required[T any](field string, o Opt[T], what string) error {
	if !o.Set || o.Null {
		return httpx.FieldError(field, "required (%s)", what)
	}
	return nil
}

// notNull refuses null for a field that cannot be cleared.
func notNull[T any](field string, o Opt[T]) error {
	if o.Set && o.Null {
		return httpx.FieldError(field, "must not be null")
	}
	return nil
}

// firstError returns the first of errs that is not nil: a body's checks, in the order it reports
// them.
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// set writes check's value of o into dst when the body has the field (an absent one leaves dst as
// it is). A null o is checked as T's zero value: notNull refuses it first where null is not
// allowed.
func set[T, V any](field string, o Opt[T], dst *V, check func(field string, v T) (V, error)) error {
	if !o.Set {
		return nil
	}
	v, err := check(field, o.V)
	if err != nil {
		return err
	}
	*dst = v
	return nil
}

// setNullable is set for a column that null clears: a null o writes SQL NULL into dst.
func setNullable[T, V any](field string, o Opt[T], dst *sql.Null[V], check func(field string, v T) (V, error)) error {
	if o.Set && o.Null {
		*dst = sql.Null[V]{}
		return nil
	}
	var v V
	if err := set(field, o, &v, check); err != nil || !o.Set {
		return err
	}
	*dst = sql.Null[V]{V: v, Valid: true}
	return nil
}

// externalIDRule is what required says an external_id is.
const externalIDRule = "1-64 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'"

// checkExternalID matches ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$ (feed.ValidExternalID) and returns v.
func checkExternalID(field, v string) (string, error) {
	if !feed.ValidExternalID(v) {
		return "", httpx.FieldError(field, "must be 1-64 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-', starting with a letter or digit; got %s", quote(v))
	}
	return v, nil
}

// checkSlug refuses anything but a slug, and returns v.
func checkSlug(field, v string) (string, error) {
	if !rkeys.ValidSlug(v) {
		return "", httpx.FieldError(field, "must be 1-64 characters of a-z, 0-9, _ and -, starting with a letter or digit; got %s", quote(v))
	}
	return v, nil
}

// textRule is text with its limits, as a check for set.
func textRule(minLen, maxLen int, multiline bool) func(field, v string) (string, error) {
	return func(field, v string) (string, error) { return text(field, v, minLen, maxLen, multiline) }
}

// enumRule is enum over allowed, as a check for set.
func enumRule(allowed []string) func(field, v string) (string, error) {
	return func(field, v string) (string, error) { return enum(field, v, allowed) }
}

// moneyRule is money with its maximum, as a check for set.
func moneyRule(maxMicros int64) func(field string, d Decimal) (int64, error) {
	return func(field string, d Decimal) (int64, error) { return money(field, d, maxMicros) }
}

// text trims v and checks it: no NUL or control characters (a multi-line text may hold tabs and
// newlines), between min and max characters.
func text(field, v string, minLen, maxLen int, multiline bool) (string, error) {
	v = strings.TrimSpace(v)
	for _, c := range v {
		if c == 0 {
			return "", httpx.FieldError(field, "contains a NUL character")
		}
		if unicode.IsControl(c) && !(multiline && (c == '\n' || c == '\r' || c == '\t')) {
			return "", httpx.FieldError(field, "contains a control character (U+%04X)", c)
		}
	}
	n := utf8.RuneCountInString(v)
	switch {
	case n < minLen && minLen == 1:
		return "", httpx.FieldError(field, "must not be empty")
	case n < minLen || n > maxLen:
		return "", httpx.FieldError(field, "must be %d to %d characters, got %d", minLen, maxLen, n)
	}
	return v, nil
}

// enum matches v case-insensitively against allowed.
func enum(field, v string, allowed []string) (string, error) {
	l := strings.ToLower(strings.TrimSpace(v))
	for _, a := range allowed {
		if l == a {
			return a, nil
		}
	}
	return "", httpx.FieldError(field, "must be %s, got %s", orList(allowed), quote(v))
}

func orList(l []string) string {
	return strings.Join(l[:len(l)-1], ", ") + " or " + l[len(l)-1]
}

// checkEmail trims v and checks it as the feed does (feed.EmailProblem).
func checkEmail(field, v string) (string, error) {
	v = strings.TrimSpace(v)
	if problem := feed.EmailProblem(v); problem != "" {
		return "", httpx.FieldError(field, "%s", problem)
	}
	return v, nil
}

// checkURL trims v and checks it as the feed does (feed.URLProblem): an absolute http(s) URL with a
// host, no white space or control characters, at most 2048 characters.
func checkURL(field, v string) (string, error) {
	v = strings.TrimSpace(v)
	if problem := feed.URLProblem(v); problem != "" {
		return "", httpx.FieldError(field, "%s, got %s", problem, quote(v))
	}
	return v, nil
}

// money parses a decimal amount into micro-units: > 0 and ≤ maxMicros.
func money(field string, d Decimal, maxMicros int64) (int64, error) {
	v := strings.TrimSpace(string(d))
	m, err := feed.ParseMicros(v)
	switch {
	case errors.Is(err, feed.ErrTooPrecise):
		return 0, httpx.FieldError(field, "must have at most 6 decimal places, got %s", quote(v))
	case errors.Is(err, feed.ErrTooLarge) || (err == nil && m > maxMicros):
		return 0, httpx.FieldError(field, "must be at most %s, got %s", feed.FormatMicros(maxMicros), quote(v))
	case err != nil || m <= 0:
		return 0, httpx.FieldError(field, "must be a positive decimal such as \"0.35\", got %s", quote(v))
	}
	return m, nil
}

// timeValue parses a date (2026-03-01, midnight UTC) or an RFC 3339 time.
func timeValue(field, v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	t, err := feed.ParseTime(v)
	if err != nil {
		return time.Time{}, httpx.FieldError(field, "%v, got %s", err, quote(v))
	}
	return t, nil
}

// list checks a targeting list: at most 500 entries, none empty, each normalised by check.
func list(field string, l []string, check func(string) (string, bool), what string) ([]string, error) {
	if len(l) > maxListEntries {
		return nil, httpx.FieldError(field, "at most %d entries, got %d", maxListEntries, len(l))
	}
	out := make([]string, 0, len(l))
	for i, e := range l {
		e = strings.TrimSpace(e)
		if e == "" {
			return nil, httpx.FieldError(field, "entry %d is empty", i)
		}
		n, ok := check(e)
		if !ok {
			return nil, httpx.FieldError(field, "%s is not %s", quote(e), what)
		}
		out = append(out, n)
	}
	return out, nil
}

func slugEntry(e string) (string, bool) { return e, rkeys.ValidSlug(e) }

func countryEntry(e string) (string, bool) {
	u := strings.ToUpper(e)
	return u, feed.IsCountry(u)
}

func placementEntry(e string) (string, bool) {
	l := strings.ToLower(e)
	for _, p := range placements {
		if l == p {
			return p, true
		}
	}
	return "", false
}

// checkRef refuses an id that cannot name a row, and returns id.
func checkRef(field string, id int64) (int64, error) {
	if id <= 0 {
		return 0, httpx.FieldError(field, "must be a positive id, got %d", id)
	}
	return id, nil
}

// fmtTime writes a time in responses: RFC 3339 in UTC.
func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// errf is a shorthand for a 400 with a code.
func errf(code, format string, args ...any) error {
	return httpx.Errorf(400, code, "%s", fmt.Sprintf(format, args...))
}
