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
//	GET  /creatives/{ad id}.svg                   the sample ads' placeholder images (package creative)
//	GET  /healthz, /readyz                        liveness; readiness (Redis answers PING within 200 ms)
//
// Routing is github.com/gorilla/mux, each route with its methods (route variables are copied into
// r.PathValue, as in web/dataapi). Every error is the JSON of [httpx.Error]: a 400 naming the
// parameter at fault, 404 for an unknown path or an unknown or forged token, 410 for an expired
// one or an ad whose creative is gone, 405 (with Allow) for a wrong method.
//
// # Choosing ads
//
// The ads come from the forum's rank list when it exists (even empty), else the placement's
// default list. Candidates are taken best first, skipping an ad already taken and an ad targeting
// countries when the viewer's country (X-Country, else CF-IPCountry) is not one of them or is
// unknown; count plus a few extra are taken, and a picked ad whose creative is missing or unusable
// (a click_url that is not an absolute http(s) URL, the id of another ad) is skipped for an extra.
// Switches: serving.enabled off answers no ads, embed.images off leaves image_url out,
// serving.max_count (its value, when on) caps count (default [DefaultMaxCount]; above it is a 400).
//
// # What a request reads, and what it remembers
//
// Round trip 1 reads the rank generation ([rkeys.Keys.RankMeta]'s generation field, which ads.score
// bumps in the MULTI that swaps the lists in) and the switches. Decoded rank lists are cached under
// the generation they were read with: while it does not move, a list is not read again; a request
// that finds no list cached for the newest generation seen reads the forum and default lists in
// round trip 1 too. The first request to see a new generation is still served the previous
// generation's lists (as if it had come a moment earlier) and reads the new ones in round trip 2.
// Without a generation (no scoring yet, or a malformed one, which is logged) every request reads
// both lists in round trip 1: a list written without bumping the generation (not what ads.score
// does) shows only at the next generation. Creatives (and their absence) are cached by ad for
// [CreativeTTL] (ads.warm_cache rewrites them without a new generation); the picked ads' creatives
// not read within it are MGET in round trip 2. Switches are read by every request's round trip 1,
// and apply at once.
//
// Round trip 1, when the lists are cached, is shared: a request arriving while such a read is in
// flight waits for the next one, which starts when it ends and serves every request that arrived
// meanwhile (never a read sent before the request arrived). So a request costs at most two round
// trips of its own within its budget, in the common case one (alone) or none (under load, sharing
// another request's). What a Redis value decodes to is also remembered by its raw value, so a
// changed value is decoded afresh and an unchanged one is not decoded twice.
//
// The answer is assembled from JSON fragments of each creative encoded once, byte for byte what
// encoding/json writes.
//
// # Redis client
//
// [RedisOptions] are the client options main.go must use: ContextTimeoutEnabled (calls run inline
// with the request's budget as their deadline), MaxRetries -1 (a retried counting MULTI could count
// a click twice), a pool sized for the requests in flight, and short socket timeouts.
//
// # Request logs
//
// Requests are logged with log/slog (message "request": method, path, status, duration, bytes), and
// a panic is recovered into a JSON 500. Every 4xx (INFO) and 5xx (ERROR) is logged; answered
// requests (1xx–3xx) are sampled: at most one line per [Options].LogEvery (default
// [DefaultLogEvery]), with "requests" saying how many it stands for, so the log keeps the rates
// without a line (and a write) per ad request.
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
// any error renders nothing and throws nothing; an ad image that does not load is removed. Each slot's data-forumads-state ends as "filled"
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
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/internal/metrics"
	"github.com/forumads/forumads/web/httpx"
)

// Defaults of [Options].
const (
	DefaultRedisTimeout = 50 * time.Millisecond
	DefaultTokenTTL     = 24 * time.Hour
	// DefaultStateTTL is how long one read of the rank generation and the switches serves ad
	// requests (see [Options].StateTTL).
	DefaultStateTTL = 100 * time.Millisecond
	// ReadyTimeout is how long /readyz waits for Redis to answer PING.
	ReadyTimeout = 200 * time.Millisecond
)

// Options configure the serving handler.
type Options struct {
	// Redis holds the rank lists, creatives, switches and counters (required). Build it from
	// [RedisOptions]. Without ContextTimeoutEnabled every call runs on a goroutine of its own
	// (slower) so that the budget still holds; with it the handler runs its Redis calls inline,
	// with the request's budget as their socket deadline.
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
	// StateTTL is how long one read of the rank generation and the switches serves ad requests
	// (default DefaultStateTTL). After it the next request starts a new read in the background
	// and is answered from the previous one, so ad requests do not wait for Redis and most need
	// no round trip at all: a switch change or a new scoring generation shows within about
	// StateTTL plus one Redis round trip. A read older than 10 StateTTLs (Redis unreachable) is
	// not used: requests then read for themselves, and fail fast as without it. Negative: every
	// ad request reads them (shared between concurrent requests, never older than the request),
	// so a change shows at once.
	StateTTL time.Duration
	// Now is the clock of token expiry, counter hours, creative caching and log sampling (default
	// time.Now).
	Now func() time.Time
	// Logger receives request logs and Redis trouble (default slog.Default()).
	Logger *slog.Logger
	// LogEvery is how often a request answered 1xx–3xx is logged: at most one such line per
	// LogEvery, carrying how many requests it stands for (default DefaultLogEvery; negative: every
	// request). Requests answered 4xx or 5xx are always logged.
	LogEvery time.Duration
	// Metrics, when set, observes each request's duration under its route's path template (such
	// as "/v1/click/{token}": a token never becomes a label), or "other" for a path no route
	// takes; see httpx.RouteLabels.
	Metrics *metrics.HTTP
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

	lists      *memo[[]rkeys.Candidate]
	creatives  *memo[servable]
	switches   *memo[rkeys.Switch]
	gen        atomic.Int64 // the newest rank generation a request read (0: none)
	rankLists  *listCache
	rtOne      coalescer[rtOne]
	stateTTL   time.Duration                 // Options.StateTTL; <= 0: no state snapshot
	state      atomic.Pointer[stateSnapshot] // the newest read of generation and switches
	refreshing atomic.Bool                   // a background state read is running
	recent     *creativeCache

	embedETag string
	thread    *template.Template
}

// New returns the serving API's handler, with request logging (sampled, see [Options].LogEvery)
// and panic recovery. It fails when a required option is missing or an option is malformed.
func New(o Options) (http.Handler, error) {
	s, err := newServer(o)
	if err != nil {
		return nil, err
	}
	every := o.LogEvery
	switch {
	case every == 0:
		every = DefaultLogEvery
	case every < 0:
		every = 0
	}
	rl := &requestLog{log: s.log, every: every, now: s.now}
	router := s.routes()
	h := rl.wrap(router)
	if o.Metrics != nil {
		labels, err := httpx.NewRouteLabels(router)
		if err != nil {
			return nil, err
		}
		h = httpx.Observed(o.Metrics, labels, h)
	}
	return h, nil
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
	if o.StateTTL == 0 {
		o.StateTTL = DefaultStateTTL
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
		now: o.Now, log: log, stateTTL: o.StateTTL,
		br:              &breaker{log: log, now: time.Now, inline: enforcesDeadlines(o.Redis)},
		degraded:        newRateLog(log, "ad requests answered without ads: redis unavailable"),
		lostImpressions: newRateLog(log, "impressions not counted: redis unavailable"),
		lostClicks:      newRateLog(log, "clicks not counted: redis unavailable"),
		badData:         newRateLog(log, "bad data in redis skipped"),
		lists:           newMemo[[]rkeys.Candidate](memoLists),
		creatives:       newMemo[servable](memoCreatives),
		switches:        newMemo[rkeys.Switch](memoSwitches),
		rankLists:       newListCache(memoLists),
		recent:          newCreativeCache(memoCreatives),
		embedETag:       `"` + hex.EncodeToString(sum[:8]) + `"`,
		thread:          thread,
	}, nil
}

// routes is the gorilla/mux router of the API. Each route names its methods; another method on a
// known path is a JSON 405 with Allow, an unknown path a JSON 404. Route variables are copied into
// the request's path values (r.PathValue), as web/dataapi does.
func (s *server) routes() *mux.Router {
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(s.notFound)
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		methodNotAllowed(w, req, r)
	})
	route := func(path string, h http.HandlerFunc, methods ...string) {
		r.Handle(path, withPathValues(h)).Methods(methods...)
	}
	route("/v1/ads", s.handleAds, http.MethodGet, http.MethodHead, http.MethodOptions)
	route("/v1/click/{token}", s.handleClick, http.MethodGet)
	route("/v1/impression/{token}", s.handleImpression, http.MethodGet, http.MethodPost, http.MethodOptions)
	route("/embed.js", s.handleEmbed, http.MethodGet, http.MethodHead)
	route("/demo/thread", s.handleDemo, http.MethodGet, http.MethodHead)
	route("/creatives/{name}", s.handleCreative, http.MethodGet, http.MethodHead)
	route("/healthz", httpx.Health, http.MethodGet, http.MethodHead)
	ready := httpx.Ready(ReadyTimeout, map[string]func(context.Context) error{"redis": s.ping})
	route("/readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		ready(w, r)
	}, http.MethodGet, http.MethodHead)
	return r
}

// withPathValues copies the route's variables into the request's path values, so handlers read
// them with r.PathValue whatever router matched.
func withPathValues(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range mux.Vars(r) {
			r.SetPathValue(k, v)
		}
		h.ServeHTTP(w, r)
	})
}

func (s *server) notFound(w http.ResponseWriter, r *http.Request) {
	httpx.WriteError(w, r, s.log, httpx.Errorf(http.StatusNotFound, "not_found", "no such resource: %s", truncate(r.URL.Path, 200)))
}

// routeMethods are the methods a 405 probes the router with to fill in Allow.
var routeMethods = [...]string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodOptions}

// methodNotAllowed answers 405 (JSON) with Allow naming the methods router routes r's path for.
func methodNotAllowed(w http.ResponseWriter, r *http.Request, router *mux.Router) {
	var allowed []string
	for _, m := range routeMethods {
		probe := r.Clone(r.Context())
		probe.Method = m
		var match mux.RouteMatch
		if router.Match(probe, &match) && match.MatchErr == nil {
			allowed = append(allowed, m)
		}
	}
	allow := strings.Join(allowed, ", ")
	w.Header().Set("Allow", allow)
	httpx.WriteError(w, r, nil, httpx.Errorf(http.StatusMethodNotAllowed, "method_not_allowed", "method %s not allowed; use %s", truncate(r.Method, 20), allow))
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

// adJSON is one ad of a /v1/ads answer (appendAnswer writes the answer; tests decode it into
// adsAnswer).
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
	w.Header().Set("Cache-Control", "no-store")
	q, herr := parseAdQuery(r.URL.RawQuery, r.Header)
	if herr != nil {
		httpx.WriteError(w, r, s.log, herr)
		return
	}
	ctx, cancel := s.budgetContext(r)
	defer cancel()
	ads, images, err := s.choose(ctx, q)
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
	bp := answerBuffers.Get().(*[]byte)
	b := appendAnswer((*bp)[:0], ads, images, q.Forum, q.Placement)
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(b, '\n'))
	*bp = b
	answerBuffers.Put(bp)
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

// choose picks q.Count ads in one or two Redis round trips. An *httpx.Error is the client's fault;
// any other error means Redis could not answer (the caller degrades).
//
// Round trip 1 reads the rank generation and the switches, plus the forum and default lists
// unless the list cache holds them for the newest generation this process has seen. When the
// generation read is newer than the cached lists' (ads.score published a moment ago and no
// request has seen it yet), this request is served from the lists of the previous generation
// and round trip 2 reads the new ones for the next requests. Round trip 2 also MGETs the
// creatives of the picked candidates that were not read within CreativeTTL; with every list and
// creative cached, a request costs one round trip.
func (s *server) choose(ctx context.Context, q adQuery) (ads []builtAd, images bool, err error) {
	forumKey, defaultKey := s.keys.RankForum(q.Placement, q.Forum), s.keys.RankDefault(q.Placement)
	lastGen := s.gen.Load()
	fe, fok := s.rankLists.get(forumKey)
	de, dok := s.rankLists.get(defaultKey)
	fetchLists := lastGen <= 0 || !fok || fe.gen != lastGen || (!fe.found && (!dok || de.gen != lastGen))

	var snap rtOne
	var forumList, defaultList *redis.StringCmd
	if fetchLists {
		start := s.now()
		err = s.br.call(ctx, func(ctx context.Context) error {
			p := s.rc.Pipeline()
			// The generation first: lists read after it are at least as new as it says.
			snap.gen = p.HGet(ctx, s.keys.RankMeta(), "generation")
			snap.sw = p.HGetAll(ctx, s.keys.Switches())
			forumList = p.Get(ctx, forumKey)
			defaultList = p.Get(ctx, defaultKey)
			_, _ = p.Exec(ctx)
			return cmdsErr(snap.gen, snap.sw, forumList, defaultList)
		})
		if err == nil {
			s.keepState(snap, start)
		}
	} else {
		snap, err = s.genAndSwitches(ctx)
	}
	if err != nil {
		return nil, false, err
	}
	genCmd, swCmd := snap.gen, snap.sw
	gen := s.parseGeneration(genCmd)
	if gen != lastGen {
		s.gen.Store(gen)
	}
	sw := s.parseSwitches(swCmd.Val())
	if q.Count > sw.maxCount {
		return nil, false, paramError("count", "must be a whole number from 1 to %d, got %d", sw.maxCount, q.Count)
	}
	if !sw.enabled {
		return nil, false, nil
	}

	var list []rkeys.Candidate
	refresh := false // round trip 2 reads the lists of the new generation
	switch {
	case fetchLists:
		f := s.listFrom(forumKey, forumList, gen)
		d := s.listFrom(defaultKey, defaultList, gen)
		list = f.cands
		if !f.found {
			list = d.cands
		}
	default:
		list = fe.cands
		if !fe.found {
			list = de.cands
		}
		refresh = fe.gen != gen || (!fe.found && de.gen != gen)
	}
	picked := pick(list, q, q.Count+extraCandidates(q.Count))

	// The creatives: from the cache when read within CreativeTTL, else in round trip 2.
	now := s.now()
	entries := make([]creativeEntry, len(picked))
	var missing []int64
	var missingAt []int
	for i, c := range picked {
		if e, ok := s.recent.fresh(c.Ad, now); ok {
			entries[i] = e
			continue
		}
		missing = append(missing, c.Ad)
		missingAt = append(missingAt, i)
	}
	if len(missing) > 0 || refresh {
		var mget *redis.SliceCmd
		err = s.br.call(ctx, func(ctx context.Context) error {
			p := s.rc.Pipeline()
			cmds := make([]redis.Cmder, 0, 3)
			if len(missing) > 0 {
				keys := make([]string, len(missing))
				for i, ad := range missing {
					keys[i] = s.keys.Creative(ad)
				}
				mget = p.MGet(ctx, keys...)
				cmds = append(cmds, mget)
			}
			if refresh {
				forumList = p.Get(ctx, forumKey)
				defaultList = p.Get(ctx, defaultKey)
				cmds = append(cmds, forumList, defaultList)
			}
			_, _ = p.Exec(ctx)
			return cmdsErr(cmds...)
		})
		if err != nil {
			return nil, false, err
		}
		if refresh {
			s.listFrom(forumKey, forumList, gen)
			s.listFrom(defaultKey, defaultList, gen)
		}
		if len(missing) > 0 {
			read := make([]creativeEntry, len(missing))
			for i, v := range mget.Val() {
				read[i] = s.creativeFrom(missing[i], v, now)
				entries[missingAt[i]] = read[i]
			}
			s.recent.put(missing, read)
		}
	}
	ads, err = s.build(picked, entries, q)
	return ads, sw.images, err
}

// rtOne is what round trip 1 reads when the lists are cached: the rank generation and the
// switches (read-only once read: requests share it).
type rtOne struct {
	gen *redis.StringCmd
	sw  *redis.MapStringStringCmd
}

// stateSnapshot is a read of the generation and the switches and when it started.
type stateSnapshot struct {
	v  rtOne
	at time.Time
}

// staleStates is how many StateTTLs a state read may serve requests while a newer one is read in
// the background; beyond that (Redis unreachable for that long) requests read it themselves.
const staleStates = 10

// genAndSwitches returns the rank generation and the switches: from the last read while it is
// younger than StateTTL; from it too while it is younger than staleStates StateTTLs, a new read
// then being made in the background (one at a time); else from a new read (shared by concurrent
// requests), which the request waits for.
func (s *server) genAndSwitches(ctx context.Context) (rtOne, error) {
	if s.stateTTL > 0 {
		if c := s.state.Load(); c != nil {
			age := s.now().Sub(c.at)
			if age < s.stateTTL {
				return c.v, nil
			}
			if age < staleStates*s.stateTTL {
				s.refreshState()
				return c.v, nil
			}
		}
	}
	start := s.now()
	v, _, err := s.rtOne.do(ctx, s.readGenAndSwitches)
	if err == nil {
		s.keepState(v, start)
	}
	return v, err
}

// refreshState reads the generation and the switches in the background, within the Redis budget,
// unless such a read is running already.
func (s *server) refreshState() {
	if !s.refreshing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.refreshing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), s.budget)
		defer cancel()
		start := s.now()
		if v, _, err := s.rtOne.do(ctx, s.readGenAndSwitches); err == nil {
			s.keepState(v, start)
		}
	}()
}

// keepState records a read that started at start, unless a newer one is recorded.
func (s *server) keepState(v rtOne, start time.Time) {
	if s.stateTTL <= 0 {
		return
	}
	next := &stateSnapshot{v: v, at: start}
	for {
		cur := s.state.Load()
		if cur != nil && !cur.at.Before(start) {
			return
		}
		if s.state.CompareAndSwap(cur, next) {
			return
		}
	}
}

// readGenAndSwitches is round trip 1 when the lists are cached, shared by concurrent requests
// (server.rtOne).
func (s *server) readGenAndSwitches(ctx context.Context) (rtOne, error) {
	var r rtOne
	err := s.br.call(ctx, func(ctx context.Context) error {
		p := s.rc.Pipeline()
		gen := p.HGet(ctx, s.keys.RankMeta(), "generation")
		sw := p.HGetAll(ctx, s.keys.Switches())
		_, _ = p.Exec(ctx)
		if err := cmdsErr(gen, sw); err != nil {
			return err
		}
		r = rtOne{gen: gen, sw: sw}
		return nil
	})
	if err != nil {
		// Not r: without inline calls fn may still be running.
		return rtOne{}, err
	}
	return r, nil
}

// cmdsErr is the first error of cmds other than redis.Nil (a missing key or field).
func cmdsErr(cmds ...redis.Cmder) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
	}
	return nil
}

// parseGeneration reads the rank generation (0: none, or malformed, which is logged).
func (s *server) parseGeneration(cmd *redis.StringCmd) int64 {
	if errors.Is(cmd.Err(), redis.Nil) {
		return 0
	}
	g, err := strconv.ParseInt(cmd.Val(), 10, 64)
	if err != nil || g <= 0 {
		s.badData.note(fmt.Errorf("%s generation %q is not a positive integer", s.keys.RankMeta(), truncate(cmd.Val(), 40)))
		return 0
	}
	return g
}

// listFrom decodes the rank list cmd read at key (bad elements are skipped and logged) and, under
// a known generation gen, caches it.
func (s *server) listFrom(key string, cmd *redis.StringCmd, gen int64) listEntry {
	e := listEntry{gen: gen}
	if !errors.Is(cmd.Err(), redis.Nil) {
		e.found = true
		cs, err := s.lists.get(key, cmd.Val(), decodeList)
		if err != nil {
			s.badData.note(fmt.Errorf("rank list %s: %w", key, err))
		}
		e.cands = cs
	}
	if gen > 0 {
		s.rankLists.put(key, e)
	}
	return e
}

// creativeFrom is what an MGET value of ad's creative key holds.
func (s *server) creativeFrom(ad int64, v any, now time.Time) creativeEntry {
	raw, ok := v.(string)
	if !ok {
		return creativeEntry{at: now} // not warmed (yet)
	}
	key := s.keys.Creative(ad)
	cr, err := s.creatives.get(key, raw, decodeCreative)
	if err == nil && cr.ID != ad {
		err = fmt.Errorf("holds the creative of ad %d", cr.ID)
	}
	if err != nil {
		err = fmt.Errorf("%s: %w", key, err)
	}
	return creativeEntry{at: now, found: true, cr: cr, err: err}
}

// extraCandidates is how many candidates beyond count are picked, to fill count when a creative
// is missing (a list may briefly name an ad whose creative is not warmed yet).
func extraCandidates(count int) int { return min(count, 3) }

// pick returns up to n candidates of list (best first) the viewer's country may see, without
// repeating an ad.
func pick(list []rkeys.Candidate, q adQuery, n int) []rkeys.Candidate {
	picked := make([]rkeys.Candidate, 0, n)
	for _, c := range list {
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

// build turns the picked candidates whose creative (entries[i]) is present and valid into the
// answer's ads, at most q.Count of them, each with fresh signed click and impression tokens.
func (s *server) build(picked []rkeys.Candidate, entries []creativeEntry, q adQuery) ([]builtAd, error) {
	ads := make([]builtAd, 0, q.Count)
	var nonces [2 * 8 * (rkeys.MaxCandidates + 3)]byte
	if _, err := rand.Read(nonces[:2*8*len(picked)]); err != nil {
		return nil, fmt.Errorf("token nonce: %w", err)
	}
	exp := s.now().Add(s.ttl)
	for i, c := range picked {
		if len(ads) == q.Count {
			break
		}
		e := &entries[i]
		if !e.found {
			continue // not warmed yet
		}
		if e.err != nil {
			s.badData.note(e.err)
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
		ads = append(ads, builtAd{id: c.Ad, frag: &e.cr.frag, click: click, imp: imp})
	}
	return ads, nil
}

// absHTTPURL reports whether u is an absolute http or https URL with a host.
func absHTTPURL(u string) bool {
	p, err := url.Parse(u)
	return err == nil && (p.Scheme == "http" || p.Scheme == "https") && p.Host != "" && p.Opaque == ""
}
