// Package rkeys is the layout of the ads data in Redis: the contract between the tasks that write it
// (ads.score, ads.warm_cache, ads.warm_timeseries) and the serving API that reads it. Every key
// starts with a configurable prefix (ads_key_prefix, default "ads:") so tests and several
// deployments can share one Redis.
//
//	<p>rank:<placement>:forum:<slug>     string  JSON []Candidate for a slot on that forum (best first)
//	<p>rank:<placement>:category:<cat>   string  JSON []Candidate for a forum of that category
//	<p>rank:<placement>:default          string  JSON []Candidate for a forum nothing targets
//	<p>rank:keys                         set     the rank keys the last scoring wrote
//	<p>rank:meta                         hash    generation, generated_at (RFC 3339), ads, keys
//	<p>rank:tmp:<token>:<n>              string  a list being written by ads.score (1 h TTL); renamed
//	                                             into place in the swap
//	<p>creative:<ad id>                  string  JSON Creative
//	<p>creative:ids                      set     the ad ids whose creative is warmed
//	<p>switches                          hash    switch name -> JSON Switch
//	<p>ctr:<YYYYMMDDHH>                  hash    CounterField(ad, forum, kind) -> count, one UTC hour
//	<p>ctr:hours                         zset    counter hash keys, score = the hour's unix time
//	<p>ctr:flushing:<YYYYMMDDHH>:<id>    hash    a closed hour being moved to PostgreSQL
//	<p>ctr:pending                       set     the ctr:flushing keys not yet fully flushed
//	<p>ctr:rejected                      hash    counters the flush refused (bad field, deleted ad),
//	                                             kept for an operator; never expires
//	<p>ts:<ad id>                        string  JSON Series, the ad's recent delivery for the dashboard
//
// A serving request reads with at most two round trips: (1) the generation in rank:meta, the
// switches and, when its cache is older than that generation, the forum's and the default rank
// lists, in one pipeline; (2) MGET the creatives of the chosen ads it has not cached (web/serving).
package rkeys

import (
	"strconv"
	"strings"
	"time"
)

// DefaultPrefix is the prefix of every key when ads_key_prefix is not set.
const DefaultPrefix = "ads:"

// Placements are the slot positions a campaign can target; empty targeting means all of them.
var Placements = []string{"sidebar", "inline", "header", "footer"}

// MaxCandidates is the most candidates one rank list holds.
const MaxCandidates = 200

// Keys builds the key names under one prefix.
type Keys struct{ Prefix string }

// New returns the keys under prefix (DefaultPrefix when empty).
func New(prefix string) Keys {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return Keys{Prefix: prefix}
}

// RankForum is the rank list for a slot on forum slug.
func (k Keys) RankForum(placement, slug string) string {
	return k.Prefix + "rank:" + placement + ":forum:" + slug
}

// RankCategory is the rank list for a slot on a forum of category cat.
func (k Keys) RankCategory(placement, cat string) string {
	return k.Prefix + "rank:" + placement + ":category:" + cat
}

// RankDefault is the rank list for a slot on a forum no campaign targets.
func (k Keys) RankDefault(placement string) string {
	return k.Prefix + "rank:" + placement + ":default"
}

// RankIndex is the set of rank keys the last scoring wrote (so the next one can remove stale ones).
func (k Keys) RankIndex() string { return k.Prefix + "rank:keys" }

// RankMeta is the hash describing the last scoring.
func (k Keys) RankMeta() string { return k.Prefix + "rank:meta" }

// Creative is the key of ad id's creative.
func (k Keys) Creative(id int64) string { return k.Prefix + "creative:" + strconv.FormatInt(id, 10) }

// CreativeIndex is the set of ad ids whose creative is warmed.
func (k Keys) CreativeIndex() string { return k.Prefix + "creative:ids" }

// Switches is the hash of feature switches.
func (k Keys) Switches() string { return k.Prefix + "switches" }

// HourFormat is how an hour appears in counter keys (UTC).
const HourFormat = "2006010215"

// Counters is the hash of delivery counters of the UTC hour holding t.
func (k Keys) Counters(t time.Time) string {
	return k.Prefix + "ctr:" + t.UTC().Truncate(time.Hour).Format(HourFormat)
}

// CounterHours is the sorted set of counter hashes (score: the hour's unix seconds). The serving API
// adds a hash here (ZADD NX) when it increments it.
func (k Keys) CounterHours() string { return k.Prefix + "ctr:hours" }

// CounterBatch is the name a closed hour's hash is renamed to while it is flushed; id makes it unique.
func (k Keys) CounterBatch(hour time.Time, id string) string {
	return k.Prefix + "ctr:flushing:" + hour.UTC().Format(HourFormat) + ":" + id
}

// CounterRejected is the hash of counters the flush refused, kept for an operator to look at.
func (k Keys) CounterRejected() string { return k.Prefix + "ctr:rejected" }

// CounterPending is the set of CounterBatch keys renamed but not yet removed after their flush.
func (k Keys) CounterPending() string { return k.Prefix + "ctr:pending" }

// Series is the key of ad id's recent delivery series.
func (k Keys) Series(id int64) string { return k.Prefix + "ts:" + strconv.FormatInt(id, 10) }

// Counter kinds: the last part of a counter field.
const (
	Impressions = 'i'
	Clicks      = 'c'
	Spend       = 's' // micros
)

// CounterField is the field of ad's kind counter on forum (forum slugs hold no ':').
func CounterField(ad int64, forum string, kind byte) string {
	return strconv.FormatInt(ad, 10) + ":" + forum + ":" + string(kind)
}

// ParseCounterField splits a counter field; ok is false for anything CounterField cannot produce.
func ParseCounterField(f string) (ad int64, forum string, kind byte, ok bool) {
	first := strings.IndexByte(f, ':')
	last := strings.LastIndexByte(f, ':')
	if first <= 0 || last == first || last != len(f)-2 {
		return 0, "", 0, false
	}
	if f[0] < '1' || f[0] > '9' { // canonical: no sign, no leading zero
		return 0, "", 0, false
	}
	ad, err := strconv.ParseInt(f[:first], 10, 64)
	if err != nil || ad <= 0 {
		return 0, "", 0, false
	}
	kind = f[last+1]
	if kind != Impressions && kind != Clicks && kind != Spend {
		return 0, "", 0, false
	}
	forum = f[first+1 : last]
	if forum == "" || strings.IndexByte(forum, ':') >= 0 {
		return 0, "", 0, false
	}
	return ad, forum, kind, true
}

// ParseHour reads an hour written with HourFormat.
func ParseHour(s string) (time.Time, error) { return time.Parse(HourFormat, s) }

// Candidate is one ad in a rank list.
type Candidate struct {
	Ad         int64 `json:"ad"`
	Campaign   int64 `json:"c"`
	Advertiser int64 `json:"a"`
	// EV is the expected value of one impression in micros: estimated CTR x bid.
	EV float64 `json:"ev"`
	// CTR is the estimated click-through rate EV came from.
	CTR float64 `json:"ctr"`
	// Bid is the cost per click in micros, charged (counted as spend) when the ad is clicked.
	Bid int64 `json:"b"`
	// Countries the campaign targets (ISO alpha-2, upper case); empty: any country.
	Countries []string `json:"co,omitempty"`
}

// Creative is what the embed renders for one ad.
type Creative struct {
	ID           int64  `json:"id"`
	CampaignID   int64  `json:"campaign_id"`
	AdvertiserID int64  `json:"advertiser_id"`
	Advertiser   string `json:"advertiser"`
	Title        string `json:"title"`
	Body         string `json:"body"`
	ImageURL     string `json:"image_url,omitempty"`
	ClickURL     string `json:"click_url"`
}

// Switch is one feature switch as warmed.
type Switch struct {
	Enabled bool `json:"enabled"`
	Value   any  `json:"value,omitempty"`
}

// Point is one bucket of a series.
type Point struct {
	T           time.Time `json:"t"` // the bucket's start (UTC)
	Impressions int64     `json:"i"`
	Clicks      int64     `json:"c"`
	Spend       int64     `json:"s"` // micros
}

// Series is an ad's recent delivery: 24 hourly and 7 daily buckets, oldest first, including the
// current (open) hour and day: flushed stats plus the open hour's Redis counters when reading them
// is cheap (see ads/timeseries).
type Series struct {
	Ad          int64     `json:"ad"`
	GeneratedAt time.Time `json:"generated_at"`
	Hourly      []Point   `json:"hourly"`
	Daily       []Point   `json:"daily"`
}

// ValidSlug reports whether s is a forum or category slug as schema.sql's CHECK has it:
// ^[a-z0-9][a-z0-9_-]{0,63}$. Only such forums appear in keys and counter fields.
func ValidSlug(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '_' || c == '-')) {
			return false
		}
	}
	return true
}
