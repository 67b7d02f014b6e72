package serving

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/forumads/forumads/ads/rkeys"
)

func TestParseAdQuery(t *testing.T) {
	t.Parallel()
	cases := []struct {
		raw     string
		header  http.Header
		want    adQuery
		wantErr string // field, or code when no field
	}{
		{"forum=cars", nil, adQuery{Forum: "cars", Placement: "sidebar", Count: 1}, ""},
		{"forum=a&placement=footer&count=200&url=http%3A%2F%2Fx.example%2F", nil, adQuery{Forum: "a", Placement: "footer", Count: 200, URL: "http://x.example/"}, ""},
		{"forum=cars&url=", nil, adQuery{Forum: "cars", Placement: "sidebar", Count: 1}, ""},
		{"forum=cars&count=007", nil, adQuery{Forum: "cars", Placement: "sidebar", Count: 7}, ""},
		{"forum=cars", http.Header{"X-Country": {"fr"}}, adQuery{Forum: "cars", Placement: "sidebar", Count: 1, Country: "FR"}, ""},
		{"forum=cars", http.Header{"Cf-Ipcountry": {"T1"}}, adQuery{Forum: "cars", Placement: "sidebar", Count: 1}, ""},
		{"forum=cars", http.Header{"X-Country": {" "}, "Cf-Ipcountry": {"JP"}}, adQuery{Forum: "cars", Placement: "sidebar", Count: 1, Country: "JP"}, ""},
		{"forum=cars&count=", nil, adQuery{}, "count"},
		{"forum=cars&count=+1", nil, adQuery{}, "count"},
		{"forum=cars&count=0x10", nil, adQuery{}, "count"},
		{"forum=cars;count=2", nil, adQuery{}, "malformed_query"},
		{"forum=cars&placement=", nil, adQuery{}, "placement"},
		{"forum=caf%C3%A9", nil, adQuery{}, "forum"},
		{"forum=cars&url=ftp%3A%2F%2Fx.example%2F", nil, adQuery{}, "url"},
		{"forum=cars&url=https%3A%2F%2F", nil, adQuery{}, "url"},
		{"forum=cars", http.Header{"X-Country": {"U1"}}, adQuery{}, "X-Country"},
		{"forum=cars", http.Header{"X-Country": {"US", "CA"}}, adQuery{}, "X-Country"},
		{"Forum=cars", nil, adQuery{}, "Forum"},
	}
	for _, tc := range cases {
		got, err := parseAdQuery(tc.raw, tc.header)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%q: %v", tc.raw, err)
		case tc.wantErr == "" && got != tc.want:
			t.Errorf("%q: %+v, want %+v", tc.raw, got, tc.want)
		case tc.wantErr != "" && err == nil:
			t.Errorf("%q: accepted as %+v, want an error about %s", tc.raw, got, tc.wantErr)
		case tc.wantErr != "" && err.Field != tc.wantErr && err.Code != tc.wantErr:
			t.Errorf("%q: error %+v, want one about %s", tc.raw, err, tc.wantErr)
		case err != nil && err.Status != http.StatusBadRequest:
			t.Errorf("%q: status %d", tc.raw, err.Status)
		}
	}
}

func TestValidSlug(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"cars": true, "0": true, "a-b_c9": true, strings.Repeat("a", 64): true,
		"": false, "-a": false, "_a": false, "A": false, "a b": false, "a:b": false, "é": false, strings.Repeat("a", 65): false,
	} {
		if validSlug(s) != want {
			t.Errorf("validSlug(%q) = %v", s, !want)
		}
	}
}

// FuzzAdQuery feeds arbitrary query strings and country headers to the validation: it never
// panics; an error is a 400 with a code and a valid UTF-8 message; an accepted query holds valid
// values and, written back as a query string, parses to the same request.
func FuzzAdQuery(f *testing.F) {
	for _, seed := range [][2]string{
		{"forum=cars", ""},
		{"forum=cars&placement=inline&count=3&url=https%3A%2F%2Fforum.example%2Ft%2F1", "US"},
		{"forum=cars&count=99999999999999999999", ""},
		{"forum=cars'%20OR%201=1--", ""},
		{"forum=%ff%fe&url=%zz", "xx"},
		{"count=1&count=2", "T1"},
		{"forum=a;b", "ÿÿ"},
		{"forum=cars&url=javascript:alert(1)", "USA"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, raw, country string) {
		h := http.Header{}
		if country != "" {
			h.Set("X-Country", country)
		}
		q, err := parseAdQuery(raw, h)
		if err != nil {
			if err.Status != http.StatusBadRequest || err.Code == "" || err.Message == "" || !utf8.ValidString(err.Message) || !utf8.ValidString(err.Field) {
				t.Fatalf("error %+v", err)
			}
			return
		}
		if !validSlug(q.Forum) || placementIndex(q.Placement) < 0 || q.Count < 1 || q.Count > rkeys.MaxCandidates || len(q.URL) > MaxURLLen {
			t.Fatalf("accepted invalid %+v from %q", q, raw)
		}
		if q.URL != "" && checkPageURL(q.URL) != "" {
			t.Fatalf("accepted url %q", q.URL)
		}
		if q.Country != "" && (len(q.Country) != 2 || strings.ToUpper(q.Country) != q.Country) {
			t.Fatalf("accepted country %q", q.Country)
		}
		v := url.Values{"forum": {q.Forum}, "placement": {q.Placement}, "count": {strconv.Itoa(q.Count)}}
		if q.URL != "" {
			v.Set("url", q.URL)
		}
		again, err2 := parseAdQuery(v.Encode(), h)
		if err2 != nil || again != q {
			t.Fatalf("%+v re-parsed as %+v (%v)", q, again, err2)
		}
	})
}
