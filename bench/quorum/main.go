// Command quorum measures, in one run, what quorum queues cost the Go worker: the drain rate of
// N no-op tasks from a quorum queue against a classic queue on the same RabbitMQ node (acks_late,
// ignore_result, in-process worker, concurrency 8, prefetch multiplier 4), and with -cluster the
// cost of a node failover: N tasks drained from a quorum queue on the 3-node cluster of
// scripts/rabbitmq-cluster.sh while the node the worker is connected to is killed (kill -9); the
// longest time without a finished task is the failover's cost. bench/quorum.sh runs it.
//
// Python Celery 5.2 is not measured on quorum queues: its worker cannot consume them (it asks for
// global QoS, which RabbitMQ refuses); bench/drain.sh compares Go and Python on classic queues.
//
// Usage:
//
//	quorum [-n 20000] [-cluster] [-script scripts/rabbitmq-cluster.sh]
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend/memorybackend"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/amqpbroker"
)

func main() {
	n := flag.Int("n", 20000, "tasks per run")
	cluster := flag.Bool("cluster", false, "also measure a node failover on the 3-node cluster (started by bench/quorum.sh)")
	script := flag.String("script", "scripts/rabbitmq-cluster.sh", "the cluster script (kill/restart)")
	flag.Parse()
	url := os.Getenv("AMQP_URL")
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5672//"
	}
	if err := run(*n, url, *cluster, *script); err != nil {
		fmt.Fprintln(os.Stderr, "quorum:", err)
		os.Exit(1)
	}
}

func run(n int, url string, cluster bool, script string) error {
	fmt.Printf("quorum: %d no-op tasks per run (acks_late, ignore_result), in-process Go worker -c 8, prefetch multiplier 4\n", n)
	classic, err := drain(url, url, n, "", nil)
	if err != nil {
		return fmt.Errorf("classic: %w", err)
	}
	fmt.Printf("quorum: classic queue  %8.0f tasks/s\n", classic.rate)
	quorum, err := drain(url, url, n, broker.QueueTypeQuorum, nil)
	if err != nil {
		return fmt.Errorf("quorum: %w", err)
	}
	fmt.Printf("quorum: quorum queue   %8.0f tasks/s\n", quorum.rate)
	fmt.Printf("quorum: ratio quorum/classic %.2f\n", quorum.rate/classic.rate)
	if !cluster {
		return nil
	}
	urls := "amqp://guest:guest@127.0.0.1:5681//;amqp://guest:guest@127.0.0.1:5682//;amqp://guest:guest@127.0.0.1:5683//"
	client := "amqp://guest:guest@127.0.0.1:5682//;amqp://guest:guest@127.0.0.1:5683//;amqp://guest:guest@127.0.0.1:5681//"
	fo, err := drain(urls, client, n, broker.QueueTypeQuorum, func() error {
		out, err := exec.Command(script, "kill", "rmq1").CombinedOutput()
		if err != nil {
			return fmt.Errorf("kill rmq1: %v: %s", err, out)
		}
		return nil
	})
	if restart, rerr := exec.Command(script, "restart", "rmq1").CombinedOutput(); rerr != nil {
		err = errors.Join(err, fmt.Errorf("restart rmq1: %v: %s", rerr, restart))
	}
	if err != nil {
		return fmt.Errorf("failover: %w", err)
	}
	fmt.Printf("quorum: cluster, rmq1 killed at a third: %8.0f tasks/s overall, %d duplicate runs, longest stretch without progress %.2f s (the failover's cost)\n",
		fo.rate, fo.dups, fo.gap.Seconds())
	return nil
}

type result struct {
	rate float64
	gap  time.Duration
	dups int64
}

func suffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// drain fills a fresh queue of the type with n tasks through the client on clientURL, then times a
// worker on workerURL draining it. kill, when set, runs once a third of the tasks ran.
func drain(workerURL, clientURL string, n int, queueType string, kill func() error) (result, error) {
	q := "bench.quorum." + suffix()
	var args map[string]any
	if queueType != "" {
		args = map[string]any{broker.ArgQueueType: queueType}
	}
	four := 4
	cfg := celery.Config{WorkerConcurrency: 8, WorkerPrefetchMultiplier: &four, TaskAcksLate: true, TaskIgnoreResult: true,
		TaskQueues: []celery.QueueConfig{{Name: q, Exchange: q, ExchangeType: "topic", RoutingKey: q, QueueArguments: args}}}
	log := slog.New(slog.DiscardHandler)
	defer deleteQueue(clientURL, q)

	cbr, err := amqpbroker.New(clientURL, amqpbroker.Options{ConnectionName: "bench-quorum-client", Logger: log})
	if err != nil {
		return result{}, err
	}
	defer cbr.Close()
	ccfg := cfg
	ccfg.BrokerURL = clientURL
	client, err := celery.NewClient(celery.ClientOptions{Config: ccfg, Broker: cbr})
	if err != nil {
		return result{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var sendErr atomic.Value
	for s := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := s; i < n; i += 32 {
				if _, err := client.SendRaw(ctx, "bench.noop", nil, nil, celery.WithQueue(q), celery.WithIgnoreResult()); err != nil {
					sendErr.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := sendErr.Load().(error); err != nil {
		return result{}, err
	}

	var ran atomic.Int64
	var runs sync.Map
	var dups atomic.Int64
	reg := celery.NewRegistry()
	celery.Register(reg, "bench.noop", func(_ context.Context, t *celery.Task[struct{}]) (any, error) {
		if _, seen := runs.LoadOrStore(t.ID, true); seen {
			dups.Add(1)
		} else {
			ran.Add(1)
		}
		return nil, nil
	})
	wbr, err := amqpbroker.New(workerURL, amqpbroker.Options{ConnectionName: "bench-quorum-worker", Logger: log})
	if err != nil {
		return result{}, err
	}
	defer wbr.Close()
	wcfg := cfg
	wcfg.BrokerURL = workerURL
	w, err := celery.NewWorker(celery.WorkerOptions{Config: wcfg, Registry: reg, Broker: wbr, Backend: memorybackend.New(memorybackend.Options{}),
		Hostname: "bench-quorum@" + q, Logger: log})
	if err != nil {
		return result{}, err
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- w.Run(wctx) }()
	var gap time.Duration
	last, since := int64(0), time.Now()
	killed := kill == nil
	for ran.Load() < int64(n) {
		select {
		case err := <-done:
			stop()
			return result{}, fmt.Errorf("worker stopped: %v", err)
		case <-ctx.Done():
			stop()
			<-done
			return result{}, fmt.Errorf("only %d of %d ran", ran.Load(), n)
		case <-time.After(5 * time.Millisecond):
		}
		if cur := ran.Load(); cur != last {
			if last > 0 {
				gap = max(gap, time.Since(since))
			}
			last, since = cur, time.Now()
		}
		if !killed && ran.Load() >= int64(n/3) {
			killed = true
			if err := kill(); err != nil {
				stop()
				<-done
				return result{}, err
			}
		}
	}
	elapsed := time.Since(start)
	stop()
	if err := <-done; err != nil {
		return result{}, err
	}
	return result{rate: float64(n) / elapsed.Seconds(), gap: gap, dups: dups.Load()}, nil
}

func deleteQueue(urls, q string) {
	for _, u := range strings.Split(urls, ";") {
		conn, err := amqp.Dial(u)
		if err != nil {
			continue
		}
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(q, false, false, false)
			_ = ch.ExchangeDelete(q, false, false)
		}
		_ = conn.Close()
		return
	}
}
