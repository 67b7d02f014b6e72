package feed

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/forumads/forumads/ads/rkeys"
)

// rawRow is one row's fields before validation. A Reader reuses one.
type rawRow struct {
	line   int64
	raw    []byte
	has    [nFields]bool // a non-empty value (or a list) was given
	val    [nFields]string
	list   [nFields][]string // JSON arrays
	isList [nFields]bool
	bad    [nFields]bool // the field already has an error
	broken bool          // the row could not be split into fields
	errs   []fieldErr
	kind   Kind
	extID  string
}

type fieldErr struct{ field, reason string }

func (rr *rawRow) reset(line int64, raw []byte) {
	*rr = rawRow{line: line, raw: raw, errs: rr.errs[:0]}
}

// set records a field's text: checked for UTF-8, trimmed.
func (rr *rawRow) set(f field, v string) {
	if !utf8.ValidString(v) {
		rr.fieldErr(f, fmt.Sprintf("%s: not valid UTF-8 text", fieldNames[f]))
		return
	}
	v = strings.TrimSpace(v)
	if v != "" {
		rr.has[f] = true
		rr.val[f] = v
	}
}

func (rr *rawRow) setList(f field, l []string) {
	rr.has[f] = len(l) > 0
	rr.isList[f] = true
	rr.list[f] = l
}

func (rr *rawRow) fieldErr(f field, reason string) {
	rr.bad[f] = true
	rr.errs = append(rr.errs, fieldErr{field: fieldNames[f], reason: reason})
}

// rowErr records a fault of the row as a whole: its fields are not validated.
func (rr *rawRow) rowErr(fieldName, reason string) {
	rr.broken = true
	rr.errs = append(rr.errs, fieldErr{field: fieldName, reason: reason})
}

func (rr *rawRow) issues() []Issue {
	raw := SafeText(string(rr.raw[:min(len(rr.raw), MaxRawBytes+8)]), MaxRawBytes)
	ext := SafeText(rr.extID, 256)
	out := make([]Issue, len(rr.errs))
	for i, e := range rr.errs {
		out[i] = Issue{Line: rr.line, Kind: rr.kind, ExternalID: ext, Field: e.field, Reason: e.reason, Raw: raw}
	}
	return out
}

// applies[f] holds the kinds a field belongs to.
var applies = [nFields][]Kind{
	fKind:        {KindAdvertiser, KindCampaign, KindAd, KindForum},
	fExternalID:  {KindAdvertiser, KindCampaign, KindAd, KindForum},
	fAdvertiser:  {KindCampaign},
	fCampaign:    {KindAd},
	fName:        {KindAdvertiser, KindCampaign, KindForum},
	fEmail:       {KindAdvertiser},
	fStatus:      {KindAdvertiser, KindCampaign, KindAd},
	fBid:         {KindCampaign},
	fDailyBudget: {KindCampaign},
	fStartAt:     {KindCampaign},
	fEndAt:       {KindCampaign},
	fForums:      {KindCampaign},
	fCategories:  {KindCampaign},
	fCountries:   {KindCampaign},
	fPlacements:  {KindCampaign},
	fTitle:       {KindAd},
	fBody:        {KindAd},
	fImageURL:    {KindAd},
	fClickURL:    {KindAd},
	fCategory:    {KindForum},
}

// Statuses each kind accepts; the first is the default.
var (
	advertiserStatuses = []string{"active", "paused", "archived"}
	campaignStatuses   = []string{"active", "paused", "ended", "archived"}
	adStatuses         = []string{"active", "paused", "rejected", "archived"}
	placements         = []string{"sidebar", "inline", "header", "footer"}
)

// Limits of money fields, in micro-units.
const (
	maxBidMicros    = 1000 * MicrosPerUnit
	maxBudgetMicros = 1_000_000_000 * MicrosPerUnit
)

func kindIndex(k Kind) int {
	switch k {
	case KindForum:
		return 0
	case KindAdvertiser:
		return 1
	case KindCampaign:
		return 2
	}
	return 3
}

func article(k Kind) string {
	if k == KindAdvertiser || k == KindAd {
		return "an " + string(k)
	}
	return "a " + string(k)
}

// validate checks a collected row and returns it, or nil with rr.errs set.
func (r *Reader) validate(rr *rawRow) *Row {
	kindOK := false
	if rr.has[fKind] {
		k := Kind(strings.ToLower(rr.val[fKind]))
		switch k {
		case KindAdvertiser, KindCampaign, KindAd, KindForum:
			rr.kind, kindOK = k, true
		default:
			if !rr.broken {
				rr.fieldErr(fKind, fmt.Sprintf("kind: must be advertiser, campaign, ad or forum, got %s", quote(rr.val[fKind])))
			}
		}
	} else if !rr.bad[fKind] && !rr.broken {
		rr.fieldErr(fKind, "kind: required (advertiser, campaign, ad or forum)")
	}
	rr.extID = rr.val[fExternalID]
	if rr.broken {
		return nil
	}
	id := rr.val[fExternalID]
	switch {
	case rr.bad[fExternalID]:
	case !rr.has[fExternalID]:
		rr.fieldErr(fExternalID, "external_id: required")
	case rr.kind == KindForum && !rkeys.ValidSlug(id):
		rr.fieldErr(fExternalID, fmt.Sprintf("external_id: a forum's slug must be 1-64 characters of a-z, 0-9, _ and -, starting with a letter or digit; got %s", quote(id)))
	case rr.kind != KindForum && !ValidExternalID(id):
		rr.fieldErr(fExternalID, fmt.Sprintf("external_id: must be 1-64 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-', starting with a letter or digit; got %s", quote(id)))
	}
	if !kindOK {
		return nil
	}
	for f := fAdvertiser; f < nFields; f++ {
		if (rr.has[f] || rr.bad[f]) && !belongs(f, rr.kind) {
			if !rr.bad[f] {
				rr.fieldErr(f, fmt.Sprintf("%s: not a field of %s row (leave it empty)", fieldNames[f], article(rr.kind)))
			}
		}
	}
	row := &Row{Line: rr.line, Kind: rr.kind}
	switch rr.kind {
	case KindAdvertiser:
		a := &Advertiser{ExternalID: id}
		a.Name = textField(rr, fName, 200, true, false)
		if rr.has[fEmail] && !rr.bad[fEmail] {
			if reason := EmailProblem(rr.val[fEmail]); reason != "" {
				rr.fieldErr(fEmail, "email: "+reason)
			} else {
				a.Email = rr.val[fEmail]
			}
		}
		a.Status = enumField(rr, fStatus, advertiserStatuses)
		row.Advertiser = a
	case KindCampaign:
		c := &Campaign{ExternalID: id}
		c.Advertiser = refField(rr, fAdvertiser, KindAdvertiser)
		c.Name = textField(rr, fName, 200, true, false)
		c.Status = enumField(rr, fStatus, campaignStatuses)
		c.BidMicros = moneyField(rr, fBid, maxBidMicros, "1000")
		c.DailyBudgetMicros = moneyField(rr, fDailyBudget, maxBudgetMicros, "1000000000")
		c.StartAt = timeField(rr, fStartAt, true)
		c.EndAt = timeField(rr, fEndAt, false)
		if !c.StartAt.IsZero() && !c.EndAt.IsZero() && !c.EndAt.After(c.StartAt) {
			rr.fieldErr(fEndAt, fmt.Sprintf("end_at: must be after start_at (%s), got %s", formatTime(c.StartAt), quote(rr.val[fEndAt])))
		}
		c.Forums = listField(rr, fForums, slugEntry("a forum slug"))
		c.Categories = listField(rr, fCategories, slugEntry("a category"))
		c.Countries = listField(rr, fCountries, countryEntry)
		c.Placements = listField(rr, fPlacements, placementEntry)
		row.Campaign = c
	case KindAd:
		a := &Ad{ExternalID: id}
		a.Campaign = refField(rr, fCampaign, KindCampaign)
		a.Title = textField(rr, fTitle, 90, true, false)
		a.Body = textField(rr, fBody, 300, false, true)
		a.ImageURL = urlField(rr, fImageURL, false)
		a.ClickURL = urlField(rr, fClickURL, true)
		a.Status = enumField(rr, fStatus, adStatuses)
		row.Ad = a
	case KindForum:
		f := &Forum{Slug: id}
		f.Name = textField(rr, fName, 200, true, false)
		if !rr.has[fCategory] {
			if !rr.bad[fCategory] {
				rr.fieldErr(fCategory, "category: required")
			}
		} else if v := rr.val[fCategory]; !rkeys.ValidSlug(v) {
			rr.fieldErr(fCategory, fmt.Sprintf("category: must be 1-64 characters of a-z, 0-9, _ and -, starting with a letter or digit; got %s", quote(v)))
		} else {
			f.Category = v
		}
		row.Forum = f
	}
	if len(rr.errs) > 0 {
		return nil
	}
	seen := r.seen[kindIndex(rr.kind)]
	if first, dup := seen[id]; dup {
		rr.fieldErr(fExternalID, fmt.Sprintf("external_id: duplicate %s %q: its first row, on line %d, is the one kept", rr.kind, id, first))
		return nil
	}
	seen[id] = rr.line
	row.Raw = SafeText(string(rr.raw[:min(len(rr.raw), MaxRawBytes+8)]), MaxRawBytes)
	return row
}

func belongs(f field, k Kind) bool {
	for _, x := range applies[f] {
		if x == k {
			return true
		}
	}
	return false
}

// quote shows a value in a reason: quoted, escaped, shortened to 80 characters.
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

func textField(rr *rawRow, f field, max int, required, multiline bool) string {
	name := fieldNames[f]
	if rr.bad[f] {
		return ""
	}
	if !rr.has[f] {
		if required {
			rr.fieldErr(f, name+": required")
		}
		return ""
	}
	v := rr.val[f]
	if reason := checkText(v, multiline); reason != "" {
		rr.fieldErr(f, name+": "+reason)
		return ""
	}
	if n := utf8.RuneCountInString(v); n > max {
		rr.fieldErr(f, fmt.Sprintf("%s: must be at most %d characters, got %d", name, max, n))
		return ""
	}
	return v
}

// checkText refuses NUL and control characters (a multi-line text may hold tabs and newlines).
func checkText(v string, multiline bool) string {
	for _, c := range v {
		if c == 0 {
			return "contains a NUL character"
		}
		if unicode.IsControl(c) && !(multiline && (c == '\n' || c == '\r' || c == '\t')) {
			return fmt.Sprintf("contains a control character (U+%04X)", c)
		}
	}
	return ""
}

func enumField(rr *rawRow, f field, allowed []string) string {
	if rr.bad[f] {
		return ""
	}
	if !rr.has[f] {
		return allowed[0]
	}
	v := strings.ToLower(rr.val[f])
	for _, a := range allowed {
		if v == a {
			return a
		}
	}
	rr.fieldErr(f, fmt.Sprintf("%s: must be %s, got %s", fieldNames[f], orList(allowed), quote(rr.val[f])))
	return ""
}

func orList(l []string) string {
	return strings.Join(l[:len(l)-1], ", ") + " or " + l[len(l)-1]
}

func refField(rr *rawRow, f field, k Kind) string {
	name := fieldNames[f]
	if rr.bad[f] {
		return ""
	}
	if !rr.has[f] {
		rr.fieldErr(f, fmt.Sprintf("%s: required (the external_id of the %s)", name, k))
		return ""
	}
	if v := rr.val[f]; !ValidExternalID(v) {
		rr.fieldErr(f, fmt.Sprintf("%s: must be the external_id of %s, got %s", name, article(k), quote(v)))
		return ""
	}
	return rr.val[f]
}

func moneyField(rr *rawRow, f field, max int64, maxText string) int64 {
	name := fieldNames[f]
	if rr.bad[f] {
		return 0
	}
	if !rr.has[f] {
		rr.fieldErr(f, name+": required (a decimal amount such as 0.35)")
		return 0
	}
	v := rr.val[f]
	m, err := ParseMicros(v)
	switch {
	case errors.Is(err, ErrTooPrecise):
		rr.fieldErr(f, fmt.Sprintf("%s: must have at most 6 decimal places, got %s", name, quote(v)))
	case errors.Is(err, ErrTooLarge) || (err == nil && m > max):
		rr.fieldErr(f, fmt.Sprintf("%s: must be at most %s, got %s", name, maxText, quote(v)))
	case err != nil || m <= 0:
		rr.fieldErr(f, fmt.Sprintf("%s: must be a positive decimal, got %s", name, quote(v)))
	default:
		return m
	}
	return 0
}

// ParseTime parses a feed time: RFC 3339 (any offset, at most microsecond precision) or
// YYYY-MM-DD (midnight UTC), in the years 1970..9999. The result is in UTC.
func ParseTime(v string) (time.Time, error) {
	var t time.Time
	var err error
	if len(v) == 10 {
		t, err = time.Parse(time.DateOnly, v)
	} else {
		t, err = time.Parse(time.RFC3339Nano, v)
	}
	if err != nil {
		return time.Time{}, errors.New("must be a date (2026-03-01) or an RFC 3339 time (2026-03-01T09:00:00Z)")
	}
	t = t.UTC()
	if t.Year() < 1970 || t.Year() > 9999 {
		return time.Time{}, errors.New("must be in the years 1970 to 9999")
	}
	if t.Nanosecond()%1000 != 0 {
		return time.Time{}, errors.New("must not be more precise than a microsecond")
	}
	return t, nil
}

func formatTime(t time.Time) string {
	t = t.UTC()
	if t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0 {
		return t.Format(time.DateOnly)
	}
	return t.Format(time.RFC3339Nano)
}

func timeField(rr *rawRow, f field, required bool) time.Time {
	name := fieldNames[f]
	if rr.bad[f] {
		return time.Time{}
	}
	if !rr.has[f] {
		if required {
			rr.fieldErr(f, name+": required (a date such as 2026-03-01 or an RFC 3339 time)")
		}
		return time.Time{}
	}
	t, err := ParseTime(rr.val[f])
	if err != nil {
		rr.fieldErr(f, fmt.Sprintf("%s: %v, got %s", name, err, quote(rr.val[f])))
		return time.Time{}
	}
	return t
}

// listField splits and checks a targeting list; each entry goes through check, which returns
// the normalized entry or a reason.
func listField(rr *rawRow, f field, check func(string) (string, string)) []string {
	name := fieldNames[f]
	if rr.bad[f] || !rr.has[f] {
		return []string{}
	}
	var entries []string
	if rr.isList[f] {
		entries = rr.list[f]
	} else {
		entries = strings.Split(rr.val[f], "|")
	}
	if len(entries) > MaxListEntries {
		rr.fieldErr(f, fmt.Sprintf("%s: at most %d entries, got %d", name, MaxListEntries, len(entries)))
		return []string{}
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			what := quote(rr.val[f])
			if rr.isList[f] {
				what = "the list"
			}
			rr.fieldErr(f, fmt.Sprintf("%s: empty entry in %s (separate entries with a single |)", name, what))
			return []string{}
		}
		n, reason := check(e)
		if reason != "" {
			rr.fieldErr(f, fmt.Sprintf("%s: %s %s", name, quote(e), reason))
			return []string{}
		}
		out = append(out, n)
	}
	return out
}

func slugEntry(what string) func(string) (string, string) {
	return func(e string) (string, string) {
		if !rkeys.ValidSlug(e) {
			return "", "is not " + what + " (1-64 characters of a-z, 0-9, _ and -, starting with a letter or digit)"
		}
		return e, ""
	}
}

func countryEntry(e string) (string, string) {
	u := strings.ToUpper(e)
	if !IsCountry(u) {
		return "", "is not an ISO 3166-1 alpha-2 country code (such as US, GB, DE)"
	}
	return u, ""
}

func placementEntry(e string) (string, string) {
	l := strings.ToLower(e)
	for _, p := range placements {
		if l == p {
			return p, ""
		}
	}
	return "", "is not a placement (" + orList(placements) + ")"
}

func urlField(rr *rawRow, f field, required bool) string {
	name := fieldNames[f]
	if rr.bad[f] {
		return ""
	}
	if !rr.has[f] {
		if required {
			rr.fieldErr(f, name+": required (an http:// or https:// URL)")
		}
		return ""
	}
	v := rr.val[f]
	if reason := URLProblem(v); reason != "" {
		rr.fieldErr(f, fmt.Sprintf("%s: %s, got %s", name, reason, quote(v)))
		return ""
	}
	return v
}

// URLProblem says what is wrong with v as an ad's image or click URL ("" = nothing): it must be an
// absolute http:// or https:// URL with a host, without white space or control characters, of at
// most 2048 characters (schema.sql's CHECK, stricter). The data API checks with it too.
func URLProblem(v string) string {
	if n := utf8.RuneCountInString(v); n > 2048 {
		return fmt.Sprintf("must be at most 2048 characters (it has %d)", n)
	}
	if !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
		return "must start with http:// or https://"
	}
	for _, c := range v {
		if unicode.IsSpace(c) || unicode.IsControl(c) || c == '\u0085' || c == '\u00a0' {
			return "must not contain spaces or control characters (encode them as %20)"
		}
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		return "must be an absolute URL with a host"
	}
	return ""
}

// EmailProblem says what is wrong with v as an advertiser's email ("" = nothing): schema.sql's
// ^[^@\s]+@[^@\s]+\.[^@\s]+$ (with Unicode white space), at most 254 characters.
func EmailProblem(v string) string {
	bad := fmt.Sprintf("must be an address such as name@example.com, got %s", quote(v))
	if utf8.RuneCountInString(v) > 254 {
		return "must be at most 254 characters"
	}
	for _, c := range v {
		if unicode.IsSpace(c) || unicode.IsControl(c) {
			return bad
		}
	}
	at := strings.IndexByte(v, '@')
	if at <= 0 || strings.Count(v, "@") != 1 {
		return bad
	}
	domain := v[at+1:]
	if len(domain) < 3 || !strings.Contains(domain[1:len(domain)-1], ".") {
		return bad
	}
	return ""
}

// ValidExternalID reports whether s is an external id as schema.sql has it:
// ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$.
func ValidExternalID(s string) bool {
	if len(s) == 0 || len(s) > 64 || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '.' && c != '_' && c != ':' && c != '-' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}
