package serving

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/ads/rkeys"
)

// served asks for one ad and returns its click and impression paths.
func (f *fixture) served(query string) (click, impression string) {
	f.t.Helper()
	a, _ := f.getAds(query, nil)
	if len(a.Ads) == 0 {
		f.t.Fatalf("no ad served for %s", query)
	}
	return a.Ads[0].ClickURL, a.Ads[0].ImpressionURL
}

func TestClickCountsAndRedirects(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.putList("sidebar", "cars", cand(1, 250000))
	f.putCreative(creative(1))
	click, _ := f.served("forum=cars")
	f.must(f.rc.Ping(t.Context()).Err())

	before := f.rt.n.Load()
	r := f.do("GET", click, nil)
	trips := f.rt.n.Load() - before
	if r.status != http.StatusFound || r.header.Get("Location") != creative(1).ClickURL {
		t.Fatalf("click: %d Location %q, want 302 to %s", r.status, r.header.Get("Location"), creative(1).ClickURL)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("click Cache-Control %q", r.header.Get("Cache-Control"))
	}
	t.Logf("click: %d Redis round trips", trips)
	if trips != 2 {
		t.Fatalf("click took %d round trips, want 2 (GET creative, MULTI/EXEC count)", trips)
	}
	if c, s := f.counter(1, "cars", rkeys.Clicks), f.counter(1, "cars", rkeys.Spend); c != 1 || s != 250000 {
		t.Fatalf("clicks %d spend %d, want 1 and 250000", c, s)
	}
	hash := f.keys.Counters(f.clock.now())
	score, err := f.admin.ZScore(t.Context(), f.keys.CounterHours(), hash).Result()
	if err != nil || int64(score) != f.clock.now().Truncate(time.Hour).Unix() {
		t.Fatalf("ctr:hours score of %s: %v (%v)", hash, score, err)
	}
	// A second click on the same link counts again (tokens are not single-use; documented).
	if r := f.do("GET", click, nil); r.status != http.StatusFound {
		t.Fatalf("second click: %d", r.status)
	}
	if c, s := f.counter(1, "cars", rkeys.Clicks), f.counter(1, "cars", rkeys.Spend); c != 2 || s != 500000 {
		t.Fatalf("clicks %d spend %d, want 2 and 500000", c, s)
	}
	// The next hour's clicks land in the next hour's hash.
	f.clock.add(time.Hour)
	if r := f.do("GET", click, nil); r.status != http.StatusFound {
		t.Fatalf("click an hour later: %d", r.status)
	}
	if c := f.counter(1, "cars", rkeys.Clicks); c != 1 {
		t.Fatalf("clicks in the next hour %d, want 1", c)
	}
	if n, _ := f.admin.ZCard(t.Context(), f.keys.CounterHours()).Result(); n != 2 {
		t.Fatalf("ctr:hours holds %d hashes, want 2", n)
	}
}

func TestImpressionCounts(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.putList("inline", "cars", cand(7, 1000))
	f.putCreative(creative(7))
	_, imp := f.served("forum=cars&placement=inline")
	r := f.do("POST", imp, map[string]string{"Content-Type": "text/plain;charset=UTF-8"})
	if r.status != http.StatusNoContent || r.header.Get("Cache-Control") != "no-store" || len(r.body) != 0 {
		t.Fatalf("beacon: %d %q %q", r.status, r.header.Get("Cache-Control"), r.body)
	}
	if r := f.do("GET", imp, nil); r.status != http.StatusNoContent {
		t.Fatalf("GET impression: %d", r.status)
	}
	r = f.do("GET", imp+"?img=1", nil)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "image/gif" || string(r.body) != string(pixelGIF) || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("pixel: %d %v %q", r.status, r.header, r.body)
	}
	if n := f.counter(7, "cars", rkeys.Impressions); n != 3 {
		t.Fatalf("impressions %d, want 3", n)
	}
	if n := f.counter(7, "cars", rkeys.Clicks) + f.counter(7, "cars", rkeys.Spend); n != 0 {
		t.Fatalf("impressions counted clicks or spend: %d", n)
	}
	r = f.do("GET", imp+"?img=2", nil)
	if r.status != http.StatusBadRequest {
		t.Fatalf("?img=2: %d %s", r.status, r.body)
	}
	if r := f.do("DELETE", imp, nil); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("DELETE impression: %d", r.status)
	}
	if n := f.counter(7, "cars", rkeys.Impressions); n != 3 {
		t.Fatalf("impressions %d after refused requests, want 3", n)
	}
}

// TestTokensRefused: forged, tampered, expired and wrong-kind tokens, and open redirect attempts,
// get a 4xx JSON error and count nothing.
func TestTokensRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.putList("sidebar", "cars", cand(1, 5000), cand(2, 5000), cand(3, 5000), cand(4, 5000))
	f.putCreative(creative(1))
	evil := creative(2)
	evil.ClickURL = "javascript:alert(document.cookie)"
	f.putCreative(evil)
	proto := creative(3)
	proto.ClickURL = "//evil.example/phish"
	f.putCreative(proto)
	f.putCreative(creative(4))
	a, _ := f.getAds("forum=cars&count=4", nil)
	if len(a.Ads) != 2 { // 2 and 3 are not served at all (their click could not redirect)
		t.Fatalf("served %v", adIDs(a))
	}
	click, imp := a.Ads[0].ClickURL, a.Ads[0].ImpressionURL
	clickTok := strings.TrimPrefix(click, "/v1/click/")
	// Tokens signed for ads 2 and 3 as a forger with the secret could not do better.
	s, _ := newSigner(testSecret)
	signed := func(tk token, ttl time.Duration) string {
		tk.Expires = f.clock.now().Add(ttl)
		v, err := s.Encode(&tk)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	other, _ := newSigner([]byte("another-secret-of-enough-length"))
	forged, _ := other.Encode(&token{Kind: kindClick, Ad: 1, Forum: "cars", Placement: "sidebar", Price: 1, Expires: f.clock.now().Add(time.Hour)})
	expired := signed(token{Kind: kindClick, Ad: 1, Forum: "cars", Placement: "sidebar", Price: 5000}, time.Hour)
	expiredImp := signed(token{Kind: kindImpression, Ad: 1, Forum: "cars", Placement: "sidebar"}, time.Hour)
	flip := []byte(clickTok)
	flip[len(flip)/2] ^= 1
	if flip[len(flip)/2] == '-' || flip[len(flip)/2] == '_' { // stay in the alphabet
		flip[len(flip)/2] = 'A'
	}
	cases := []struct {
		name, path string
		status     int
		code       string
	}{
		{"tampered click", "/v1/click/" + string(flip), 404, "unknown_token"},
		{"forged click", "/v1/click/" + forged, 404, "unknown_token"},
		{"garbage click", "/v1/click/hello", 404, "unknown_token"},
		{"SQL click", "/v1/click/1'%20OR%20'1'='1", 404, "unknown_token"},
		{"oversized click", "/v1/click/" + strings.Repeat("A", 2000), 404, "unknown_token"},
		{"truncated click", "/v1/click/" + clickTok[:len(clickTok)-4], 404, "unknown_token"},
		{"click with padding", "/v1/click/" + clickTok + "=", 404, "unknown_token"},
		{"impression token on the click route", "/v1/click/" + strings.TrimPrefix(imp, "/v1/impression/"), 404, "unknown_token"},
		{"click token on the impression route", "/v1/impression/" + clickTok, 404, "unknown_token"},
		{"tampered impression", "/v1/impression/" + string(flip), 404, "unknown_token"},
		{"click with a destination parameter", click + "?url=https://evil.example/", 400, "unknown_parameter"},
		{"javascript: destination", "/v1/click/" + signed(token{Kind: kindClick, Ad: 2, Forum: "cars", Placement: "sidebar", Price: 1}, 24*time.Hour), 410, "ad_gone"},
		{"protocol-relative destination", "/v1/click/" + signed(token{Kind: kindClick, Ad: 3, Forum: "cars", Placement: "sidebar", Price: 1}, 24*time.Hour), 410, "ad_gone"},
		{"creative gone", "/v1/click/" + signed(token{Kind: kindClick, Ad: 77, Forum: "cars", Placement: "sidebar", Price: 1}, 24*time.Hour), 410, "ad_gone"},
		{"empty token", "/v1/click/", 404, "not_found"},
	}
	f.clock.add(2 * time.Hour) // expired and expiredImp are now past their expiry; click is not
	cases = append(cases,
		struct {
			name, path string
			status     int
			code       string
		}{"expired click", "/v1/click/" + expired, 410, "token_expired"},
		struct {
			name, path string
			status     int
			code       string
		}{"expired impression", "/v1/impression/" + expiredImp, 410, "token_expired"})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, method := range []string{"GET", "POST"} {
				if method == "POST" && !strings.HasPrefix(tc.path, "/v1/impression/") {
					continue
				}
				r := f.do(method, tc.path, nil)
				var e errorBody
				r.json(t, &e)
				if r.status != tc.status || e.Error.Code != tc.code {
					t.Fatalf("%s %s: %d %s, want %d %s", method, tc.path, r.status, r.body, tc.status, tc.code)
				}
				if loc := r.header.Get("Location"); loc != "" {
					t.Fatalf("redirected to %q", loc)
				}
			}
		})
	}
	if keys := f.counterKeys(); len(keys) != 0 {
		t.Fatalf("refused tokens counted: %v", keys)
	}
	// The untampered link still works, so the refusals above were about the tokens.
	if r := f.do("GET", click, nil); r.status != http.StatusFound {
		t.Fatalf("valid click: %d %s", r.status, r.body)
	}
}
