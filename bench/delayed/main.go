// Command delayed sends N countdown tasks (default 1,000) spread evenly over 1 s … -spread (default
// 10 min), plus 5 tasks 2-6 hours out, from the Go client to a quorum queue on a topic exchange, so
// they go through native delayed delivery, and runs them with an in-process Go worker. It prints
// how early (never, or it fails) and how late the tasks ran (p50, p99, max), the process's RSS
// (worker and client) sampled every 10 s, and the most unacknowledged messages the management API
// showed on the task queue meanwhile (the worker holds nothing for the delayed tasks). The
// hours-out tasks are removed from the delayed levels at the end. bench/delayed.sh runs it.
//
// Usage:
//
//	delayed [-n 1000] [-spread 10m]
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"log/slog"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend/memorybackend"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/amqpbroker"
)

func main() {
	n := flag.Int("n", 1000, "countdown tasks")
	spread := flag.Duration("spread", 10*time.Minute, "the longest countdown")
	flag.Parse()
	amqpURL := os.Getenv("AMQP_URL")
	if amqpURL == "" {
		amqpURL = "amqp://guest:guest@127.0.0.1:5672//"
	}
	if err := run(*n, *spread, amqpURL); err != nil {
		fmt.Fprintln(os.Stderr, "delayed:", err)
		os.Exit(1)
	}
}

func run(n int, spread time.Duration, amqpURL string) error {
	var b [4]byte
	_, _ = rand.Read(b[:])
	q := "bench.delayed." + hex.EncodeToString(b[:])
	cfg := celery.Config{BrokerURL: amqpURL, WorkerConcurrency: 8, TaskIgnoreResult: true,
		TaskQueues: []celery.QueueConfig{{Name: q, Exchange: q, ExchangeType: "topic", RoutingKey: q,
			QueueArguments: map[string]any{broker.ArgQueueType: broker.QueueTypeQuorum}}}}
	log := slog.New(slog.DiscardHandler)
	defer cleanup(amqpURL, q)

	var mu sync.Mutex
	ranAt := map[string]time.Time{}
	reg := celery.NewRegistry()
	celery.Register(reg, "bench.when", func(_ context.Context, t *celery.Task[struct{}]) (any, error) {
		mu.Lock()
		ranAt[t.ID] = time.Now()
		mu.Unlock()
		return nil, nil
	})
	wbr, err := amqpbroker.New(amqpURL, amqpbroker.Options{ConnectionName: "bench-delayed-worker", Logger: log})
	if err != nil {
		return err
	}
	defer wbr.Close()
	w, err := celery.NewWorker(celery.WorkerOptions{Config: cfg, Registry: reg, Broker: wbr, Backend: memorybackend.New(memorybackend.Options{}),
		Hostname: "bench-delayed@" + q, Logger: log})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), spread+5*time.Minute)
	defer cancel()
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	defer func() { stop(); <-done }()

	cbr, err := amqpbroker.New(amqpURL, amqpbroker.Options{ConnectionName: "bench-delayed-client", Logger: log})
	if err != nil {
		return err
	}
	defer cbr.Close()
	client, err := celery.NewClient(celery.ClientOptions{Config: cfg, Broker: cbr})
	if err != nil {
		return err
	}
	type sent struct{ earliest, latest time.Time }
	eta := map[string]sent{}
	for i := range n {
		cd := time.Second + time.Duration(i)*(spread-time.Second)/time.Duration(max(n-1, 1))
		before := time.Now()
		r, err := client.SendRaw(ctx, "bench.when", nil, nil, celery.WithQueue(q), celery.WithCountdown(cd))
		if err != nil {
			return err
		}
		eta[r.ID] = sent{before.Add(cd), time.Now().Add(cd)}
	}
	far := map[string]bool{}
	for h := 2; h <= 6; h++ {
		r, err := client.SendRaw(ctx, "bench.when", nil, nil, celery.WithQueue(q), celery.WithCountdown(time.Duration(h)*time.Hour))
		if err != nil {
			return err
		}
		far[r.ID] = true
	}
	fmt.Printf("delayed: %d countdown tasks over 1 s … %v and %d hours out, sent to quorum queue %s\n", n, spread, len(far), q)
	var rss []string
	maxUnacked := 0
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		mu.Lock()
		got := 0
		for id := range eta {
			if _, ok := ranAt[id]; ok {
				got++
			}
		}
		mu.Unlock()
		if got == n {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("only %d of %d ran", got, n)
		case <-tick.C:
		}
		rss = append(rss, rssMiB())
		if u := unacked(q); u > maxUnacked {
			maxUnacked = u
		}
	}
	var late []time.Duration
	early := 0
	mu.Lock()
	for id, s := range eta {
		at := ranAt[id]
		if at.Before(s.earliest) {
			early++
		}
		late = append(late, max(at.Sub(s.latest), 0))
	}
	farRan := 0
	for id := range far {
		if _, ok := ranAt[id]; ok {
			farRan++
		}
	}
	mu.Unlock()
	slices.Sort(late)
	pct := func(p float64) time.Duration {
		return late[min(int(p*float64(len(late))), len(late)-1)].Round(time.Millisecond)
	}
	fmt.Printf("delayed: early %d of %d; late p50 %v, p99 %v, max %v; hours-out tasks run: %d of %d\n",
		early, n, pct(0.5), pct(0.99), late[len(late)-1].Round(time.Millisecond), farRan, len(far))
	fmt.Printf("delayed: RSS every 10 s: %s\n", strings.Join(rss, " "))
	fmt.Printf("delayed: most unacknowledged messages on %s seen by the management API: %d (worker concurrency 8)\n", q, maxUnacked)
	if early > 0 || farRan > 0 {
		return fmt.Errorf("%d tasks ran early, %d hours-out tasks ran", early, farRan)
	}
	return nil
}

func rssMiB() string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			var kb int
			_, _ = fmt.Sscan(f[1], &kb)
			return fmt.Sprintf("%.0fMiB", float64(kb)/1024)
		}
	}
	return "?"
}

func unacked(q string) int {
	req, err := http.NewRequest("GET", "http://127.0.0.1:15672/api/queues/%2F/"+url.PathEscape(q), nil)
	if err != nil {
		return -1
	}
	req.SetBasicAuth("guest", "guest")
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var info struct {
		Unacked int `json:"messages_unacknowledged"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&info)
	return info.Unacked
}

// cleanup deletes the queue and its exchange and removes this run's messages from the delayed levels.
func cleanup(amqpURL, q string) {
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	for level := range broker.DelayedDeliveryLevels {
		for {
			d, ok, err := ch.Get(broker.DelayedLevel(level), false)
			if err != nil || !ok {
				break
			}
			if _, rk, isDelayed := broker.SplitDelayedRoutingKey(d.RoutingKey); isDelayed && rk == q {
				_ = d.Ack(false)
				continue
			}
			_ = d.Reject(true)
			break
		}
	}
	_, _ = ch.QueueDelete(q, false, false, false)
	_ = ch.ExchangeDelete(q, false, false)
}
