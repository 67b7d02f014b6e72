// Package dataapi is the ads data API (the Procfile's data line) and the advertiser dashboard it
// serves: JSON over PostgreSQL (the source of truth) for advertisers, campaigns, ads and forums;
// feed imports sent to the workers as ads.import_feed; task status from the Celery result backend;
// and delivery time series from Redis (rkeys.Series) with PostgreSQL as the fallback.
//
//	GET  /healthz, /readyz                     liveness; PostgreSQL and Redis reachable (no token)
//	GET  /dashboard, /dashboard/assets/…       the advertiser dashboard (static; no token)
//	GET  /v1/advertisers  ?status= &q= (name prefix)             POST /v1/advertisers
//	GET  /v1/campaigns    ?advertiser_id= &status= &with=totals  POST /v1/campaigns
//	GET  /v1/ads          ?campaign_id= &advertiser_id= &status= POST /v1/ads
//	GET  /v1/forums       ?category=                             POST /v1/forums
//	GET, PATCH, DELETE /v1/{advertisers,campaigns,ads}/{id}, /v1/forums/{slug}
//	GET  /v1/ads/{id}/timeseries, /v1/campaigns/{id}/timeseries
//	GET  /v1/dashboard/campaigns               campaigns with their 7-day totals
//	POST /v1/imports {"source": …}             202 {"task_id": …}
//	GET  /v1/tasks/{id}                        {task_id, state, progress, result, error}
//
// Everything under /v1 needs "Authorization: Bearer <token>" with one of Options.Tokens.
//
// # Conventions
//
// Bodies are JSON objects of at most 64 KB (413 beyond), read strictly: malformed JSON or invalid
// UTF-8 is a 400, an unknown field or a value of the wrong type a 422 naming the field. Validation
// follows schema.sql's CHECKs and the feed's rules (ads/feed): a 422 names the field at fault. Money
// is decimal text ("0.35"), exact to the micro-unit. A duplicate external_id is a 409; a reference
// to a missing row a 422. Errors are always {"error": {"code", "message", "field"}}; a 500 carries
// no detail (the log does), and a database or Redis outage is a 503.
//
// Lists are pages in id order: ?limit= (1..200, default 50) and ?cursor= (opaque, from the previous
// page's next_cursor; null on the last page). A row inserted while a client walks the pages appears
// at the end, and none is repeated or skipped. Unknown or repeated query parameters are a 400.
//
// GET of one row answers ETag: "<version>". PATCH needs If-Match with that ETag (428 without it,
// 412 when the row has changed since): the UPDATE is guarded by the version, which it bumps with
// updated_at. A PATCH that changes nothing leaves the version alone. DELETE honours an If-Match
// when one is sent.
package dataapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/metrics"
	"github.com/forumads/forumads/web/httpx"
)

// Options are the data API's dependencies.
type Options struct {
	DB *sqlx.DB
	// Redis holds the time series (rkeys.Series); readiness checks it.
	Redis redis.UniversalClient
	Keys  rkeys.Keys
	// Client sends ads.import_feed; nil: POST /v1/imports answers 503.
	Client *celery.Client
	// Results reads task states (a *redisbackend.Backend); nil: GET /v1/tasks answers 503.
	Results interface {
		Get(ctx context.Context, id string) (protocol.ResultMeta, error)
	}
	// Tokens are the accepted bearer tokens (DATA_API_TOKENS, comma-separated). None: every
	// request but the health checks and the dashboard's static files is refused.
	Tokens []string
	// Logger receives request logs and errors (nil: slog.Default()).
	Logger *slog.Logger
	// Metrics, when set, observes each request under its route pattern.
	Metrics *metrics.HTTP
	// PublishTimeout bounds sending an import to the broker, which retries a lost connection
	// until then (default 5s); past it the answer is a 503.
	PublishTimeout time.Duration
}

// api is the handler state.
type api struct {
	db      *sqlx.DB
	rc      redis.UniversalClient
	keys    rkeys.Keys
	client  *celery.Client
	results interface {
		Get(ctx context.Context, id string) (protocol.ResultMeta, error)
	}
	campaigns      *kind[campaignRow, CampaignBody]
	ads            *kind[adRow, AdBody]
	tokens         [][sha256.Size]byte
	publishTimeout time.Duration
	log            *slog.Logger
	router         *mux.Router
}

// New returns the data API's handler. It logs every request and recovers panics (httpx.Logged).
func New(o Options) (http.Handler, error) {
	if o.DB == nil {
		return nil, errors.New("dataapi: Options.DB is required")
	}
	if o.Redis == nil {
		return nil, errors.New("dataapi: Options.Redis is required")
	}
	if o.Keys.Prefix == "" {
		o.Keys = rkeys.New("")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 5 * time.Second
	}
	a := &api{db: o.DB, rc: o.Redis, keys: o.Keys, client: o.Client, results: o.Results, log: o.Logger,
		publishTimeout: o.PublishTimeout, router: mux.NewRouter(), campaigns: campaignKind(), ads: adKind()}
	for i, t := range o.Tokens {
		if t == "" || strings.TrimSpace(t) != t || strings.ContainsAny(t, " \t\r\n,") {
			return nil, fmt.Errorf("dataapi: token %d (of %d) is empty or holds white space or a comma", i+1, len(o.Tokens))
		}
		a.tokens = append(a.tokens, sha256.Sum256([]byte(t)))
	}
	a.router.NotFoundHandler = http.HandlerFunc(a.notFound)
	a.router.MethodNotAllowedHandler = http.HandlerFunc(a.methodNotAllowed)
	route := func(pattern string, h http.Handler) {
		method, path, _ := strings.Cut(pattern, " ")
		if o.Metrics != nil {
			h = o.Metrics.Middleware(path, h)
		}
		h = withPathValues(h)
		if strings.HasSuffix(path, "/") && path != "/" {
			a.router.PathPrefix(path).Methods(method).Handler(h)
			return
		}
		a.router.Handle(path, h).Methods(method)
	}
	open := func(pattern string, h http.HandlerFunc) { route(pattern, h) }
	authed := func(pattern string, h http.HandlerFunc) { route(pattern, a.auth(h)) }

	open("GET /healthz", httpx.Health)
	open("GET /readyz", httpx.Ready(2*time.Second, map[string]func(context.Context) error{
		"postgres": func(ctx context.Context) error { return a.db.PingContext(ctx) },
		"redis":    func(ctx context.Context) error { return a.rc.Ping(ctx).Err() },
	}))
	open("GET /dashboard", dashboardPage)
	a.router.Handle("/dashboard/", withPathValues(http.HandlerFunc(dashboardPage))).Methods(http.MethodGet)
	route("GET /dashboard/assets/", dashboardAssets())

	advertisers, campaigns, ads := advertiserKind(), a.campaigns, a.ads
	authed("GET /v1/advertisers", advertisers.handleList(a))
	authed("POST /v1/advertisers", advertisers.handleCreate(a))
	authed("GET /v1/advertisers/{id}", advertisers.handleGet(a))
	authed("PATCH /v1/advertisers/{id}", advertisers.handlePatch(a))
	authed("DELETE /v1/advertisers/{id}", advertisers.handleDelete(a))

	authed("GET /v1/campaigns", a.handleCampaignList(false))
	authed("POST /v1/campaigns", campaigns.handleCreate(a))
	authed("GET /v1/campaigns/{id}", campaigns.handleGet(a))
	authed("PATCH /v1/campaigns/{id}", campaigns.handlePatch(a))
	authed("DELETE /v1/campaigns/{id}", campaigns.handleDelete(a))
	authed("GET /v1/campaigns/{id}/timeseries", a.handleCampaignSeries)
	authed("GET /v1/dashboard/campaigns", a.handleCampaignList(true))

	authed("GET /v1/ads", ads.handleList(a))
	authed("POST /v1/ads", ads.handleCreate(a))
	authed("GET /v1/ads/{id}", ads.handleGet(a))
	authed("PATCH /v1/ads/{id}", ads.handlePatch(a))
	authed("DELETE /v1/ads/{id}", ads.handleDelete(a))
	authed("GET /v1/ads/{id}/timeseries", a.handleAdSeries)

	f := &forums{}
	authed("GET /v1/forums", f.handleList(a))
	authed("POST /v1/forums", f.handleCreate(a))
	authed("GET /v1/forums/{slug}", f.handleGet(a))
	authed("PATCH /v1/forums/{slug}", f.handlePatch(a))
	authed("DELETE /v1/forums/{slug}", f.handleDelete(a))

	authed("POST /v1/imports", a.handleImport)
	authed("GET /v1/tasks/{id}", a.handleTask)
	return httpx.Logged(o.Logger, a), nil
}

// ServeHTTP routes with gorilla/mux; what no route takes (unknown path, wrong method) gets a JSON
// 404 or 405.
func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.router.ServeHTTP(w, r) }

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

func (a *api) notFound(w http.ResponseWriter, r *http.Request) {
	httpx.WriteError(w, r, a.log, httpx.Errorf(http.StatusNotFound, "not_found", "no such endpoint: %s %s", r.Method, quote(r.URL.Path)))
}

// methodNotAllowed answers 405 with the methods the path does take in Allow.
func (a *api) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		var match mux.RouteMatch
		if a.router.Match(probe, &match) && match.MatchErr == nil {
			allowed = append(allowed, m)
		}
	}
	allow := strings.Join(allowed, ", ")
	w.Header().Set("Allow", allow)
	httpx.WriteError(w, r, a.log, httpx.Errorf(http.StatusMethodNotAllowed, "method_not_allowed",
		"%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow))
}

// auth refuses a request without one of the accepted bearer tokens (401, WWW-Authenticate).
// Tokens are compared as SHA-256 digests in constant time.
func (a *api) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		h := r.Header.Get("Authorization")
		scheme, tok, _ := strings.Cut(h, " ")
		ok := false
		if strings.EqualFold(scheme, "Bearer") && tok != "" {
			sum := sha256.Sum256([]byte(tok))
			for _, t := range a.tokens {
				if subtle.ConstantTimeCompare(sum[:], t[:]) == 1 {
					ok = true
				}
			}
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="forumads data API"`)
			msg := "a valid API token is required (Authorization: Bearer <token>)"
			if h == "" {
				msg = "an API token is required (Authorization: Bearer <token>)"
			}
			httpx.WriteError(w, r, a.log, httpx.Errorf(http.StatusUnauthorized, "unauthorized", "%s", msg))
			return
		}
		next(w, r)
	}
}

// fail answers err (see httpx.WriteError); a dependency outage is logged with its cause.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ue *unavailableError
	if errors.As(err, &ue) {
		a.log.Warn("dependency unavailable", "method", r.Method, "path", r.URL.Path, "error", ue.cause)
		w.Header().Set("Retry-After", "5")
	}
	httpx.WriteError(w, r, a.log, err)
}
