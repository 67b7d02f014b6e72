package serving

import (
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/forumads/forumads/web/httpx"
)

// DefaultLogEvery is the default of [Options].LogEvery: at most ten lines a second for answered
// requests.
const DefaultLogEvery = 100 * time.Millisecond

// requestLog logs requests with log/slog (the message "request": method, path, status,
// duration, bytes) cheaply enough for the ads hot path, and recovers a handler's panic into a
// JSON 500 (logged with the panic value), as httpx.Logged does:
//   - every request answered 4xx (at INFO) or 5xx (at ERROR) is logged;
//   - a request answered 1xx–3xx is logged (at INFO) when none was for every, with
//     "requests" = how many such requests the line stands for (itself and the ones not logged
//     since the last line), so request rates can still be read from the log;
//   - every = 0 logs every request (then "requests" is left out).
//
// When the logger does not log INFO the 1xx–3xx requests cost no logging work at all.
type requestLog struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time
	last  atomic.Int64 // unix nanos of the last 1xx–3xx line
	held  atomic.Int64 // 1xx–3xx requests not logged since it
}

func (l *requestLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &httpx.StatusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				l.log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p))
				if sw.Status() == 0 {
					httpx.WriteError(sw, r, nil, nil)
				}
			}
			l.logged(r, sw, start)
		}()
		next.ServeHTTP(sw, r)
	})
}

// logged writes r's line if it is due.
func (l *requestLog) logged(r *http.Request, sw *httpx.StatusWriter, start time.Time) {
	status := sw.Status()
	if status == 0 {
		status = http.StatusOK // nothing written: net/http answers 200
	}
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	ctx := r.Context()
	if !l.log.Enabled(ctx, level) {
		return
	}
	attrs := [6]slog.Attr{slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", status), slog.Duration("duration", time.Since(start)), slog.Int("bytes", sw.Bytes())}
	n := 5
	if status < 400 && l.every > 0 {
		now := l.now().UnixNano()
		last := l.last.Load()
		if now-last < int64(l.every) && now >= last || !l.last.CompareAndSwap(last, now) {
			l.held.Add(1)
			return
		}
		attrs[n] = slog.Int64("requests", l.held.Swap(0)+1)
		n++
	}
	l.log.LogAttrs(ctx, level, "request", attrs[:n]...)
}
