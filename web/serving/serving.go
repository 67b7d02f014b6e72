// Package serving is the ads serving API: the HTTP handler a forum page's embed calls to get ads,
// the click and impression URLs that count delivery, the embed script itself and a demo thread
// page. It reads and counts in Redis alone (the layout of [rkeys]); it has no database connection.
//
// # Routes
//
//	GET  /v1/ads?forum=&placement=&count=&url=   ads for one slot (JSON), CORS for the configured origins
//	GET  /v1/click/{token}                        counts a click, 302 to the ad's click_url
//	GET  /v1/impression/{token}[?img=1]           counts an impression: 204 (or a 1×1 GIF with img=1)
//	POST /v1/impression/{token}                   the same, for navigator.sendBeacon
//	GET  /embed.js                                the embed script forum pages include
//	GET  /demo/thread[?forum=]                    a forum thread page showing the embed
//	GET  /healthz, /readyz                        liveness; readiness (Redis answers PING within 200 ms)
//
// Every error is the JSON of [httpx.Error]: a 400 naming the parameter at fault, 404 for an unknown
// or forged token, 410 for an expired one or an ad whose creative is gone, 405 for a wrong method.
//
// # Choosing ads
//
// Round trip 1 reads the forum's rank list, the placement's default list and the switches; the
// forum list is used when it exists (even empty), else the default list. Candidates are taken best
// first, skipping an ad already taken and an ad targeting countries when the viewer's country
// (X-Country, else CF-IPCountry) is not one of them or is unknown; count plus a few extra are
// taken. Round trip 2 MGETs their creatives; a missing or unusable one (a click_url that is not an
// absolute http(s) URL, the id of another ad) is skipped and an extra fills in. Switches:
// serving.enabled off answers no ads, embed.images off leaves image_url out, serving.max_count (its
// value, when on) caps count (default [DefaultMaxCount]; above it is a 400). What a Redis value
// decodes to is remembered, keyed by the whole raw value, so a hot list or creative is not decoded
// again on every request, yet every request reads Redis and sees every change.
//
// # Redis budget and outages
//
// An ad request reads Redis in at most two round trips within [Options].RedisTimeout. When Redis
// is slow, down, or the budget runs out, /v1/ads answers 200 with no ads and the header
// X-Ads-Degraded: 1; a click answers 503 with Retry-After (it cannot know where to go); an
// impression answers 204 and the lost count is logged. A circuit breaker skips Redis for
// [BreakerCooldown] after [BreakerThreshold] failures in a row with no success for
// [BreakerWindow], then lets one request probe it, so an outage costs no waiting and recovery
// needs no restart. Lost counts and degraded answers are logged at most once a second, with how
// many there were.
//
// # Tokens
//
// Each ad in an answer carries a click URL and an impression URL whose last segment is a token:
// the ad, forum, placement, price (the candidate's bid in micros, added to spend on a click),
// expiry ([Options].TokenTTL), kind and a random nonce, signed with HMAC-SHA256 under
// [Options].Secret. The click destination comes only from the signed ad's creative in Redis,
// never from the request. A token is not single-use: replaying an impression or click URL before
// it expires counts again (deduplication would need state per token; the tokens expire instead).
// Counts go to the current UTC hour's counter hash ([rkeys.Keys.Counters]) with the hash added to
// [rkeys.Keys.CounterHours], in one MULTI/EXEC. A click whose count fails after its creative was
// read still redirects (the lost click is logged).
//
// # The embed
//
// /embed.js (vanilla JS, under 8 KB, cacheable for [EmbedMaxAge] seconds with an ETag) fills the
// element after its own script tag when the tag has data-forum (and data-placement, data-count),
// and every <div class="forumads-slot" data-forum=…>. It calls /v1/ads on the script's own origin
// (2 s timeout), renders the ads with DOM methods and textContent only (links rel="sponsored
// noopener"), sends each ad's impression beacon once when the slot is at least half visible, and on
// any error renders nothing and throws nothing. Each slot's data-forumads-state ends as "filled"
// or "empty", for pages that collapse empty slots.
package serving

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "embed" // the static assets
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/web/httpx"
)

// Defaults of [Options].
const (
	DefaultRedisTimeout = 50 * time.Millisecond
	DefaultTokenTTL     = 24 * time.Hour
	// ReadyTimeout is how long /readyz waits for Redis to answer PING.
	ReadyTimeout = 200 * time.Millisecond
)

// Options configure the serving handler.
type Options struct {
	// Redis holds the rank lists, creatives, switches and counters (required). Give it
	// ContextTimeoutEnabled: the handler then runs its Redis calls inline, with the request's
	// budget as their socket deadline; without it every call runs on a goroutine of its own
	// (slower) so that the budget still holds.
	Redis redis.UniversalClient
	// Keys is the key layout (the zero value: rkeys.DefaultPrefix).
	Keys rkeys.Keys
	// Secret is the HMAC-SHA256 key of click/impression tokens (required, >= 16 bytes).
	Secret []byte
	// CORSOrigins are the origins ("https://forum.example") allowed to call /v1/ads and the
	// impression beacons from the embed; "*" allows any.
	CORSOrigins []string
	// RedisTimeout is the budget of Redis work per request (default 50ms).
	RedisTimeout time.Duration
	// TokenTTL is the click/impression token lifetime (default 24h).
	TokenTTL time.Duration
	// Now is the clock of token expiry and counter hours (default time.Now).
	Now func() time.Time
	// Logger receives request logs and Redis trouble (default slog.Default()).
	Logger *slog.Logger
}

//go:embed static/embed.js
var embedJS []byte

//go:embed static/thread.html
var threadHTML string

// server is the handler's state; it is safe for concurrent use.
type server struct {
	rc     redis.UniversalClient
	keys   rkeys.Keys
	sign   *signer
	cors   corsPolicy
	budget time.Duration
	ttl    time.Duration
	now    func() time.Time
	log    *slog.Logger
	br     *breaker

	degraded, lostImpressions, lostClicks, badData *rateLog

	lists     *memo[[]rkeys.Candidate]
	creatives *memo[servable]
	switches  *memo[rkeys.Switch]

	embedETag string
	thread    *template.Template
}

// New returns the serving API's handler (request logging and panic recovery included). It fails
// when a required option is missing or an option is malformed.
func New(o Options) (http.Handler, error) {
	s, err := newServer(o)
	if err != nil {
		return nil, err
	}
	return httpx.Logged(s.log, s.routes()), nil
}

func newServer(o Options) (*server, error) {
	if o.Redis == nil {
		return nil, errors.New("serving: Options.Redis is required")
	}
	sign, err := newSigner(o.Secret)
	if err != nil {
		return nil, err
	}
	cors, err := newCORS(o.CORSOrigins)
	if err != nil {
		return nil, err
	}
	if o.RedisTimeout < 0 || o.TokenTTL < 0 {
		return nil, fmt.Errorf("serving: RedisTimeout (%v) and TokenTTL (%v) must not be negative", o.RedisTimeout, o.TokenTTL)
	}
	if o.RedisTimeout == 0 {
		o.RedisTimeout = DefaultRedisTimeout
	}
	if o.TokenTTL == 0 {
		o.TokenTTL = DefaultTokenTTL
	}
	if o.TokenTTL < time.Second {
		return nil, fmt.Errorf("serving: TokenTTL must be at least 1s, got %v", o.TokenTTL)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Keys.Prefix == "" {
		o.Keys = rkeys.New("")
	}
	thread, err := template.New("thread").Parse(threadHTML)
	if err != nil {
		return nil, fmt.Errorf("serving: demo page template: %w", err)
	}
	sum := sha256.Sum256(embedJS)
	log := o.Logger
	return &server{
		rc: o.Redis, keys: o.Keys, sign: sign, cors: cors, budget: o.RedisTimeout, ttl: o.TokenTTL,
		now: o.Now, log: log,
		br:              &breaker{log: log, now: time.Now, inline: enforcesDeadlines(o.Redis)},
		degraded:        newRateLog(log, "ad requests answered without ads: redis unavailable"),
		lostImpressions: newRateLog(log, "impressions not counted: redis unavailable"),
		lostClicks:      newRateLog(log, "clicks not counted: redis unavailable"),
		badData:         newRateLog(log, "bad data in redis skipped"),
		lists:           newMemo[[]rkeys.Candidate](memoLists),
		creatives:       newMemo[servable](memoCreatives),
		switches:        newMemo[rkeys.Switch](memoSwitches),
		embedETag:       `"` + hex.EncodeToString(sum[:8]) + `"`,
		thread:          thread,
	}, nil
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/ads", s.handleAds)
	mux.HandleFunc("/v1/click/{token}", s.handleClick)
	mux.HandleFunc("/v1/impression/{token}", s.handleImpression)
	mux.HandleFunc("/embed.js", s.handleEmbed)
	mux.HandleFunc("/demo/thread", s.handleDemo)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if allowMethods(w, r, http.MethodGet, http.MethodHead) {
			httpx.Health(w, r)
		}
	})
	ready := httpx.Ready(ReadyTimeout, map[string]func(context.Context) error{"redis": s.ping})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if allowMethods(w, r, http.MethodGet, http.MethodHead) {
			w.Header().Set("Cache-Control", "no-store")
			ready(w, r)
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteError(w, r, s.log, httpx.Errorf(http.StatusNotFound, "not_found", "no such resource: %s", truncate(r.URL.Path, 200)))
	})
	return mux
}

// allowMethods answers 405 (JSON, with Allow) unless r's method is one of methods.
func allowMethods(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	allow := strings.Join(methods, ", ")
	w.Header().Set("Allow", allow)
	httpx.WriteError(w, r, nil, httpx.Errorf(http.StatusMethodNotAllowed, "method_not_allowed", "method %s not allowed; use %s", truncate(r.Method, 20), allow))
	return false
}

// ping checks Redis for /readyz, returning when ctx ends even if the client does not.
func (s *server) ping(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.rc.Ping(ctx).Err() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return errors.New("no answer to PING in time")
	}
}

// budgetContext is the context of a request's Redis work: the budget, and not cancelled when the
// client goes away (a count in flight completes).
func (s *server) budgetContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.Context()), s.budget)
}

// adJSON is one ad of a /v1/ads answer.
type adJSON struct {
	ID            int64  `json:"id"`
	Title         string `json:"title"`
	Body          string `json:"body"`
	ImageURL      string `json:"image_url,omitempty"`
	Advertiser    string `json:"advertiser"`
	ClickURL      string `json:"click_url"`
	ImpressionURL string `json:"impression_url"`
}

// adsAnswer is the body of a /v1/ads answer.
type adsAnswer struct {
	Ads       []adJSON `json:"ads"`
	Forum     string   `json:"forum"`
	Placement string   `json:"placement"`
}

func (s *server) handleAds(w http.ResponseWriter, r *http.Request) {
	allowed := s.cors.apply(w, r)
	if r.Method == http.MethodOptions {
		s.cors.preflight(w, r, allowed, http.MethodGet, http.MethodHead)
		return
	}
	if !allowMethods(w, r, http.MethodGet, http.MethodHead, http.MethodOptions) {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	q, herr := parseAdQuery(r.URL.RawQuery, r.Header)
	if herr != nil {
		httpx.WriteError(w, r, s.log, herr)
		return
	}
	ctx, cancel := s.budgetContext(r)
	defer cancel()
	ads, err := s.choose(ctx, q)
	var he *httpx.Error
	switch {
	case errors.As(err, &he):
		httpx.WriteError(w, r, s.log, he)
		return
	case err != nil:
		s.degraded.note(err)
		w.Header().Set("X-Ads-Degraded", "1")
		ads = nil
	}
	if ads == nil {
		ads = []adJSON{}
	}
	httpx.WriteJSON(w, http.StatusOK, adsAnswer{Ads: ads, Forum: q.Forum, Placement: q.Placement})
}

// switches are the feature switches an ad request obeys.
type switches struct {
	enabled  bool // serving.enabled
	images   bool // embed.images
	maxCount int  // serving.max_count
}

// parseSwitches reads the switches hash; a missing or malformed switch keeps its default (on,
// on, DefaultMaxCount), and a malformed one is logged.
func (s *server) parseSwitches(m map[string]string) switches {
	sw := switches{enabled: true, images: true, maxCount: DefaultMaxCount}
	get := func(name string) (rkeys.Switch, bool) {
		raw, ok := m[name]
		if !ok {
			return rkeys.Switch{}, false
		}
		v, err := s.switches.get(name, raw, decodeSwitch)
		if err != nil {
			s.badData.note(fmt.Errorf("switch %s: %w", name, err))
			return rkeys.Switch{}, false
		}
		return v, true
	}
	if v, ok := get("serving.enabled"); ok {
		sw.enabled = v.Enabled
	}
	if v, ok := get("embed.images"); ok {
		sw.images = v.Enabled
	}
	if v, ok := get("serving.max_count"); ok && v.Enabled {
		n, isNum := v.Value.(float64)
		if isNum && n == float64(int(n)) && n >= 1 && n <= rkeys.MaxCandidates {
			sw.maxCount = int(n)
		} else {
			s.badData.note(fmt.Errorf("switch serving.max_count: value %v is not a whole number from 1 to %d", v.Value, rkeys.MaxCandidates))
		}
	}
	return sw
}

// choose picks q.Count ads in two Redis round trips. An *httpx.Error is the client's fault; any
// other error means Redis could not answer (the caller degrades).
func (s *server) choose(ctx context.Context, q adQuery) ([]adJSON, error) {
	// Round trip 1: both lists and the switches.
	var forumList, defaultList *redis.StringCmd
	var swCmd *redis.MapStringStringCmd
	err := s.br.call(ctx, func(ctx context.Context) error {
		p := s.rc.Pipeline()
		forumList = p.Get(ctx, s.keys.RankForum(q.Placement, q.Forum))
		defaultList = p.Get(ctx, s.keys.RankDefault(q.Placement))
		swCmd = p.HGetAll(ctx, s.keys.Switches())
		_, _ = p.Exec(ctx)
		for _, c := range []redis.Cmder{forumList, defaultList, swCmd} {
			if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sw := s.parseSwitches(swCmd.Val())
	if q.Count > sw.maxCount {
		return nil, paramError("count", "must be a whole number from 1 to %d, got %d", sw.maxCount, q.Count)
	}
	if !sw.enabled {
		return nil, nil
	}
	key, list := s.keys.RankForum(q.Placement, q.Forum), forumList.Val()
	if errors.Is(forumList.Err(), redis.Nil) {
		key, list = s.keys.RankDefault(q.Placement), defaultList.Val()
	}
	picked := s.pick(key, list, q, q.Count+extraCandidates(q.Count))
	if len(picked) == 0 {
		return nil, nil
	}

	// Round trip 2: the creatives of the picked candidates.
	keys := make([]string, len(picked))
	for i, c := range picked {
		keys[i] = s.keys.Creative(c.Ad)
	}
	var vals []any
	err = s.br.call(ctx, func(ctx context.Context) error {
		v, err := s.rc.MGet(ctx, keys...).Result()
		vals = v
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.build(picked, keys, vals, q, sw)
}

// extraCandidates is how many candidates beyond count are picked, to fill count when a creative
// is missing (a list may briefly name an ad whose creative is not warmed yet).
func extraCandidates(count int) int { return min(count, 3) }

// pick returns up to n candidates of list (the value of rank key key, best first) the viewer's
// country may see, without repeating an ad. Unusable elements are skipped and logged.
func (s *server) pick(key, list string, q adQuery, n int) []rkeys.Candidate {
	cs, err := s.lists.get(key, list, decodeList)
	if err != nil {
		s.badData.note(fmt.Errorf("rank list %s: %w", key, err))
	}
	picked := make([]rkeys.Candidate, 0, n)
	for _, c := range cs {
		if len(picked) == n {
			break
		}
		if countryAllowed(c.Countries, q.Country) && !chosen(picked, c.Ad) {
			picked = append(picked, c)
		}
	}
	return picked
}

func chosen(cs []rkeys.Candidate, ad int64) bool {
	for _, c := range cs {
		if c.Ad == ad {
			return true
		}
	}
	return false
}

// countryAllowed reports whether a viewer in country ("" = unknown) may see an ad targeting
// countries (empty = every country).
func countryAllowed(countries []string, country string) bool {
	if len(countries) == 0 {
		return true
	}
	if country == "" {
		return false
	}
	for _, c := range countries {
		if c == country {
			return true
		}
	}
	return false
}

// build turns the picked candidates whose creative is present and valid into the answer's ads, at
// most q.Count of them, each with fresh signed click and impression URLs.
func (s *server) build(picked []rkeys.Candidate, keys []string, vals []any, q adQuery, sw switches) ([]adJSON, error) {
	ads := make([]adJSON, 0, q.Count)
	var nonces [2 * 8 * (rkeys.MaxCandidates + 3)]byte
	if _, err := rand.Read(nonces[:2*8*len(picked)]); err != nil {
		return nil, fmt.Errorf("token nonce: %w", err)
	}
	exp := s.now().Add(s.ttl)
	for i, c := range picked {
		if len(ads) == q.Count {
			break
		}
		raw, ok := vals[i].(string)
		if !ok {
			continue // not warmed yet
		}
		key := keys[i]
		cr, err := s.creatives.get(key, raw, decodeCreative)
		if err == nil && cr.ID != c.Ad {
			err = fmt.Errorf("holds the creative of ad %d", cr.ID)
		}
		if err != nil {
			s.badData.note(fmt.Errorf("%s: %w", key, err))
			continue
		}
		t := token{Kind: kindClick, Ad: c.Ad, Forum: q.Forum, Placement: q.Placement, Price: c.Bid, Expires: exp}
		copy(t.Nonce[:], nonces[16*i:])
		click, err := s.sign.Encode(&t)
		if err != nil {
			return nil, err
		}
		t.Kind, t.Price = kindImpression, 0
		copy(t.Nonce[:], nonces[16*i+8:])
		imp, err := s.sign.Encode(&t)
		if err != nil {
			return nil, err
		}
		ad := adJSON{ID: c.Ad, Title: cr.Title, Body: cr.Body, Advertiser: cr.Advertiser,
			ClickURL: "/v1/click/" + click, ImpressionURL: "/v1/impression/" + imp}
		if sw.images && cr.imageOK {
			ad.ImageURL = cr.ImageURL
		}
		ads = append(ads, ad)
	}
	return ads, nil
}

// absHTTPURL reports whether u is an absolute http or https URL with a host.
func absHTTPURL(u string) bool {
	p, err := url.Parse(u)
	return err == nil && (p.Scheme == "http" || p.Scheme == "https") && p.Host != "" && p.Opaque == ""
}
