package serving

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/internal/testenv"
)

func TestAdsValidation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.putList("sidebar", "cars", cand(1, 500000))
	f.putCreative(creative(1))
	long := "https://forum.example/" + strings.Repeat("a", MaxURLLen)
	cases := []struct {
		name, query string
		header      map[string]string
		code, field string
	}{
		{"no forum", "placement=sidebar", nil, "invalid_parameter", "forum"},
		{"empty forum", "forum=", nil, "invalid_parameter", "forum"},
		{"upper-case forum", "forum=Cars", nil, "invalid_parameter", "forum"},
		{"SQL in forum", "forum=" + url.QueryEscape("cars' OR 1=1;--"), nil, "invalid_parameter", "forum"},
		{"key injection in forum", "forum=" + url.QueryEscape("cars:*"), nil, "invalid_parameter", "forum"},
		{"forum too long", "forum=" + strings.Repeat("a", 65), nil, "invalid_parameter", "forum"},
		{"forum starting with -", "forum=-cars", nil, "invalid_parameter", "forum"},
		{"unknown placement", "forum=cars&placement=popup", nil, "invalid_parameter", "placement"},
		{"count 0", "forum=cars&count=0", nil, "invalid_parameter", "count"},
		{"negative count", "forum=cars&count=-1", nil, "invalid_parameter", "count"},
		{"non-numeric count", "forum=cars&count=abc", nil, "invalid_parameter", "count"},
		{"fractional count", "forum=cars&count=1.5", nil, "invalid_parameter", "count"},
		{"exponent count", "forum=cars&count=1e3", nil, "invalid_parameter", "count"},
		{"huge count", "forum=cars&count=99999999999999999999", nil, "invalid_parameter", "count"},
		{"count over max_count", "forum=cars&count=11", nil, "invalid_parameter", "count"},
		{"count over the list size", "forum=cars&count=201", nil, "invalid_parameter", "count"},
		{"javascript url", "forum=cars&url=" + url.QueryEscape("javascript:alert(1)"), nil, "invalid_parameter", "url"},
		{"relative url", "forum=cars&url=/thread/1", nil, "invalid_parameter", "url"},
		{"url too long", "forum=cars&url=" + url.QueryEscape(long), nil, "invalid_parameter", "url"},
		{"unknown parameter", "forum=cars&campaign=1", nil, "unknown_parameter", "campaign"},
		{"repeated parameter", "forum=cars&forum=bikes", nil, "invalid_parameter", "forum"},
		{"malformed escape", "forum=cars&url=%zz", nil, "malformed_query", ""},
		{"bad country", "forum=cars", map[string]string{"X-Country": "USA"}, "invalid_header", "X-Country"},
		{"bad cloudflare country", "forum=cars", map[string]string{"CF-IPCountry": "1A"}, "invalid_header", "CF-IPCountry"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do("GET", "/v1/ads?"+tc.query, tc.header)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.status, r.body)
			}
			var e errorBody
			r.json(t, &e)
			if e.Error.Code != tc.code || e.Error.Field != tc.field || e.Error.Message == "" {
				t.Fatalf("error %+v, want code %s field %q", e.Error, tc.code, tc.field)
			}
			if strings.Contains(string(r.body), "goroutine") || strings.Contains(string(r.body), ".go:") {
				t.Fatalf("error leaks internals: %s", r.body)
			}
		})
	}
	t.Run("wrong method", func(t *testing.T) {
		r := f.do("POST", "/v1/ads?forum=cars", nil)
		var e errorBody
		r.json(t, &e)
		if r.status != http.StatusMethodNotAllowed || e.Error.Code != "method_not_allowed" || r.header.Get("Allow") == "" {
			t.Fatalf("POST /v1/ads: %d %s (Allow %q)", r.status, r.body, r.header.Get("Allow"))
		}
	})
	t.Run("unknown path", func(t *testing.T) {
		r := f.do("GET", "/v1/nothing", nil)
		var e errorBody
		r.json(t, &e)
		if r.status != http.StatusNotFound || e.Error.Code != "not_found" {
			t.Fatalf("GET /v1/nothing: %d %s", r.status, r.body)
		}
	})
	if keys := f.counterKeys(); len(keys) != 0 {
		t.Fatalf("bad requests wrote %v", keys)
	}
}

func TestAdsSelection(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	// Forum list: best first; ad 2 appears twice; ad 3 targets US and CA; ad 9 has no creative;
	// ad 4 targets DE.
	f.putList("sidebar", "cars", cand(1, 900), cand(2, 800), cand(2, 800), cand(3, 700, "US", "CA"),
		cand(9, 650), cand(4, 600, "DE"), cand(5, 500), cand(6, 400))
	f.putList("sidebar", "", cand(7, 100), cand(8, 90))
	f.putList("inline", "empty") // an empty forum list wins over the default
	f.putList("inline", "", cand(7, 100))
	for _, id := range []int64{1, 2, 3, 4, 5, 6, 7, 8} {
		f.putCreative(creative(id))
	}
	cases := []struct {
		name, query string
		header      map[string]string
		want        []int64
	}{
		{"default count is 1", "forum=cars", nil, []int64{1}},
		{"duplicates skipped, country-targeted skipped for unknown country", "forum=cars&count=3", nil, []int64{1, 2, 5}},
		{"US viewer sees the US ad", "forum=cars&count=3", map[string]string{"X-Country": "us"}, []int64{1, 2, 3}},
		{"CF-IPCountry is read", "forum=cars&count=4", map[string]string{"CF-IPCountry": "DE"}, []int64{1, 2, 4, 5}},
		{"X-Country wins over CF-IPCountry", "forum=cars&count=3", map[string]string{"X-Country": "CA", "CF-IPCountry": "DE"}, []int64{1, 2, 3}},
		{"XX is unknown", "forum=cars&count=3", map[string]string{"X-Country": "XX"}, []int64{1, 2, 5}},
		{"missing creative skipped and filled", "forum=cars&count=4", nil, []int64{1, 2, 5, 6}},
		{"more than the list holds", "forum=cars&count=10", nil, []int64{1, 2, 5, 6}},
		{"no forum list: the default list", "forum=bikes&count=2", nil, []int64{7, 8}},
		{"an empty forum list is used", "forum=empty&placement=inline&count=2", nil, []int64{}},
		{"placement with no list", "forum=cars&placement=footer", nil, []int64{}},
		{"page url accepted", "forum=cars&url=" + url.QueryEscape("https://forum.example/t/1?page=2"), nil, []int64{1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, r := f.getAds(tc.query, tc.header)
			if got := adIDs(a); !slices.Equal(got, tc.want) {
				t.Fatalf("ads %v, want %v", got, tc.want)
			}
			if r.header.Get("X-Ads-Degraded") != "" || r.header.Get("Cache-Control") != "no-store" {
				t.Fatalf("headers %v", r.header)
			}
			q, _ := url.ParseQuery(tc.query)
			wantPlacement := q.Get("placement")
			if wantPlacement == "" {
				wantPlacement = "sidebar"
			}
			if a.Forum != q.Get("forum") || a.Placement != wantPlacement {
				t.Fatalf("answer names forum %q placement %q", a.Forum, a.Placement)
			}
			for _, ad := range a.Ads {
				cr := creative(ad.ID)
				if ad.Title != cr.Title || ad.Body != cr.Body || ad.Advertiser != cr.Advertiser || ad.ImageURL != cr.ImageURL {
					t.Fatalf("ad %+v does not match its creative %+v", ad, cr)
				}
				if !strings.HasPrefix(ad.ClickURL, "/v1/click/") || !strings.HasPrefix(ad.ImpressionURL, "/v1/impression/") {
					t.Fatalf("ad URLs %q %q", ad.ClickURL, ad.ImpressionURL)
				}
			}
		})
	}
	if keys := f.counterKeys(); len(keys) != 0 {
		t.Fatalf("ad requests counted something: %v", keys)
	}
}

func TestAdsTokensAreFreshAndSigned(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.putList("header", "cars", cand(1, 123456))
	f.putCreative(creative(1))
	a, _ := f.getAds("forum=cars&placement=header", nil)
	b, _ := f.getAds("forum=cars&placement=header", nil)
	if a.Ads[0].ClickURL == b.Ads[0].ClickURL || a.Ads[0].ImpressionURL == b.Ads[0].ImpressionURL {
		t.Fatal("two answers carry the same token")
	}
	s, err := newSigner(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	click, err := s.Decode(strings.TrimPrefix(a.Ads[0].ClickURL, "/v1/click/"))
	if err != nil {
		t.Fatal(err)
	}
	want := token{Kind: kindClick, Ad: 1, Forum: "cars", Placement: "header", Price: 123456, Expires: f.clock.now().Add(DefaultTokenTTL).Truncate(1e9), Nonce: click.Nonce}
	if *click != want {
		t.Fatalf("click token %+v, want %+v", *click, want)
	}
	imp, err := s.Decode(strings.TrimPrefix(a.Ads[0].ImpressionURL, "/v1/impression/"))
	if err != nil || imp.Kind != kindImpression || imp.Ad != 1 || imp.Forum != "cars" || imp.Placement != "header" {
		t.Fatalf("impression token %+v (%v)", imp, err)
	}
}

func TestAdsSwitches(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		switches map[string]rkeys.Switch
		query    string
		wantIDs  []int64
		images   bool
		status   int
	}{
		{"all on", map[string]rkeys.Switch{"serving.enabled": {Enabled: true}, "embed.images": {Enabled: true}}, "count=2", []int64{1, 2}, true, 200},
		{"serving off", map[string]rkeys.Switch{"serving.enabled": {Enabled: false}}, "count=2", []int64{}, false, 200},
		{"images off", map[string]rkeys.Switch{"embed.images": {Enabled: false}}, "count=2", []int64{1, 2}, false, 200},
		{"max_count 1", map[string]rkeys.Switch{"serving.max_count": {Enabled: true, Value: 1}}, "count=2", nil, false, 400},
		{"max_count 20", map[string]rkeys.Switch{"serving.max_count": {Enabled: true, Value: 20}}, "count=15", []int64{1, 2}, true, 200},
		{"max_count off: default 10", map[string]rkeys.Switch{"serving.max_count": {Enabled: false, Value: 20}}, "count=15", nil, false, 400},
		{"max_count malformed: default 10", map[string]rkeys.Switch{"serving.max_count": {Enabled: true, Value: "lots"}}, "count=10", []int64{1, 2}, true, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			f.putList("sidebar", "cars", cand(1, 10), cand(2, 9))
			f.putCreative(creative(1))
			f.putCreative(creative(2))
			for name, sw := range tc.switches {
				f.putSwitch(name, sw.Enabled, sw.Value)
			}
			r := f.do("GET", "/v1/ads?forum=cars&"+tc.query, nil)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status != 200 {
				var e errorBody
				r.json(t, &e)
				if e.Error.Field != "count" {
					t.Fatalf("error %+v", e)
				}
				return
			}
			var a adsAnswer
			r.json(t, &a)
			if got := adIDs(a); !slices.Equal(got, tc.wantIDs) {
				t.Fatalf("ads %v, want %v", got, tc.wantIDs)
			}
			for _, ad := range a.Ads {
				if (ad.ImageURL != "") != tc.images {
					t.Fatalf("image_url %q, want images %v", ad.ImageURL, tc.images)
				}
			}
		})
	}
}

func TestAdsBadDataInRedis(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.putList("sidebar", "cars", cand(1, 10), cand(2, 9), cand(3, 8), cand(4, 7), cand(5, 6))
	bad := creative(1)
	bad.ClickURL = "javascript:alert(1)" // never served: its click could not redirect
	f.putCreative(bad)
	noImage := creative(2)
	noImage.ImageURL = "data:image/png;base64,AAAA" // served without the image
	f.putCreative(noImage)
	f.must(f.admin.Set(t.Context(), f.keys.Creative(3), "{not json", 0).Err())
	// Stored under ad 4's key but describing another ad.
	f.must(f.admin.Set(t.Context(), f.keys.Creative(4), `{"id":99,"title":"x","click_url":"https://x.example/"}`, 0).Err())
	f.putCreative(creative(5))
	a, _ := f.getAds("forum=cars&count=3", nil)
	if got := adIDs(a); !slices.Equal(got, []int64{2, 5}) {
		t.Fatalf("ads %v, want [2 5]", got)
	}
	if a.Ads[0].ImageURL != "" {
		t.Fatalf("a data: image was served: %q", a.Ads[0].ImageURL)
	}
	// A list that is not JSON: no ads, no error.
	f.must(f.admin.Set(t.Context(), f.keys.RankForum("inline", "cars"), "garbage", 0).Err())
	if a, _ := f.getAds("forum=cars&placement=inline", nil); len(a.Ads) != 0 {
		t.Fatalf("ads from a garbage list: %v", adIDs(a))
	}
	// A list whose third element is malformed: the first two still serve.
	f.must(f.admin.Set(t.Context(), f.keys.RankForum("footer", "cars"), `[{"ad":5,"b":1},{"ad":2,"b":1},{"ad":"x"}]`, 0).Err())
	if a, _ := f.getAds("forum=cars&placement=footer&count=3", nil); !slices.Equal(adIDs(a), []int64{5, 2}) {
		t.Fatalf("ads %v, want [5 2]", adIDs(a))
	}
}

// TestAdsRoundTrips counts the Redis round trips of ad requests with a go-redis hook: one when the
// lists and creatives are cached, two when creatives (or, without a rank generation, nothing
// cached at all) must be read.
func TestAdsRoundTrips(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.putList("sidebar", "cars", cand(1, 10), cand(2, 9), cand(3, 8), cand(4, 7))
	f.putList("sidebar", "", cand(5, 1))
	for _, id := range []int64{1, 2, 4, 5} { // 3 is missing: an extra candidate fills in
		f.putCreative(creative(id))
	}
	f.must(f.rc.Ping(t.Context()).Err()) // open the connection first
	setGen := func(g int) func() {
		return func() { f.must(f.admin.HSet(t.Context(), f.keys.RankMeta(), "generation", g).Err()) }
	}
	expire := func() { f.clock.add(CreativeTTL) }
	steps := []struct {
		name   string
		before func()
		query  string
		ads    int
		trips  int64
	}{
		{"nothing cached", nil, "forum=cars&count=3", 3, 2},
		{"creatives cached (3 as missing)", nil, "forum=cars&count=3", 3, 1},
		{"fewer of the cached creatives", nil, "forum=cars&count=1", 1, 1},
		{"default list, its creative not cached", nil, "forum=bikes&count=2", 1, 2},
		{"nothing picked: no creative read", nil, "forum=cars&placement=inline", 0, 1},
		{"creatives expired", expire, "forum=cars&count=1", 1, 2},
		{"a generation appears: lists read in round trip 1", setGen(7), "forum=cars&count=1", 1, 1},
		{"lists cached for the generation", nil, "forum=cars&count=1", 1, 1},
		{"lists and creatives expire: creatives only", expire, "forum=cars&count=3", 3, 2},
		{"new generation, first seen: the new lists in round trip 2", setGen(8), "forum=cars&count=1", 1, 2},
		{"new generation cached", nil, "forum=cars&count=1", 1, 1},
	}
	for _, st := range steps {
		if st.before != nil {
			st.before()
		}
		before := f.rt.n.Load()
		a, _ := f.getAds(st.query, nil)
		trips := f.rt.n.Load() - before
		t.Logf("%s: %s: %d ads in %d Redis round trips", st.name, st.query, len(a.Ads), trips)
		if len(a.Ads) != st.ads || trips != st.trips {
			t.Fatalf("%s: %s: %d ads in %d round trips, want %d in %d", st.name, st.query, len(a.Ads), trips, st.ads, st.trips)
		}
	}
}

// TestAdsSeeChanges: without a rank generation every list change shows at once; with one, a list
// change shows once the generation moves (as ads.score publishes: lists and generation in one
// MULTI); a creative change shows within CreativeTTL; a switch change at once.
func TestAdsSeeChanges(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.putList("sidebar", "cars", cand(1, 10), cand(2, 9))
	f.putCreative(creative(1))
	f.putCreative(creative(2))
	if a, _ := f.getAds("forum=cars&count=2", nil); !slices.Equal(adIDs(a), []int64{1, 2}) || a.Ads[0].Title != "Ad 1" {
		t.Fatalf("first answer %+v", a)
	}
	f.putList("sidebar", "cars", cand(2, 10), cand(1, 9))
	changed := creative(2)
	changed.Title = "Ad 2, new title"
	f.putCreative(changed)
	f.putSwitch("embed.images", false, nil)
	a, _ := f.getAds("forum=cars&count=2", nil)
	if !slices.Equal(adIDs(a), []int64{2, 1}) || a.Ads[0].Title != "Ad 2" || a.Ads[0].ImageURL != "" {
		t.Fatalf("after the changes, within CreativeTTL: %+v", a)
	}
	f.clock.add(CreativeTTL)
	a, _ = f.getAds("forum=cars&count=2", nil)
	if !slices.Equal(adIDs(a), []int64{2, 1}) || a.Ads[0].Title != "Ad 2, new title" || a.Ads[0].ImageURL != "" {
		t.Fatalf("after the changes and CreativeTTL: %+v", a)
	}
	f.must(f.admin.Del(t.Context(), f.keys.RankForum("sidebar", "cars")).Err())
	if a, _ := f.getAds("forum=cars&count=2", nil); len(a.Ads) != 0 {
		t.Fatalf("after the list was removed (no default list): %v", adIDs(a))
	}

	// Under a rank generation.
	f.putList("sidebar", "cars", cand(1, 10))
	f.must(f.admin.HSet(t.Context(), f.keys.RankMeta(), "generation", 1).Err())
	if a, _ := f.getAds("forum=cars", nil); !slices.Equal(adIDs(a), []int64{1}) {
		t.Fatalf("generation 1: %v", adIDs(a))
	}
	f.putList("sidebar", "cars", cand(2, 10))
	if a, _ := f.getAds("forum=cars", nil); !slices.Equal(adIDs(a), []int64{1}) {
		t.Fatalf("a list written without a new generation (not what ads.score does) showed: %v", adIDs(a))
	}
	f.must(f.admin.HSet(t.Context(), f.keys.RankMeta(), "generation", 2).Err())
	// The first request to see generation 2 is served the lists of generation 1 and reads the new
	// ones for the next requests.
	if a, _ := f.getAds("forum=cars", nil); !slices.Equal(adIDs(a), []int64{1}) {
		t.Fatalf("first request of generation 2: %v", adIDs(a))
	}
	if a, _ := f.getAds("forum=cars", nil); !slices.Equal(adIDs(a), []int64{2}) {
		t.Fatalf("generation 2: %v", adIDs(a))
	}
	f.must(f.admin.Del(t.Context(), f.keys.RankMeta()).Err())
	f.putList("sidebar", "cars", cand(1, 10))
	f.getAds("forum=cars", nil) // sees the generation gone
	if a, _ := f.getAds("forum=cars", nil); !slices.Equal(adIDs(a), []int64{1}) {
		t.Fatalf("generation removed: lists read on every request again, got %v", adIDs(a))
	}
	f.must(f.admin.HSet(t.Context(), f.keys.RankMeta(), "generation", "x").Err())
	f.putList("sidebar", "cars", cand(2, 10))
	if a, _ := f.getAds("forum=cars", nil); !slices.Equal(adIDs(a), []int64{2}) {
		t.Fatalf("malformed generation: lists read on every request, got %v", adIDs(a))
	}
}

// TestAdsConcurrentGenerations: requests in parallel (sharing round trip 1) while ads.score-like
// publishes swap the list and bump the generation in one MULTI: every answer is full and comes
// from one of the published lists, and once the last publish is done, the answers (after the one
// request that may still be served the previous generation) come from the last list.
func TestAdsConcurrentGenerations(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	lists := [][]int64{{1, 2}, {3, 4}, {5, 6}}
	for id := int64(1); id <= 6; id++ {
		f.putCreative(creative(id))
	}
	publish := func(i int) {
		b, err := json.Marshal([]rkeys.Candidate{cand(lists[i][0], 10), cand(lists[i][1], 9)})
		f.must(err)
		_, err = f.admin.TxPipelined(t.Context(), func(p redis.Pipeliner) error {
			p.Set(t.Context(), f.keys.RankForum("sidebar", "cars"), b, 0)
			p.HIncrBy(t.Context(), f.keys.RankMeta(), "generation", 1)
			return nil
		})
		f.must(err)
	}
	publish(0)
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 40 {
				resp, err := noRedirect.Get(f.srv.URL + "/v1/ads?forum=cars&count=2")
				if err != nil {
					t.Errorf("GET /v1/ads: %v", err)
					return
				}
				var a adsAnswer
				err = json.NewDecoder(resp.Body).Decode(&a)
				resp.Body.Close()
				if resp.StatusCode != 200 || resp.Header.Get("X-Ads-Degraded") != "" || err != nil {
					t.Errorf("answer %d (degraded %q): %v", resp.StatusCode, resp.Header.Get("X-Ads-Degraded"), err)
					return
				}
				ids := adIDs(a)
				if !slices.ContainsFunc(lists, func(l []int64) bool { return slices.Equal(l, ids) }) {
					t.Errorf("ads %v are not one published list", ids)
					return
				}
			}
		}()
	}
	publish(1)
	publish(2)
	wg.Wait()
	f.getAds("forum=cars&count=2", nil)
	if a, _ := f.getAds("forum=cars&count=2", nil); !slices.Equal(adIDs(a), lists[2]) {
		t.Fatalf("after the last publish: %v, want %v", adIDs(a), lists[2])
	}
}

// TestAdsStateTTL: with a StateTTL, one read of the rank generation and the switches serves the
// requests of the next StateTTL: they need no Redis round trip when lists and creatives are
// cached. After StateTTL a request is answered from that read while a new one is made in the
// background, and the change shows then; after 10 StateTTLs the request reads for itself.
func TestAdsStateTTL(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.StateTTL = time.Second })
	f.putList("sidebar", "cars", cand(1, 10), cand(2, 9))
	f.putCreative(creative(1))
	f.putCreative(creative(2))
	f.must(f.admin.HSet(t.Context(), f.keys.RankMeta(), "generation", 1).Err())
	f.must(f.rc.Ping(t.Context()).Err()) // open the connection first
	check := func(name string, ads []int64, trips int64) {
		t.Helper()
		before := f.rt.n.Load()
		a, _ := f.getAds("forum=cars&count=2", nil)
		if got := f.rt.n.Load() - before; !slices.Equal(adIDs(a), ads) || got != trips {
			t.Fatalf("%s: ads %v in %d round trips, want %v in %d", name, adIDs(a), got, ads, trips)
		}
	}
	check("nothing cached", []int64{1, 2}, 2)
	check("state, lists and creatives cached", []int64{1, 2}, 0)
	f.putSwitch("serving.enabled", false, nil)
	check("serving switched off, within StateTTL", []int64{1, 2}, 0)

	f.clock.add(time.Second)
	if a, _ := f.getAds("forum=cars&count=2", nil); !slices.Equal(adIDs(a), []int64{1, 2}) {
		t.Fatalf("StateTTL passed: the first request is answered from the last read, got %v", adIDs(a))
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		a, _ := f.getAds("forum=cars&count=2", nil)
		return len(a.Ads) == 0
	}, "the background read to show the switch")
	check("the new state is kept", []int64{}, 0)

	f.putSwitch("serving.enabled", true, nil)
	f.clock.add(10 * time.Second)
	// The state is too old to serve: read by the request (then the creatives, older than
	// CreativeTTL).
	check("10 StateTTLs passed: switched on again at once", []int64{1, 2}, 2)
}
