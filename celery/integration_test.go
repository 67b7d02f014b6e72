package celery_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend/redisbackend"
	"github.com/forumads/forumads/celery/internal/workertest"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/testenv"
)

// bundle is one test's worker, client and the names it owns.
type bundle struct {
	cfg     celery.Config
	reg     *celery.Registry
	client  *celery.Client
	backend *redisbackend.Backend
	rc      *redis.Client
	worker  *celery.Worker
	queue   string
	dlq     string
	stop    func()
}

// setup starts a worker on a queue of its own. register adds the test's tasks; mutate edits the config.
func setup(t *testing.T, register func(*celery.Registry), mutate func(*celery.Config)) *bundle {
	t.Helper()
	b := &bundle{queue: testenv.Name(t, "test"), rc: testenv.Redis(t)}
	b.dlq = b.queue + ".dlq"
	testenv.DeleteQueuesAtCleanup(t, b.queue, b.dlq)
	prefix := "test:" + testenv.Suffix() + ":"
	testenv.DeletePrefixAtCleanup(t, b.rc, prefix)
	one := 1
	b.cfg = celery.Config{
		BrokerURL: testenv.AMQPURL(), TaskDefaultQueue: b.queue, WorkerConcurrency: 4,
		WorkerPrefetchMultiplier: &one, WorkerDeadLetterQueue: b.dlq,
	}
	if mutate != nil {
		mutate(&b.cfg)
	}
	b.backend = redisbackend.New(b.rc, redisbackend.Options{Expires: time.Hour, KeyPrefix: prefix})
	b.reg = celery.NewRegistry()
	if register != nil {
		register(b.reg)
	}
	log := workertest.Logger(t)
	wbr := newBroker(t, log, "test-worker") // closed after b.stop: Run does not close it
	b.worker = workertest.New(t, celery.WorkerOptions{Config: b.cfg, Registry: b.reg, Broker: wbr,
		Backend: b.backend, Hostname: "celery@test", Logger: log})
	var err error
	b.client, err = celery.NewClient(celery.ClientOptions{Config: b.cfg, Broker: newBroker(t, log, "test-client"), Backend: b.backend})
	if err != nil {
		t.Fatal(err)
	}
	run := workertest.Start(t, context.Background(), b.worker, 30*time.Second)
	b.stop = func() { run.Stop(t) }
	return b
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

type xy struct {
	X int `celery:"x"`
	Y int `celery:"y"`
}

type failErr struct{ msg string }

func (e *failErr) Error() string { return e.msg }

func registerBasics(reg *celery.Registry) {
	celery.Register(reg, "t.add", func(_ context.Context, t *celery.Task[xy]) (int, error) { return t.Args.X + t.Args.Y, nil })
	celery.Register(reg, "t.fail", func(_ context.Context, t *celery.Task[struct {
		Msg string `celery:"msg"`
	}]) (any, error) {
		return nil, &failErr{t.Args.Msg}
	})
}

func TestWorkerSuccessAndFailure(t *testing.T) {
	t.Parallel()
	b := setup(t, registerBasics, nil)
	ctx := ctxT(t, 30*time.Second)
	r, err := b.client.SendTask(ctx, "t.add", []any{2, 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var sum int
	if err := r.GetInto(ctx, &sum); err != nil || sum != 5 {
		t.Fatalf("t.add(2, 3) = %d, %v", sum, err)
	}
	r, err = b.client.SendTask(ctx, "t.add", nil, map[string]any{"x": 40, "y": 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.GetInto(ctx, &sum); err != nil || sum != 42 {
		t.Fatalf("t.add(x=40, y=2) = %d, %v", sum, err)
	}
	r, err = b.client.SendTask(ctx, "t.fail", []any{"boom"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Get(ctx)
	var te *celery.TaskError
	if !errors.As(err, &te) || te.State != "FAILURE" || te.Exception.Type != "failErr" || fmt.Sprint(te.Exception.Message...) != "boom" {
		t.Fatalf("t.fail: %v", err)
	}
	r, err = b.client.SendTask(ctx, "t.add", []any{"two", 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err = r.Get(ctx); !errors.As(err, &te) || te.Exception.Type != "TypeError" {
		t.Fatalf("bad args must fail with TypeError, got %v", err)
	}
}

func TestWorkerRetryThenSuccess(t *testing.T) {
	t.Parallel()
	var attempts atomic.Int32
	states := make(chan string, 10)
	b := setup(t, func(reg *celery.Registry) {
		celery.Register(reg, "t.flaky", func(_ context.Context, t *celery.Task[struct{}]) (int, error) {
			n := attempts.Add(1)
			if n < 3 {
				return 0, t.Retry(fmt.Errorf("attempt %d failed", n), celery.Countdown(100*time.Millisecond))
			}
			return int(n), nil
		})
		celery.Register(reg, "t.always", func(_ context.Context, t *celery.Task[struct{}]) (int, error) {
			return 0, celery.Retry(errors.New("never works"), celery.Countdown(10*time.Millisecond), celery.WithMaxRetries(2))
		})
	}, nil)
	ctx := ctxT(t, 30*time.Second)
	r, err := b.client.SendTask(ctx, "t.flaky", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var retryChildren atomic.Value
	go func() {
		last := ""
		for ctx.Err() == nil {
			m, _ := r.Info(ctx)
			s := m.Status
			if s == "RETRY" {
				retryChildren.Store(string(m.Children))
			}
			if s != last {
				states <- s
				last = s
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	var n int
	if err := r.GetInto(ctx, &n); err != nil || n != 3 {
		t.Fatalf("flaky = %d, %v", n, err)
	}
	sawRetry := false
	for len(states) > 0 {
		if <-states == "RETRY" {
			sawRetry = true
		}
	}
	if !sawRetry {
		t.Error("state RETRY was never observed")
	}
	// As Celery stores it, the RETRY names the re-sent message (same id) in `children`.
	if got, want := retryChildren.Load(), `[[["`+r.ID+`", null], null]]`; got != want {
		t.Errorf("RETRY children = %v, want %s", got, want)
	}
	always, err := b.client.SendTask(ctx, "t.always", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = always.Get(ctx)
	var te *celery.TaskError
	if !errors.As(err, &te) || te.State != "FAILURE" || !strings.Contains(fmt.Sprint(te.Exception.Message...), "never works") {
		t.Fatalf("exhausted retries must FAIL with the last error, got %v", err)
	}
}

func TestWorkerCountdownDoesNotBlockOtherWork(t *testing.T) {
	t.Parallel()
	b := setup(t, registerBasics, func(c *celery.Config) { c.WorkerConcurrency = 1 })
	ctx := ctxT(t, 30*time.Second)
	sent := time.Now()
	later, err := b.client.SendTask(ctx, "t.add", []any{1, 1}, nil, celery.WithCountdown(1500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	now, err := b.client.SendTask(ctx, "t.add", []any{2, 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := now.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := later.State(ctx); s != "PENDING" {
		t.Fatalf("countdown task state %s before its eta", s)
	}
	if _, err := later.Get(ctx); err != nil {
		t.Fatal(err)
	}
	// The eta is computed after `sent`, so the task cannot finish earlier than 1.5s after it.
	if el := time.Since(sent); el < 1500*time.Millisecond-time.Millisecond {
		t.Fatalf("countdown task ran after %v, before its eta", el)
	}
}

func TestWorkerExpiredTaskIsRevoked(t *testing.T) {
	t.Parallel()
	b := setup(t, registerBasics, nil)
	ctx := ctxT(t, 30*time.Second)
	r, err := b.client.SendTask(ctx, "t.add", []any{1, 1}, nil,
		celery.WithCountdown(500*time.Millisecond), celery.WithExpiresIn(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Get(ctx)
	var te *celery.TaskError
	if !errors.As(err, &te) || te.State != "REVOKED" || te.Exception.Type != "TaskRevokedError" {
		t.Fatalf("expired task: %v", err)
	}
}

// getDead reads one message from the dead-letter queue.
func getDead(t *testing.T, dlq string) amqp.Delivery {
	t.Helper()
	conn := testenv.AMQP(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	var d amqp.Delivery
	testenv.Eventually(t, 10*time.Second, func() bool {
		m, ok, err := ch.Get(dlq, true)
		if err != nil {
			if ch, err = conn.Channel(); err != nil {
				t.Fatal(err)
			}
			return false
		}
		d = m
		return ok
	}, "a message in the dead-letter queue %s", dlq)
	return d
}

func TestWorkerDeadLettersUnknownTaskAndPickle(t *testing.T) {
	t.Parallel()
	b := setup(t, registerBasics, nil)
	ctx := ctxT(t, 30*time.Second)
	r, err := b.client.SendTask(ctx, "t.nobody_has_this", []any{1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Get(ctx)
	var te *celery.TaskError
	if !errors.As(err, &te) || te.Exception.Type != "NotRegistered" || fmt.Sprint(te.Exception.Message...) != "t.nobody_has_this" {
		t.Fatalf("unknown task: %v", err)
	}
	d := getDead(t, b.dlq)
	if reason, _ := d.Headers["x-dead-letter-reason"].(string); !strings.Contains(reason, "NotRegistered") || d.Headers["task"] != "t.nobody_has_this" {
		t.Fatalf("dead letter headers %v", d.Headers)
	}

	// A pickle message, as Python sends with serializer='pickle': never unpickled.
	conn := testenv.AMQP(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	id := celery.NewID()
	err = ch.PublishWithContext(ctx, "", b.queue, false, false, amqp.Publishing{
		ContentType: "application/x-python-serialize", ContentEncoding: "binary", CorrelationId: id,
		Headers: amqp.Table{"task": "t.add", "id": id, "lang": "py"},
		Body:    []byte("\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93."),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = celery.NewAsyncResult(id, b.backend).Get(ctx)
	if !errors.As(err, &te) || te.Exception.Type != "ContentDisallowed" || !strings.Contains(te.Error(), "pickle") && !strings.Contains(te.Error(), "python-serialize") {
		t.Fatalf("pickle message: %v", err)
	}
	d = getDead(t, b.dlq)
	if reason, _ := d.Headers["x-dead-letter-reason"].(string); !strings.Contains(reason, "ContentDisallowed") || d.ContentType != "application/x-python-serialize" {
		t.Fatalf("pickle dead letter: %v %s", d.Headers, d.ContentType)
	}
	// The worker still works.
	r, err = b.client.SendTask(ctx, "t.add", []any{1, 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestWorkerSurvivesPyAMQP64BitHeader(t *testing.T) {
	t.Parallel()
	b := setup(t, registerBasics, nil)
	ctx := ctxT(t, 30*time.Second)
	// Published through amqpwire, a Go int64 header goes out as py-amqp's 'L', which plain
	// amqp091-go cannot read.
	ms := time.Now().UnixMilli()
	r, err := b.client.SendTask(ctx, "t.add", []any{20, 22}, nil, celery.WithHeaders(map[string]any{"x-sent-ms": ms, "x-neg": int64(-1) << 40}))
	if err != nil {
		t.Fatal(err)
	}
	var sum int
	if err := r.GetInto(ctx, &sum); err != nil || sum != 42 {
		t.Fatalf("task with a 64-bit header: %d, %v", sum, err)
	}
}

func TestWorkerTimeLimits(t *testing.T) {
	t.Parallel()
	b := setup(t, func(reg *celery.Registry) {
		celery.Register(reg, "t.sleep", func(ctx context.Context, t *celery.Task[struct {
			S float64 `celery:"s"`
		}]) (string, error) {
			select {
			case <-time.After(time.Duration(t.Args.S * float64(time.Second))):
				return "slept", nil
			case <-ctx.Done():
				return "", context.Cause(ctx)
			}
		})
		celery.Register(reg, "t.stubborn", func(ctx context.Context, t *celery.Task[struct{}]) (string, error) {
			time.Sleep(3 * time.Second) // ignores its context
			return "done", nil
		})
	}, nil)
	ctx := ctxT(t, 30*time.Second)
	soft, err := b.client.SendTask(ctx, "t.sleep", []any{5}, nil, celery.WithTimeLimits(0, 200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	hard, err := b.client.SendTask(ctx, "t.stubborn", nil, nil, celery.WithTimeLimits(300*time.Millisecond, 0))
	if err != nil {
		t.Fatal(err)
	}
	var te *celery.TaskError
	if _, err := soft.Get(ctx); !errors.As(err, &te) || te.Exception.Type != "SoftTimeLimitExceeded" || te.Exception.Module != "billiard.exceptions" {
		t.Fatalf("soft limit: %v", err)
	}
	if _, err := hard.Get(ctx); !errors.As(err, &te) || te.Exception.Type != "TimeLimitExceeded" {
		t.Fatalf("hard limit: %v", err)
	}
}

func TestWorkerProgressAndTrackStarted(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	b := setup(t, func(reg *celery.Registry) {
		celery.Register(reg, "t.progress", func(ctx context.Context, t *celery.Task[struct{}]) (string, error) {
			if err := t.UpdateState(ctx, "PROGRESS", map[string]int{"current": 5, "total": 10}); err != nil {
				return "", err
			}
			<-release
			return "done", nil
		})
	}, func(c *celery.Config) { c.TaskTrackStarted = true })
	ctx := ctxT(t, 30*time.Second)
	r, err := b.client.SendTask(ctx, "t.progress", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var meta protocol.ResultMeta
	testenv.Eventually(t, 30*time.Second, func() bool {
		meta, _ = r.Info(ctx)
		return meta.Status == "PROGRESS"
	}, "task %s to be in state PROGRESS", r.ID)
	var info map[string]int
	if err := json.Unmarshal(meta.Result, &info); err != nil || info["current"] != 5 || info["total"] != 10 {
		t.Fatalf("PROGRESS meta = %s, %v", meta.Result, err)
	}
	close(release)
	if _, err := r.Get(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestWorkerWarmShutdownFinishesRunningTask(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	b := setup(t, func(reg *celery.Registry) {
		celery.Register(reg, "t.slow", func(ctx context.Context, t *celery.Task[struct{}]) (string, error) {
			close(started)
			time.Sleep(500 * time.Millisecond)
			return "finished", nil
		}, celery.AcksLate(true))
	}, nil)
	ctx := ctxT(t, 30*time.Second)
	r, err := b.client.SendTask(ctx, "t.slow", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-started
	b.stop()
	var s string
	if err := r.GetInto(ctx, &s); err != nil || s != "finished" {
		t.Fatalf("running task after warm shutdown: %q, %v", s, err)
	}
	// Its message was acknowledged: the queue is empty.
	ch, err := testenv.AMQP(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclarePassive(b.queue, true, false, false, false, nil)
	if err != nil || q.Messages != 0 {
		t.Fatalf("queue after warm shutdown: %+v, %v", q, err)
	}
}
