// Package ads registers the ads system's Celery tasks, the names the Django monolith and beat send:
//
//	ads.import_feed(source, batch_size=None, score=True)  import an advertiser feed (path or http(s) URL)
//	                                                      into PostgreSQL; PROGRESS (celery-progress's
//	                                                      {pending, current, total, percent, description})
//	                                                      while it runs; returns the import summary
//	ads.score()                                           rank the serving-eligible ads into Redis
//	ads.warm_cache()                                      write the ranked ads' creatives and the feature
//	                                                      switches into Redis
//	ads.warm_timeseries()                                 move closed hourly counters from Redis to
//	                                                      PostgreSQL exactly once; refresh the dashboard series
//
// The data flows import → score → warm_cache: a successful import that changed rows sends ads.score,
// and ads.score sends ads.warm_cache, so new ads serve without waiting for beat's next run.
// Every task is idempotent, acknowledged late (a worker killed mid-task leaves the message to be run
// again) and succeeds on an empty database. Lost connections to PostgreSQL or Redis are retried with
// backoff; anything else is a FAILURE with a clear error.
package ads

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/cachewarm"
	"github.com/forumads/forumads/ads/importer"
	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/ads/scoring"
	"github.com/forumads/forumads/ads/timeseries"
	"github.com/forumads/forumads/celery"
)

// Task names.
const (
	ImportFeed     = "ads.import_feed"
	Score          = "ads.score"
	WarmCache      = "ads.warm_cache"
	WarmTimeseries = "ads.warm_timeseries"
)

// ProgressState is the custom state ads.import_feed reports while it runs; its meta is a [Progress].
const ProgressState = "PROGRESS"

// ProgressDescription is the description ads.import_feed's progress carries (celery-progress's
// bar shows "<current> of <total> processed. <description>").
const ProgressDescription = "feed rows checked and applied"

// Progress is the meta of ads.import_feed's PROGRESS state, in the shape celery-progress 0.1.1's
// ProgressRecorder.set_progress writes and its Progress.get_info, view and JavaScript read:
// {"pending": false, "current", "total", "percent", "description"}. Current counts the feed's
// rows applied or refused so far, Total the rows in the feed.
type Progress struct {
	Pending     bool    `json:"pending"`
	Current     int64   `json:"current"`
	Total       int64   `json:"total"`
	Percent     float64 `json:"percent"`
	Description string  `json:"description"`
}

// NewProgress is the Progress of current rows out of total, with celery-progress's percent:
// current/total×100 rounded to 2 decimals (half to even, as Python's round of a Decimal), 0 when
// total is not positive.
func NewProgress(current, total int64, description string) Progress {
	return Progress{Current: current, Total: total, Percent: Percent(current, total), Description: description}
}

// Percent is celery-progress's percent of current out of total: float(round(Decimal(current) /
// Decimal(total) * 100, 2)), 0 when total <= 0. It is computed exactly in integers (for counts
// below 2^63 / 10^4) and rounded half to even like Python's Decimal.
func Percent(current, total int64) float64 {
	if total <= 0 {
		return 0
	}
	neg := current < 0
	if neg {
		current = -current
	}
	// hundredths of a percent: current × 10^4 / total, rounded half to even.
	q, r := new(big.Int).QuoRem(new(big.Int).Mul(big.NewInt(current), big.NewInt(10000)), big.NewInt(total), new(big.Int))
	switch c := new(big.Int).Lsh(r, 1).Cmp(big.NewInt(total)); {
	case c > 0, c == 0 && q.Bit(0) == 1:
		q.Add(q, big.NewInt(1))
	}
	v, _ := new(big.Rat).SetFrac(q, big.NewInt(100)).Float64()
	if neg {
		v = -v
	}
	return v
}

// Deps are what the ads tasks need.
type Deps struct {
	DB    *sqlx.DB
	Redis redis.UniversalClient
	Keys  rkeys.Keys
	// Client sends the follow-up tasks (ads.score after an import, ads.warm_cache after scoring);
	// nil: none are sent.
	Client *celery.Client
	Logger *slog.Logger
}

// ImportArgs are ads.import_feed's parameters.
type ImportArgs struct {
	Source    string `celery:"source"`
	BatchSize *int   `celery:"batch_size,optional"`
	// Score sends ads.score after an import that changed something (default true).
	Score *bool `celery:"score,optional"`
}

// NoArgs is the parameter list of the tasks that take none.
type NoArgs struct{}

// Register adds the ads tasks to reg.
func Register(reg *celery.Registry, d Deps) {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	t := &tasks{d: d}
	retry := []celery.TaskOption{
		celery.AcksLate(true),
		celery.AutoRetry(Temporary, 2*time.Second),
		celery.RetryBackoffMax(time.Minute),
		celery.MaxRetries(5),
	}
	celery.Register(reg, ImportFeed, t.importFeed, celery.AcksLate(true), celery.SoftTimeLimit(55*time.Minute), celery.TimeLimit(time.Hour))
	celery.Register(reg, Score, t.score, append(retry, celery.SoftTimeLimit(4*time.Minute))...)
	celery.Register(reg, WarmCache, t.warmCache, append(retry, celery.SoftTimeLimit(time.Minute))...)
	celery.Register(reg, WarmTimeseries, t.warmTimeseries, append(retry, celery.SoftTimeLimit(5*time.Minute))...)
}

type tasks struct{ d Deps }

func (t *tasks) need(name string, db, rc bool) error {
	if db && t.d.DB == nil {
		return fmt.Errorf("%s needs PostgreSQL (set DATABASE_URL or ads_database_url)", name)
	}
	if rc && t.d.Redis == nil {
		return fmt.Errorf("%s needs Redis (set REDIS_URL or ads_redis_url)", name)
	}
	return nil
}

// ImportError is ads.import_feed's failure; Python sees an exception class FeedImportError.
type ImportError struct{ Err error }

func (e *ImportError) Error() string { return e.Err.Error() }
func (e *ImportError) Unwrap() error { return e.Err }

// ExcType names the exception Python raises from AsyncResult.get().
func (e *ImportError) ExcType() string { return "FeedImportError" }

func (t *tasks) importFeed(ctx context.Context, task *celery.Task[ImportArgs]) (importer.Summary, error) {
	if err := t.need(ImportFeed, true, false); err != nil {
		return importer.Summary{}, err
	}
	a := task.Args
	if strings.TrimSpace(a.Source) == "" {
		return importer.Summary{}, &celery.ArgsError{Task: ImportFeed, Param: "source", Err: errors.New("must name a file or an http(s) URL")}
	}
	o := importer.Options{TaskID: task.ID, Logger: t.d.Logger}
	if a.BatchSize != nil {
		if *a.BatchSize <= 0 {
			return importer.Summary{}, &celery.ArgsError{Task: ImportFeed, Param: "batch_size", Err: errors.New("must be positive")}
		}
		o.BatchSize = *a.BatchSize
	}
	var warnOnce sync.Once
	o.Progress = func(current, total int64) {
		err := task.UpdateState(ctx, ProgressState, NewProgress(current, total, ProgressDescription))
		if err != nil {
			warnOnce.Do(func() { t.d.Logger.Warn("ads.import_feed: cannot store progress", "task_id", task.ID, "error", err) })
		}
	}
	sum, err := importer.Import(ctx, t.d.DB, a.Source, o)
	if err != nil {
		return sum, &ImportError{Err: err}
	}
	if (a.Score == nil || *a.Score) && sum.Created+sum.Updated > 0 {
		t.follow(ctx, Score, &task.Request)
	}
	return sum, nil
}

func (t *tasks) score(ctx context.Context, task *celery.Task[NoArgs]) (scoring.Summary, error) {
	if err := t.need(Score, true, true); err != nil {
		return scoring.Summary{}, err
	}
	sum, err := scoring.Score(ctx, t.d.DB, t.d.Redis, t.d.Keys, scoring.Options{Logger: t.d.Logger})
	if err != nil {
		return sum, err
	}
	t.follow(ctx, WarmCache, &task.Request)
	return sum, nil
}

func (t *tasks) warmCache(ctx context.Context, _ *celery.Task[NoArgs]) (cachewarm.Summary, error) {
	if err := t.need(WarmCache, true, true); err != nil {
		return cachewarm.Summary{}, err
	}
	return cachewarm.Warm(ctx, t.d.DB, t.d.Redis, t.d.Keys, cachewarm.Options{Logger: t.d.Logger})
}

func (t *tasks) warmTimeseries(ctx context.Context, _ *celery.Task[NoArgs]) (timeseries.Summary, error) {
	if err := t.need(WarmTimeseries, true, true); err != nil {
		return timeseries.Summary{}, err
	}
	return timeseries.Flush(ctx, t.d.DB, t.d.Redis, t.d.Keys, timeseries.Options{Logger: t.d.Logger})
}

// follow sends the next task of the pipeline; failing to send is logged, not a failure of the task
// that succeeded (beat sends every task on its own cadence anyway).
func (t *tasks) follow(ctx context.Context, name string, parent *celery.Request) {
	if t.d.Client == nil {
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := t.d.Client.SendRaw(sctx, name, nil, nil, celery.WithParent(parent)); err != nil {
		t.d.Logger.Warn("ads: cannot send the follow-up task", "task", name, "parent", parent.ID, "error", err)
	}
}

// Temporary reports whether err is a lost or refused connection to PostgreSQL or Redis (worth a
// retry), as opposed to bad data or a bug.
func Temporary(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, redis.ErrClosed) {
		return true
	}
	var pe *pq.Error
	if errors.As(err, &pe) {
		switch pe.Code.Class() {
		case "08", "53", "57": // connection exception, insufficient resources, operator intervention
			return true
		}
		return pe.Code == "40001" || pe.Code == "40P01" // serialization failure, deadlock
	}
	msg := err.Error()
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "connection reset") ||
		strings.Contains(msg, "broken pipe") || strings.Contains(msg, "i/o timeout") || strings.Contains(msg, "LOADING")
}
