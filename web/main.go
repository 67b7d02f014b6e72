// Command web serves one of the ads HTTP APIs, chosen at start as a Django project picks its
// settings module:
//
//	web --api serving [--addr :8080]   the embed's ad requests, clicks and impressions: Redis only,
//	                                   no database connection at all
//	web --api data    [--addr :8081]   REST for advertisers, campaigns and ads (PostgreSQL), imports
//	                                   through the Go Celery client, task progress, time series, the
//	                                   advertiser dashboard
//
// The address defaults to :$PORT (the Procfile convention). Both answer /healthz (liveness),
// /readyz (dependencies reachable) and /metrics (Prometheus), log every request with log/slog and
// drain in-flight requests on SIGTERM.
//
// Environment: REDIS_URL, DATABASE_URL (data only), CELERY_BROKER_URL, CELERY_RESULT_BACKEND (data),
// ADS_KEY_PREFIX, WEB_SECRET (serving: the key signing click and impression tokens),
// CORS_ORIGINS (serving: comma-separated embed origins, default *), DATA_API_TOKENS (data:
// comma-separated bearer tokens).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/adsconfig"
	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/internal/config"
	"github.com/forumads/forumads/internal/logging"
	"github.com/forumads/forumads/internal/metrics"
	"github.com/forumads/forumads/internal/wiring"
	"github.com/forumads/forumads/web/dataapi"
	"github.com/forumads/forumads/web/httpx"
	"github.com/forumads/forumads/web/serving"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	os.Exit(code)
}

// devSecret signs tokens when WEB_SECRET is not set: fine on a laptop, logged as a warning.
const devSecret = "forumads-development-secret-change-me"

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	fs := flag.NewFlagSet("web", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := fs.String("api", "", "which API to serve: serving or data")
	addr := fs.String("addr", "", "listen address (default :$PORT, else :8080 for serving, :8081 for data)")
	cfgPath := fs.String("config", "", "configuration file (default "+config.DefaultPath+")")
	var level string
	for _, n := range []string{"l", "loglevel"} {
		fs.StringVar(&level, n, "INFO", "DEBUG, INFO, WARNING, ERROR or CRITICAL")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log, err := logging.New(stderr, level, "web-"+*api)
	if err != nil {
		fmt.Fprintln(stderr, "web:", err)
		return 2
	}
	if *addr == "" {
		switch {
		case getenv("PORT") != "":
			*addr = ":" + getenv("PORT")
		case *api == "data":
			*addr = ":8081"
		default:
			*addr = ":8080"
		}
	}
	file, err := config.Load(*cfgPath)
	if err != nil {
		log.Error(err.Error())
		return 1
	}
	st, err := adsconfig.FromFile(file, getenv)
	if err != nil {
		log.Error(err.Error())
		return 1
	}
	var rc *redis.Client
	if *api == "serving" {
		// Serving's budget is milliseconds: its own pool, timeouts and no retried writes.
		// REDIS_URL may be a sentinel:// list (master_name from result_backend_transport_options).
		spec, serr := wiring.RedisSpec(st.RedisURL, file.Celery.ResultBackendTransportOptions, log)
		if err = serr; err == nil {
			serving.TuneRedis(spec.Options)
			rc = spec.NewClient()
		}
	} else {
		rc, err = wiring.AppRedis(file.Celery, st.RedisURL, log)
	}
	if err != nil {
		log.Error(err.Error())
		return 1
	}
	defer rc.Close()

	reg := metrics.NewRegistry()
	httpm := metrics.NewHTTP(reg)

	var h http.Handler
	var cleanup []func()
	switch *api {
	case "serving":
		secret := getenv("WEB_SECRET")
		if secret == "" {
			log.Warn("web: WEB_SECRET is not set; signing click tokens with the development secret")
			secret = devSecret
		}
		origins := []string{"*"}
		if v := getenv("CORS_ORIGINS"); v != "" {
			origins = splitList(v)
		}
		h, err = serving.New(serving.Options{Redis: rc, Keys: st.Keys(), Secret: []byte(secret), CORSOrigins: origins,
			Logger: log, Metrics: httpm})
	case "data":
		h, cleanup, err = dataAPI(file, st, rc, getenv, log, httpm)
	default:
		fmt.Fprintf(stderr, "web: --api must be serving or data, got %q\n", *api)
		return 2
	}
	for _, f := range cleanup {
		defer f()
	}
	if err != nil {
		log.Error(err.Error())
		return 1
	}
	root := http.NewServeMux()
	root.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	root.Handle("/", h) // both APIs log their requests and recover panics themselves (httpx.Logged)
	srv := httpx.Server(*addr, root, log)
	log.Info(fmt.Sprintf("web: %s API listening on %s", *api, *addr))
	if err := httpx.ListenAndServe(ctx, srv, 20*time.Second); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("web: " + err.Error())
		return 1
	}
	log.Info("web: stopped")
	return 0
}

// dataAPI opens what the data API needs: PostgreSQL, the broker (imports) and the result backend.
func dataAPI(file *config.File, st adsconfig.Settings, rc *redis.Client, getenv func(string) string, log *slog.Logger, httpm *metrics.HTTP) (http.Handler, []func(), error) {
	var cleanup []func()
	db, err := adsconfig.OpenDB(st.DatabaseURL)
	if err != nil {
		return nil, nil, err
	}
	cleanup = append(cleanup, func() { _ = db.Close() })
	cfg := file.Celery
	br, err := wiring.Broker(cfg, "web-data", log)
	if err != nil {
		return nil, cleanup, err
	}
	cleanup = append(cleanup, func() { _ = br.Close() })
	backend, brc, err := wiring.Backend(cfg)
	if err != nil {
		return nil, cleanup, err
	}
	if brc != nil {
		cleanup = append(cleanup, func() { _ = brc.Close() })
	}
	co := celery.ClientOptions{Config: cfg, Broker: br}
	if backend != nil {
		co.Backend = backend
	}
	client, err := celery.NewClient(co)
	if err != nil {
		return nil, cleanup, err
	}
	tokens := splitList(getenv("DATA_API_TOKENS"))
	if len(tokens) == 0 {
		log.Warn("web: DATA_API_TOKENS is not set; every API call but health will be refused")
	}
	o := dataapi.Options{DB: db, Redis: rc, Keys: st.Keys(), Client: client, Tokens: tokens, Logger: log, Metrics: httpm}
	if backend != nil {
		o.Results = backend
	}
	h, err := dataapi.New(o)
	return h, cleanup, err
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
