package scoring

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/rkeys"
)

// Summary describes one scoring run.
type Summary struct {
	// Ads is how many ads were ranked (serving-eligible).
	Ads int `json:"ads"`
	// Lists is how many rank keys were written.
	Lists int `json:"lists"`
	// Removed is how many rank keys of the previous run were deleted.
	Removed int `json:"removed"`
	// Generation is the rank generation published (RankMeta's generation).
	Generation int64 `json:"generation"`
	// Campaigns is how many campaigns were eligible, valid and within budget.
	Campaigns int `json:"campaigns"`
	// OverBudget is how many otherwise eligible campaigns were left out: today's spend reached
	// their daily budget.
	OverBudget int `json:"over_budget"`
	// Invalid is how many otherwise eligible campaigns were left out for unusable targeting (logged).
	Invalid int `json:"invalid"`
	// BadCounters is how many Redis counter fields were ignored as malformed (logged).
	BadCounters int `json:"bad_counters"`
	// SwapAttempts is how many times the swap ran: more than 1 when other runs published meanwhile.
	SwapAttempts int `json:"swap_attempts"`
	// PriorMean and PriorStrength are the Beta prior used: α = mean·strength, β = (1−mean)·strength.
	PriorMean     float64 `json:"prior_mean"`
	PriorStrength float64 `json:"prior_strength"`
	// GeneratedAt is the run's clock reading (UTC), as written to RankMeta.
	GeneratedAt time.Time `json:"generated_at"`
}

// campaign is what ranking needs of an eligible campaign.
type campaign struct {
	id, advertiser, bid int64
	countries           []string
	forums, categories  []string // deduplicated, sorted
	placements          []int    // indices into rkeys.Placements
	overBudget          bool
}

// rankedAd is one ranked ad; the run keeps one per ad, in ascending id order.
type rankedAd struct {
	id  int64
	c   int32 // index into the run's campaigns
	ctr float64
}

// placementHeaps holds one placement's heaps: untargeted ads, category-only ads by category,
// forum-targeted ads by forum.
type placementHeaps struct {
	general    *topK
	categories map[string]*topK
	forums     map[string]*topK
}

var (
	slugRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	countryRE = regexp.MustCompile(`^[A-Z]{2}$`)
)

// Score ranks every serving-eligible ad and publishes the rank lists, index and meta of keys in one
// atomic swap (see the package documentation for the rules).
func Score(ctx context.Context, db *sqlx.DB, rc redis.UniversalClient, keys rkeys.Keys, o Options) (Summary, error) {
	o, err := o.withDefaults()
	if err != nil {
		return Summary{}, err
	}
	now := o.Now().UTC()
	sum := Summary{GeneratedAt: now, PriorStrength: o.PriorStrength}
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	windowStart := now.Add(-o.Window).Truncate(time.Hour)

	start := time.Now()
	counters, err := readCounters(ctx, rc, keys, windowStart, midnight, now, o.Logger)
	if err != nil {
		return sum, fmt.Errorf("scoring: %w", err)
	}
	sum.BadCounters = counters.bad

	read := time.Now()
	r, err := rank(ctx, db, counters, now, midnight, windowStart, o, &sum)
	if err != nil {
		return sum, fmt.Errorf("scoring: %w", err)
	}
	ranked := time.Now()
	if err := publish(ctx, rc, keys, r, o, &sum); err != nil {
		return sum, fmt.Errorf("scoring: %w", err)
	}
	o.Logger.Info("scoring: published rank lists", "generation", sum.Generation, "ads", sum.Ads,
		"lists", sum.Lists, "removed", sum.Removed, "over_budget", sum.OverBudget, "invalid", sum.Invalid,
		"prior_mean", sum.PriorMean)
	o.Logger.Debug("scoring: timings", "counters", read.Sub(start), "rank", ranked.Sub(read), "publish", time.Since(ranked))
	return sum, nil
}

// ranking is a run's result before it is written out.
type ranking struct {
	k          int
	ads        []rankedAd
	campaigns  []campaign
	heaps      []placementHeaps // by placement index
	forumCat   map[string]string
	forums     []string // every forum with a list, sorted
	categories []string // every category with a list, sorted
}

func rank(ctx context.Context, db *sqlx.DB, counters *redisCounters, now, midnight, windowStart time.Time, o Options, sum *Summary) (*ranking, error) {
	tx, err := db.BeginTxx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()

	// The prior.
	var imps, clicks int64
	if err := tx.QueryRowxContext(ctx, `SELECT coalesce(sum(impressions), 0)::bigint, coalesce(sum(clicks), 0)::bigint
		FROM ad_stats_hourly WHERE hour >= $1 AND hour <= $2`, windowStart, now).Scan(&imps, &clicks); err != nil {
		return nil, fmt.Errorf("global ctr: %w", err)
	}
	imps += counters.impressions
	clicks += counters.clicks
	mean := o.PriorMean
	if mean == 0 {
		mean = (float64(clicks) + FallbackPriorMean*o.PriorStrength) / (float64(imps) + o.PriorStrength)
		mean = min(mean, 1)
	}
	sum.PriorMean = mean
	alpha, beta := mean*o.PriorStrength, (1-mean)*o.PriorStrength

	r := &ranking{k: o.MaxCandidates, forumCat: map[string]string{}, heaps: make([]placementHeaps, len(rkeys.Placements))}
	for i := range r.heaps {
		r.heaps[i] = placementHeaps{general: &topK{k: r.k}, categories: map[string]*topK{}, forums: map[string]*topK{}}
	}
	forumSet, catSet := map[string]bool{}, map[string]bool{}

	// Forums.
	rows, err := tx.QueryxContext(ctx, `SELECT slug, category FROM forums`)
	if err != nil {
		return nil, fmt.Errorf("forums: %w", err)
	}
	for rows.Next() {
		var slug, cat string
		if err := rows.Scan(&slug, &cat); err != nil {
			rows.Close()
			return nil, fmt.Errorf("forums: %w", err)
		}
		r.forumCat[slug] = cat
		forumSet[slug], catSet[cat] = true, true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("forums: %w", err)
	}

	// Campaigns.
	adIDs, adImps, adClicks, adSpend := counters.arrays()
	rows, err = tx.QueryxContext(ctx, `
WITH redis AS (
    SELECT * FROM unnest($3::bigint[], $4::bigint[]) AS r(ad_id, spend) WHERE spend > 0
), live AS (
    SELECT c.* FROM campaigns c JOIN advertisers v ON v.id = c.advertiser_id
    WHERE c.status = 'active' AND v.status = 'active' AND c.start_at <= $1 AND (c.end_at IS NULL OR c.end_at > $1)
), spent AS (
    SELECT a.campaign_id, sum(x.spend) AS spend
    FROM (SELECT ad_id, spend_micros AS spend FROM ad_stats_hourly
          WHERE hour >= $2 AND hour < $2 + interval '1 day' AND spend_micros > 0
          UNION ALL SELECT ad_id, spend FROM redis) x
    JOIN ads a ON a.id = x.ad_id
    JOIN live l ON l.id = a.campaign_id
    GROUP BY a.campaign_id
)
SELECT l.id, l.advertiser_id, l.bid_micros, coalesce(sp.spend, 0) >= l.daily_budget_micros,
       array_position(l.target_forums, NULL) IS NOT NULL OR array_position(l.target_categories, NULL) IS NOT NULL
           OR array_position(l.target_countries, NULL) IS NOT NULL OR array_position(l.target_placements, NULL) IS NOT NULL,
       array_remove(l.target_forums, NULL), array_remove(l.target_categories, NULL),
       array_remove(l.target_countries, NULL), array_remove(l.target_placements, NULL)
FROM live l LEFT JOIN spent sp ON sp.campaign_id = l.id
ORDER BY l.id`, now, midnight, pq.Array(adIDs), pq.Array(adSpend))
	if err != nil {
		return nil, fmt.Errorf("campaigns: %w", err)
	}
	campIndex := map[int64]int32{}
	var live []int64
	for rows.Next() {
		var c campaign
		var hasNull bool
		var forums, cats, countries, placements pq.StringArray
		if err := rows.Scan(&c.id, &c.advertiser, &c.bid, &c.overBudget, &hasNull, &forums, &cats, &countries, &placements); err != nil {
			rows.Close()
			return nil, fmt.Errorf("campaigns: %w", err)
		}
		if err := c.setTargets(hasNull, forums, cats, countries, placements); err != nil {
			sum.Invalid++
			o.Logger.Warn("scoring: leaving out a campaign with unusable targeting", "campaign", c.id, "error", err)
			continue
		}
		// A campaign's targets get lists even while it is over budget, so its keys do not come and
		// go with the budget.
		for _, f := range c.forums {
			forumSet[f] = true
		}
		for _, cat := range c.categories {
			catSet[cat] = true
		}
		if c.overBudget {
			sum.OverBudget++
			continue
		}
		campIndex[c.id] = int32(len(r.campaigns))
		r.campaigns = append(r.campaigns, c)
		live = append(live, c.id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("campaigns: %w", err)
	}
	sum.Campaigns = len(r.campaigns)

	// Ads, streamed in id order.
	rows, err = tx.QueryxContext(ctx, `
WITH redis AS (
    SELECT * FROM unnest($4::bigint[], $5::bigint[], $6::bigint[]) AS r(ad_id, impressions, clicks)
    WHERE impressions > 0 OR clicks > 0
), cand AS (
    SELECT a.id FROM ads a JOIN unnest($1::bigint[]) AS l(id) ON l.id = a.campaign_id WHERE a.status = 'active'
), seen AS (
    SELECT x.ad_id, sum(x.impressions)::bigint AS impressions, sum(x.clicks)::bigint AS clicks
    FROM (SELECT s.ad_id, s.impressions, s.clicks FROM ad_stats_hourly s JOIN cand ON cand.id = s.ad_id
          WHERE s.hour >= $2 AND s.hour <= $3
          UNION ALL SELECT ad_id, impressions, clicks FROM redis) x
    GROUP BY x.ad_id
)
SELECT a.id, a.campaign_id, coalesce(se.impressions, 0), coalesce(se.clicks, 0)
FROM ads a JOIN cand ON cand.id = a.id LEFT JOIN seen se ON se.ad_id = a.id
ORDER BY a.id`, pq.Array(live), windowStart, now, pq.Array(adIDs), pq.Array(adImps), pq.Array(adClicks))
	if err != nil {
		return nil, fmt.Errorf("ads: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, campID, imp, clk int64
		if err := rows.Scan(&id, &campID, &imp, &clk); err != nil {
			return nil, fmt.Errorf("ads: %w", err)
		}
		ci, ok := campIndex[campID]
		if !ok {
			return nil, fmt.Errorf("ads: ad %d of campaign %d, which was not selected", id, campID)
		}
		ctr := min((float64(clk)+alpha)/(float64(imp)+alpha+beta), 1)
		c := &r.campaigns[ci]
		e := entry{ev: ctr * float64(c.bid), i: int32(len(r.ads))}
		r.ads = append(r.ads, rankedAd{id: id, c: ci, ctr: ctr})
		r.place(c, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ads: %w", err)
	}
	sum.Ads = len(r.ads)

	r.forums = sortedKeys(forumSet)
	r.categories = sortedKeys(catSet)
	return r, nil
}

// place pushes an ad's entry into the heaps its campaign's targeting puts it in.
func (r *ranking) place(c *campaign, e entry) {
	for _, pi := range c.placements {
		h := &r.heaps[pi]
		switch {
		case len(c.forums) > 0:
			for _, f := range c.forums {
				if len(c.categories) > 0 {
					cat, ok := r.forumCat[f]
					if _, found := slices.BinarySearch(c.categories, cat); !ok || !found {
						continue
					}
				}
				heapFor(h.forums, f, r.k).push(e)
			}
		case len(c.categories) > 0:
			for _, cat := range c.categories {
				heapFor(h.categories, cat, r.k).push(e)
			}
		default:
			h.general.push(e)
		}
	}
}

func heapFor(m map[string]*topK, name string, k int) *topK {
	t := m[name]
	if t == nil {
		t = &topK{k: k}
		m[name] = t
	}
	return t
}

// setTargets validates and normalizes the campaign's targeting arrays.
func (c *campaign) setTargets(hasNull bool, forums, cats, countries, placements []string) error {
	if hasNull {
		return fmt.Errorf("a targeting array holds NULL")
	}
	var err error
	if c.forums, err = checkedSet("target_forums", forums, slugRE); err != nil {
		return err
	}
	if c.categories, err = checkedSet("target_categories", cats, slugRE); err != nil {
		return err
	}
	if c.countries, err = checkedSet("target_countries", countries, countryRE); err != nil {
		return err
	}
	if len(placements) == 0 {
		c.placements = allPlacements
		return nil
	}
	for _, p := range placements {
		i := slices.Index(rkeys.Placements, p)
		if i < 0 {
			return fmt.Errorf("target_placements: %q is not a placement", p)
		}
		if !slices.Contains(c.placements, i) {
			c.placements = append(c.placements, i)
		}
	}
	slices.Sort(c.placements)
	return nil
}

var allPlacements = func() []int {
	all := make([]int, len(rkeys.Placements))
	for i := range all {
		all[i] = i
	}
	return all
}()

func checkedSet(name string, vals []string, re *regexp.Regexp) ([]string, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	for _, v := range vals {
		if !re.MatchString(v) {
			return nil, fmt.Errorf("%s: %q does not match %s", name, v, re)
		}
	}
	out := slices.Clone(vals)
	slices.Sort(out)
	return slices.Compact(out), nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
