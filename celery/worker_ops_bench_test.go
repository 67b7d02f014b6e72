package celery_test

import (
	"context"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend/redisbackend"
	"github.com/forumads/forumads/celery/broker/amqpbroker"
	"github.com/forumads/forumads/celery/events"
	"github.com/forumads/forumads/celery/revoke/redisrevoke"
	"github.com/forumads/forumads/internal/testenv"
)

// nopMetrics is a WorkerMetrics that does nothing: the cost measured is the worker's calls.
type nopMetrics struct{}

func (nopMetrics) TaskReceived(string)                        {}
func (nopMetrics) TaskStarted(string, time.Duration)          {}
func (nopMetrics) TaskFinished(string, string, time.Duration) {}
func (nopMetrics) DeadLettered(string)                        {}

// BenchmarkWorkerOps drains b.N ignore_result bench.add messages (concurrency 25, prefetch 100)
// with the operations features off (the baseline, as BenchmarkWorkerEndToEnd/ignore_result), with
// the revoke store (checked in memory once the worker is synced with it, see revokesSynced in
// package engine), and with the store, task events (-E)
// and metrics calls together; each reports tasks/s. Compare the three in one invocation:
//
//	go test -run '^$' -bench WorkerOps -benchtime 20000x -count 3 ./celery/
func BenchmarkWorkerOps(b *testing.B) {
	for _, tc := range []struct {
		name             string
		store, ev, stats bool
	}{
		{"baseline", false, false, false},
		{"revoke_store", true, false, false},
		{"store+events+metrics", true, true, true},
	} {
		b.Run(tc.name, func(b *testing.B) { benchWorkerOps(b, tc.store, tc.ev, tc.stats) })
	}
}

func benchWorkerOps(b *testing.B, store, ev, stats bool) {
	b.StopTimer()
	rc := testenv.Redis(b)
	queue := testenv.Name(b, "bench")
	exchange := testenv.Name(b, "celeryev")
	testenv.DeleteQueuesAtCleanup(b, queue, queue+".dlq", exchange)
	prefix := "bench:" + testenv.Suffix() + ":"
	benchDeleteKeysAtCleanup(b, rc, prefix)
	multiplier := 4
	cfg := celery.Config{BrokerURL: testenv.AMQPURL(), TaskDefaultQueue: queue, WorkerConcurrency: 25,
		WorkerPrefetchMultiplier: &multiplier, WorkerDeadLetterQueue: queue + ".dlq"}
	log := benchBrokerLog()
	reg, ran, allRan := benchAddRegistry(b.N)
	client := benchClientOn(b, cfg, log, "bench-client")
	benchSendAll(b, client, queue, b.N, celery.WithIgnoreResult())

	wbr, err := amqpbroker.New(cfg.BrokerURL, amqpbroker.Options{Logger: log, ConnectionName: "bench-worker"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = wbr.Close() }) // Run does not close it
	opts := celery.WorkerOptions{Config: cfg, Registry: reg, Broker: wbr, Hostname: "celery@bench", Logger: log,
		Backend: redisbackend.New(rc, redisbackend.Options{Expires: time.Hour, KeyPrefix: prefix})}
	if store {
		opts.Revokes = redisrevoke.New(rc, prefix+"revoked:", time.Hour)
		// One id revoked, so the set exists and every check reads it.
		if err := opts.Revokes.Revoke(context.Background(), []string{"never-sent"}, false, ""); err != nil {
			b.Fatal(err)
		}
	}
	if ev {
		ebr, err := amqpbroker.New(cfg.BrokerURL, amqpbroker.Options{Logger: log, ConnectionName: "bench-events"})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = ebr.Close() })
		d, err := events.NewDispatcher(ebr, events.Options{Hostname: "celery@bench", Exchange: exchange, Enabled: true,
			BufferSize: 4*b.N + 16, Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = d.Close(context.Background()) })
		opts.Events = d
	}
	if stats {
		opts.Metrics = nopMetrics{}
	}
	w, err := celery.NewWorker(opts)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan error, 1)
	b.StartTimer()
	go func() { stopped <- w.Run(ctx) }()
	select {
	case <-allRan:
	case err := <-stopped:
		b.Fatalf("worker stopped early: %v", err)
	case <-time.After(benchWait):
		b.Fatalf("only %d of %d tasks ran within %s", ran.Load(), b.N, benchWait)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
	cancel()
	if err := <-stopped; err != nil {
		b.Fatalf("worker.Run: %v", err)
	}
}
