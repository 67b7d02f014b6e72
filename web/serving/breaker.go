package serving

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Circuit breaker settings.
const (
	// BreakerThreshold is how many Redis failures in a row (errors or calls over the budget) open
	// the breaker, provided no call succeeded for BreakerWindow.
	BreakerThreshold = 5
	// BreakerWindow is how long Redis must have gone without a success for failures to open the
	// breaker: a burst of requests over budget while some still succeed (the process is
	// overloaded, not Redis) degrades those requests only.
	BreakerWindow = 250 * time.Millisecond
	// BreakerCooldown is how long an open breaker skips Redis before letting one probe through.
	BreakerCooldown = time.Second
)

// errRedisUnavailable is what a Redis call returns while the breaker is open, without trying.
var errRedisUnavailable = errors.New("redis unavailable (circuit breaker open)")

// breaker skips Redis for BreakerCooldown once BreakerThreshold calls in a row failed and none
// succeeded for BreakerWindow, then lets a single request probe it: a success closes it, a failure
// opens it again. It is safe for concurrent use; the closed path is a few atomic operations.
type breaker struct {
	inline      bool // the client enforces context deadlines: no goroutine per call
	log         *slog.Logger
	now         func() time.Time // a monotonic clock (time.Now), not Options.Now
	failures    atomic.Int32
	lastSuccess atomic.Int64 // unix nanos; 0 = never
	openUntil   atomic.Int64 // unix nanos; 0 = closed
	probing     atomic.Bool
}

// allow reports whether a call may go to Redis now.
func (b *breaker) allow() bool {
	until := b.openUntil.Load()
	if until == 0 {
		return true
	}
	if b.now().UnixNano() < until {
		return false
	}
	return b.probing.CompareAndSwap(false, true) // half-open: one probe at a time
}

func (b *breaker) success() {
	b.lastSuccess.Store(b.now().UnixNano())
	if b.failures.Load() != 0 {
		b.failures.Store(0)
	}
	if b.openUntil.Load() != 0 {
		if b.openUntil.Swap(0) != 0 {
			b.log.Info("redis reachable again: circuit breaker closed")
		}
		b.probing.Store(false)
	}
}

func (b *breaker) failure(err error) {
	n := b.failures.Add(1)
	now := b.now()
	if n >= BreakerThreshold && now.UnixNano()-b.lastSuccess.Load() >= int64(BreakerWindow) {
		if b.openUntil.Swap(now.Add(BreakerCooldown).UnixNano()) == 0 {
			b.log.Warn("redis failing: circuit breaker open", "failures", n, "cooldown", BreakerCooldown, "error", err)
		}
	}
	b.probing.Store(false)
}

// call runs fn against Redis within ctx (which carries the request's Redis budget), recording the
// outcome in the breaker. When the client enforces context deadlines on its sockets (inline), fn
// runs on the caller's goroutine. Otherwise call returns as soon as ctx ends even if fn does not
// (go-redis without ContextTimeoutEnabled keeps waiting on its socket up to ReadTimeout): fn runs
// on a goroutine of its own, finishes in the background, and must not touch anything the caller
// reads after call returns with an error.
func (b *breaker) call(ctx context.Context, fn func(context.Context) error) error {
	if !b.allow() {
		return errRedisUnavailable
	}
	var err error
	if b.inline {
		err = fn(ctx)
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("redis: no answer within the budget: %w", err)
		}
	} else {
		done := make(chan error, 1)
		go func() { done <- fn(ctx) }()
		select {
		case err = <-done:
		case <-ctx.Done():
			err = fmt.Errorf("redis: no answer within the budget: %w", context.Cause(ctx))
		}
	}
	if err != nil {
		b.failure(err)
		return err
	}
	b.success()
	return nil
}

// enforcesDeadlines reports whether rc applies context deadlines to its socket reads and writes
// (go-redis's ContextTimeoutEnabled), so a call can run inline within the budget.
func enforcesDeadlines(rc redis.UniversalClient) bool {
	switch c := rc.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	case *redis.Ring:
		return c.Options().ContextTimeoutEnabled
	}
	return false
}

// rateLog logs one kind of repeated event (a lost count, a degraded answer) at most once a second,
// with how many happened since the last line, so an outage does not flood the log.
type rateLog struct {
	log  *slog.Logger
	msg  string
	mu   sync.Mutex
	last time.Time
	n    int
}

func newRateLog(log *slog.Logger, msg string) *rateLog { return &rateLog{log: log, msg: msg} }

func (l *rateLog) note(err error) {
	l.mu.Lock()
	l.n++
	now := time.Now()
	if now.Sub(l.last) < time.Second {
		l.mu.Unlock()
		return
	}
	n := l.n
	l.n, l.last = 0, now
	l.mu.Unlock()
	l.log.Warn(l.msg, "count_since_last_report", n, "error", err)
}
