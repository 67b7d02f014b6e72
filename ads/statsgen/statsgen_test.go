package statsgen

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/internal/testdb"
	"github.com/forumads/forumads/internal/testenv"
)

func TestCreateAds(t *testing.T) {
	t.Parallel()
	pg := testdb.Postgres(t)
	o := AdsOptions{Ads: 25, Campaigns: 4, Seed: 3, TargetForums: []string{"general"}}
	ids, err := CreateAds(t.Context(), pg.DB, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 25 || !slices.IsSorted(ids) {
		t.Fatalf("ids %v", ids)
	}
	again, err := CreateAds(t.Context(), pg.DB, o)
	if err != nil || !slices.Equal(again, ids) {
		t.Fatalf("second call: %v, %v; want the same ids", again, err)
	}
	var c struct {
		Campaigns int
		MinBid    int64 `db:"min_bid"`
		MaxBid    int64 `db:"max_bid"`
		Targeted  int
	}
	if err := pg.DB.Get(&c, `SELECT count(*) AS campaigns, min(bid_micros) AS min_bid, max(bid_micros) AS max_bid,
		count(*) FILTER (WHERE target_forums = '{general}') AS targeted FROM campaigns`); err != nil {
		t.Fatal(err)
	}
	if c.Campaigns != 4 || c.Targeted != 4 || c.MinBid < 50_000 || c.MaxBid > 1_000_000 {
		t.Fatalf("campaigns %+v", c)
	}
	var active int
	if err := pg.DB.Get(&active, `SELECT count(*) FROM ads WHERE status = 'active'`); err != nil || active != 25 {
		t.Fatalf("%d active ads (%v), want 25", active, err)
	}
}

func TestCreateAdsRefusesBadOptions(t *testing.T) {
	t.Parallel()
	pg := testdb.Postgres(t)
	for _, tc := range []struct {
		name string
		o    AdsOptions
		want string
	}{
		{"no ads", AdsOptions{}, "not between"},
		{"too many", AdsOptions{Ads: 10_000_001}, "not between"},
		{"negative campaigns", AdsOptions{Ads: 1, Campaigns: -1}, "negative"},
		{"bad prefix", AdsOptions{Ads: 1, Prefix: "-x"}, "prefix"},
		{"bad forum", AdsOptions{Ads: 1, TargetForums: []string{"Bad"}}, "forum slug"},
	} {
		if _, err := CreateAds(t.Context(), pg.DB, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

func TestHistorical(t *testing.T) {
	t.Parallel()
	pg := testdb.Postgres(t)
	ctx := t.Context()
	if _, err := CreateAds(ctx, pg.DB, AdsOptions{Ads: 40, Campaigns: 5, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := CreateAds(ctx, pg.DB, AdsOptions{Ads: 2, Campaigns: 1, Seed: 2, TargetForums: []string{"targeted"}}); err != nil {
		t.Fatal(err)
	}
	// A paused ad gets nothing.
	if _, err := pg.DB.Exec(`UPDATE ads SET status = 'paused' WHERE external_id = 'gen-1-a1'`); err != nil {
		t.Fatal(err)
	}
	end := time.Date(2026, 3, 10, 14, 37, 0, 0, time.UTC)
	o := HistOptions{Days: 2, End: end, Seed: 9, Forums: []string{"a", "b", "c", "d"}, ForumsPerAd: 2, Impressions: 200}
	rows, err := Historical(ctx, pg.DB, o)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Rows     int64
		Pairs    int64
		Paused   int64
		Targeted int64
		Outside  int64
		Imps     int64
		Clicks   int64
		BadSpend int64 `db:"bad_spend"`
		Over     int64
		Forums   int64
	}
	q := `SELECT count(*) AS rows, count(DISTINCT (h.ad_id, h.forum)) AS pairs,
		count(*) FILTER (WHERE a.status <> 'active') AS paused,
		count(*) FILTER (WHERE c.target_forums <> '{}') AS targeted,
		count(*) FILTER (WHERE h.hour < $1 OR h.hour >= $2) AS outside,
		sum(h.impressions) AS imps, sum(h.clicks) AS clicks,
		count(*) FILTER (WHERE h.spend_micros <> h.clicks * c.bid_micros) AS bad_spend,
		count(*) FILTER (WHERE h.clicks > h.impressions) AS over,
		count(*) FILTER (WHERE c.target_forums <> '{}' AND h.forum <> 'targeted') AS forums
		FROM ad_stats_hourly h JOIN ads a ON a.id = h.ad_id JOIN campaigns c ON c.id = a.campaign_id`
	start, stop := end.Truncate(time.Hour).Add(-48*time.Hour), end.Truncate(time.Hour)
	if err := pg.DB.Get(&st, q, start, stop); err != nil {
		t.Fatal(err)
	}
	if st.Rows != rows || st.Rows != st.Pairs*48 {
		t.Errorf("Historical says %d rows; the table has %d = %d ad×forum pairs × %d hours", rows, st.Rows, st.Pairs, 48)
	}
	if st.Paused != 0 || st.Outside != 0 || st.BadSpend != 0 || st.Over != 0 || st.Forums != 0 {
		t.Errorf("bad rows: %+v", st)
	}
	if st.Targeted != 2*48 {
		t.Errorf("the targeted campaign's 2 ads have %d rows, want %d (one forum each)", st.Targeted, 2*48)
	}
	// 39 untargeted ads on about half of 4 forums.
	if st.Pairs-2 < 39 || st.Pairs-2 > 39*4 {
		t.Errorf("%d untargeted ad×forum pairs", st.Pairs-2)
	}
	if ctr := float64(st.Clicks) / float64(st.Imps); ctr < 0.002 || ctr > 0.03 {
		t.Errorf("overall CTR %.4f outside 0.2–3 %%", ctr)
	}
	if mean := float64(st.Imps) / float64(st.Rows); mean < 100 || mean > 300 {
		t.Errorf("mean impressions %.1f, want about 200", mean)
	}

	// Deterministic: the same seed rewrites the same rows; another seed changes them.
	sum := func() string {
		var s string
		if err := pg.DB.Get(&s, `SELECT md5(string_agg(ad_id || forum || hour || impressions || ':' || clicks || ':' || spend_micros, ',' ORDER BY ad_id, forum, hour)) FROM ad_stats_hourly`); err != nil {
			t.Fatal(err)
		}
		return s
	}
	first := sum()
	if n, err := Historical(ctx, pg.DB, o); err != nil || n != rows {
		t.Fatalf("second run: %d, %v", n, err)
	}
	if sum() != first {
		t.Error("the same seed wrote different rows")
	}
	o.Seed = 10
	if _, err := Historical(ctx, pg.DB, o); err != nil {
		t.Fatal(err)
	}
	if sum() == first {
		t.Error("another seed wrote the same rows")
	}
}

func TestHistoricalDefaultForums(t *testing.T) {
	t.Parallel()
	pg := testdb.Postgres(t)
	ctx := t.Context()
	if _, err := CreateAds(ctx, pg.DB, AdsOptions{Ads: 3}); err != nil {
		t.Fatal(err)
	}
	end := time.Now()
	n, err := Historical(ctx, pg.DB, HistOptions{Days: 1, End: end})
	if err != nil || n != 3*24 {
		t.Fatalf("no forums table rows: %d, %v; want 72 rows on general", n, err)
	}
	var forums []string
	if err := pg.DB.Select(&forums, `SELECT DISTINCT forum FROM ad_stats_hourly`); err != nil || !slices.Equal(forums, []string{"general"}) {
		t.Fatalf("forums %v (%v)", forums, err)
	}
	var last time.Time
	if err := pg.DB.Get(&last, `SELECT max(hour) FROM ad_stats_hourly`); err != nil || !last.Equal(end.UTC().Truncate(time.Hour).Add(-time.Hour)) {
		t.Fatalf("last hour %v (%v): the current hour is not generated", last, err)
	}
}

func TestHistoricalRefusesBadOptions(t *testing.T) {
	t.Parallel()
	pg := testdb.Postgres(t)
	for _, tc := range []struct {
		name string
		o    HistOptions
		want string
	}{
		{"negative days", HistOptions{Days: -1}, "days"},
		{"too many days", HistOptions{Days: 4000}, "days"},
		{"negative forums per ad", HistOptions{ForumsPerAd: -1}, "forums per ad"},
		{"negative impressions", HistOptions{Impressions: -1}, "impressions"},
		{"bad forum", HistOptions{Forums: []string{"a:b"}}, "forum slug"},
	} {
		if _, err := Historical(t.Context(), pg.DB, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

func TestLive(t *testing.T) {
	t.Parallel()
	rc := testenv.Redis(t)
	keys := rkeys.New("t:" + testenv.Suffix() + ":")
	h1 := time.Date(2026, 3, 10, 13, 0, 0, 0, time.UTC)
	h2 := h1.Add(time.Hour)
	testenv.DeleteKeysAtCleanup(t, rc, keys.Counters(h1), keys.Counters(h2), keys.CounterHours())
	o := LiveOptions{Ads: []int64{1, 2, 3000}, Forums: []string{"general", "cooking"}, Hours: []time.Time{h1.Add(59 * time.Minute), h2}, Seed: 5}
	for round := 1; round <= 2; round++ {
		if err := Live(t.Context(), rc, keys, o); err != nil {
			t.Fatal(err)
		}
		for _, h := range []time.Time{h1, h2} {
			got, err := rc.HGetAll(t.Context(), keys.Counters(h)).Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 3*len(o.Ads)*len(o.Forums) {
				t.Fatalf("hour %v has %d fields, want %d", h, len(got), 3*len(o.Ads)*len(o.Forums))
			}
			for _, ad := range o.Ads {
				for _, f := range o.Forums {
					c := o.Count(ad, f, h)
					for kind, want := range map[byte]int64{rkeys.Impressions: c.Impressions, rkeys.Clicks: c.Clicks, rkeys.Spend: c.Spend} {
						field := rkeys.CounterField(ad, f, kind)
						if got[field] != strconv.FormatInt(int64(round)*want, 10) {
							t.Errorf("round %d: %s = %s, want %d × %d", round, field, got[field], round, want)
						}
					}
				}
			}
		}
		zs, err := rc.ZRangeWithScores(t.Context(), keys.CounterHours(), 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		want := []redis.Z{{Score: float64(h1.Unix()), Member: keys.Counters(h1)}, {Score: float64(h2.Unix()), Member: keys.Counters(h2)}}
		if !slices.Equal(zs, want) {
			t.Fatalf("%s = %v, want %v", keys.CounterHours(), zs, want)
		}
	}
}

func TestLiveDefaultHourAndRefusals(t *testing.T) {
	t.Parallel()
	rc := testenv.Redis(t)
	keys := rkeys.New("t:" + testenv.Suffix() + ":")
	now := time.Date(2026, 3, 10, 13, 30, 0, 0, time.UTC)
	testenv.DeleteKeysAtCleanup(t, rc, keys.Counters(now), keys.CounterHours())
	if err := Live(t.Context(), rc, keys, LiveOptions{Ads: []int64{4}, Forums: []string{"general"}, Now: func() time.Time { return now }}); err != nil {
		t.Fatal(err)
	}
	if n, err := rc.HLen(t.Context(), keys.Counters(now)).Result(); err != nil || n != 3 {
		t.Fatalf("current hour: %d fields (%v), want 3", n, err)
	}
	for _, tc := range []struct {
		name string
		o    LiveOptions
		want string
	}{
		{"no ads", LiveOptions{Forums: []string{"general"}}, "no ads"},
		{"no forums", LiveOptions{Ads: []int64{1}}, "no forums"},
		{"bad ad", LiveOptions{Ads: []int64{0}, Forums: []string{"general"}}, "not positive"},
		{"bad forum", LiveOptions{Ads: []int64{1}, Forums: []string{"a:b"}}, "forum slug"},
		{"negative", LiveOptions{Ads: []int64{1}, Forums: []string{"general"}, Impressions: -1}, "negative"},
	} {
		if err := Live(context.Background(), rc, keys, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

func TestCount(t *testing.T) {
	t.Parallel()
	o := LiveOptions{Seed: 1, Impressions: 1000, BidMicros: 300}
	var imps, clicks int64
	h := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	for ad := int64(1); ad <= 200; ad++ {
		for i := range 24 {
			c := o.Count(ad, "general", h.Add(time.Duration(i)*time.Hour))
			if c.Impressions < 500 || c.Impressions >= 1500 || c.Clicks > c.Impressions || c.Clicks < 0 || c.Spend != 300*c.Clicks {
				t.Fatalf("Count(%d, hour %d) = %+v", ad, i, c)
			}
			if c != o.Count(ad, "general", h.Add(time.Duration(i)*time.Hour+59*time.Minute)) {
				t.Fatal("Count differs within one hour")
			}
			imps += c.Impressions
			clicks += c.Clicks
		}
	}
	if ctr := float64(clicks) / float64(imps); ctr < 0.002 || ctr > 0.03 {
		t.Fatalf("CTR %.4f", ctr)
	}
	if o.Count(1, "general", h) == (LiveOptions{Seed: 2, Impressions: 1000, BidMicros: 300}).Count(1, "general", h) {
		t.Error("another seed gave the same counts")
	}
}
