package serving

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/internal/testenv"
)

// BenchmarkAds serves GET /v1/ads for 3 ads from a 200-candidate forum list against real Redis,
// in-process: under a rank generation (the lists cached, shared round trip 1), and without one
// (both 200-candidate lists read by every request).
func BenchmarkAds(b *testing.B) {
	rc := testenv.Redis(b)
	keys := rkeys.New("t:" + testenv.Suffix() + ":")
	var cs []rkeys.Candidate
	for i := range rkeys.MaxCandidates {
		id := int64(i%500 + 1)
		cs = append(cs, rkeys.Candidate{Ad: id, Campaign: id, Advertiser: id, EV: 1234.5678 - float64(i), CTR: 0.0123456, Bid: 1500000})
	}
	list, _ := json.Marshal(cs)
	created := []string{keys.RankForum("sidebar", "f1"), keys.RankDefault("sidebar")}
	for _, k := range created {
		if err := rc.Set(b.Context(), k, list, 0).Err(); err != nil {
			b.Fatal(err)
		}
	}
	for id := int64(1); id <= 500; id++ {
		cr, _ := json.Marshal(creative(id))
		rc.Set(b.Context(), keys.Creative(id), cr, 0)
		created = append(created, keys.Creative(id))
	}
	created = append(created, keys.RankMeta())
	testenv.DeleteKeysAtCleanup(b, rc, created...)
	for _, gen := range []bool{true, false} {
		if gen {
			rc.HSet(b.Context(), keys.RankMeta(), "generation", 1)
		} else {
			rc.Del(b.Context(), keys.RankMeta())
		}
		for _, mode := range clientModes {
			name := mode.name + "/generation"
			if !gen {
				name = mode.name + "/no_generation"
			}
			b.Run(name, func(b *testing.B) {
				opts := rc.Options()
				opts.ContextTimeoutEnabled = mode.ctxTimeout
				client := redis.NewClient(opts)
				defer client.Close()
				// A budget far above the work: this measures cost, not outages.
				s, err := newServer(Options{Redis: client, Keys: keys, Secret: testSecret, Logger: quietLogger(), RedisTimeout: time.Second})
				if err != nil {
					b.Fatal(err)
				}
				h := s.routes()
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						w := httptest.NewRecorder()
						h.ServeHTTP(w, httptest.NewRequest("GET", "/v1/ads?forum=f1&count=3", nil))
						if w.Code != http.StatusOK || w.Header().Get("X-Ads-Degraded") != "" {
							panic(fmt.Sprintf("status %d degraded %q", w.Code, w.Header().Get("X-Ads-Degraded")))
						}
					}
				})
			})
		}
	}
}

// BenchmarkTokenEncode signs one click token.
func BenchmarkTokenEncode(b *testing.B) {
	s, _ := newSigner(testSecret)
	tk := token{Kind: kindClick, Ad: 123456, Forum: "cars", Placement: "sidebar", Price: 1500000, Expires: testClockStart}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Encode(&tk); err != nil {
			b.Fatal(err)
		}
	}
}
