// Command dataapi benchmarks the data API's list endpoint: GET /v1/ads?limit=50&cursor=… walking
// pages, at a fixed request rate (open loop: requests are due on a fixed schedule whatever the
// answers, and a request's latency counts from when it was due, so a slow answer cannot hide the
// queueing it causes). bench/dataapi.sh seeds the schema and runs it.
//
// It serves dataapi.New on a loopback port in this process (real PostgreSQL and Redis), then runs
// two phases of -duration at -rate each, after a -warmup:
//
//	floor  the same keyset query the API runs (50 ads after a position, in id order), straight
//	       through sqlx: what any implementation pays to PostgreSQL
//	api    HTTP GET of the list with a bearer token, the JSON decoded and each page checked
//
// -walkers walkers share the schedule; each starts at its own position in the table and follows
// next_cursor (the floor: the last id it read), wrapping at the end. It prints p50, p99, max,
// errors and the achieved rate of each phase, the api/floor ratios and the api latency histogram.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/adsconfig"
	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/web/dataapi"
	"github.com/forumads/forumads/web/httpx"
)

const token = "bench-token-0123456789"

func main() {
	dbURL := flag.String("db", adsconfig.DefaultDatabaseURL, "PostgreSQL URL (with search_path set to the seeded schema)")
	redisURL := flag.String("redis", adsconfig.DefaultRedisURL, "Redis URL")
	prefix := flag.String("prefix", "bench:dataapi:", "Redis key prefix")
	rate := flag.Int("rate", 200, "requests per second")
	duration := flag.Duration("duration", 20*time.Second, "length of each measured phase")
	warmup := flag.Duration("warmup", 2*time.Second, "unmeasured run before each phase")
	walkers := flag.Int("walkers", 32, "concurrent page walkers")
	limit := flag.Int("limit", 50, "page size")
	flag.Parse()
	if err := run(*dbURL, *redisURL, *prefix, *rate, *duration, *warmup, *walkers, *limit); err != nil {
		fmt.Fprintln(os.Stderr, "dataapi bench:", err)
		os.Exit(1)
	}
}

func run(dbURL, redisURL, prefix string, rate int, duration, warmup time.Duration, walkers, limit int) error {
	if rate <= 0 || duration <= 0 || walkers <= 0 || limit < 1 || limit > dataapi.MaxLimit {
		return errors.New("-rate, -duration and -walkers must be positive; -limit 1..200")
	}
	ctx := context.Background()
	db, err := adsconfig.OpenDB(dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	var maxID int64
	if err := db.GetContext(ctx, &maxID, "SELECT coalesce(max(id), 0) FROM ads"); err != nil {
		return fmt.Errorf("counting ads: %w", err)
	}
	if maxID == 0 {
		return errors.New("no ads: seed the schema first (bench/dataapi.sh)")
	}
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return err
	}
	rc := redis.NewClient(opts)
	defer rc.Close()
	// Request logs are formatted as in production, then dropped.
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	h, err := dataapi.New(dataapi.Options{DB: db, Redis: rc, Keys: rkeys.New(prefix), Tokens: []string{token}, Logger: logger})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := httpx.Server(ln.Addr().String(), h, logger)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: walkers, MaxIdleConns: walkers}, Timeout: 30 * time.Second}

	starts := make([]int64, walkers)
	for i := range starts {
		starts[i] = maxID * int64(i) / int64(walkers)
	}
	floor := func(w *walker) error {
		var rows []adRow
		if err := db.SelectContext(ctx, &rows, `SELECT id, external_id, campaign_id, title, body, image_url, click_url, status,
			created_at, updated_at, version FROM ads WHERE id > $1 ORDER BY id LIMIT $2`, w.after, limit+1); err != nil {
			return err
		}
		if len(rows) > limit {
			w.after = rows[limit-1].ID
		} else {
			w.after = 0
		}
		return nil
	}
	api := func(w *walker) error {
		u := base + "/v1/ads?limit=" + strconv.Itoa(limit)
		if w.after > 0 {
			u += "&cursor=" + dataapi.EncodeCursor("ads", strconv.FormatInt(w.after, 10))
			w.after = 0
		}
		if w.cursor != "" {
			u += "&cursor=" + w.cursor
		}
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			return err
		}
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %d %s", u, res.StatusCode, body)
		}
		var page struct {
			Items      []dataapi.Ad `json:"items"`
			NextCursor *string      `json:"next_cursor"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return fmt.Errorf("GET %s: %w", u, err)
		}
		if page.NextCursor != nil && len(page.Items) != limit {
			return fmt.Errorf("GET %s: a page of %d with a next cursor", u, len(page.Items))
		}
		w.cursor = ""
		if page.NextCursor != nil {
			w.cursor = *page.NextCursor
		}
		return nil
	}

	fmt.Printf("%d ads; %d rps for %s per phase (after %s of warm-up), %d walkers, pages of %d\n\n",
		maxID, rate, duration, warmup, walkers, limit)
	phases := []struct {
		name string
		do   func(*walker) error
	}{{"floor (sqlx)", floor}, {"api (HTTP)", api}}
	results := make([]result, len(phases))
	for i, p := range phases {
		ws := newWalkers(starts)
		if warmup > 0 {
			schedule(rate, warmup, ws, p.do)
		}
		results[i] = schedule(rate, duration, ws, p.do)
	}
	fmt.Printf("%-14s %9s %7s %9s %9s %9s %9s\n", "phase", "requests", "errors", "p50", "p99", "max", "rps")
	for i, p := range phases {
		r := results[i]
		fmt.Printf("%-14s %9d %7d %9s %9s %9s %9.1f\n", p.name, len(r.lat), r.errs, ms(r.pct(50)), ms(r.pct(99)), ms(r.pct(100)),
			float64(len(r.lat))/r.elapsed.Seconds())
	}
	f, a := results[0], results[1]
	fmt.Printf("\nratio api/floor: p50 %.2fx, p99 %.2fx\n", ratio(a.pct(50), f.pct(50)), ratio(a.pct(99), f.pct(99)))
	fmt.Printf("\napi latency histogram:\n%s", a.histogram())
	for i, p := range phases {
		if results[i].errs > 0 {
			return fmt.Errorf("%s: %d errors, the first: %v", p.name, results[i].errs, results[i].firstErr)
		}
	}
	return nil
}

// adRow is what the floor reads: the columns the API lists.
type adRow struct {
	ID         int64     `db:"id"`
	ExternalID string    `db:"external_id"`
	CampaignID int64     `db:"campaign_id"`
	Title      string    `db:"title"`
	Body       string    `db:"body"`
	ImageURL   *string   `db:"image_url"`
	ClickURL   string    `db:"click_url"`
	Status     string    `db:"status"`
	CreatedAt  time.Time `db:"created_at"`
	UpdatedAt  time.Time `db:"updated_at"`
	Version    int       `db:"version"`
}

// walker is one client walking the list.
type walker struct {
	after  int64  // the floor's position; for the api, a position to start from once
	cursor string // the api's next_cursor
}

func newWalkers(starts []int64) []*walker {
	ws := make([]*walker, len(starts))
	for i, s := range starts {
		ws[i] = &walker{after: s}
	}
	return ws
}

// result is one phase's measurements.
type result struct {
	lat      []time.Duration
	errs     int
	firstErr error
	elapsed  time.Duration
}

// schedule makes rate×d requests, each due at start + i/rate, spread over the walkers (a walker
// takes the next due request when it is free); latency counts from the due time.
func schedule(rate int, d time.Duration, ws []*walker, do func(*walker) error) result {
	n := int(float64(rate) * d.Seconds())
	interval := time.Second / time.Duration(rate)
	due := make(chan time.Time, n)
	start := time.Now()
	go func() {
		for i := range n {
			t := start.Add(time.Duration(i) * interval)
			time.Sleep(time.Until(t))
			due <- t
		}
		close(due)
	}()
	var mu sync.Mutex
	res := result{lat: make([]time.Duration, 0, n)}
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() {
			for t := range due {
				err := do(w)
				lat := time.Since(t)
				mu.Lock()
				res.lat = append(res.lat, lat)
				if err != nil {
					if res.errs == 0 {
						res.firstErr = err
					}
					res.errs++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	slices.Sort(res.lat)
	return res
}

// pct is the p-th percentile (100: the maximum).
func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(float64(len(r.lat))*p/100+0.5) - 1
	return r.lat[min(max(i, 0), len(r.lat)-1)]
}

// histogram draws the latencies in doubling buckets.
func (r result) histogram() string {
	var b strings.Builder
	lo := time.Duration(0)
	for hi := 250 * time.Microsecond; ; hi *= 2 {
		last := hi > 500*time.Millisecond
		n := 0
		for _, l := range r.lat {
			if l >= lo && (last || l < hi) {
				n++
			}
		}
		label := fmt.Sprintf("%8s - %-8s", ms(lo), ms(hi))
		if last {
			label = fmt.Sprintf("%8s+          ", ms(lo))
		}
		bar := 0
		if len(r.lat) > 0 {
			bar = (n*60 + len(r.lat) - 1) / len(r.lat)
		}
		fmt.Fprintf(&b, "  %s %6d %s\n", label, n, strings.Repeat("#", bar))
		if last {
			return b.String()
		}
		lo = hi
	}
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + "ms" }

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}
