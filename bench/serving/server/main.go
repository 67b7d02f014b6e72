// Command server runs the serving API (web/serving) for bench/serving.sh against real Redis with
// seeded data: -forums forum rank lists of -list candidates each (sidebar), a default list of the
// same size, -ads creatives, the feature switches and rank generation -generation (as ads.score
// writes it; 0 = none), all under -prefix. The Redis client is serving.RedisOptions's; its logs go
// to stderr at -log-level (info = the request logs production writes). A go-redis hook counts the
// Redis round trips of every /v1/ads request (connection handshakes excluded); on SIGINT or SIGTERM
// it prints how many each request took, deletes the keys under -prefix and exits.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/web/httpx"
	"github.com/forumads/forumads/web/serving"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	redisURL := flag.String("redis", "redis://127.0.0.1:6379/0", "Redis URL")
	prefix := flag.String("prefix", "bench:serving:", "key prefix (deleted at exit)")
	forums := flag.Int("forums", 20, "forums with a rank list of their own (f0, f1, ...)")
	ads := flag.Int("ads", 2000, "ads (creatives)")
	listLen := flag.Int("list", rkeys.MaxCandidates, "candidates per rank list")
	pool := flag.Int("pool", 0, "Redis connection pool size (0: serving.RedisOptions's)")
	ctxTimeout := flag.Bool("ctx-timeout", true, "go-redis ContextTimeoutEnabled (false: the handler runs each Redis call on a goroutine)")
	gen := flag.Int64("generation", 1, "rank generation written to rank:meta (0: none; the lists are then read on every request)")
	var level slog.Level
	flag.TextVar(&level, "log-level", slog.LevelWarn, "log level (info: with the request logs)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "server:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "server:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(*addr, *redisURL, *prefix, *forums, *ads, *listLen, *pool, *ctxTimeout, *gen, level); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

func run(addr, redisURL, prefix string, forums, ads, listLen, pool int, ctxTimeout bool, gen int64, level slog.Level) error {
	opts, err := serving.RedisOptions(redisURL)
	if err != nil {
		return err
	}
	if pool > 0 {
		opts.PoolSize = pool
	}
	opts.ContextTimeoutEnabled = ctxTimeout
	rc := redis.NewClient(opts)
	defer rc.Close()
	ctx := context.Background()
	keys := rkeys.New(prefix)
	defer deleteAll(rc, prefix)
	if err := seed(ctx, rc, keys, forums, ads, listLen, gen); err != nil {
		return err
	}
	trips := &tripCounter{}
	rc.AddHook(trips)

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	h, err := serving.New(serving.Options{Redis: rc, Keys: keys, Secret: []byte("bench-secret-0123456789abcdef"), Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := httpx.Server(addr, trips.wrap(h), log)
	sctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	fmt.Println("listening on", ln.Addr())
	if err := httpx.Serve(sctx, srv, ln, 5*time.Second); err != nil {
		return err
	}
	trips.report(os.Stdout)
	return nil
}

// seed writes the rank lists, creatives and switches in the shapes of ads/rkeys.
func seed(ctx context.Context, rc *redis.Client, keys rkeys.Keys, forums, ads, listLen int, gen int64) error {
	rng := rand.New(rand.NewPCG(1, 2))
	list := func() []byte {
		cs := make([]rkeys.Candidate, listLen)
		for i := range cs {
			id := int64(rng.IntN(ads) + 1)
			bid := int64(50000 + rng.IntN(2000000))
			ctr := 0.002 + rng.Float64()*0.03
			cs[i] = rkeys.Candidate{Ad: id, Campaign: id/5 + 1, Advertiser: id/50 + 1, EV: float64(bid) * ctr, CTR: ctr, Bid: bid}
			if rng.IntN(10) == 0 {
				cs[i].Countries = []string{"US", "CA"}
			}
		}
		b, _ := json.Marshal(cs)
		return b
	}
	p := rc.Pipeline()
	p.Set(ctx, keys.RankDefault("sidebar"), list(), 0)
	for f := range forums {
		p.Set(ctx, keys.RankForum("sidebar", fmt.Sprintf("f%d", f)), list(), 0)
	}
	for id := int64(1); id <= int64(ads); id++ {
		b, _ := json.Marshal(rkeys.Creative{ID: id, CampaignID: id/5 + 1, AdvertiserID: id/50 + 1,
			Advertiser: fmt.Sprintf("Advertiser %d", id/50+1), Title: fmt.Sprintf("Great deal number %d", id),
			Body:     "Everything you need for your car, delivered tomorrow. Free returns within 30 days.",
			ImageURL: fmt.Sprintf("https://img.example/ads/%d.jpg", id), ClickURL: fmt.Sprintf("https://shop.example/p/%d?utm_source=forumads", id)})
		p.Set(ctx, keys.Creative(id), b, 0)
	}
	for name, sw := range map[string]rkeys.Switch{"serving.enabled": {Enabled: true}, "embed.images": {Enabled: true},
		"serving.max_count": {Enabled: true, Value: 10}} {
		b, _ := json.Marshal(sw)
		p.HSet(ctx, keys.Switches(), name, b)
	}
	if gen > 0 {
		p.HSet(ctx, keys.RankMeta(), "generation", gen, "generated_at", time.Now().UTC().Format(time.RFC3339))
	}
	if _, err := p.Exec(ctx); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	return nil
}

func deleteAll(rc *redis.Client, prefix string) {
	ctx := context.Background()
	iter := rc.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		if batch = append(batch, iter.Val()); len(batch) == 1000 {
			rc.Unlink(ctx, batch...)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		rc.Unlink(ctx, batch...)
	}
}

// tripCounter counts Redis round trips per /v1/ads request: the middleware puts a counter in the
// request's context (the serving handler passes the context's values on to Redis calls), the
// hook increments it.
type tripCounter struct {
	requests, trips, untracked, degraded atomic.Int64
	byCount                              [8]atomic.Int64 // requests by round trips (7 = 7 or more)
}

type ctxKey struct{}

// wrap counts the /v1/ads requests of h, and answers GET /bench/stats with the counts so far
// (JSON), so a script can take the difference over one phase of a run.
func (c *tripCounter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/bench/stats":
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]int64{"requests": c.requests.Load(), "round_trips": c.trips.Load(),
				"degraded": c.degraded.Load(), "cpu_ticks": cpuTicks()})
			return
		case "/v1/ads":
		default:
			h.ServeHTTP(w, r)
			return
		}
		n := new(atomic.Int64)
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, n)))
		if w.Header().Get("X-Ads-Degraded") != "" {
			c.degraded.Add(1)
		}
		c.requests.Add(1)
		c.trips.Add(n.Load())
		c.byCount[min(n.Load(), 7)].Add(1)
	})
}

// cpuTicks is this process's user+system CPU time in clock ticks (1/100 s), from /proc.
func cpuTicks() int64 {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return -1
	}
	// Fields after the command name (which may hold spaces) start after the last ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return -1
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

func (c *tripCounter) count(ctx context.Context, cmds ...redis.Cmder) {
	for _, cmd := range cmds {
		switch cmd.Name() {
		case "hello", "client", "auth", "select":
			continue
		}
		if n, ok := ctx.Value(ctxKey{}).(*atomic.Int64); ok {
			n.Add(1)
		} else {
			c.untracked.Add(1)
		}
		return
	}
}

func (c *tripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.count(ctx, cmd)
		return next(ctx, cmd)
	}
}

func (c *tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.count(ctx, cmds...)
		return next(ctx, cmds)
	}
}

func (c *tripCounter) report(w io.Writer) {
	req, trips := c.requests.Load(), c.trips.Load()
	if req == 0 {
		fmt.Fprintln(w, "redis round trips: no /v1/ads request served")
		return
	}
	fmt.Fprintf(w, "redis round trips: %d over %d /v1/ads requests = %.3f per request; requests by round trips:", trips, req, float64(trips)/float64(req))
	for i := range c.byCount {
		if n := c.byCount[i].Load(); n > 0 {
			fmt.Fprintf(w, " %d:%d", i, n)
		}
	}
	fmt.Fprintf(w, " (other round trips: %d)\n", c.untracked.Load())
	fmt.Fprintf(w, "degraded answers (Redis over budget or breaker open): %d of %d\n", c.degraded.Load(), req)
}
