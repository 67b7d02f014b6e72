// Package ratelimit is the worker's per-task-type rate limiting, as Celery's: a rate limit string
// ("100/s", "10/m", "1/h" or a bare number per second) read by [Parse], and a [Bucket] of capacity
// one that lets one task start per interval.
package ratelimit

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Parse reads a Celery rate limit ("100/s", "10/m", "1/h", or a bare number per second) and
// returns the interval between two task starts. "" or "0" means no limit (0).
func Parse(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	num, unit, hasUnit := strings.Cut(s, "/")
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid rate limit %q: want N/s, N/m, N/h or N", s)
	}
	per := time.Second
	if hasUnit {
		switch strings.TrimSpace(unit) {
		case "s":
		case "m":
			per = time.Minute
		case "h":
			per = time.Hour
		default:
			return 0, fmt.Errorf("invalid rate limit %q: unit must be s, m or h", s)
		}
	}
	if n == 0 {
		return 0, nil
	}
	return time.Duration(float64(per) / n), nil
}

// Bucket is Celery's per-task-type rate limiter: capacity 1, one token every interval. The zero
// Bucket has no limit. A Bucket is safe for concurrent use.
type Bucket struct {
	mu       sync.Mutex
	interval time.Duration
	next     time.Time
}

// NewBucket returns a bucket that gives one token every interval (0 or less: no limit).
func NewBucket(interval time.Duration) *Bucket { return &Bucket{interval: interval} }

// Reserve takes the next token and returns how long to wait for it (0 when it is there now).
// Tokens do not accumulate: after an idle spell the next one is available at once, the one after
// it an interval later.
func (b *Bucket) Reserve(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.interval <= 0 {
		return 0
	}
	if b.next.Before(now) {
		b.next = now
	}
	wait := b.next.Sub(now)
	b.next = b.next.Add(b.interval)
	return wait
}

// SetInterval changes the interval between tokens (0 or less: no limit); tokens already reserved
// keep their times.
func (b *Bucket) SetInterval(d time.Duration) {
	b.mu.Lock()
	b.interval = d
	b.mu.Unlock()
}
