package serving

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/internal/testenv"
)

var testSecret = []byte("0123456789abcdef-test-secret")

// roundTrips is a go-redis hook counting round trips: one per command outside a pipeline, one
// per pipeline (or MULTI/EXEC) however many commands it holds. A new connection's handshake
// (HELLO, CLIENT SETINFO, AUTH, SELECT) is not a request's round trip and is not counted.
type roundTrips struct{ n atomic.Int64 }

func setupCmd(c redis.Cmder) bool {
	switch c.Name() {
	case "hello", "client", "auth", "select":
		return true
	}
	return false
}

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !setupCmd(cmd) {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if !setupCmd(c) {
				h.n.Add(1)
				break
			}
		}
		return next(ctx, cmds)
	}
}

// testClockStart is when a fixture's clock starts.
var testClockStart = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

// testClock is an adjustable Options.Now.
type testClock struct{ ns atomic.Int64 }

func newClock(t time.Time) *testClock {
	c := &testClock{}
	c.set(t)
	return c
}
func (c *testClock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *testClock) add(d time.Duration) { c.ns.Add(int64(d)) }

// fixture is a serving handler over real Redis under a key prefix of its own.
type fixture struct {
	t     *testing.T
	rc    redis.UniversalClient // the handler's client (with the round-trip hook)
	admin *redis.Client         // the test's own client, for seeding and checking
	keys  rkeys.Keys
	rt    *roundTrips
	clock *testClock
	srv   *httptest.Server
}

// newFixture starts the handler on httptest; edit may change the options (Redis defaults to a
// client of the test Redis; the round-trip hook is added to whichever client it is).
func newFixture(t *testing.T, edit func(*Options)) *fixture {
	t.Helper()
	admin := testenv.Redis(t)
	f := &fixture{t: t, admin: admin, keys: rkeys.New("t:" + testenv.Suffix() + ":"),
		rt: &roundTrips{}, clock: newClock(testClockStart)}
	deleteKeysUnder(t, admin, f.keys.Prefix)
	// A generous budget: these tests are about behaviour, on a loaded machine (the outage tests
	// set their own).
	// StateTTL -1: every request reads the generation and the switches, so these tests see a
	// change at once (TestAdsStateTTL tests the snapshot).
	o := Options{Redis: testenv.Redis(t), Keys: f.keys, Secret: testSecret, Now: f.clock.now, RedisTimeout: 10 * time.Second,
		Logger: quietLogger(), StateTTL: -1}
	if edit != nil {
		edit(&o)
	}
	if o.Redis != nil {
		f.rc = o.Redis
		f.rc.AddHook(f.rt)
	}
	h, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	return f
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// deleteKeysUnder deletes every key under prefix when the test ends (the handler creates counter
// keys whose names depend on the clock).
func deleteKeysUnder(t *testing.T, rc *redis.Client, prefix string) {
	t.Cleanup(func() {
		ctx := context.Background()
		var keys []string
		iter := rc.Scan(ctx, 0, prefix+"*", 500).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			_ = rc.Del(ctx, keys...).Err()
		}
	})
}

func (f *fixture) must(err error) {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
}

// putList writes a rank list (forum "" = the default list).
func (f *fixture) putList(placement, forum string, cs ...rkeys.Candidate) {
	f.t.Helper()
	if cs == nil {
		cs = []rkeys.Candidate{}
	}
	b, err := json.Marshal(cs)
	f.must(err)
	key := f.keys.RankDefault(placement)
	if forum != "" {
		key = f.keys.RankForum(placement, forum)
	}
	f.must(f.admin.Set(context.Background(), key, b, 0).Err())
}

func (f *fixture) putCreative(cr rkeys.Creative) {
	f.t.Helper()
	b, err := json.Marshal(cr)
	f.must(err)
	f.must(f.admin.Set(context.Background(), f.keys.Creative(cr.ID), b, 0).Err())
}

func (f *fixture) putSwitch(name string, enabled bool, value any) {
	f.t.Helper()
	b, err := json.Marshal(rkeys.Switch{Enabled: enabled, Value: value})
	f.must(err)
	f.must(f.admin.HSet(context.Background(), f.keys.Switches(), name, b).Err())
}

// counter reads one counter of the clock's current hour.
func (f *fixture) counter(ad int64, forum string, kind byte) int64 {
	f.t.Helper()
	v, err := f.admin.HGet(context.Background(), f.keys.Counters(f.clock.now()), rkeys.CounterField(ad, forum, kind)).Int64()
	if err == redis.Nil {
		return 0
	}
	f.must(err)
	return v
}

// counterKeys is every counter hash and the hours index, to check that nothing was counted.
func (f *fixture) counterKeys() []string {
	f.t.Helper()
	keys, err := f.admin.Keys(context.Background(), f.keys.Prefix+"ctr:*").Result()
	f.must(err)
	return keys
}

// cand is a candidate of ad id with bid micros, targeting countries.
func cand(id, bid int64, countries ...string) rkeys.Candidate {
	return rkeys.Candidate{Ad: id, Campaign: id * 10, Advertiser: id * 100, EV: float64(bid) / 100, CTR: 0.01, Bid: bid, Countries: countries}
}

func creative(id int64) rkeys.Creative {
	return rkeys.Creative{ID: id, CampaignID: id * 10, AdvertiserID: id * 100, Advertiser: "Advertiser " + itoa(id),
		Title: "Ad " + itoa(id), Body: "Body of ad " + itoa(id), ImageURL: "https://img.example/" + itoa(id) + ".png",
		ClickURL: "https://shop.example/landing?ad=" + itoa(id)}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// response is an answer read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("answer %d is not JSON (%v): %s", r.status, err, r.body)
	}
}

// errorBody is the JSON error shape.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

// noRedirect is a client that returns redirects instead of following them, with a hang guard.
var noRedirect = &http.Client{
	Timeout:       20 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// do sends a request to the fixture's server.
func (f *fixture) do(method, path string, header map[string]string) response {
	f.t.Helper()
	return doURL(f.t, method, f.srv.URL+path, header)
}

func doURL(t *testing.T, method, u string, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// getAds asks for ads and decodes a 200 answer.
func (f *fixture) getAds(query string, header map[string]string) (adsAnswer, response) {
	f.t.Helper()
	r := f.do("GET", "/v1/ads?"+query, header)
	if r.status != http.StatusOK || r.header.Get("X-Ads-Degraded") != "" {
		f.t.Fatalf("GET /v1/ads?%s: %d (degraded %q) %s", query, r.status, r.header.Get("X-Ads-Degraded"), r.body)
	}
	var a adsAnswer
	r.json(f.t, &a)
	return a, r
}

func adIDs(a adsAnswer) []int64 {
	ids := make([]int64, len(a.Ads))
	for i, ad := range a.Ads {
		ids[i] = ad.ID
	}
	return ids
}
