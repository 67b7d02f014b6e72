package interop

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend/redisbackend"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/amqpbroker"
	"github.com/forumads/forumads/internal/testenv"
)

// quorumPyClient is a Celery 5.2 client declaring queue sys.argv[1] as a quorum queue
// (queue_arguments={'x-queue-type': 'quorum'}, Celery 5.5's form) and sending sys.argv[2] tasks
// "interop.quorum.double" to it; it prints the ids. Celery 5.2 declares the queue before sending.
const quorumPyClient = `
import sys
from celery import Celery
from kombu import Exchange, Queue
queue, n = sys.argv[1], int(sys.argv[2])
app = Celery(broker=sys.argv[3])
app.conf.task_queues = [Queue(queue, Exchange(queue, type='direct'), routing_key=queue,
                              queue_arguments={'x-queue-type': 'quorum'})]
for i in range(n):
    r = app.send_task('interop.quorum.double', args=[i], queue=queue)
    print(r.id, i, flush=True)
`

// quorumGoWorker runs an in-process Go worker consuming queue, configured as the Python client
// configures it (task_queues with x-queue-type quorum), with acks_late; it is stopped at cleanup.
func quorumGoWorker(t *testing.T, queue string, backend *redisbackend.Backend) {
	t.Helper()
	one := 1
	cfg := celery.Config{BrokerURL: testenv.AMQPURL(), WorkerConcurrency: 4, WorkerPrefetchMultiplier: &one, TaskAcksLate: true,
		TaskQueues: []celery.QueueConfig{{Name: queue, Exchange: queue, ExchangeType: "direct", RoutingKey: queue,
			QueueArguments: map[string]any{broker.ArgQueueType: broker.QueueTypeQuorum}}}}
	// The worker's log goes to the test's output: shown when the test fails (CI saw a task stay
	// PENDING here once, with nothing to tell why).
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	br, err := amqpbroker.New(cfg.BrokerURL, amqpbroker.Options{ConnectionName: "interop-quorum", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = br.Close() })
	reg := celery.NewRegistry()
	celery.Register(reg, "interop.quorum.double", func(_ context.Context, t *celery.Task[struct {
		N int `celery:"n"`
	}]) (int, error) {
		return 2 * t.Args.N, nil
	})
	w, err := celery.NewWorker(celery.WorkerOptions{Config: cfg, Registry: reg, Broker: br, Backend: backend,
		Hostname: "interop-quorum-" + testenv.Suffix() + "@test", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	testenv.RunUntilCleanup(t, "go worker", w.Run)
	// Run declares the queue before it consumes; wait until it does.
	testenv.Eventually(t, 30*time.Second, func() bool {
		return len(br.ConsumingQueues()) == 1 && broker.Connected(br)
	}, "the Go worker did not start consuming %s", queue)
}

// TestQuorumQueuesPythonClientGoWorker: Python Celery 5.2 clients declaring a queue as a quorum
// queue (queue_arguments x-queue-type quorum) and Go workers consuming it agree on the
// declaration in both orders, Python first and Go first: no PRECONDITION_FAILED, no global-QoS
// refusal, and every task the Python client sent ends SUCCESS with its result.
func TestQuorumQueuesPythonClientGoWorker(t *testing.T) {
	rc := testenv.Redis(t)
	for _, order := range []string{"python declares first", "go declares first"} {
		t.Run(order, func(t *testing.T) {
			queue := testenv.Name(t, "interop.quorum")
			testenv.DeleteQueuesAtCleanup(t, queue)
			prefix := "interop:quorum:" + testenv.Suffix() + ":"
			t.Cleanup(func() {
				if keys, _ := rc.Keys(context.Background(), prefix+"*").Result(); len(keys) > 0 {
					rc.Del(context.Background(), keys...)
				}
			})
			backend := redisbackend.New(rc, redisbackend.Options{Expires: time.Hour, KeyPrefix: prefix})
			const n = 20
			send := func() []string {
				out, err := exec.Command(pythonPath(), "-c", quorumPyClient, queue, fmt.Sprint(n), testenv.AMQPURL()).CombinedOutput()
				if err != nil {
					t.Fatalf("python client: %v\n%s", err, out)
				}
				var ids []string
				for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
					if f := strings.Fields(line); len(f) == 2 {
						ids = append(ids, f[0])
					}
				}
				if len(ids) != n {
					t.Fatalf("python client sent %d tasks, want %d:\n%s", len(ids), n, out)
				}
				return ids
			}
			var ids []string
			if order == "python declares first" {
				ids = send()
				quorumGoWorker(t, queue, backend)
			} else {
				quorumGoWorker(t, queue, backend)
				ids = send()
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for i, id := range ids {
				meta, err := backend.Wait(ctx, id)
				if err != nil {
					t.Fatalf("task %d (%s): %v (state %s)", i, id, err, meta.Status)
				}
				if meta.Status != "SUCCESS" || string(meta.Result) != fmt.Sprint(2*i) {
					t.Errorf("task %d: %s %s, want SUCCESS %d", i, meta.Status, meta.Result, 2*i)
				}
			}
		})
	}
}
