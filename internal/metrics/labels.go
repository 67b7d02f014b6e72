package metrics

import (
	"strings"
	"sync"
	"unicode/utf8"
)

// Label values that stand in for values the package will not put on a series.
const (
	// LabelUnknown replaces an empty, over-long or invalid UTF-8 value, and a value outside a
	// known set (see [Worker.SetKnownTasks]).
	LabelUnknown = "unknown"
	// LabelOther replaces a new value once a label already has its maximum number of values.
	LabelOther = "other"
)

// maxLabelLen is the longest label value kept as is.
const maxLabelLen = 200

// limiter bounds the values one label takes: the first max distinct values are kept, later new
// ones become [LabelOther]. With a known set, values outside it become [LabelUnknown].
type limiter struct {
	max   int
	mu    sync.RWMutex
	known map[string]struct{}
	seen  map[string]struct{}
}

func newLimiter(max int) *limiter {
	return &limiter{max: max, seen: make(map[string]struct{})}
}

// setKnown restricts the label to names (nil or empty: no restriction).
func (l *limiter) setKnown(names []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(names) == 0 {
		l.known = nil
		return
	}
	l.known = make(map[string]struct{}, len(names))
	for _, n := range names {
		l.known[n] = struct{}{}
	}
}

// value returns the label value to use for v.
func (l *limiter) value(v string) string {
	if !validLabel(v) {
		return LabelUnknown
	}
	l.mu.RLock()
	known := l.known != nil
	_, ok := l.known[v]
	if !known {
		_, ok = l.seen[v]
	}
	l.mu.RUnlock()
	if ok {
		return v
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.known != nil {
		if _, ok := l.known[v]; ok {
			return v
		}
		return LabelUnknown
	}
	if _, ok := l.seen[v]; ok {
		return v
	}
	if len(l.seen) >= l.max {
		return LabelOther
	}
	l.seen[v] = struct{}{}
	return v
}

func validLabel(v string) bool {
	return v != "" && len(v) <= maxLabelLen && utf8.ValidString(v)
}

// oneOf returns v when it is in allowed, else [LabelUnknown].
func oneOf(v string, allowed []string) string {
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	return LabelUnknown
}

// Outcomes are the values of the outcome label of celery_tasks_total.
var Outcomes = []string{"success", "failure", "retry", "revoked", "rejected", "ignored", "expired"}

// DeadLetterReasons are the values of the reason label of celery_worker_dead_lettered_total (besides
// [LabelOther]): the kinds of x-dead-letter-reason the worker writes (see celery/deadletter.go).
var DeadLetterReasons = []string{"NotRegistered", "InvalidTaskError", "ContentDisallowed", "DecodeError", "failed", "rejected"}

// reasonKind reduces a dead-letter reason (the x-dead-letter-reason text, or a kind itself) to one
// of [DeadLetterReasons]: "NotRegistered: task ..." is NotRegistered, "task failed and ..." is
// failed, "rejected by the task..." is rejected; anything else is [LabelOther].
func reasonKind(reason string) string {
	switch {
	case strings.HasPrefix(reason, "task failed"):
		return "failed"
	case strings.HasPrefix(reason, "rejected by the task"):
		return "rejected"
	}
	kind, _, _ := strings.Cut(reason, ":")
	kind = strings.TrimSpace(kind)
	for _, r := range DeadLetterReasons {
		if kind == r {
			return r
		}
	}
	return LabelOther
}
