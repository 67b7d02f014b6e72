package statsgen

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/rkeys"
)

// liveChunk is how many (ad, forum) pairs one script call increments (three fields each).
const liveChunk = 1000

// LiveOptions configure [Live].
type LiveOptions struct {
	// Ads are the ad ids to count for (required, each positive).
	Ads []int64
	// Forums are the forum slugs each ad is counted on (required).
	Forums []string
	// Hours are the hours to count in (any instant of each; default: the current hour from Now).
	Hours []time.Time
	// Now is the clock for the default hour (default time.Now).
	Now func() time.Time
	// Seed makes the numbers.
	Seed int64
	// Impressions is the mean impressions per ad, forum and hour (default 100).
	Impressions int64
	// BidMicros is what a click costs (default 200,000: 20 cents).
	BidMicros int64
}

// Counts are one ad's counts on one forum in one hour.
type Counts struct {
	Impressions int64
	Clicks      int64
	Spend       int64 // micros
}

// Count is what [Live] adds for ad on forum in the hour holding hour: impressions uniform in
// [Impressions/2, 3·Impressions/2), clicks at the ad's click-through rate (0.2–3 %), spend clicks ×
// BidMicros. It is a pure function of the options, so tests and benchmarks can compute the totals
// they expect.
func (o LiveOptions) Count(ad int64, forum string, hour time.Time) Counts {
	o = o.withDefaults()
	h := uint64(hour.UTC().Truncate(time.Hour).Unix())
	fh := fnv.New64a()
	_, _ = fh.Write([]byte(forum))
	f := fh.Sum64()
	seed := uint64(o.Seed)
	ctr := 0.002 + 0.028*unit(mix(seed^mix(uint64(ad))^0x9e3779b97f4a7c15))
	imps := int64(math.Floor(float64(o.Impressions) * (0.5 + unit(mix(seed^mix(uint64(ad)^mix(f^mix(h))))))))
	clicks := min(imps, int64(math.Floor(float64(imps)*ctr+unit(mix(^seed^mix(uint64(ad)^mix(f^mix(h))))))))
	return Counts{Impressions: imps, Clicks: clicks, Spend: clicks * o.BidMicros}
}

func (o LiveOptions) withDefaults() LiveOptions {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Impressions == 0 {
		o.Impressions = 100
	}
	if o.BidMicros == 0 {
		o.BidMicros = 200_000
	}
	return o
}

// liveScript increments counters as the serving API does: HINCRBY each field of KEYS[1], then ZADD
// NX the hash to KEYS[2] with score ARGV[1]. ARGV[2…] are field, increment pairs.
var liveScript = redis.NewScript(`
for i = 2, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('ZADD', KEYS[2], 'NX', ARGV[1], KEYS[1])
return 1
`)

// Live increments the hourly counters in Redis as the serving API would (HINCRBY, then ZADD NX of
// the hash to keys.CounterHours()) by [LiveOptions.Count] for every ad, forum and hour: three
// fields per ad and forum (i, c, s), zero counts included, so each hour's hash gets exactly
// 3 × len(Ads) × len(Forums) fields. It sends one script call per 1,000 ads × forums.
func Live(ctx context.Context, rc redis.UniversalClient, keys rkeys.Keys, o LiveOptions) error {
	o = o.withDefaults()
	if len(o.Ads) == 0 {
		return fmt.Errorf("statsgen: live: no ads given")
	}
	if len(o.Forums) == 0 {
		return fmt.Errorf("statsgen: live: no forums given")
	}
	for _, ad := range o.Ads {
		if ad <= 0 {
			return fmt.Errorf("statsgen: live: ad id %d is not positive", ad)
		}
	}
	for _, f := range o.Forums {
		if !rkeys.ValidSlug(f) {
			return fmt.Errorf("statsgen: live: forum %q is not a forum slug", f)
		}
	}
	if o.Impressions < 0 || o.BidMicros < 0 {
		return fmt.Errorf("statsgen: live: impressions %d and bid %d must not be negative", o.Impressions, o.BidMicros)
	}
	hours := o.Hours
	if len(hours) == 0 {
		hours = []time.Time{o.Now()}
	}
	if keys.Prefix == "" {
		keys = rkeys.New("")
	}
	for _, hr := range hours {
		hour := hr.UTC().Truncate(time.Hour)
		key := keys.Counters(hour)
		args := make([]any, 0, 1+6*liveChunk)
		args = append(args, hour.Unix())
		pairs := 0
		send := func() error {
			if pairs == 0 {
				return nil
			}
			if err := liveScript.Run(ctx, rc, []string{key, keys.CounterHours()}, args...).Err(); err != nil {
				return fmt.Errorf("statsgen: live: incrementing %s: %w", key, err)
			}
			args, pairs = args[:1], 0
			return nil
		}
		for _, ad := range o.Ads {
			for _, f := range o.Forums {
				c := o.Count(ad, f, hour)
				args = append(args,
					rkeys.CounterField(ad, f, rkeys.Impressions), strconv.FormatInt(c.Impressions, 10),
					rkeys.CounterField(ad, f, rkeys.Clicks), strconv.FormatInt(c.Clicks, 10),
					rkeys.CounterField(ad, f, rkeys.Spend), strconv.FormatInt(c.Spend, 10))
				if pairs++; pairs == liveChunk {
					if err := send(); err != nil {
						return err
					}
				}
			}
		}
		if err := send(); err != nil {
			return err
		}
	}
	return nil
}

// mix is SplitMix64's finalizer: a well-spread 64-bit hash of x.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// unit maps a hash to [0, 1).
func unit(x uint64) float64 { return float64(x>>11) / (1 << 53) }
