// Command load sends GET requests at a fixed rate (open loop, like wrk2) and reports the latency
// distribution. Latency is measured from when each request was due, not from when a free
// connection sent it, so a stall shows in the percentiles instead of lowering the rate
// (no coordinated omission). "{forum}" in -url is replaced by f0, f1, ... f(-forums - 1) in turn.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	target := flag.String("url", "", "URL to GET ({forum} is replaced)")
	rate := flag.Float64("rate", 1000, "requests per second")
	duration := flag.Duration("d", 10*time.Second, "how long to send")
	conns := flag.Int("c", 64, "connections (concurrent requests)")
	forums := flag.Int("forums", 1, "forums {forum} cycles through")
	flag.Parse()
	if *target == "" || *rate <= 0 || *conns <= 0 || *forums <= 0 {
		fmt.Fprintln(os.Stderr, "usage: load -url URL -rate N [-d 10s] [-c 64] [-forums N]")
		os.Exit(2)
	}
	urls := make([]string, *forums)
	for i := range urls {
		urls[i] = strings.ReplaceAll(*target, "{forum}", "f"+strconv.Itoa(i))
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		MaxIdleConns: *conns, MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns}}

	type job struct {
		due time.Time
		url string
	}
	jobs := make(chan job, 1<<20)
	var mu sync.Mutex
	lat := make([]time.Duration, 0, int(*rate*duration.Seconds())+1)
	var errs, non200 atomic.Int64
	var wg sync.WaitGroup
	for range *conns {
		wg.Go(func() {
			for j := range jobs {
				resp, err := client.Get(j.url)
				if err != nil {
					errs.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				d := time.Since(j.due)
				if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Ads-Degraded") != "" {
					non200.Add(1)
				}
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		})
	}
	interval := time.Duration(float64(time.Second) / *rate)
	start := time.Now()
	end := start.Add(*duration)
	next, sent := start, 0
	for next.Before(end) {
		now := time.Now()
		for !next.After(now) && next.Before(end) {
			jobs <- job{due: next, url: urls[sent%len(urls)]}
			sent++
			next = next.Add(interval)
		}
		time.Sleep(time.Until(next))
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)

	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	fmt.Printf("paced: %d requests at %.0f/s target, %.0f/s achieved; errors %d, non-200 or degraded %d\n",
		sent, *rate, float64(len(lat))/elapsed.Seconds(), errs.Load(), non200.Load())
	fmt.Printf("latency: p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
		ms(pct(0.50)), ms(pct(0.90)), ms(pct(0.99)), ms(pct(0.999)), ms(pct(1)))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
