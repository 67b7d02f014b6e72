// Command score benchmarks ads scoring and cache warming on a database bench/score.sh filled: it
// times a floor (reading the rows scoring reads, and nothing else), two Score runs (the first onto
// empty Redis keys, the second replacing them) and two Warm runs, and prints each one's seconds, the
// ratio to the floor, and the peak RSS so far (VmHWM). It deletes its Redis keys before it exits.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"
	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/cachewarm"
	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/ads/scoring"
)

func main() {
	dbURL := flag.String("db", "", "PostgreSQL URL (with search_path set to the benchmark schema)")
	redisURL := flag.String("redis", "redis://127.0.0.1:6379/0", "Redis URL")
	prefix := flag.String("prefix", "", "Redis key prefix (deleted at exit)")
	flag.Parse()
	if *dbURL == "" || *prefix == "" {
		fmt.Fprintln(os.Stderr, "usage: score -db URL -prefix P [-redis URL]")
		os.Exit(2)
	}
	if err := run(context.Background(), *dbURL, *redisURL, rkeys.New(*prefix)); err != nil {
		fmt.Fprintln(os.Stderr, "score:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dbURL, redisURL string, keys rkeys.Keys) error {
	db, err := sqlx.Open("postgres", dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return err
	}
	rc := redis.NewClient(opts)
	defer rc.Close()
	defer deleteKeys(context.WithoutCancel(ctx), rc, keys.Prefix)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	var ads int
	if err := db.GetContext(ctx, &ads, `SELECT count(*) FROM ads`); err != nil {
		return err
	}
	fmt.Printf("%d ads in the database\n", ads)
	fmt.Printf("%-28s %9s %9s %11s  %s\n", "step", "seconds", "x floor", "VmHWM MiB", "result")

	start := time.Now()
	rows, err := floor(ctx, db)
	if err != nil {
		return err
	}
	base := time.Since(start).Seconds()
	report("floor (read rows only)", base, base, fmt.Sprintf("%d rows", rows))

	for i := 1; i <= 2; i++ {
		start = time.Now()
		s, err := scoring.Score(ctx, db, rc, keys, scoring.Options{Logger: log})
		if err != nil {
			return err
		}
		report(fmt.Sprintf("Score run %d", i), time.Since(start).Seconds(), base,
			fmt.Sprintf("ads=%d lists=%d removed=%d over_budget=%d generation=%d", s.Ads, s.Lists, s.Removed, s.OverBudget, s.Generation))
	}
	for i := 1; i <= 2; i++ {
		start = time.Now()
		s, err := cachewarm.Warm(ctx, db, rc, keys, cachewarm.Options{Logger: log})
		if err != nil {
			return err
		}
		report(fmt.Sprintf("Warm run %d", i), time.Since(start).Seconds(), base,
			fmt.Sprintf("creatives=%d referenced=%d removed=%d switches=%d", s.Creatives, s.Referenced, s.Removed, s.Switches))
	}
	return nil
}

// floor reads what scoring reads from PostgreSQL (ads of live campaigns with their window stats)
// without ranking or writing anything.
func floor(ctx context.Context, db *sqlx.DB) (int, error) {
	rows, err := db.QueryxContext(ctx, `
SELECT a.id, a.campaign_id, c.target_forums, c.target_categories, coalesce(s.i, 0), coalesce(s.c, 0)
FROM ads a JOIN campaigns c ON c.id = a.campaign_id
LEFT JOIN (SELECT ad_id, sum(impressions) i, sum(clicks) c FROM ad_stats_hourly
           WHERE hour >= now() - interval '7 days' GROUP BY ad_id) s ON s.ad_id = a.id
WHERE a.status = 'active' AND c.status = 'active' ORDER BY a.id`)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id, camp, imp, clk int64
		var f, cats []byte
		if err := rows.Scan(&id, &camp, &f, &cats, &imp, &clk); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}

func report(step string, secs, base float64, result string) {
	fmt.Printf("%-28s %9.3f %9.2f %11.1f  %s\n", step, secs, secs/base, float64(vmHWM())/1024, result)
}

// vmHWM is the process's peak resident set size in KiB.
func vmHWM() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb
		}
	}
	return -1
}

func deleteKeys(ctx context.Context, rc *redis.Client, prefix string) {
	it := rc.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var batch []string
	for it.Next(ctx) {
		batch = append(batch, it.Val())
		if len(batch) == 1000 {
			rc.Unlink(ctx, batch...)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		rc.Unlink(ctx, batch...)
	}
}
