package celery

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ParseRateLimit reads a Celery rate limit ("100/s", "10/m", "1/h", or a bare number per second)
// and returns the interval between two task starts. "" or "0" means no limit (0).
func ParseRateLimit(s string) (time.Duration, error) {
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

// tokenBucket is Celery's per-task-type rate limiter: capacity 1, one token every interval.
type tokenBucket struct {
	mu       sync.Mutex
	interval time.Duration
	next     time.Time
}

// reserve takes the next token and returns how long to wait for it.
func (b *tokenBucket) reserve(now time.Time) time.Duration {
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

func (b *tokenBucket) setInterval(d time.Duration) {
	b.mu.Lock()
	b.interval = d
	b.mu.Unlock()
}
