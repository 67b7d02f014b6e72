// Package logging is a log/slog handler writing Celery's log line format,
//
//	[2024-05-01 12:00:00,123: INFO/MainProcess] Task diag.add[…] succeeded in 0.000123s: 5
//
// followed by the record's attributes as key=value pairs, so that operators used to Celery's
// worker logs read ours the same way and can grep the same phrases.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// ParseLevel reads a Celery --loglevel value (DEBUG, INFO, WARNING, ERROR, CRITICAL, FATAL; any case).
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "DEBUG":
		return slog.LevelDebug, nil
	case "INFO", "":
		return slog.LevelInfo, nil
	case "WARNING", "WARN":
		return slog.LevelWarn, nil
	case "ERROR", "CRITICAL", "FATAL":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q (DEBUG, INFO, WARNING, ERROR, CRITICAL)", s)
}

// Handler formats records as Celery does. It is safe for concurrent use.
type Handler struct {
	mu      *sync.Mutex
	w       io.Writer
	level   slog.Leveler
	process string
	prefix  string // attributes added by WithAttrs, already formatted
	group   string // current group qualifier ("" or "a.b.")
}

// NewHandler writes records at or above level to w; process names the line's process part
// ("MainProcess" for the worker, "Beat" for beat...).
func NewHandler(w io.Writer, level slog.Leveler, process string) *Handler {
	return &Handler{mu: &sync.Mutex{}, w: w, level: level, process: process}
}

// Enabled reports whether the level is logged.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func levelName(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARNING"
	case l >= slog.LevelInfo:
		return "INFO"
	}
	return "DEBUG"
}

// Handle writes one line.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteByte('[')
	if t := r.Time; !t.IsZero() {
		fmt.Fprintf(&b, "%s,%03d: ", t.Format("2006-01-02 15:04:05"), t.Nanosecond()/1e6)
	}
	fmt.Fprintf(&b, "%s/%s] %s", levelName(r.Level), h.process, r.Message)
	b.WriteString(h.prefix)
	r.Attrs(func(a slog.Attr) bool {
		writeAttr(&b, h.group, a)
		return true
	})
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func writeAttr(b *strings.Builder, group string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	key := group + a.Key
	if a.Value.Kind() == slog.KindGroup {
		if a.Key == "" {
			key = group
		} else {
			key += "."
		}
		for _, g := range a.Value.Group() {
			writeAttr(b, key, g)
		}
		return
	}
	s := a.Value.String()
	if strings.ContainsAny(s, " \t\n\"=") || s == "" {
		s = fmt.Sprintf("%q", s)
	}
	b.WriteByte(' ')
	b.WriteString(key)
	b.WriteByte('=')
	b.WriteString(s)
}

// WithAttrs returns a handler that adds attrs to every record.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	var b strings.Builder
	b.WriteString(h.prefix)
	for _, a := range attrs {
		writeAttr(&b, h.group, a)
	}
	c.prefix = b.String()
	return &c
}

// WithGroup returns a handler that qualifies later attributes with name.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.group = h.group + name + "."
	return &c
}

// New returns a logger writing Celery-format lines to w at a --loglevel value, and makes it the
// default logger: the start of every program of this repository.
func New(w io.Writer, loglevel, process string) (*slog.Logger, error) {
	level, err := ParseLevel(loglevel)
	if err != nil {
		return nil, err
	}
	log := slog.New(NewHandler(w, level, process))
	slog.SetDefault(log)
	return log, nil
}
