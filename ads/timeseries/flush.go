package timeseries

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/rkeys"
)

// DefaultGrace is how long after its end an hour is closed when Options.Grace is zero.
const DefaultGrace = 30 * time.Second

// DefaultLiveFields is Options.LiveFields when it is zero.
const DefaultLiveFields = 200_000

const (
	scanCount   = 10_000 // HSCAN COUNT per call
	rejectChunk = 1_000  // rejected counters per HSET
	logFirst    = 20     // rejected counters of a batch logged one by one
	seriesChunk = 500    // series per pipeline
)

// Options configure [Flush]. The zero value is ready to use.
type Options struct {
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Grace: an hour is closed, and flushed, Grace after it ends (default DefaultGrace; negative is
	// an error). Increments of an hour that arrive after it was flushed are flushed by a later run.
	Grace time.Duration
	// Logger receives the run's report and every skipped counter (default slog.Default()).
	Logger *slog.Logger
	// LiveFields is the most fields the not yet flushed hour hashes may hold together for the series
	// to include them (default DefaultLiveFields; negative: series hold flushed counts only).
	LiveFields int

	// hook, for tests, is called at named points of the run; an error it returns stops the run
	// there as a crash would.
	hook func(point string) error
	// scanCount, for tests, replaces the HSCAN COUNT.
	scanCount int
}

// Summary is what one [Flush] did.
type Summary struct {
	// Batches is the number of batches whose counts this run added to PostgreSQL.
	Batches int `json:"batches"`
	// Counters is the number of counters (one field of a counter hash) those batches added.
	Counters int64 `json:"counters"`
	// Hours is the number of closed hour hashes this run claimed.
	Hours int `json:"hours"`
	// Series is the number of dashboard series written.
	Series int `json:"series"`
	// Skipped is the number of counters (and malformed index entries) refused; see RejectedKey.
	Skipped int64 `json:"skipped"`
}

// RejectedKey is the Redis hash where refused counters are kept for an operator: field
// "<batch key>|<counter field>" (or "<index key>|<member>" for a malformed index entry), value the
// raw count.
func RejectedKey(keys rkeys.Keys) string { return keys.CounterRejected() }

// hookError is a test hook's simulated crash: it stops the run at once.
type hookError struct{ err error }

func (e *hookError) Error() string { return e.err.Error() }
func (e *hookError) Unwrap() error { return e.err }

// flusher is one run of Flush.
type flusher struct {
	db   *sqlx.DB
	rc   redis.UniversalClient
	keys rkeys.Keys
	o    Options
	log  *slog.Logger
	now  time.Time
	sum  Summary
}

// Flush moves the closed hours' counters from Redis into ad_stats_hourly exactly once, then writes
// the dashboard series (see the package documentation for the protocol and the argument). It is
// safe to run concurrently with itself and with the serving API, and to interrupt at any point: the
// next run completes what an interrupted one left. A batch that fails does not stop the others; the
// error returned names every batch that failed.
func Flush(ctx context.Context, db *sqlx.DB, rc redis.UniversalClient, keys rkeys.Keys, o Options) (Summary, error) {
	if db == nil || rc == nil {
		return Summary{}, errors.New("timeseries: flush needs a database and a Redis client")
	}
	if keys.Prefix == "" {
		keys = rkeys.New("")
	}
	if o.Grace < 0 {
		return Summary{}, fmt.Errorf("timeseries: grace %v is negative", o.Grace)
	}
	if o.Grace == 0 {
		o.Grace = DefaultGrace
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.LiveFields == 0 {
		o.LiveFields = DefaultLiveFields
	}
	if o.scanCount <= 0 {
		o.scanCount = scanCount
	}
	f := &flusher{db: db, rc: rc, keys: keys, o: o, log: o.Logger, now: o.Now().UTC()}
	start := time.Now()
	if err := f.claim(ctx); err != nil {
		return f.sum, err
	}
	batchErr := f.flushPending(ctx)
	var he *hookError
	if errors.As(batchErr, &he) || ctx.Err() != nil {
		return f.sum, batchErr
	}
	if err := f.writeSeries(ctx); err != nil {
		return f.sum, errors.Join(batchErr, err)
	}
	level := slog.LevelDebug
	if f.sum.Batches > 0 || f.sum.Skipped > 0 {
		level = slog.LevelInfo
	}
	f.log.Log(ctx, level, "timeseries: flushed", "hours", f.sum.Hours, "batches", f.sum.Batches,
		"counters", f.sum.Counters, "skipped", f.sum.Skipped, "series", f.sum.Series,
		"seconds", time.Since(start).Seconds())
	return f.sum, batchErr
}

// hook runs the test hook at point.
func (f *flusher) hook(point string) error {
	if f.o.hook == nil {
		return nil
	}
	if err := f.o.hook(point); err != nil {
		return &hookError{err: fmt.Errorf("timeseries: stopped at %s: %w", point, err)}
	}
	return nil
}

// claimScript claims one closed hour: KEYS = CounterHours, CounterPending, the hour's hash, the new
// batch key. It returns 1 when it renamed the hash to the batch, 0 when the hour was not listed (another
// run took it), -1 when it was listed but its hash did not exist (the entry is removed).
var claimScript = redis.NewScript(`
if not redis.call('ZSCORE', KEYS[1], KEYS[3]) then return 0 end
redis.call('ZREM', KEYS[1], KEYS[3])
if redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
if redis.call('RENAMENX', KEYS[3], KEYS[4]) == 0 then
  return redis.error_reply('batch key ' .. KEYS[4] .. ' exists already')
end
redis.call('PERSIST', KEYS[4])
redis.call('SADD', KEYS[2], KEYS[4])
return 1
`)

// rejectScript moves a malformed member out of an index (KEYS[1], a zset when ARGV[2] is "z", else a
// set) into the rejected hash (KEYS[2]) as field ARGV[3], value ARGV[4]. It returns 1 when this call
// removed the member.
var rejectScript = redis.NewScript(`
local n
if ARGV[2] == 'z' then n = redis.call('ZREM', KEYS[1], ARGV[1]) else n = redis.call('SREM', KEYS[1], ARGV[1]) end
if n == 1 then redis.call('HSET', KEYS[2], ARGV[3], ARGV[4]) end
return n
`)

// claim renames every closed hour's hash to a batch listed in CounterPending.
func (f *flusher) claim(ctx context.Context) error {
	hoursKey := f.keys.CounterHours()
	members, err := f.rc.ZRangeWithScores(ctx, hoursKey, 0, -1).Result()
	if err != nil {
		return fmt.Errorf("timeseries: reading %s: %w", hoursKey, err)
	}
	for _, z := range members {
		key, _ := z.Member.(string)
		hour, ok := hourOfCounters(f.keys, key)
		if !ok {
			if err := f.rejectMember(ctx, hoursKey, "z", key, fmt.Sprint(z.Score),
				"not a counter hash of this key prefix"); err != nil {
				return err
			}
			continue
		}
		if f.now.Before(hour.Add(time.Hour + f.o.Grace)) {
			continue // still open
		}
		batch := f.keys.CounterBatch(hour, newID())
		res, err := claimScript.Run(ctx, f.rc, []string{hoursKey, f.keys.CounterPending(), key, batch}).Int()
		if err != nil {
			return fmt.Errorf("timeseries: claiming %s: %w", key, err)
		}
		switch res {
		case 1:
			f.sum.Hours++
			f.log.Debug("timeseries: claimed an hour", "hour", key, "batch", batch)
		case -1:
			f.log.Debug("timeseries: removed an hour without counters from the index", "hour", key)
		}
	}
	return f.hook("claimed")
}

// rejectMember moves a malformed index entry to the rejected hash and reports it.
func (f *flusher) rejectMember(ctx context.Context, index, kind, member, value, why string) error {
	n, err := rejectScript.Run(ctx, f.rc, []string{index, RejectedKey(f.keys)}, member, kind, index+"|"+member, value).Int()
	if err != nil {
		return fmt.Errorf("timeseries: moving %q out of %s: %w", member, index, err)
	}
	if n == 1 {
		f.sum.Skipped++
		f.log.Error("timeseries: malformed index entry moved to the rejected hash", "index", index,
			"member", member, "reason", why, "rejected", RejectedKey(f.keys))
	}
	return nil
}

// flushPending adds, then forgets, every pending batch.
func (f *flusher) flushPending(ctx context.Context) error {
	pendingKey := f.keys.CounterPending()
	batches, err := f.rc.SMembers(ctx, pendingKey).Result()
	if err != nil {
		return fmt.Errorf("timeseries: reading %s: %w", pendingKey, err)
	}
	slices.Sort(batches)
	var errs []error
	for _, batch := range batches {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, fmt.Errorf("timeseries: %w", context.Cause(ctx)))...)
		}
		hour, ok := hourOfBatch(f.keys, batch)
		if !ok {
			if err := f.rejectMember(ctx, pendingKey, "s", batch, "", "not a counter batch of this key prefix"); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if err := f.flushBatch(ctx, batch, hour); err != nil {
			var he *hookError
			if errors.As(err, &he) {
				return err
			}
			f.log.Error("timeseries: batch not flushed; the next run retries it", "batch", batch, "error", err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// flushBatch adds a batch (unless a committed transaction did) and forgets it.
func (f *flusher) flushBatch(ctx context.Context, batch string, hour time.Time) error {
	if err := f.addBatch(ctx, batch, hour); err != nil {
		return err
	}
	if err := f.hook("committed"); err != nil {
		return err
	}
	if err := f.rc.Del(ctx, batch).Err(); err != nil {
		return fmt.Errorf("timeseries: batch %s: deleting it after its commit: %w", batch, err)
	}
	if err := f.hook("deleted"); err != nil {
		return err
	}
	if err := f.rc.SRem(ctx, f.keys.CounterPending(), batch).Err(); err != nil {
		return fmt.Errorf("timeseries: batch %s: removing it from %s: %w", batch, f.keys.CounterPending(), err)
	}
	return nil
}

// newID returns a random batch id (16 hex digits).
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
