package scoring

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/rkeys"
)

// maxCounterWarnings is how many bad counter fields one run logs one by one.
const maxCounterWarnings = 5

// adCounts is one ad's unflushed delivery: impressions and clicks in the window, spend today.
type adCounts struct{ impressions, clicks, spend int64 }

// redisCounters is what the unflushed counter hashes hold.
type redisCounters struct {
	byAd                map[int64]*adCounts
	impressions, clicks int64 // window totals, all ads
	bad                 int
}

// arrays lays the per-ad counts out as the parallel arrays the SQL queries unnest.
func (rc *redisCounters) arrays() (ads, impressions, clicks, spend []int64) {
	for id, c := range rc.byAd {
		ads = append(ads, id)
		impressions = append(impressions, c.impressions)
		clicks = append(clicks, c.clicks)
		spend = append(spend, c.spend)
	}
	return ads, impressions, clicks, spend
}

// parseCounter reads one counter hash entry. The error says what is wrong with it.
func parseCounter(field, value string) (ad int64, kind byte, n int64, err error) {
	ad, _, kind, ok := rkeys.ParseCounterField(field)
	if !ok {
		return 0, 0, 0, fmt.Errorf("counter field %q is not <ad id>:<forum>:<i|c|s>", field)
	}
	n, err = strconv.ParseInt(value, 10, 64)
	if err != nil || n < 0 {
		return 0, 0, 0, fmt.Errorf("counter field %q: value %q is not a non-negative integer", field, value)
	}
	return ad, kind, n, nil
}

// readCounters sums the counter hashes of every hour from the earlier of windowStart and midnight
// through now: impressions and clicks of hours at or after windowStart, spend of hours at or after
// midnight.
func readCounters(ctx context.Context, rc redis.UniversalClient, keys rkeys.Keys, windowStart, midnight, now time.Time, log *slog.Logger) (*redisCounters, error) {
	out := &redisCounters{byAd: map[int64]*adCounts{}}
	first := windowStart
	if midnight.Before(first) {
		first = midnight
	}
	first = first.Truncate(time.Hour)
	var hours []time.Time
	for h := first; !h.After(now); h = h.Add(time.Hour) {
		hours = append(hours, h)
	}
	exists := make([]*redis.IntCmd, len(hours))
	if _, err := rc.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, h := range hours {
			exists[i] = p.Exists(ctx, keys.Counters(h))
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("counter hashes: %w", err)
	}
	for i, h := range hours {
		if exists[i].Val() == 0 {
			continue
		}
		inWindow, today := !h.Before(windowStart.Truncate(time.Hour)), !h.Before(midnight)
		key := keys.Counters(h)
		it := rc.HScan(ctx, key, 0, "", 1000).Iterator()
		for it.Next(ctx) {
			field := it.Val()
			if !it.Next(ctx) {
				break
			}
			ad, kind, n, err := parseCounter(field, it.Val())
			if err != nil {
				out.bad++
				if out.bad <= maxCounterWarnings {
					log.Warn("scoring: ignoring a bad counter", "key", key, "error", err)
				}
				continue
			}
			c := out.byAd[ad]
			if c == nil {
				c = &adCounts{}
				out.byAd[ad] = c
			}
			switch {
			case kind == rkeys.Impressions && inWindow:
				c.impressions += n
				out.impressions += n
			case kind == rkeys.Clicks && inWindow:
				c.clicks += n
				out.clicks += n
			case kind == rkeys.Spend && today:
				c.spend += n
			}
		}
		if err := it.Err(); err != nil {
			return nil, fmt.Errorf("counter hash %s: %w", key, err)
		}
	}
	if out.bad > maxCounterWarnings {
		log.Warn("scoring: more bad counters ignored", "count", out.bad)
	}
	return out, nil
}
