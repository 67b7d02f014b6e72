package timeseries

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/forumads/forumads/ads/rkeys"
)

// counter is one parsed counter of a counter hash.
type counter struct {
	ad    int64
	forum string
	kind  byte
	n     int64
}

// parseCounter checks one field and value of a counter hash. The field must be exactly what
// rkeys.CounterField makes (ParseCounterField refuses "+7" or "007" for ad 7, which would make two
// fields of one counter), with a forum slug as the forums table allows; the value a non-negative
// integer.
func parseCounter(field, value string) (counter, error) {
	ad, forum, kind, ok := rkeys.ParseCounterField(field)
	if !ok {
		return counter{}, fmt.Errorf("field %q is not <ad id>:<forum>:<i|c|s>", field)
	}
	if !rkeys.ValidSlug(forum) {
		return counter{}, fmt.Errorf("field %q: forum %q is not a forum slug ([a-z0-9][a-z0-9_-]{0,63})", field, forum)
	}
	n, err := strconv.ParseInt(value, 10, 64)
	if err != nil {
		return counter{}, fmt.Errorf("field %q: count %q is not an integer", field, value)
	}
	if n < 0 {
		return counter{}, fmt.Errorf("field %q: count %d is negative", field, n)
	}
	return counter{ad: ad, forum: forum, kind: kind, n: n}, nil
}

// hourOfCounters returns the hour of a counter hash key (keys.Counters(hour)); ok is false for any
// other name.
func hourOfCounters(keys rkeys.Keys, key string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(key, keys.Prefix+"ctr:")
	if !ok || len(rest) != len(rkeys.HourFormat) {
		return time.Time{}, false
	}
	h, err := rkeys.ParseHour(rest)
	if err != nil || keys.Counters(h) != key {
		return time.Time{}, false
	}
	return h, true
}

// hourOfBatch returns the hour of a batch key (keys.CounterBatch(hour, id)); ok is false for any
// other name.
func hourOfBatch(keys rkeys.Keys, key string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(key, keys.Prefix+"ctr:flushing:")
	if !ok {
		return time.Time{}, false
	}
	hs, id, ok := strings.Cut(rest, ":")
	if !ok || id == "" || strings.IndexByte(id, ':') >= 0 || len(hs) != len(rkeys.HourFormat) {
		return time.Time{}, false
	}
	h, err := rkeys.ParseHour(hs)
	if err != nil || keys.CounterBatch(h, id) != key {
		return time.Time{}, false
	}
	return h, true
}
