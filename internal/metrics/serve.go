package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Timeouts of the metrics server.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	scrapeTimeout     = 20 * time.Second
	healthzTimeout    = 5 * time.Second
	// ShutdownTimeout is how long Serve waits for scrapes in flight once its context ends.
	ShutdownTimeout = 5 * time.Second
)

// NewRegistry returns a fresh registry holding the Go runtime and process collectors: one per
// program, given to NewWorker/NewBeat/NewHTTP and to [Serve].
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Serve listens on addr (host:port) and serves reg until ctx ends, then shuts down gracefully
// (waiting up to [ShutdownTimeout] for requests in flight). See [ServeListener] for the routes.
// It returns nil after a clean shutdown, or the error that stopped it (such as the address in use).
func Serve(ctx context.Context, addr string, reg *prometheus.Registry, healthz func() error, log *slog.Logger) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: listening on %q: %w", addr, err)
	}
	return ServeListener(ctx, ln, reg, healthz, log)
}

// ServeListener is [Serve] on a listener it takes over (and closes). Routes:
//
//	GET /metrics   the registry in the Prometheus text (or negotiated OpenMetrics) format
//	GET /healthz   200 "ok" when healthz returns nil (or is nil); 503 and the error's text otherwise
//
// Other paths answer 404 and other methods 405.
func ServeListener(ctx context.Context, ln net.Listener, reg *prometheus.Registry, healthz func() error, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		_ = ln.Close()
		return errors.New("metrics: Serve needs a registry")
	}
	srv := &http.Server{
		Handler:           Handler(reg, healthz, log),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("serving metrics", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("metrics: serving on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("metrics: shutting down: %w", err)
	}
	return nil
}

// Handler returns the metrics server's routes (see [ServeListener]), for a program that serves
// them on its own server.
func Handler(reg *prometheus.Registry, healthz func() error, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:          slogPrinter{log},
		ErrorHandling:     promhttp.ContinueOnError,
		Timeout:           scrapeTimeout,
		EnableOpenMetrics: true,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := checkHealth(r.Context(), healthz); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, err.Error())
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// checkHealth runs healthz, turning a panic into an error and giving up after healthzTimeout.
func checkHealth(ctx context.Context, healthz func() error) error {
	if healthz == nil {
		return nil
	}
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("health check panicked: %v", r)
			}
		}()
		done <- healthz()
	}()
	t := time.NewTimer(healthzTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("health check did not answer within %s", healthzTimeout)
	case <-ctx.Done():
		return fmt.Errorf("health check: %w", ctx.Err())
	}
}

// slogPrinter adapts a slog.Logger to promhttp's Logger.
type slogPrinter struct{ log *slog.Logger }

// Println logs v as a warning.
func (p slogPrinter) Println(v ...any) { p.log.Warn("metrics: " + fmt.Sprint(v...)) }
