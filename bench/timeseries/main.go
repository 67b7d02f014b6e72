// Command timeseries benchmarks timeseries.Flush (ads.warm_timeseries) on one closed hour of N
// counters. bench/timeseries.sh runs its phases, each in a process of its own so that each peak RSS
// (VmHWM from /proc/self/status) is that phase's alone:
//
//	timeseries setup    -schema S -prefix P -state F [-n 1000000]   schema, ads, N counters in Redis
//	timeseries baseline -schema S -prefix P -state F                HSCAN the hash and COPY it raw
//	timeseries flush    -schema S -prefix P -state F                timeseries.Flush
//	timeseries verify   -schema S -prefix P -state F                sums in PostgreSQL = what was written; report
//	timeseries cleanup  -schema S -prefix P                         drop the schema, delete the keys
//
// Setup creates PostgreSQL schema S (schema.sql applied) in DATABASE_URL's database with
// ceil(N/99) ads, and writes 3 counters (i, c, s) for every ad on each of 33 forums into the hour
// that ended two hours ago, under Redis key prefix P (REDIS_URL), with statsgen.Live (HINCRBY by a
// Lua script, 1,000 ads×forums per call, as the serving API would). The baseline is the floor any
// flush pays: read the same hash with HSCAN (COUNT 10,000, reading ahead in a goroutine as Flush
// does) and COPY its raw fields into a temporary table, with no parsing, deduplication,
// aggregation, upsert or series. The flush phase then runs the real Flush, which also writes the
// ads' series. Verify compares every ad's totals in ad_stats_hourly with statsgen's counts, checks
// that no counter key, batch or pending entry is left and that every ad got a series, and prints
// the table with the ratio flush/baseline.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the PostgreSQL driver
	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads"
	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/ads/statsgen"
	"github.com/forumads/forumads/ads/timeseries"
)

const (
	numForums = 33
	seed      = 1
)

// state is what setup leaves for the later phases.
type state struct {
	N       int       `json:"n"`      // counters asked for
	Fields  int64     `json:"fields"` // counters written
	Ads     int       `json:"ads"`
	Hour    time.Time `json:"hour"`
	SetupS  float64   `json:"setup_seconds"`
	Results []result  `json:"results"`
}

// result is one measured phase.
type result struct {
	Phase   string  `json:"phase"`
	Seconds float64 `json:"seconds"`
	PeakKB  int64   `json:"peak_kb"`
	Note    string  `json:"note"`
}

type options struct {
	schema, prefix, statePath string
	n                         int
	dbURL, redisURL           string
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: timeseries setup|baseline|flush|verify|cleanup -schema S -prefix P [-state F] [-n N]")
		os.Exit(2)
	}
	phase := os.Args[1]
	fs := flag.NewFlagSet(phase, flag.ExitOnError)
	var o options
	fs.StringVar(&o.schema, "schema", "", "PostgreSQL schema to create and use")
	fs.StringVar(&o.prefix, "prefix", "", "Redis key prefix")
	fs.StringVar(&o.statePath, "state", "", "state file shared by the phases")
	fs.IntVar(&o.n, "n", 1_000_000, "counters to write (setup)")
	_ = fs.Parse(os.Args[2:])
	o.dbURL = envOr("DATABASE_URL", "postgres://forumads:forumads@127.0.0.1:5432/forumads?sslmode=disable")
	o.redisURL = envOr("REDIS_URL", "redis://127.0.0.1:6379/0")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, phase, o); err != nil {
		fmt.Fprintf(os.Stderr, "timeseries %s: %v\n", phase, err)
		os.Exit(1)
	}
}

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func run(ctx context.Context, phase string, o options) error {
	if !schemaName.MatchString(o.schema) {
		return fmt.Errorf("-schema %q: a lower-case SQL identifier is required", o.schema)
	}
	if o.prefix == "" || strings.ContainsAny(o.prefix, "*?[]") {
		return fmt.Errorf("-prefix %q: a non-empty prefix without glob characters is required", o.prefix)
	}
	if phase != "cleanup" && o.statePath == "" {
		return errors.New("-state is required")
	}
	if o.n <= 0 {
		return fmt.Errorf("-n %d: must be positive", o.n)
	}
	ropts, err := redis.ParseURL(o.redisURL)
	if err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	ropts.ReadTimeout = 30 * time.Second
	rc := redis.NewClient(ropts)
	defer rc.Close()
	keys := rkeys.New(o.prefix)
	switch phase {
	case "setup":
		return setup(ctx, o, rc, keys)
	case "cleanup":
		return cleanup(ctx, o, rc)
	}
	st, err := readState(o.statePath)
	if err != nil {
		return err
	}
	db, err := openSchema(o)
	if err != nil {
		return err
	}
	defer db.Close()
	switch phase {
	case "baseline":
		return measure(o, st, "baseline", func() (string, error) { return baseline(ctx, db, rc, keys.Counters(st.Hour)) })
	case "flush":
		return measure(o, st, "flush", func() (string, error) {
			sum, err := timeseries.Flush(ctx, db, rc, keys, timeseries.Options{
				Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
			b, _ := json.Marshal(sum)
			return string(b), err
		})
	case "verify":
		return verify(ctx, db, rc, keys, st)
	}
	return fmt.Errorf("unknown phase %q", phase)
}

func setup(ctx context.Context, o options, rc *redis.Client, keys rkeys.Keys) error {
	start := time.Now()
	admin, err := sqlx.Open("postgres", o.dbURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+o.schema); err != nil {
		return fmt.Errorf("PostgreSQL is required at %s (run scripts/services.sh): %w", o.dbURL, err)
	}
	db, err := openSchema(o)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, forumads.Schema); err != nil {
		return fmt.Errorf("schema.sql: %w", err)
	}
	nAds := (o.n + 3*numForums - 1) / (3 * numForums)
	ids, err := statsgen.CreateAds(ctx, db, statsgen.AdsOptions{Ads: nAds, Seed: seed, Prefix: "bench"})
	if err != nil {
		return err
	}
	if err := rc.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis is required at %s (run scripts/services.sh): %w", o.redisURL, err)
	}
	st := state{N: o.n, Ads: nAds, Hour: time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)}
	adsDone := time.Now()
	lo := liveOptions(ids, st.Hour)
	if err := statsgen.Live(ctx, rc, keys, lo); err != nil {
		return err
	}
	if st.Fields, err = rc.HLen(ctx, keys.Counters(st.Hour)).Result(); err != nil {
		return err
	}
	st.SetupS = time.Since(start).Seconds()
	fmt.Printf("setup     %d ads in %.1fs; %d counters of hour %s written to Redis in %.1fs\n",
		nAds, adsDone.Sub(start).Seconds(), st.Fields, st.Hour.Format("2006-01-02 15h"), time.Since(adsDone).Seconds())
	return writeState(o.statePath, st)
}

func liveOptions(ids []int64, hour time.Time) statsgen.LiveOptions {
	forums := make([]string, numForums)
	for i := range forums {
		forums[i] = fmt.Sprintf("forum-%02d", i+1)
	}
	return statsgen.LiveOptions{Ads: ids, Forums: forums, Hours: []time.Time{hour}, Seed: seed}
}

// measure runs one phase, prints its line and records it in the state file.
func measure(o options, st state, phase string, f func() (string, error)) error {
	start := time.Now()
	note, err := f()
	secs := time.Since(start).Seconds()
	if err != nil {
		return err
	}
	kb, err := peakKB()
	if err != nil {
		return err
	}
	fmt.Printf("%-9s %.2fs  %.0f counters/s  peak RSS %.1f MiB  %s\n", phase, secs, float64(st.Fields)/secs, float64(kb)/1024, note)
	st.Results = append(st.Results, result{Phase: phase, Seconds: secs, PeakKB: kb, Note: note})
	return writeState(o.statePath, st)
}

// baseline reads the hash with HSCAN, reading ahead in a goroutine, and COPYs the raw fields into
// a temporary table: the data movement every flush pays.
func baseline(ctx context.Context, db *sqlx.DB, rc *redis.Client, key string) (string, error) {
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return "", err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `CREATE TEMP TABLE raw (field text, n bigint) ON COMMIT DROP`); err != nil {
		return "", err
	}
	stmt, err := tx.PrepareContext(ctx, `COPY raw (field, n) FROM STDIN`)
	if err != nil {
		return "", err
	}
	defer stmt.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan []string, 2)
	scanErr := make(chan error, 1)
	go func() {
		defer close(chunks)
		var cursor uint64
		for {
			kv, next, err := rc.HScan(sctx, key, cursor, "", 10_000).Result()
			if err != nil {
				scanErr <- err
				return
			}
			select {
			case chunks <- kv:
			case <-sctx.Done():
				return
			}
			if cursor = next; cursor == 0 {
				return
			}
		}
	}()
	var rows int64
	for kv := range chunks {
		for i := 0; i+1 < len(kv); i += 2 {
			n, err := strconv.ParseInt(kv[i+1], 10, 64)
			if err != nil {
				return "", fmt.Errorf("%s: %w", kv[i], err)
			}
			if _, err := stmt.ExecContext(ctx, kv[i], n); err != nil {
				return "", err
			}
			rows++
		}
	}
	select {
	case err := <-scanErr:
		return "", err
	default:
	}
	if _, err := stmt.ExecContext(ctx); err != nil {
		return "", err
	}
	if err := tx.Commit(); err != nil {
		return "", err
	}
	return fmt.Sprintf("(HSCAN + COPY of %d raw fields)", rows), nil
}

func verify(ctx context.Context, db *sqlx.DB, rc *redis.Client, keys rkeys.Keys, st state) error {
	var ids []int64
	if err := db.SelectContext(ctx, &ids, `SELECT id FROM ads ORDER BY id`); err != nil {
		return err
	}
	lo := liveOptions(ids, st.Hour)
	want := make(map[int64]statsgen.Counts, len(ids))
	for _, ad := range ids {
		var w statsgen.Counts
		for _, f := range lo.Forums {
			c := lo.Count(ad, f, st.Hour)
			w.Impressions += c.Impressions
			w.Clicks += c.Clicks
			w.Spend += c.Spend
		}
		want[ad] = w
	}
	rows, err := db.QueryContext(ctx, `SELECT ad_id, count(*), sum(impressions), sum(clicks), sum(spend_micros)
		FROM ad_stats_hourly WHERE hour = $1 GROUP BY ad_id`, st.Hour)
	if err != nil {
		return err
	}
	defer rows.Close()
	var problems []string
	seen := 0
	for rows.Next() {
		var ad, n int64
		var got statsgen.Counts
		if err := rows.Scan(&ad, &n, &got.Impressions, &got.Clicks, &got.Spend); err != nil {
			return err
		}
		seen++
		if w, ok := want[ad]; !ok || w != got || n != numForums {
			problems = append(problems, fmt.Sprintf("ad %d: %d rows %+v, want %d rows %+v", ad, n, got, numForums, w))
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if seen != len(ids) {
		problems = append(problems, fmt.Sprintf("%d ads have rows, want %d", seen, len(ids)))
	}
	var recorded int64
	if err := db.GetContext(ctx, &recorded, `SELECT coalesce(sum(counters), 0) FROM stats_flushes`); err != nil {
		return err
	}
	if recorded != st.Fields {
		problems = append(problems, fmt.Sprintf("stats_flushes records %d counters, %d were written", recorded, st.Fields))
	}
	for _, k := range []string{keys.CounterHours(), keys.CounterPending(), keys.Counters(st.Hour)} {
		if n, err := rc.Exists(ctx, k).Result(); err != nil || n != 0 {
			problems = append(problems, fmt.Sprintf("%s is left (%v)", k, err))
		}
	}
	series := 0
	iter := rc.Scan(ctx, 0, keys.Prefix+"ts:*", 10_000).Iterator()
	for iter.Next(ctx) {
		series++
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if series != len(ids) {
		problems = append(problems, fmt.Sprintf("%d series written, want %d", series, len(ids)))
	}
	if len(problems) > 0 {
		if len(problems) > 10 {
			problems = append(problems[:10], fmt.Sprintf("… %d more", len(problems)-10))
		}
		return fmt.Errorf("verification failed:\n  %s", strings.Join(problems, "\n  "))
	}
	fmt.Printf("verify    ok: %d ads × %d forums, every ad's sums in ad_stats_hourly equal what was written; no key left; %d series\n",
		len(ids), numForums, series)
	report(os.Stdout, st)
	return nil
}

// report prints the summary table with the ratio flush/baseline.
func report(w io.Writer, st state) {
	by := map[string]result{}
	for _, r := range st.Results {
		by[r.Phase] = r
	}
	fmt.Fprintf(w, "\n%-9s %10s %14s %12s\n", "phase", "seconds", "counters/s", "peak RSS")
	for _, p := range []string{"baseline", "flush"} {
		if r, ok := by[p]; ok {
			fmt.Fprintf(w, "%-9s %10.2f %14.0f %8.1f MiB\n", p, r.Seconds, float64(st.Fields)/r.Seconds, float64(r.PeakKB)/1024)
		}
	}
	if b, f := by["baseline"], by["flush"]; b.Seconds > 0 && f.Seconds > 0 {
		fmt.Fprintf(w, "flush/baseline: %.2fx the time of HSCAN + raw COPY of the same %d counters\n", f.Seconds/b.Seconds, st.Fields)
	}
}

func cleanup(ctx context.Context, o options, rc *redis.Client) error {
	var errs []error
	admin, err := sqlx.Open("postgres", o.dbURL)
	if err == nil {
		defer admin.Close()
		_, err = admin.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+o.schema+" CASCADE")
	}
	errs = append(errs, err)
	iter := rc.Scan(ctx, 0, o.prefix+"*", 10_000).Iterator()
	var batch []string
	deleted := 0
	for iter.Next(ctx) {
		if batch = append(batch, iter.Val()); len(batch) == 1000 {
			errs = append(errs, rc.Unlink(ctx, batch...).Err())
			deleted += len(batch)
			batch = batch[:0]
		}
	}
	errs = append(errs, iter.Err())
	if len(batch) > 0 {
		errs = append(errs, rc.Unlink(ctx, batch...).Err())
		deleted += len(batch)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Printf("cleanup   dropped schema %s, deleted %d keys under %s\n", o.schema, deleted, o.prefix)
	return nil
}

func openSchema(o options) (*sqlx.DB, error) {
	u, err := url.Parse(o.dbURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("DATABASE_URL must be a postgres:// URL: %q", o.dbURL)
	}
	q := u.Query()
	q.Set("search_path", o.schema)
	u.RawQuery = q.Encode()
	return sqlx.Open("postgres", u.String())
}

func readState(path string) (state, error) {
	var st state
	b, err := os.ReadFile(path)
	if err != nil {
		return st, fmt.Errorf("state (run setup first): %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("state %s: %w", path, err)
	}
	return st, nil
}

func writeState(path string, st state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// peakKB is this process's peak resident set (VmHWM) in KiB.
func peakKB() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	return parseStatusKB(string(b), "VmHWM")
}

// parseStatusKB reads field ("VmHWM") from /proc/<pid>/status contents: "VmHWM:\t  1234 kB".
func parseStatusKB(status, field string) (int64, error) {
	for line := range strings.SplitSeq(status, "\n") {
		rest, ok := strings.CutPrefix(line, field+":")
		if !ok {
			continue
		}
		v, unit, ok := strings.Cut(strings.TrimSpace(rest), " ")
		if !ok || unit != "kB" {
			return 0, fmt.Errorf("%s: %q is not \"<n> kB\"", field, rest)
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%s: %q is not a size", field, rest)
		}
		return n, nil
	}
	return 0, fmt.Errorf("%s: not in the status file", field)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
