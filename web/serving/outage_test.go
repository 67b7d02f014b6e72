package serving

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/internal/browsertest"
	"github.com/forumads/forumads/internal/tcpproxy"
	"github.com/forumads/forumads/internal/testenv"
)

// clientModes are the two ways the handler runs Redis calls: on a goroutine per call (go-redis's
// default options) or inline (ContextTimeoutEnabled).
var clientModes = []struct {
	name       string
	ctxTimeout bool
}{{"goroutine per call", false}, {"inline with context deadlines", true}}

// outageFixture is a fixture whose handler reaches Redis at addr (a dead port or a proxy) with
// go-redis's default options (but ContextTimeoutEnabled as given), and the production budget.
func outageFixture(t *testing.T, addr string, ctxTimeout bool) *fixture {
	t.Helper()
	opts, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	opts.Addr = addr
	opts.ContextTimeoutEnabled = ctxTimeout
	rc := redis.NewClient(opts)
	t.Cleanup(func() { _ = rc.Close() })
	return newFixture(t, func(o *Options) { o.Redis, o.RedisTimeout = rc, 0 })
}

// signedLinks returns click and impression paths for ad 1 on forum cars, signed as the handler
// signs them.
func (f *fixture) signedLinks() (click, impression string) {
	f.t.Helper()
	s, _ := newSigner(testSecret)
	tk := token{Kind: kindClick, Ad: 1, Forum: "cars", Placement: "sidebar", Price: 100, Expires: f.clock.now().Add(time.Hour)}
	c, err := s.Encode(&tk)
	f.must(err)
	tk.Kind = kindImpression
	i, err := s.Encode(&tk)
	f.must(err)
	return "/v1/click/" + c, "/v1/impression/" + i
}

// checkDegraded asserts the answers of an outage: no 5xx but the click's 503, no hang (the client
// has a hang guard), no ads.
func (f *fixture) checkDegraded(click, impression string) {
	f.t.Helper()
	r := f.do("GET", "/v1/ads?forum=cars&count=2", nil)
	if r.status != http.StatusOK || r.header.Get("X-Ads-Degraded") != "1" {
		f.t.Fatalf("ads during the outage: %d %v %s", r.status, r.header, r.body)
	}
	var a adsAnswer
	r.json(f.t, &a)
	if a.Ads == nil || len(a.Ads) != 0 || a.Forum != "cars" {
		f.t.Fatalf("degraded answer %s", r.body)
	}
	r = f.do("GET", click, nil)
	var e errorBody
	r.json(f.t, &e)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || e.Error.Code != "unavailable" {
		f.t.Fatalf("click during the outage: %d %v %s", r.status, r.header, r.body)
	}
	for _, m := range []string{"GET", "POST"} {
		if r := f.do(m, impression, nil); r.status != http.StatusNoContent {
			f.t.Fatalf("%s impression during the outage: %d %s", m, r.status, r.body)
		}
	}
	r = f.do("GET", "/readyz", nil)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		f.t.Fatalf("/readyz during the outage: %d %s", r.status, r.body)
	}
}

// waitRecovered polls until ads are served again without degradation (the breaker probes by
// itself).
func (f *fixture) waitRecovered() {
	f.t.Helper()
	browsertest.Poll(f.t, "recovery after the outage", func() bool {
		r := f.do("GET", "/v1/ads?forum=cars&count=2", nil)
		if r.status != http.StatusOK {
			f.t.Fatalf("ads while recovering: %d %s", r.status, r.body)
		}
		return r.header.Get("X-Ads-Degraded") == "" && strings.Contains(string(r.body), `"id":1`)
	})
	if r := f.do("GET", "/readyz", nil); r.status != http.StatusOK {
		f.t.Fatalf("/readyz after recovery: %d %s", r.status, r.body)
	}
}

func (f *fixture) seedOne() {
	f.putList("sidebar", "cars", cand(1, 100))
	f.putCreative(creative(1))
}

func TestOutageDeadPort(t *testing.T) {
	t.Parallel()
	for _, mode := range clientModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			dead := ln.Addr().String()
			ln.Close()
			f := outageFixture(t, dead, mode.ctxTimeout)
			click, imp := f.signedLinks()
			f.checkDegraded(click, imp)

			// The breaker is open now: further requests do not try Redis, except one probe per
			// cooldown.
			before, start := f.rt.n.Load(), time.Now()
			for range 20 {
				if r := f.do("GET", "/v1/ads?forum=cars", nil); r.status != http.StatusOK || r.header.Get("X-Ads-Degraded") != "1" {
					t.Fatalf("ads with the breaker open: %d %v", r.status, r.header)
				}
			}
			tries := f.rt.n.Load() - before
			probes := int64(time.Since(start)/BreakerCooldown) + 1
			t.Logf("20 requests with the breaker open tried Redis %d times", tries)
			if tries > probes {
				t.Fatalf("20 requests with the breaker open tried Redis %d times, want at most %d probes", tries, probes)
			}
			if keys := f.counterKeys(); len(keys) != 0 {
				t.Fatalf("counted while down: %v", keys)
			}
		})
	}
}

func TestOutageProxy(t *testing.T) {
	t.Parallel()
	opts, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range clientModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			p := tcpproxy.Start(t, opts.Addr)
			f := outageFixture(t, p.Addr(), mode.ctxTimeout)
			f.seedOne()
			click, imp := f.signedLinks()
			f.waitRecovered() // healthy to begin with

			// Redis never answers (what it is sent is lost): every answer comes within the budget.
			p.DropUpstream(true)
			f.checkDegraded(click, imp)
			p.DropUpstream(false)
			p.Cut() // the connections that lost bytes are out of step; a real network would time them out
			f.waitRecovered()

			// Redis refuses connections.
			p.Pause()
			p.Cut()
			f.checkDegraded(click, imp)
			p.Resume()
			f.waitRecovered()

			// Counting works again after both outages.
			before := f.counter(1, "cars", rkeys.Clicks)
			if r := f.do("GET", click, nil); r.status != http.StatusFound {
				t.Fatalf("click after recovery: %d %s", r.status, r.body)
			}
			if n := f.counter(1, "cars", rkeys.Clicks); n != before+1 {
				t.Fatalf("clicks %d after recovery, want %d", n, before+1)
			}
		})
	}
}
