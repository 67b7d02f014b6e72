// Package httpx holds what every HTTP API of this repository shares: JSON answers and errors in
// one shape, strict JSON request bodies, request logging with log/slog, panic recovery, and
// server timeouts. Errors never carry a stack trace or an internal message to the client.
//
// An error answer is always
//
//	{"error": {"code": "invalid_field", "message": "title: must be 1 to 90 characters", "field": "title"}}
package httpx

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error is an answer's error: an HTTP status, a stable machine-readable code, a message a person
// can act on and, for a validation error, the field at fault.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError is a 422 naming the field at fault.
func FieldError(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_field", Field: field,
		Message: field + ": " + fmt.Sprintf(format, args...)}
}

// WriteJSON answers with status and v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// WriteError answers with err: an *Error as it is; anything else as a 500 whose details go to the
// log only.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var he *Error
	if !errors.As(err, &he) {
		if log != nil {
			log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
		}
		he = &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}
	}
	WriteJSON(w, he.Status, map[string]*Error{"error": he})
}

// DecodeJSON reads a JSON object body into v strictly: at most maxBytes, Content-Type JSON (when
// given), no unknown fields, nothing after the object. Errors are *Error (400, 413 or 415) naming
// what was wrong.
func DecodeJSON(w http.ResponseWriter, r *http.Request, maxBytes int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return Errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "the body must be application/json, got %q", ct)
	}
	body := bufio.NewReader(http.MaxBytesReader(w, r.Body, maxBytes))
	// The body must be an object: json.Decoder would take null as "nothing to set".
	for {
		b, err := body.Peek(1)
		if err != nil {
			break // the decoder reports it (empty body, too large, I/O)
		}
		if b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\n' {
			_, _ = body.ReadByte()
			continue
		}
		if b[0] != '{' {
			return Errorf(http.StatusBadRequest, "malformed_json", "the body must be a JSON object")
		}
		break
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, maxBytes)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return jsonError(err, maxBytes)
		}
		return Errorf(http.StatusBadRequest, "malformed_json", "the body must hold one JSON object and nothing after it")
	}
	return nil
}

func jsonError(err error, maxBytes int64) *Error {
	var mbe *http.MaxBytesError
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return Errorf(http.StatusRequestEntityTooLarge, "body_too_large", "the body must be at most %d bytes", maxBytes)
	case errors.Is(err, io.EOF):
		return Errorf(http.StatusBadRequest, "malformed_json", "the body is empty; a JSON object is expected")
	case errors.As(err, &se):
		return Errorf(http.StatusBadRequest, "malformed_json", "malformed JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return Errorf(http.StatusBadRequest, "malformed_json", "the body must be a JSON object")
		}
		return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_field", Field: field,
			Message: fmt.Sprintf("%s: must be %s, got %s", field, jsonType(te.Type.Kind().String()), te.Value)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		quoted := strings.TrimPrefix(err.Error(), "json: unknown field ")
		name, uerr := strconv.Unquote(quoted)
		if uerr != nil {
			name = strings.Trim(quoted, `"`)
		}
		if name == "" || strconv.Quote(name) != `"`+name+`"` { // empty or needing escapes: show it quoted
			return &Error{Status: http.StatusUnprocessableEntity, Code: "unknown_field", Field: name,
				Message: fmt.Sprintf("%s: unknown field", quoted)}
		}
		return &Error{Status: http.StatusUnprocessableEntity, Code: "unknown_field", Field: name,
			Message: fmt.Sprintf("%s: unknown field", name)}
	default:
		return Errorf(http.StatusBadRequest, "malformed_json", "malformed JSON: %v", err)
	}
}

func jsonType(kind string) string {
	switch {
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"):
		return "an integer"
	case strings.HasPrefix(kind, "float"):
		return "a number"
	case kind == "string":
		return "a string"
	case kind == "bool":
		return "true or false"
	case kind == "slice":
		return "a list"
	default:
		return "an object"
	}
}

// StatusWriter wraps a ResponseWriter and remembers the status and the size of the answer, for
// request logs.
type StatusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

// Status is the status written so far (0: nothing yet).
func (s *StatusWriter) Status() int { return s.status }

// Bytes is how many body bytes were written.
func (s *StatusWriter) Bytes() int { return s.bytes }

// WriteHeader records code and passes it on.
func (s *StatusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// Write records a 200 if no status was written, counts the bytes and passes them on.
func (s *StatusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *StatusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Logged logs every request (method, path, status, duration, bytes) at INFO, 5xx at ERROR, and
// recovers a handler's panic into a 500 JSON error (logged with the panic value).
func Logged(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &StatusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p))
				if sw.status == 0 {
					WriteError(sw, r, nil, nil)
				}
			}
			level := slog.LevelInfo
			if sw.status >= 500 {
				level = slog.LevelError
			}
			log.LogAttrs(r.Context(), level, "request", slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.Int("status", sw.status), slog.Duration("duration", time.Since(start)), slog.Int("bytes", sw.bytes))
		}()
		next.ServeHTTP(sw, r)
	})
}

// Server returns an http.Server with timeouts on every phase, so a slow client cannot hold a
// connection forever.
func Server(addr string, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// ListenAndServe runs srv until ctx ends, then shuts it down gracefully: in-flight requests get up
// to grace to finish. It returns nil after a clean shutdown.
func ListenAndServe(ctx context.Context, srv *http.Server, grace time.Duration) error {
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return err
	}
	return Serve(ctx, srv, ln, grace)
}

// Serve is ListenAndServe on a listener.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}

// Health answers GET /healthz (liveness: 200 while the process serves).
func Health(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
}

// Ready returns a /readyz handler: 200 when every check passes within timeout, else 503 naming
// the failed dependency.
func Ready(timeout time.Duration, checks map[string]func(context.Context) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		status := map[string]string{}
		code := http.StatusOK
		for name, check := range checks {
			if err := check(ctx); err != nil {
				status[name] = "unavailable: " + err.Error()
				code = http.StatusServiceUnavailable
			} else {
				status[name] = "ok"
			}
		}
		if code != http.StatusOK {
			w.Header().Set("Retry-After", "5")
		}
		WriteJSON(w, code, status)
	}
}
