package clustertest

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend/redisbackend"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/amqpbroker"
	"github.com/forumads/forumads/internal/testenv"
)

// poisonWorkerEnv holds the JSON poisonSpec of a worker process of the poison test.
const poisonWorkerEnv = "CLUSTERTEST_POISON_WORKER"

// poisonSpec is what the worker process of the poison test consumes and where it stores results.
type poisonSpec struct {
	Queue, DeadLetters, KeyPrefix, Hostname string
}

// poisonLimit is the queue's x-delivery-limit: RabbitMQ delivers a message limit+1 times, then
// dead-letters it.
const poisonLimit = 2

// config is the Celery configuration of the worker process and of the test's client: one quorum
// queue with a delivery limit and a dead-letter target, acks_late (so a task whose process dies
// is delivered again), one task at a time.
func (s poisonSpec) config() celery.Config {
	one := 1
	return celery.Config{BrokerURL: testenv.AMQPURL(), WorkerConcurrency: 1, WorkerPrefetchMultiplier: &one,
		TaskAcksLate: true, WorkerDeadLetterQueue: s.Queue + ".dlq",
		TaskQueues: []celery.QueueConfig{{Name: s.Queue, Exchange: s.Queue, ExchangeType: "topic", RoutingKey: s.Queue,
			QueueArguments: map[string]any{broker.ArgQueueType: broker.QueueTypeQuorum, broker.ArgDeliveryLimit: poisonLimit,
				broker.ArgDeadLetterExchange: "", broker.ArgDeadLetterRoutingKey: s.DeadLetters}}}}
}

// poisonWorker is the worker process: a Go worker on the spec's queue whose task
// clustertest.poison SIGKILLs its own process and clustertest.ok returns its argument. It stops
// on SIGTERM and returns its exit code.
func poisonWorker(specJSON string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var spec poisonSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		log.Error("bad "+poisonWorkerEnv, "err", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	opts, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		log.Error("redis url", "err", err)
		return 2
	}
	rc := redis.NewClient(opts)
	defer rc.Close()
	cfg := spec.config()
	br, err := amqpbroker.New(cfg.BrokerURL, amqpbroker.Options{ConnectionName: spec.Hostname, Logger: log})
	if err != nil {
		log.Error("broker", "err", err)
		return 2
	}
	defer br.Close()
	reg := celery.NewRegistry()
	celery.Register(reg, "clustertest.poison", func(ctx context.Context, task *celery.Task[struct{}]) (int, error) {
		log.Info("poison task: killing this worker process", "id", task.ID, "pid", os.Getpid())
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	})
	celery.Register(reg, "clustertest.ok", func(ctx context.Context, task *celery.Task[struct {
		N int `celery:"n"`
	}]) (int, error) {
		return task.Args.N, nil
	})
	w, err := celery.NewWorker(celery.WorkerOptions{Config: cfg, Registry: reg, Broker: br, Hostname: spec.Hostname, Logger: log,
		Backend: redisbackend.New(rc, redisbackend.Options{Expires: time.Hour, KeyPrefix: spec.KeyPrefix})})
	if err != nil {
		log.Error("worker", "err", err)
		return 2
	}
	if err := w.Run(ctx); err != nil {
		log.Error("worker stopped", "err", err)
		return 1
	}
	return 0
}

// workerProcess is one run of the test binary as the poison test's worker.
type workerProcess struct {
	cmd  *exec.Cmd
	out  *testenv.LogBuffer
	done chan struct{}
	err  error
}

// startPoisonWorker starts the worker process; it is killed with the test if still running.
func startPoisonWorker(t *testing.T, spec poisonSpec) *workerProcess {
	t.Helper()
	data, _ := json.Marshal(spec)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), poisonWorkerEnv+"="+string(data))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlives the test binary
	p := &workerProcess{cmd: cmd, out: &testenv.LogBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the worker process: %v", err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

// killedBySIGKILL reports whether the process ended on SIGKILL.
func (p *workerProcess) killedBySIGKILL() bool {
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// TestPoisonTaskKillingItsWorkerEndsInDeadLetterQueue: a Go worker process (this test binary
// started again) consumes a quorum queue with x-delivery-limit 2 and a dead-letter target; its
// task clustertest.poison SIGKILLs the process every time it runs. The test starts the worker
// again after each death: RabbitMQ delivers the message three times (two redeliveries), then
// moves it to the dead-letter queue, where amqp091 reads it back with the task id and x-death
// reason delivery_limit (what the RabbitMQ UI shows under Get messages). The worker then stops
// dying: the process started after the last death runs an ordinary task and exits 0 on SIGTERM.
// It runs on the single node of services.sh (quorum queues work on one node).
func TestPoisonTaskKillingItsWorkerEndsInDeadLetterQueue(t *testing.T) {
	rc := testenv.Redis(t)
	conn := testenv.AMQP(t)
	spec := poisonSpec{Queue: testenv.Name(t, "clustertest.poison"), KeyPrefix: "clustertest:" + testenv.Suffix() + ":",
		Hostname: "poison-" + testenv.Suffix() + "@test"}
	spec.DeadLetters = spec.Queue + ".deadletter"
	testenv.DeleteQueuesAtCleanup(t, spec.Queue, spec.DeadLetters, spec.Queue+".dlq")
	testenv.DeletePrefixAtCleanup(t, rc, spec.KeyPrefix)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	cfg := spec.config()
	cbr, err := amqpbroker.New(cfg.BrokerURL, amqpbroker.Options{ConnectionName: "poison-client", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer cbr.Close()
	backend := redisbackend.New(rc, redisbackend.Options{Expires: time.Hour, KeyPrefix: spec.KeyPrefix})
	client, err := celery.NewClient(celery.ClientOptions{Config: cfg, Broker: cbr, Backend: backend})
	if err != nil {
		t.Fatal(err)
	}
	poison, err := client.SendRaw(ctx, "clustertest.poison", nil, nil, celery.WithQueue(spec.Queue))
	if err != nil {
		t.Fatal(err)
	}

	// deadLettered is how many messages wait in the dead-letter queue (declared by the worker
	// before the task queue; 0 before it exists).
	deadLettered := func() int {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		defer ch.Close()
		q, err := ch.QueueDeclarePassive(spec.DeadLetters, true, false, false, false, nil)
		if err != nil {
			return 0
		}
		return q.Messages
	}
	var logs []string
	deaths := 0
	var w *workerProcess
	for {
		w = startPoisonWorker(t, spec)
		var exited bool
		if err := testenv.Poll(time.Minute, func() (bool, error) {
			select {
			case <-w.done:
				exited = true
				return true, nil
			default:
			}
			return deadLettered() > 0, nil
		}); err != nil {
			t.Fatalf("after %d deaths the worker neither died nor was the task dead-lettered: %v\n%s", deaths, err, w.out)
		}
		if !exited {
			// Dead-lettered. The worker that took the last delivery may still be dying from it
			// (RabbitMQ dead-letters as soon as its connection drops, which can be seen before the
			// process is reaped), so stop it: if it ends on SIGKILL it was the poison's last victim
			// and counts as a death; if SIGTERM ends it (warm, or before it set up its signal
			// handling), it never received the message.
			if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
				t.Fatal(err)
			}
			<-w.done
			if w.killedBySIGKILL() {
				logs = append(logs, w.out.String())
				deaths++
			}
			break
		}
		logs = append(logs, w.out.String())
		if !w.killedBySIGKILL() {
			t.Fatalf("worker process ended with %v, want SIGKILL from the poison task:\n%s", w.err, w.out)
		}
		deaths++
		if deaths > poisonLimit+1 {
			t.Fatalf("the worker died %d times, want %d (x-delivery-limit %d), and RabbitMQ still delivers it:\n%s",
				deaths, poisonLimit+1, poisonLimit, w.out)
		}
	}
	if deaths != poisonLimit+1 {
		t.Errorf("the worker died %d times before the task was dead-lettered, want %d (x-delivery-limit %d)", deaths, poisonLimit+1, poisonLimit)
	}
	t.Logf("the poison task killed %d worker processes, then RabbitMQ dead-lettered it", deaths)

	// The dead letter, read back as an operator would (the UI's Get messages shows the same).
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	msg, ok, err := ch.Get(spec.DeadLetters, false)
	if err != nil || !ok {
		t.Fatalf("reading the dead-letter queue %s: %v, found %v", spec.DeadLetters, err, ok)
	}
	if msg.Headers["id"] != poison.ID || msg.Headers["task"] != "clustertest.poison" {
		t.Errorf("dead letter headers id=%v task=%v, want id=%s task=clustertest.poison", msg.Headers["id"], msg.Headers["task"], poison.ID)
	}
	death := firstDeath(t, msg.Headers)
	if death["reason"] != "delivery_limit" || death["queue"] != spec.Queue {
		t.Errorf("x-death %v, want reason delivery_limit from queue %s", death, spec.Queue)
	}
	if msg.Headers["x-first-death-reason"] != "delivery_limit" {
		t.Errorf("x-first-death-reason %v, want delivery_limit", msg.Headers["x-first-death-reason"])
	}
	t.Logf("dead letter: id %v, x-death reason %v from %v, x-first-death-reason %v", msg.Headers["id"], death["reason"],
		death["queue"], msg.Headers["x-first-death-reason"])
	if err := msg.Nack(false, true); err != nil { // leave it for the cleanup, as the UI's Get does
		t.Fatal(err)
	}

	// The worker stopped dying: a fresh process on the queue takes an ordinary task and stops cleanly.
	w = startPoisonWorker(t, spec)
	ok1, err := client.SendRaw(ctx, "clustertest.ok", []json.RawMessage{json.RawMessage("7")}, nil, celery.WithQueue(spec.Queue))
	if err != nil {
		t.Fatal(err)
	}
	meta, err := backend.Wait(ctx, ok1.ID)
	if err != nil || meta.Status != "SUCCESS" || string(meta.Result) != "7" {
		t.Fatalf("ordinary task after the poison: %s %s, %v\n%s", meta.Status, meta.Result, err, w.out)
	}
	select {
	case <-w.done:
		t.Fatalf("the worker died after the poison task was dead-lettered: %v\n%s", w.err, w.out)
	default:
	}
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.done:
	case <-ctx.Done():
		t.Fatalf("the worker did not stop on SIGTERM:\n%s", w.out)
	}
	if w.err != nil {
		t.Errorf("the worker ended with %v after SIGTERM, want exit 0:\n%s", w.err, w.out)
	}
	if len(logs) > 0 {
		t.Logf("log of the last killed worker process:\n%s", tail(logs[len(logs)-1], 5))
	}
}

// firstDeath is the first x-death entry of a dead letter's headers.
func firstDeath(t *testing.T, h amqp.Table) amqp.Table {
	t.Helper()
	deaths, _ := h["x-death"].([]any)
	if len(deaths) == 0 {
		t.Fatalf("no x-death header: %v", h)
	}
	death, ok := deaths[0].(amqp.Table)
	if !ok {
		t.Fatalf("x-death[0] is %T, want a table: %v", deaths[0], deaths[0])
	}
	return death
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	l := &lockedLog{}
	_, _ = l.Write([]byte(s))
	return l.tail(n)
}
