package scoring

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/internal/testdb"
	"github.com/forumads/forumads/internal/testenv"
)

// now is the clock of every test: a Wednesday afternoon, UTC.
var now = time.Date(2026, 11, 25, 14, 30, 0, 0, time.UTC)

func clock() time.Time { return now }

// env is one test's database schema, Redis client and key prefix.
type env struct {
	t    testing.TB
	ctx  context.Context
	db   *sqlx.DB
	rc   *redis.Client
	keys rkeys.Keys
	seq  int
}

func setup(t testing.TB) *env {
	t.Helper()
	pg := testdb.Postgres(t)
	rc := testenv.Redis(t)
	e := &env{t: t, ctx: context.Background(), db: pg.DB, rc: rc, keys: newKeys(t, rc)}
	return e
}

// newKeys is a fresh key prefix whose keys are all deleted when the test ends.
func newKeys(t testing.TB, rc *redis.Client) rkeys.Keys {
	keys := rkeys.New("t:" + testenv.Suffix() + ":")
	t.Cleanup(func() {
		ctx := context.Background()
		it := rc.Scan(ctx, 0, keys.Prefix+"*", 1000).Iterator()
		var names []string
		for it.Next(ctx) {
			names = append(names, it.Val())
		}
		if len(names) > 0 {
			_ = rc.Del(ctx, names...).Err()
		}
	})
	return keys
}

func (e *env) exec(q string, args ...any) {
	e.t.Helper()
	if _, err := e.db.ExecContext(e.ctx, q, args...); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
}

func (e *env) id(q string, args ...any) int64 {
	e.t.Helper()
	var id int64
	if err := e.db.GetContext(e.ctx, &id, q, args...); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return id
}

func (e *env) next() int { e.seq++; return e.seq }

func (e *env) forum(slug, cat string) {
	e.exec(`INSERT INTO forums (slug, name, category) VALUES ($1, $1, $2)`, slug, cat)
}

func (e *env) advertiser(status string) int64 {
	return e.id(`INSERT INTO advertisers (external_id, name, status) VALUES ($1, $1, $2) RETURNING id`,
		fmt.Sprintf("adv-%d", e.next()), status)
}

// camp describes a campaign; zero fields take the defaults of (*env).campaign.
type camp struct {
	status                              string
	bid, budget                         int64
	start                               time.Time
	end                                 *time.Time
	forums, categories, countries, plcs []string
}

func (e *env) campaign(adv int64, c camp) int64 {
	if c.status == "" {
		c.status = "active"
	}
	if c.bid == 0 {
		c.bid = 1_000_000
	}
	if c.budget == 0 {
		c.budget = 1_000_000_000
	}
	if c.start.IsZero() {
		c.start = now.Add(-48 * time.Hour)
	}
	arr := func(s []string) any {
		if s == nil {
			s = []string{}
		}
		return pq.StringArray(s)
	}
	return e.id(`INSERT INTO campaigns (external_id, advertiser_id, name, status, bid_micros, daily_budget_micros,
		start_at, end_at, target_forums, target_categories, target_countries, target_placements)
		VALUES ($1, $2, $1, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`,
		fmt.Sprintf("camp-%d", e.next()), adv, c.status, c.bid, c.budget, c.start, c.end,
		arr(c.forums), arr(c.categories), arr(c.countries), arr(c.plcs))
}

func (e *env) ad(campaign int64, status string) int64 {
	return e.id(`INSERT INTO ads (external_id, campaign_id, title, click_url, status) VALUES ($1, $2, $1, 'https://x.test/', $3) RETURNING id`,
		fmt.Sprintf("ad-%d", e.next()), campaign, status)
}

// simple makes an active advertiser, campaign and ad; it returns the ad and campaign ids.
func (e *env) simple(c camp) (ad, campaign int64) {
	campaign = e.campaign(e.advertiser("active"), c)
	return e.ad(campaign, "active"), campaign
}

func (e *env) stats(ad int64, forum string, hour time.Time, imps, clicks, spend int64) {
	e.exec(`INSERT INTO ad_stats_hourly (ad_id, forum, hour, impressions, clicks, spend_micros) VALUES ($1, $2, $3, $4, $5, $6)`,
		ad, forum, hour.Truncate(time.Hour), imps, clicks, spend)
}

func (e *env) score(o Options) Summary {
	e.t.Helper()
	if o.Now == nil {
		o.Now = clock
	}
	s, err := Score(e.ctx, e.db, e.rc, e.keys, o)
	if err != nil {
		e.t.Fatalf("Score: %v", err)
	}
	return s
}

// list reads a rank list; a missing key is nil.
func (e *env) list(key string) []rkeys.Candidate {
	e.t.Helper()
	b, err := e.rc.Get(e.ctx, key).Bytes()
	if err == redis.Nil {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	cs, err := DecodeList(b)
	if err != nil {
		e.t.Fatalf("%s: %v", key, err)
	}
	return cs
}

func ids(cs []rkeys.Candidate) []int64 {
	out := []int64{}
	for _, c := range cs {
		out = append(out, c.Ad)
	}
	return out
}

// snapshot is every rank key (without the prefix) and its value, plus the index.
func (e *env) snapshot(keys rkeys.Keys) map[string]string {
	e.t.Helper()
	members, err := e.rc.SMembers(e.ctx, keys.RankIndex()).Result()
	if err != nil {
		e.t.Fatal(err)
	}
	sort.Strings(members)
	snap := map[string]string{}
	var stripped []string
	for _, m := range members {
		v, err := e.rc.Get(e.ctx, m).Result()
		if err != nil {
			e.t.Fatalf("indexed key %s: %v", m, err)
		}
		if ttl := e.rc.TTL(e.ctx, m).Val(); ttl != -1 {
			e.t.Errorf("rank key %s has a TTL (%v)", m, ttl)
		}
		snap[strings.TrimPrefix(m, keys.Prefix)] = v
		stripped = append(stripped, strings.TrimPrefix(m, keys.Prefix))
	}
	snap["(index)"] = strings.Join(stripped, " ")
	it := e.rc.Scan(e.ctx, 0, keys.Prefix+"rank:*", 1000).Iterator()
	for it.Next(e.ctx) {
		k := it.Val()
		if k == keys.RankIndex() || k == keys.RankMeta() {
			continue
		}
		if _, ok := snap[strings.TrimPrefix(k, keys.Prefix)]; !ok {
			e.t.Errorf("key %s exists but is not in the rank index", k)
		}
	}
	return snap
}
