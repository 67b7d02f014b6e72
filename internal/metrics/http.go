package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// HTTPBuckets are the buckets of http_request_duration_seconds: 0.5ms to 10s.
var HTTPBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// httpMethods are the methods kept as the method label; any other is "OTHER".
var httpMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace}

// HTTP holds a web program's request metrics.
type HTTP struct {
	duration *prometheus.HistogramVec
}

// NewHTTP creates the HTTP metrics and registers them with reg (nil: not registered). It panics
// if they are already registered there.
func NewHTTP(reg prometheus.Registerer) *HTTP {
	m := &HTTP{duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "http_request_duration_seconds",
		Help:    "How long requests took, by route, method and status code class (2xx, 4xx, ...).",
		Buckets: HTTPBuckets,
	}, []string{"route", "method", "code"})}
	if reg != nil {
		reg.MustRegister(m.duration)
	}
	return m
}

// Middleware returns next wrapped so each request's duration is observed under route (a fixed
// pattern chosen by the program, such as "/ads/{placement}", never the request path), the method
// (one of the standard methods, else "OTHER") and the status code class ("2xx", "3xx", "4xx",
// "5xx"; "1xx" is kept, and a code outside 100..599 is "unknown"). A handler that panics is
// observed as "5xx" and the panic goes on up to net/http.
func (m *HTTP) Middleware(route string, next http.Handler) http.Handler {
	if !validLabel(route) {
		route = LabelUnknown
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &statusWriter{ResponseWriter: w}
		method := r.Method
		if oneOf(method, httpMethods) == LabelUnknown {
			method = "OTHER"
		}
		panicked := true
		defer func() {
			code := codeClass(rw.status)
			if panicked {
				code = "5xx"
			}
			m.duration.WithLabelValues(route, method, code).Observe(time.Since(start).Seconds())
		}()
		next.ServeHTTP(rw, r)
		panicked = false
	})
}

// codeClass returns "2xx" for 200..299 and so on; 0 (nothing written) is 200's class.
func codeClass(code int) string {
	if code == 0 {
		code = http.StatusOK
	}
	if code < 100 || code > 599 {
		return LabelUnknown
	}
	return strconv.Itoa(code/100) + "xx"
}

// statusWriter records the status code a handler sends.
type statusWriter struct {
	http.ResponseWriter
	status int
}

// WriteHeader records code (the first final one) and passes it on.
func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write records an implicit 200 and passes b on.
func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap gives http.ResponseController the underlying writer (Flush, Hijack, deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush passes a flush on when the underlying writer supports it.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
