package scoring

import (
	"math"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/forumads/forumads/ads/rkeys"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// TestScoreHandChecked ranks four ads whose CTR and EV are worked out by hand.
func TestScoreHandChecked(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a1, _ := e.simple(camp{bid: 1_000_000})
	a2, _ := e.simple(camp{bid: 500_000})
	a3, _ := e.simple(camp{bid: 2_000_000})
	a4, c4 := e.simple(camp{bid: 1_000_000})
	a5 := e.ad(c4, "active") // same campaign as a4: the same EV, so the smaller id (a4) goes first
	h := now.Add(-2 * time.Hour)
	e.stats(a1, "f", h, 600, 10, 0)
	e.stats(a1, "g", h.Add(-24*time.Hour), 400, 20, 0)       // a1: 1000 impressions, 30 clicks
	e.stats(a2, "f", h, 1000, 50, 0)                         // a2: 1000 impressions, 50 clicks
	e.stats(a4, "f", now.Add(-8*24*time.Hour), 5000, 500, 0) // outside the 7-day window
	// Unflushed counters of the current hour count too: a2 gets 100 more impressions.
	e.rc.HSet(e.ctx, e.keys.Counters(now), rkeys.CounterField(a2, "f", rkeys.Impressions), 100)

	s := e.score(Options{})
	// Global window: I = 1000 + 1000 + 100 = 2100, C = 30 + 50 = 80.
	// Prior mean m = (80 + 0.01·200) / (2100 + 200) = 82/2300 ≈ 0.0356522; α = 200m ≈ 7.13043, β = 200 − α.
	m := 82.0 / 2300
	alpha := 200 * m
	if !near(s.PriorMean, m) || s.PriorStrength != 200 {
		t.Fatalf("prior mean %v strength %v, want %v 200", s.PriorMean, s.PriorStrength, m)
	}
	want := []struct {
		ad      int64
		ctr, ev float64
	}{
		// a3: no data: CTR = α/(α+β) = m ≈ 0.0356522; EV = 2,000,000·m ≈ 71304.3
		{a3, m, 2_000_000 * m},
		// a4, a5: CTR = m (a4's old stats are outside the window); EV = 1,000,000·m ≈ 35652.2
		{a4, m, 1_000_000 * m},
		{a5, m, 1_000_000 * m},
		// a1: (30 + 7.13043) / (1000 + 200) ≈ 0.0309420; EV ≈ 30942.0
		{a1, (30 + alpha) / 1200, 1_000_000 * (30 + alpha) / 1200},
		// a2: (50 + 7.13043) / (1100 + 200) ≈ 0.0439465; EV = 500,000 × that ≈ 21973.2
		{a2, (50 + alpha) / 1300, 500_000 * (50 + alpha) / 1300},
	}
	for _, p := range rkeys.Placements {
		got := e.list(e.keys.RankDefault(p))
		if len(got) != len(want) {
			t.Fatalf("%s: %d candidates, want %d: %+v", p, len(got), len(want), got)
		}
		for i, w := range want {
			g := got[i]
			if g.Ad != w.ad || !near(g.CTR, w.ctr) || !near(g.EV, w.ev) {
				t.Errorf("%s #%d: ad %d ctr %v ev %v, want ad %d ctr %v ev %v", p, i, g.Ad, g.CTR, g.EV, w.ad, w.ctr, w.ev)
			}
		}
	}
	if s.Ads != 5 || s.Campaigns != 4 || s.Lists != 4 || s.Generation != 1 {
		t.Errorf("summary %+v", s)
	}
	meta := e.rc.HGetAll(e.ctx, e.keys.RankMeta()).Val()
	if meta["generation"] != "1" || meta["ads"] != "5" || meta["keys"] != "4" || meta["generated_at"] != "2026-11-25T14:30:00Z" {
		t.Errorf("meta %v", meta)
	}

	// A fixed prior mean and strength: a1 = (30 + 0.5)/(1000 + 50) = 0.0290476 → EV 29047.6;
	// a2 = (50 + 0.5)/(1100 + 50) = 0.0439130 → EV 21956.5; no-data ads: CTR 0.01.
	e.score(Options{PriorMean: 0.01, PriorStrength: 50})
	got := e.list(e.keys.RankDefault("sidebar"))
	if !slices.Equal(ids(got), []int64{a1, a2, a3, a4, a5}) || !near(got[0].EV, 1e6*30.5/1050) || !near(got[1].EV, 5e5*50.5/1150) || !near(got[2].EV, 20000) {
		t.Errorf("fixed prior: %+v", got)
	}
}

func TestScoreEligibility(t *testing.T) {
	t.Parallel()
	hourAgo, inHour := now.Add(-time.Hour), now.Add(time.Hour)
	midnight := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	const budget = 1_000_000
	cases := []struct {
		name       string
		build      func(e *env) int64 // returns the ad to look for
		want       bool
		overBudget int
	}{
		{"active", func(e *env) int64 { a, _ := e.simple(camp{}); return a }, true, 0},
		{"ad paused", func(e *env) int64 { c := e.campaign(e.advertiser("active"), camp{}); return e.ad(c, "paused") }, false, 0},
		{"ad rejected", func(e *env) int64 { c := e.campaign(e.advertiser("active"), camp{}); return e.ad(c, "rejected") }, false, 0},
		{"campaign paused", func(e *env) int64 { a, _ := e.simple(camp{status: "paused"}); return a }, false, 0},
		{"campaign ended status", func(e *env) int64 { a, _ := e.simple(camp{status: "ended"}); return a }, false, 0},
		{"advertiser paused", func(e *env) int64 { c := e.campaign(e.advertiser("paused"), camp{}); return e.ad(c, "active") }, false, 0},
		{"advertiser archived", func(e *env) int64 { c := e.campaign(e.advertiser("archived"), camp{}); return e.ad(c, "active") }, false, 0},
		{"not started", func(e *env) int64 { a, _ := e.simple(camp{start: inHour}); return a }, false, 0},
		{"starts now", func(e *env) int64 { a, _ := e.simple(camp{start: now}); return a }, true, 0},
		{"ended", func(e *env) int64 { a, _ := e.simple(camp{end: &hourAgo}); return a }, false, 0},
		{"ends now", func(e *env) int64 { end := now; a, _ := e.simple(camp{end: &end}); return a }, false, 0},
		{"ends later", func(e *env) int64 { a, _ := e.simple(camp{end: &inHour}); return a }, true, 0},
		{"spend below budget", func(e *env) int64 {
			a, _ := e.simple(camp{budget: budget})
			e.stats(a, "f", midnight, 10, 1, budget-1)
			return a
		}, true, 0},
		{"spend reached budget", func(e *env) int64 {
			a, _ := e.simple(camp{budget: budget})
			e.stats(a, "f", midnight, 10, 1, budget/2)
			e.stats(a, "g", hourAgo, 10, 1, budget/2)
			return a
		}, false, 1},
		{"yesterday's spend does not count", func(e *env) int64 {
			a, _ := e.simple(camp{budget: budget})
			e.stats(a, "f", midnight.Add(-time.Hour), 10, 1, 10*budget)
			return a
		}, true, 0},
		{"a paused sibling ad's spend counts", func(e *env) int64 {
			a, c := e.simple(camp{budget: budget})
			e.stats(e.ad(c, "paused"), "f", hourAgo, 10, 1, budget)
			return a
		}, false, 1},
		{"unflushed Redis spend reaches budget", func(e *env) int64 {
			a, _ := e.simple(camp{budget: budget})
			e.rc.HSet(e.ctx, e.keys.Counters(now), rkeys.CounterField(a, "f", rkeys.Spend), budget)
			return a
		}, false, 1},
		{"PostgreSQL plus Redis spend reach budget", func(e *env) int64 {
			a, _ := e.simple(camp{budget: budget})
			e.stats(a, "f", hourAgo, 10, 1, budget-300)
			e.rc.HSet(e.ctx, e.keys.Counters(hourAgo), rkeys.CounterField(a, "g", rkeys.Spend), 100)
			e.rc.HSet(e.ctx, e.keys.Counters(now), rkeys.CounterField(a, "f", rkeys.Spend), 200)
			return a
		}, false, 1},
		{"yesterday's unflushed spend does not count", func(e *env) int64 {
			a, _ := e.simple(camp{budget: budget})
			e.rc.HSet(e.ctx, e.keys.Counters(midnight.Add(-time.Hour)), rkeys.CounterField(a, "f", rkeys.Spend), budget)
			return a
		}, true, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			ad := tc.build(e)
			s := e.score(Options{})
			for _, p := range rkeys.Placements {
				got := slices.Contains(ids(e.list(e.keys.RankDefault(p))), ad)
				if got != tc.want {
					t.Errorf("%s: ad listed %v, want %v", p, got, tc.want)
				}
			}
			if s.OverBudget != tc.overBudget {
				t.Errorf("over budget %d, want %d", s.OverBudget, tc.overBudget)
			}
		})
	}
}

func TestScoreTargeting(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.forum("f1", "tech")
	e.forum("f2", "tech")
	e.forum("f3", "cooking")
	// Bids set the order (no stats: every CTR is the prior mean).
	general, _ := e.simple(camp{bid: 900, countries: []string{"US", "DE", "US"}})
	onlyF1, _ := e.simple(camp{bid: 800, forums: []string{"f1"}})
	f1Tech, _ := e.simple(camp{bid: 700, forums: []string{"f1", "f3"}, categories: []string{"tech"}})
	cooking, _ := e.simple(camp{bid: 600, categories: []string{"cooking"}})
	ghost, _ := e.simple(camp{bid: 500, forums: []string{"ghost"}})
	ghostTech, _ := e.simple(camp{bid: 400, forums: []string{"ghost"}, categories: []string{"tech"}})
	travel, _ := e.simple(camp{bid: 300, categories: []string{"travel"}})
	header, _ := e.simple(camp{bid: 200, plcs: []string{"header"}})
	sidebarF2, _ := e.simple(camp{bid: 100, forums: []string{"f2"}, plcs: []string{"sidebar", "inline"}})
	_ = ghostTech // matches nowhere: ghost is not in the forums table, so it has no category

	s := e.score(Options{})
	want := map[string][]int64{}
	for _, p := range rkeys.Placements {
		h := []int64{}
		if p == "header" {
			h = []int64{header}
		}
		with := func(ads ...int64) []int64 {
			out := slices.Clone(ads)
			out = append(out, h...)
			slices.Sort(out) // the ads were created in descending bid order: ascending id is best first
			return out
		}
		want[e.keys.RankDefault(p)] = with(general)
		want[e.keys.RankCategory(p, "tech")] = with(general)
		want[e.keys.RankCategory(p, "cooking")] = with(general, cooking)
		want[e.keys.RankCategory(p, "travel")] = with(general, travel)
		want[e.keys.RankForum(p, "f1")] = with(general, onlyF1, f1Tech)
		f2 := []int64{general}
		if p == "sidebar" || p == "inline" {
			f2 = append(f2, sidebarF2)
		}
		want[e.keys.RankForum(p, "f2")] = with(f2...)
		want[e.keys.RankForum(p, "f3")] = with(general, cooking)
		want[e.keys.RankForum(p, "ghost")] = with(general, ghost)
	}
	for key, w := range want {
		if got := ids(e.list(key)); !slices.Equal(got, w) {
			t.Errorf("%s: %v, want %v", key, got, w)
		}
	}
	index := e.rc.SMembers(e.ctx, e.keys.RankIndex()).Val()
	if len(index) != len(want) || s.Lists != len(want) {
		t.Errorf("index has %d keys (summary %d), want %d: %v", len(index), s.Lists, len(want), index)
	}
	for _, k := range index {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected rank key %s", k)
		}
	}
	c := e.list(e.keys.RankForum("footer", "f1"))[0]
	if c.Ad != general || !slices.Equal(c.Countries, []string{"DE", "US"}) || c.Bid != 900 || c.Campaign == 0 || c.Advertiser == 0 {
		t.Errorf("general candidate %+v: countries, bid, campaign and advertiser must be carried", c)
	}
	if c := e.list(e.keys.RankForum("footer", "f1"))[1]; c.Countries != nil {
		t.Errorf("untargeted countries must be omitted: %+v", c)
	}
}

func TestScoreMaxCandidates(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var ads []int64
	for i := range 6 {
		a, _ := e.simple(camp{bid: int64(1000 - 100*i)})
		ads = append(ads, a)
	}
	e.score(Options{MaxCandidates: 4})
	if got := ids(e.list(e.keys.RankDefault("inline"))); !slices.Equal(got, ads[:4]) {
		t.Errorf("capped list %v, want %v", got, ads[:4])
	}
}

func TestScoreRemovesStaleKeys(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.forum("kept", "cat")
	_, c := e.simple(camp{forums: []string{"gone"}, categories: []string{"gonecat"}})
	e.simple(camp{})
	// A key the index lists that is not a rank key is not deleted.
	foreign := e.keys.Prefix + "creative:1"
	e.rc.Set(e.ctx, foreign, "x", 0)
	e.rc.SAdd(e.ctx, e.keys.RankIndex(), foreign)

	s1 := e.score(Options{})
	if e.list(e.keys.RankForum("sidebar", "gone")) == nil || s1.Lists != 4*5 {
		t.Fatalf("first run: %+v", s1)
	}
	e.exec(`UPDATE campaigns SET status = 'paused' WHERE id = $1`, c)
	s2 := e.score(Options{})
	if s2.Removed != 4*2 || s2.Lists != 4*3 || s2.Generation != 2 {
		t.Errorf("second run: %+v, want 8 removed, 12 lists", s2)
	}
	for _, p := range rkeys.Placements {
		for _, k := range []string{e.keys.RankForum(p, "gone"), e.keys.RankCategory(p, "gonecat")} {
			if n := e.rc.Exists(e.ctx, k).Val(); n != 0 {
				t.Errorf("stale %s still exists", k)
			}
		}
	}
	if e.rc.Get(e.ctx, foreign).Val() != "x" {
		t.Error("a key that is not a rank key was deleted")
	}
	e.snapshot(e.keys) // every rank key is indexed; no temporary key is left
}

func TestScoreEmptyDatabase(t *testing.T) {
	t.Parallel()
	e := setup(t)
	s := e.score(Options{})
	if s.Ads != 0 || s.Lists != 4 || s.Generation != 1 || s.PriorMean != FallbackPriorMean {
		t.Errorf("summary %+v", s)
	}
	snap := e.snapshot(e.keys)
	for _, p := range rkeys.Placements {
		if v := snap["rank:"+p+":default"]; v != "[]" {
			t.Errorf("%s default list %q, want []", p, v)
		}
	}
	if len(snap) != 5 {
		t.Errorf("keys %v, want the 4 default lists", snap)
	}
}

func TestScoreDeterministic(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.forum("f1", "tech")
	for i := range 30 {
		_, c := e.simple(camp{bid: int64(1000 + i%3), forums: map[bool][]string{true: {"f1"}}[i%4 == 0]})
		a := e.ad(c, "active") // siblings tie on EV
		e.stats(a, "f1", now.Add(-time.Duration(i)*time.Hour), int64(100+i), int64(i%5), 0)
	}
	e.score(Options{})
	first := e.snapshot(e.keys)
	e.score(Options{})
	if second := e.snapshot(e.keys); !reflect.DeepEqual(first, second) {
		t.Errorf("two runs over the same data differ:\n%v\n%v", first, second)
	}
}

func TestScoreBadData(t *testing.T) {
	t.Parallel()
	e := setup(t)
	good, _ := e.simple(camp{})
	for _, set := range []string{
		`target_forums = ARRAY['Not A Slug']`,
		`target_categories = ARRAY[NULL]::text[]`,
		`target_forums = ARRAY['ok', NULL]`,
		`target_countries = ARRAY['usa']`,
		`target_forums = ARRAY['']`,
	} {
		_, c := e.simple(camp{})
		e.exec(`UPDATE campaigns SET `+set+` WHERE id = $1`, c)
	}
	h := e.keys.Counters(now)
	e.rc.HSet(e.ctx, h, "garbage", 1, rkeys.CounterField(good, "f", rkeys.Clicks), "x",
		rkeys.CounterField(good, "f", rkeys.Impressions), -3, rkeys.CounterField(good, "f", rkeys.Spend), 5)
	s := e.score(Options{})
	if s.Invalid != 5 || s.BadCounters != 3 || s.Ads != 1 {
		t.Errorf("summary %+v, want 5 invalid campaigns, 3 bad counters, 1 ad", s)
	}
	if got := ids(e.list(e.keys.RankDefault("sidebar"))); !slices.Equal(got, []int64{good}) {
		t.Errorf("default list %v", got)
	}
}

func TestOptionsValidated(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{{Window: -time.Hour}, {PriorStrength: -1}, {PriorStrength: math.Inf(1)},
		{PriorMean: 1}, {PriorMean: -0.1}, {PriorMean: math.NaN()}, {MaxCandidates: -1}} {
		if _, err := o.withDefaults(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	o, err := Options{}.withDefaults()
	if err != nil || o.Window != DefaultWindow || o.PriorStrength != DefaultPriorStrength || o.MaxCandidates != rkeys.MaxCandidates || o.Logger == nil || o.Now == nil {
		t.Errorf("defaults %+v %v", o, err)
	}
}

func TestIsRankKey(t *testing.T) {
	t.Parallel()
	k := rkeys.New("p:")
	for key, want := range map[string]bool{
		k.RankDefault("sidebar"):           true,
		k.RankForum("inline", "f1"):        true,
		k.RankCategory("footer", "c"):      true,
		k.RankIndex():                      false,
		k.RankMeta():                       false,
		"p:rank:tmp:abc:1":                 false,
		"p:rank:aside:default":             false,
		"p:rank:sidebar:forum:":            false,
		"q:rank:sidebar:default":           false,
		k.Creative(1):                      false,
		"p:rank:header:thing:x":            false,
		"p:rank:header:" + strconv.Itoa(1): false,
	} {
		if got := isRankKey(k, key); got != want {
			t.Errorf("isRankKey(%q) = %v, want %v", key, got, want)
		}
	}
}
