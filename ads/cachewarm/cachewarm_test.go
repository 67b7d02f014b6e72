package cachewarm

import (
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/ads/scoring"
	"github.com/forumads/forumads/internal/testdb"
	"github.com/forumads/forumads/internal/testenv"
)

var now = time.Date(2026, 11, 25, 14, 30, 0, 0, time.UTC)

type env struct {
	t    *testing.T
	ctx  context.Context
	db   *sqlx.DB
	rc   *redis.Client
	keys rkeys.Keys
}

func setup(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), db: testdb.Postgres(t).DB, rc: testenv.Redis(t)}
	e.keys = rkeys.New("t:" + testenv.Suffix() + ":")
	t.Cleanup(func() {
		var names []string
		it := e.rc.Scan(e.ctx, 0, e.keys.Prefix+"*", 1000).Iterator()
		for it.Next(e.ctx) {
			names = append(names, it.Val())
		}
		if len(names) > 0 {
			_ = e.rc.Del(e.ctx, names...).Err()
		}
	})
	return e
}

func (e *env) id(q string, args ...any) int64 {
	e.t.Helper()
	var id int64
	if err := e.db.GetContext(e.ctx, &id, q, args...); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return id
}

func (e *env) exec(q string, args ...any) {
	e.t.Helper()
	if _, err := e.db.ExecContext(e.ctx, q, args...); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
}

// ad makes an advertiser named adv (reused), an active campaign and an active ad; it returns the ad.
func (e *env) ad(adv, title string, image *string) int64 {
	a := e.id(`INSERT INTO advertisers (external_id, name) VALUES ($1, $1)
		ON CONFLICT (external_id) DO UPDATE SET name = excluded.name RETURNING id`, adv)
	c := e.id(`INSERT INTO campaigns (external_id, advertiser_id, name, bid_micros, daily_budget_micros, start_at)
		VALUES ($1, $2, $1, 1000, 1000000, $3) RETURNING id`, "c-"+title, a, now.Add(-time.Hour))
	return e.id(`INSERT INTO ads (external_id, campaign_id, title, body, image_url, click_url)
		VALUES ($1, $2, $1, 'body of '||$1, $3, 'https://example.test/'||$1) RETURNING id`, title, c, image)
}

func (e *env) score() {
	e.t.Helper()
	if _, err := scoring.Score(e.ctx, e.db, e.rc, e.keys, scoring.Options{Now: func() time.Time { return now }}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) warm() Summary {
	e.t.Helper()
	s, err := Warm(e.ctx, e.db, e.rc, e.keys, Options{})
	if err != nil {
		e.t.Fatalf("Warm: %v", err)
	}
	return s
}

func (e *env) creative(id int64) *rkeys.Creative {
	e.t.Helper()
	b, err := e.rc.Get(e.ctx, e.keys.Creative(id)).Bytes()
	if err == redis.Nil {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	var c rkeys.Creative
	if err := json.Unmarshal(b, &c); err != nil {
		e.t.Fatalf("creative %d: %v", id, err)
	}
	return &c
}

func (e *env) index() []string {
	m := e.rc.SMembers(e.ctx, e.keys.CreativeIndex()).Val()
	slices.Sort(m)
	return m
}

func strs(ids ...int64) []string {
	var out []string
	for _, id := range ids {
		out = append(out, strconv.FormatInt(id, 10))
	}
	slices.Sort(out)
	return out
}

func TestWarmCreatives(t *testing.T) {
	t.Parallel()
	e := setup(t)
	img := "https://img.test/a.png"
	a1 := e.ad("acme", "one", &img)
	a2 := e.ad("acme", "two", nil)
	a3 := e.ad("globex", "three", nil)
	e.score()
	// A stale creative from earlier, and a garbage index member.
	e.rc.Set(e.ctx, e.keys.Creative(999999), `{"id":999999}`, 0)
	e.rc.SAdd(e.ctx, e.keys.CreativeIndex(), 999999, "junk")

	s := e.warm()
	if s.Creatives != 3 || s.Referenced != 3 || s.Held != 0 || s.Removed != 1 || s.Generation != 1 {
		t.Errorf("summary %+v", s)
	}
	c := e.creative(a1)
	want := rkeys.Creative{ID: a1, CampaignID: c.CampaignID, AdvertiserID: c.AdvertiserID, Advertiser: "acme",
		Title: "one", Body: "body of one", ImageURL: img, ClickURL: "https://example.test/one"}
	if *c != want || c.CampaignID == 0 || c.AdvertiserID == 0 {
		t.Errorf("creative %+v, want %+v", *c, want)
	}
	raw := e.rc.Get(e.ctx, e.keys.Creative(a2)).Val()
	if strings.Contains(raw, "image_url") {
		t.Errorf("a creative without image must omit image_url: %s", raw)
	}
	if c := e.creative(a3); c == nil || c.Advertiser != "globex" {
		t.Errorf("creative %+v", c)
	}
	if e.creative(999999) != nil {
		t.Error("an unreferenced creative was kept")
	}
	if got := e.index(); !slices.Equal(got, strs(a1, a2, a3)) {
		t.Errorf("index %v", got)
	}

	// Pause a2: still in the current lists, so its creative is neither refreshed nor deleted.
	e.exec(`UPDATE ads SET status = 'paused', title = 'changed' WHERE id = $1`, a2)
	s = e.warm()
	if s.Creatives != 2 || s.Held != 1 || s.Removed != 0 {
		t.Errorf("after the pause: %+v", s)
	}
	if c := e.creative(a2); c == nil || c.Title != "two" {
		t.Errorf("a referenced creative must not be deleted nor rewritten while paused: %+v", c)
	}
	// The next scoring drops it; then warming deletes it.
	e.score()
	s = e.warm()
	if s.Removed != 1 || s.Creatives != 2 || e.creative(a2) != nil || !slices.Equal(e.index(), strs(a1, a3)) {
		t.Errorf("after rescoring: %+v, index %v", s, e.index())
	}
}

func TestWarmIsIdempotent(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, title := range []string{"a", "b", "c"} {
		e.ad("acme", title, nil)
	}
	e.score()
	e.warm()
	dump := func() map[string]string {
		out := map[string]string{}
		it := e.rc.Scan(e.ctx, 0, e.keys.Prefix+"*", 1000).Iterator()
		for it.Next(e.ctx) {
			k := it.Val()
			switch e.rc.Type(e.ctx, k).Val() {
			case "string":
				out[k] = e.rc.Get(e.ctx, k).Val()
			case "set":
				m := e.rc.SMembers(e.ctx, k).Val()
				slices.Sort(m)
				out[k] = strings.Join(m, ",")
			case "hash":
				b, _ := json.Marshal(e.rc.HGetAll(e.ctx, k).Val())
				out[k] = string(b)
			}
		}
		return out
	}
	first := dump()
	s := e.warm()
	if second := dump(); !reflect.DeepEqual(first, second) {
		t.Errorf("a second run changed Redis:\n%v\n%v", first, second)
	}
	if s.Creatives != 3 || s.Removed != 0 {
		t.Errorf("second run %+v", s)
	}
}

func TestWarmSwitches(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.exec(`INSERT INTO feature_switches (name, enabled, value) VALUES ('x.obj', false, '{"a": [1, 2.5, "s"]}')`)
	e.rc.HSet(e.ctx, e.keys.Switches(), "removed.switch", `{"enabled":true}`)
	s := e.warm()
	if s.Switches != 4 {
		t.Errorf("switches %d, want 4 (3 seeded by schema.sql + 1)", s.Switches)
	}
	got := e.rc.HGetAll(e.ctx, e.keys.Switches()).Val()
	want := map[string]string{
		"serving.enabled":   `{"enabled":true}`,
		"serving.max_count": `{"enabled":true,"value":10}`,
		"embed.images":      `{"enabled":true}`,
		"x.obj":             `{"enabled":false,"value":{"a":[1,2.5,"s"]}}`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("switches %v, want %v", got, want)
	}
	var sw rkeys.Switch
	if err := json.Unmarshal([]byte(got["serving.max_count"]), &sw); err != nil || sw.Value != float64(10) {
		t.Errorf("a switch does not decode as rkeys.Switch: %+v %v", sw, err)
	}
	e.exec(`DELETE FROM feature_switches`)
	if s := e.warm(); s.Switches != 0 || e.rc.Exists(e.ctx, e.keys.Switches()).Val() != 0 {
		t.Errorf("an empty table must empty the hash: %+v", s)
	}
}

func TestWarmEmptyDatabase(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.rc.Set(e.ctx, e.keys.Creative(5), `{}`, 0)
	e.rc.SAdd(e.ctx, e.keys.CreativeIndex(), 5)
	s := e.warm() // not even scored yet
	if s.Creatives != 0 || s.Removed != 1 || s.Generation != 0 || e.rc.Exists(e.ctx, e.keys.Creative(5)).Val() != 0 {
		t.Errorf("no lists: %+v", s)
	}
	e.score()
	if s := e.warm(); s.Creatives != 0 || s.Referenced != 0 || s.Generation != 1 {
		t.Errorf("scored empty database: %+v", s)
	}
}

func TestWarmBadRankList(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a := e.ad("acme", "one", nil)
	e.score()
	e.rc.Set(e.ctx, e.keys.Creative(777), `{}`, 0)
	e.rc.SAdd(e.ctx, e.keys.CreativeIndex(), 777)
	bad := e.keys.RankForum("sidebar", "broken")
	e.rc.Set(e.ctx, bad, `[{"ad":`, 0)
	e.rc.SAdd(e.ctx, e.keys.RankIndex(), bad)
	s, err := Warm(e.ctx, e.db, e.rc, e.keys, Options{})
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("error %v must name %s", err, bad)
	}
	if s.Creatives != 1 || e.creative(a) == nil {
		t.Errorf("the readable lists' creatives must still be written: %+v", s)
	}
	if e.rc.Exists(e.ctx, e.keys.Creative(777)).Val() != 1 {
		t.Error("nothing may be deleted while a list cannot be read")
	}
}

func TestRemoveWaitsForTheGeneration(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.rc.HSet(e.ctx, e.keys.RankMeta(), "generation", 3)
	e.rc.Set(e.ctx, e.keys.Creative(8), `{}`, 0)
	e.rc.SAdd(e.ctx, e.keys.CreativeIndex(), 8)
	if _, err := removeUnreferenced(e.ctx, e.rc, e.keys, 2, map[int64]struct{}{}, discard()); err != errGenerationMoved {
		t.Fatalf("stale generation: %v", err)
	}
	if e.rc.Exists(e.ctx, e.keys.Creative(8)).Val() != 1 {
		t.Error("deleted under a stale generation")
	}
	if n, err := removeUnreferenced(e.ctx, e.rc, e.keys, 3, map[int64]struct{}{}, discard()); err != nil || n != 1 {
		t.Errorf("current generation: %d %v", n, err)
	}
	e.rc.HSet(e.ctx, e.keys.RankMeta(), "generation", "x")
	if _, err := Warm(e.ctx, e.db, e.rc, e.keys, Options{}); err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("a bad generation must be reported: %v", err)
	}
}

func TestParseAdID(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]int64{"1": 1, "9223372036854775807": 1<<63 - 1, "0": 0, "-1": 0, "01": 0, "+1": 0, "": 0, "x": 0, "1 ": 0} {
		got, err := parseAdID(s)
		if got != want || (err == nil) != (want != 0) {
			t.Errorf("parseAdID(%q) = %d %v", s, got, err)
		}
	}
}

func FuzzParseAdID(f *testing.F) {
	for _, s := range []string{"1", "42", "0", "-7", "007", "x", "9223372036854775808"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := parseAdID(s)
		if err != nil {
			return
		}
		if id <= 0 || strconv.FormatInt(id, 10) != s {
			t.Fatalf("parseAdID(%q) = %d", s, id)
		}
	})
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
