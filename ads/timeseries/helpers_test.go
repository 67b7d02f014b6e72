package timeseries

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/ads/statsgen"
	"github.com/forumads/forumads/internal/testdb"
	"github.com/forumads/forumads/internal/testenv"
)

// env is one test's PostgreSQL schema, Redis client and key prefix, with ads to count for.
type env struct {
	pg   *testdb.PG
	rc   *redis.Client
	keys rkeys.Keys
	ads  []int64
	logs *logBuf
}

// setup gives a test its own schema with n generated ads and its own Redis prefix, deleted at
// cleanup.
func setup(t *testing.T, n int) *env {
	t.Helper()
	e := &env{pg: testdb.Postgres(t), rc: testenv.Redis(t), keys: rkeys.New("t:" + testenv.Suffix() + ":"), logs: &logBuf{}}
	deletePrefixAtCleanup(t, e.rc, e.keys.Prefix)
	if n > 0 {
		ads, err := statsgen.CreateAds(t.Context(), e.pg.DB, statsgen.AdsOptions{Ads: n, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		e.ads = ads
	}
	return e
}

// deletePrefixAtCleanup deletes every key under prefix when the test ends.
func deletePrefixAtCleanup(t *testing.T, rc redis.UniversalClient, prefix string) {
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rc.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			_ = rc.Del(ctx, keys...).Err()
		}
	})
}

// opts are Flush options at now, logging into the env's buffer.
func (e *env) opts(now time.Time) Options {
	return Options{Now: func() time.Time { return now }, Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

// flush runs Flush and fails the test on an error.
func (e *env) flush(t *testing.T, o Options) Summary {
	t.Helper()
	sum, err := Flush(t.Context(), e.pg.DB, e.rc, e.keys, o)
	if err != nil {
		t.Fatalf("Flush: %v\nlogs:\n%s", err, e.logs)
	}
	return sum
}

// live increments the counters of every ad on forums in hours.
func (e *env) live(t *testing.T, forums []string, hours ...time.Time) statsgen.LiveOptions {
	t.Helper()
	lo := statsgen.LiveOptions{Ads: e.ads, Forums: forums, Hours: hours, Seed: 7}
	if err := statsgen.Live(t.Context(), e.rc, e.keys, lo); err != nil {
		t.Fatal(err)
	}
	return lo
}

// rowKey identifies a row of ad_stats_hourly.
type rowKey struct {
	ad    int64
	forum string
	hour  int64 // unix seconds
}

// expected is ad_stats_hourly as the test expects it.
type expected map[rowKey]statsgen.Counts

// add adds what lo counted in hours.
func (x expected) add(lo statsgen.LiveOptions, hours ...time.Time) {
	for _, h := range hours {
		for _, ad := range lo.Ads {
			for _, f := range lo.Forums {
				c := lo.Count(ad, f, h)
				k := rowKey{ad, f, h.UTC().Truncate(time.Hour).Unix()}
				o := x[k]
				x[k] = statsgen.Counts{Impressions: o.Impressions + c.Impressions, Clicks: o.Clicks + c.Clicks, Spend: o.Spend + c.Spend}
			}
		}
	}
}

// fields is the number of counter fields lo writes per hour.
func fields(lo statsgen.LiveOptions) int64 { return int64(3 * len(lo.Ads) * len(lo.Forums)) }

// table reads ad_stats_hourly.
func table(t *testing.T, db *sqlx.DB) expected {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT ad_id, forum, extract(epoch FROM hour)::bigint, impressions, clicks, spend_micros FROM ad_stats_hourly`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := expected{}
	for rows.Next() {
		var k rowKey
		var c statsgen.Counts
		if err := rows.Scan(&k.ad, &k.forum, &k.hour, &c.Impressions, &c.Clicks, &c.Spend); err != nil {
			t.Fatal(err)
		}
		got[k] = c
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// checkTable fails the test unless ad_stats_hourly is exactly want.
func checkTable(t *testing.T, db *sqlx.DB, want expected) {
	t.Helper()
	got := table(t, db)
	if maps.Equal(got, want) {
		return
	}
	n := 0
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			if n++; n <= 5 {
				t.Errorf("row %+v: got %+v (present %v), want %+v", k, g, ok, w)
			}
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			if n++; n <= 5 {
				t.Errorf("unexpected row %+v: %+v", k, g)
			}
		}
	}
	t.Fatalf("ad_stats_hourly: %d rows, want %d; %d differ", len(got), len(want), n)
}

// checkClean fails the test unless no batch is left and CounterHours lists exactly open.
func checkClean(t *testing.T, e *env, open ...time.Time) {
	t.Helper()
	ctx := t.Context()
	if n, err := e.rc.SCard(ctx, e.keys.CounterPending()).Result(); err != nil || n != 0 {
		t.Errorf("%s has %d members (%v), want 0", e.keys.CounterPending(), n, err)
	}
	left, err := e.rc.Keys(ctx, e.keys.Prefix+"ctr:flushing:*").Result()
	if err != nil || len(left) != 0 {
		t.Errorf("batch keys left: %v (%v)", left, err)
	}
	members, err := e.rc.ZRange(ctx, e.keys.CounterHours(), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, h := range open {
		want = append(want, e.keys.Counters(h))
	}
	slices.Sort(members)
	slices.Sort(want)
	if !slices.Equal(members, want) {
		t.Errorf("%s = %v, want %v", e.keys.CounterHours(), members, want)
	}
}

// openDB opens a second pool on the test's schema, with an application name to find it by.
func openDB(t *testing.T, pg *testdb.PG, app string) *sqlx.DB {
	t.Helper()
	u, err := url.Parse(pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	db, err := sqlx.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// logBuf collects log output; safe for concurrent use.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// baseHour is a fixed recent UTC hour (series expiries are absolute, so tests stay near the real
// clock).
func baseHour() time.Time { return time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour) }
