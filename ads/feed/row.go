package feed

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind is the entity a row describes.
type Kind string

// The kinds of rows, in the order an importer applies them (parents first).
const (
	KindForum      Kind = "forum"
	KindAdvertiser Kind = "advertiser"
	KindCampaign   Kind = "campaign"
	KindAd         Kind = "ad"
)

// Kinds lists every kind in dependency order: forums, advertisers, campaigns, ads.
func Kinds() []Kind { return []Kind{KindForum, KindAdvertiser, KindCampaign, KindAd} }

// Format is a feed's encoding.
type Format string

// The feed formats.
const (
	CSV   Format = "csv"
	JSONL Format = "jsonl"
)

// MaxRowBytes bounds one row: a JSON line, or a CSV row with all the lines it spans.
const MaxRowBytes = 1 << 20

// MaxRawBytes bounds the raw text of a row kept in [Row.Raw] and [Issue.Raw].
const MaxRawBytes = 2048

// MaxListEntries bounds each targeting list of a campaign.
const MaxListEntries = 500

// Advertiser is a valid advertiser row.
type Advertiser struct {
	ExternalID string
	Name       string
	Email      string // "" when none
	Status     string
}

// Campaign is a valid campaign row.
type Campaign struct {
	ExternalID        string
	Advertiser        string // the advertiser's external id
	Name              string
	Status            string
	BidMicros         int64
	DailyBudgetMicros int64
	StartAt           time.Time // UTC
	EndAt             time.Time // UTC; zero when the campaign has no end
	// The targeting lists are never nil; empty means any.
	Forums     []string
	Categories []string
	Countries  []string // upper case
	Placements []string // lower case
}

// Ad is a valid ad (creative) row.
type Ad struct {
	ExternalID string
	Campaign   string // the campaign's external id
	Title      string
	Body       string
	ImageURL   string // "" when none
	ClickURL   string
	Status     string
}

// Forum is a valid forum row.
type Forum struct {
	Slug     string
	Name     string
	Category string
}

// Row is one valid feed row. Exactly one of Advertiser, Campaign, Ad and Forum is set, the one
// Kind names.
type Row struct {
	Line       int64  // the line where the row starts (1-based)
	Raw        string // the row as read: valid UTF-8, at most MaxRawBytes
	Kind       Kind
	Advertiser *Advertiser
	Campaign   *Campaign
	Ad         *Ad
	Forum      *Forum
}

// ExternalID is the row's external id (a forum's slug).
func (r *Row) ExternalID() string {
	switch {
	case r.Advertiser != nil:
		return r.Advertiser.ExternalID
	case r.Campaign != nil:
		return r.Campaign.ExternalID
	case r.Ad != nil:
		return r.Ad.ExternalID
	case r.Forum != nil:
		return r.Forum.Slug
	}
	return ""
}

// Issue is a fault found in a row (the row is refused) or, when Notice is set, something the
// operator should know that did not refuse the row (an unknown field that was ignored).
type Issue struct {
	Line       int64  // where the row starts (1-based)
	Kind       Kind   // "" when the row did not name a valid kind
	ExternalID string // as the row gave it (made valid UTF-8, shortened); "" when none
	Field      string // the field at fault; "" when the fault is the row as a whole
	Reason     string // for an operator: `bid: must be a positive decimal, got "abc"`
	Raw        string // the row as read: valid UTF-8, at most MaxRawBytes
	Notice     bool   // the row was not refused
}

// Error formats the issue on one line.
func (i Issue) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "line %d", i.Line)
	if i.Kind != "" {
		fmt.Fprintf(&b, ": %s", i.Kind)
	}
	if i.ExternalID != "" {
		fmt.Fprintf(&b, " %q", i.ExternalID)
	}
	b.WriteString(": ")
	b.WriteString(i.Reason)
	return b.String()
}

// Record is what [Reader.Next] returns: a valid row (Row set), a refused row (Errors set) or,
// for a CSV header with unknown columns, only notices.
type Record struct {
	Row     *Row
	Errors  []Issue // why the row was refused; empty when Row is set
	Notices []Issue // unknown fields seen for the first time in the feed
}

// IsRow reports whether the record is a row of the feed (valid or refused), as opposed to a
// header's notices.
func (r Record) IsRow() bool { return r.Row != nil || len(r.Errors) > 0 }

// SafeText returns s made fit for a PostgreSQL text column: invalid UTF-8 and NUL become
// U+FFFD, and the result is cut at a character boundary to at most maxBytes bytes.
func SafeText(s string, maxBytes int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	if len(s) <= maxBytes {
		return s
	}
	cut := maxBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
