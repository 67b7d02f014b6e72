package main

import (
	"context"
	"encoding/json"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/forumads/forumads/internal/tcpproxy"
	"github.com/forumads/forumads/internal/testenv"
)

// testCtx bounds a whole test.
func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitState waits until the stored state of id is want.
func (e *env) waitState(ctx context.Context, id, want string, w *workerProc) {
	e.t.Helper()
	testenv.Eventually(e.t, 30*time.Second, func() bool {
		if w.exited() {
			e.t.Fatalf("worker %s exited (%v) before task %s was %s", w.name, w.err, id, want)
		}
		return e.results(ctx, []string{id})[0].Status == want
	}, "task %s to be %s", id, want)
}

func lateAcks() map[string]any {
	return map[string]any{"task_acks_late": true, "task_track_started": true}
}

// TestWarmShutdownFinishesRunningTask: the first SIGTERM lets the running task finish, stores its
// result, acknowledges its (acks_late) message and exits 0.
func TestWarmShutdownFinishesRunningTask(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 90*time.Second)
	e := newEnv(t)
	w := startWorker(t, "warm", workerSpec{queue: e.queue, settings: lateAcks(), args: []string{"-c", "2"}})
	w.waitReady()

	id := e.send(ctx, "diag.sleep", 2)
	e.waitState(ctx, id, "STARTED", w)
	w.signal(syscall.SIGTERM)
	w.waitLog(30*time.Second, "Warm shutdown")
	if st := w.wait(60 * time.Second); st.ExitCode() != 0 {
		t.Fatalf("warm shutdown: worker exited with %v, want exit code 0", st)
	}

	m := e.results(ctx, []string{id})[0]
	if m.Status != "SUCCESS" {
		t.Fatalf("state after warm shutdown = %q (%s), want SUCCESS", m.Status, m.Result)
	}
	var slept float64
	if err := json.Unmarshal(m.Result, &slept); err != nil || slept != 2 {
		t.Errorf("result = %s, want 2", m.Result)
	}
	if n := w.logs.Count("succeeded", id); n != 1 {
		t.Errorf("%d 'succeeded' lines for the task, want 1", n)
	}
	if n := queueDepth(t, e.queue); n != 0 {
		t.Errorf("queue %s holds %d messages after the warm shutdown, want 0 (the acks_late message was not acknowledged)", e.queue, n)
	}
}

// TestColdShutdownRequeuesRunningTask: a second SIGTERM stops at once, and the running task's
// acks_late message goes back to its queue.
func TestColdShutdownRequeuesRunningTask(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 90*time.Second)
	e := newEnv(t)
	w := startWorker(t, "cold", workerSpec{queue: e.queue, settings: lateAcks(), args: []string{"-c", "2"}})
	w.waitReady()

	// The task would run for a minute: an exit within the bound below is a prompt one.
	id := e.send(ctx, "diag.sleep", 60)
	e.waitState(ctx, id, "STARTED", w)
	w.signal(syscall.SIGTERM)
	w.waitLog(30*time.Second, "Warm shutdown")
	w.signal(syscall.SIGTERM)
	st := w.wait(20 * time.Second)
	if st.ExitCode() == 0 {
		t.Errorf("cold shutdown exited 0; want a failure code")
	}
	if w.logs.Count("Cold shutdown") == 0 {
		t.Errorf("no 'Cold shutdown' line in the log")
	}

	testenv.Eventually(t, 10*time.Second, func() bool {
		return queueDepth(t, e.queue) >= 1
	}, "the acks_late message to be back in its queue")
	if n := queueDepth(t, e.queue); n != 1 {
		t.Errorf("queue %s holds %d messages after the cold shutdown, want 1", e.queue, n)
	}
	m := e.results(ctx, []string{id})[0]
	if m.Status == "SUCCESS" {
		t.Errorf("the interrupted task is stored SUCCESS: %s", m.Result)
	}
	t.Logf("state stored for the interrupted task, whose message is back in the queue: %q %s", m.Status, m.Result)
}

// TestSIGQUITSoftShutdownLetsRunningTaskFinish: with worker_soft_shutdown_timeout, SIGQUIT (cold at
// once) first gives the running task that long: it finishes and is stored SUCCESS, its acks_late
// message acknowledged, and the worker exits 1 (a cold shutdown) as soon as it did.
func TestSIGQUITSoftShutdownLetsRunningTaskFinish(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 90*time.Second)
	e := newEnv(t)
	settings := lateAcks()
	settings["worker_soft_shutdown_timeout"] = 60
	w := startWorker(t, "soft", workerSpec{queue: e.queue, settings: settings, args: []string{"-c", "2"}})
	w.waitReady()

	id := e.send(ctx, "diag.sleep", 2)
	e.waitState(ctx, id, "STARTED", w)
	w.signal(syscall.SIGQUIT)
	if st := w.wait(60 * time.Second); st.ExitCode() != 1 {
		t.Errorf("soft shutdown: worker exited with %v, want exit code 1 (cold)", st)
	}
	if w.logs.Count("Initiating Soft Shutdown") == 0 {
		t.Error("no 'Initiating Soft Shutdown' line in the log")
	}
	if m := e.results(ctx, []string{id})[0]; m.Status != "SUCCESS" {
		t.Errorf("state after the soft shutdown = %q (%s), want SUCCESS", m.Status, m.Result)
	}
	if n := queueDepth(t, e.queue); n != 0 {
		t.Errorf("queue %s holds %d messages after the soft shutdown, want 0", e.queue, n)
	}
}

// TestSIGKILLLosesNoTask: with acks_late, killing the worker halfway through 2,000 tasks and starting
// it again still runs every task to SUCCESS with the right value.
func TestSIGKILLLosesNoTask(t *testing.T) {
	t.Parallel()
	const n = 2000
	ctx := testCtx(t, 120*time.Second)
	e := newEnv(t)
	// Every tenth task sleeps 50 ms, so the run takes seconds and the kill lands in the middle of
	// it however fast the machine is (diag.add alone finishes 2,000 tasks between two polls).
	ids := e.sendMany(ctx, n, func(i int) string {
		if i%10 == 0 {
			return "diag.sleep"
		}
		return "diag.add"
	}, func(i int) []any {
		if i%10 == 0 {
			return []any{0.05}
		}
		return []any{i, i}
	})
	spec := workerSpec{queue: e.queue, settings: map[string]any{"task_acks_late": true}, args: []string{"-c", "8"}}

	first := startWorker(t, "kill-1", spec)
	var doneAtKill int
	testenv.Eventually(t, 60*time.Second, func() bool {
		if first.exited() {
			t.Fatalf("worker exited (%v) before it was killed", first.err)
		}
		doneAtKill = e.countSucceeded(ctx, ids)
		return doneAtKill >= n*3/10
	}, "30%% of %d tasks to succeed", n)
	first.signal(syscall.SIGKILL)
	st := first.wait(30 * time.Second)
	if ws, ok := st.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("first worker ended with %v, want killed by SIGKILL", st)
	}
	afterKill := e.countSucceeded(ctx, ids)
	t.Logf("SIGKILL when %d of %d results were stored (%d once it was dead)", doneAtKill, n, afterKill)
	if afterKill == n {
		t.Fatalf("all %d tasks were done before the kill took effect: the test proves nothing (make the tasks slower)", n)
	}

	second := startWorker(t, "kill-2", spec)
	ms := e.waitAllSucceeded(ctx, 90*time.Second, ids, second)
	for i, m := range ms {
		want := strconv.Itoa(2 * i)
		if i%10 == 0 {
			want = "0.05"
		}
		if got := string(m.Result); got != want {
			t.Errorf("task %d: result %s, want %s", i, got, want)
		}
	}
	second.stop()
	if d := queueDepth(t, e.queue); d != 0 {
		t.Errorf("queue holds %d messages at the end, want 0", d)
	}
}

// TestRabbitMQConnectionLoss: the worker's broker connection goes through a proxy that cuts it
// midway and refuses new connections for two seconds. The worker reconnects by itself, every task
// completes, and with early acknowledgement (acks_late off) no task runs twice.
func TestRabbitMQConnectionLoss(t *testing.T) {
	t.Parallel()
	const n = 200
	ctx := testCtx(t, 120*time.Second)
	e := newEnv(t)
	amqpURL := testenv.AMQPURL()
	proxy := tcpproxy.Start(t, serviceAddr(t, amqpURL, "5672"))

	// Even tasks count their runs in Redis (diag.flaky with no failure INCRs its key once per run
	// and returns the count); odd ones sleep, so that tasks are in flight when the connection dies.
	prefix := "test:" + e.queue + ":runs:"
	runKey := func(i int) string { return prefix + strconv.Itoa(i) }
	for i := 0; i < n; i += 2 {
		e.trackKeys(runKey(i))
	}
	ids := e.sendMany(ctx, n,
		func(i int) string {
			if i%2 == 0 {
				return "diag.flaky"
			}
			return "diag.sleep"
		},
		func(i int) []any {
			if i%2 == 0 {
				return []any{runKey(i), 0}
			}
			return []any{0.05}
		})

	w := startWorker(t, "amqp-loss", workerSpec{queue: e.queue, broker: viaAddr(t, amqpURL, proxy.Addr()),
		args: []string{"-c", "4"}})
	testenv.Eventually(t, 60*time.Second, func() bool {
		if w.exited() {
			t.Fatalf("worker exited (%v)", w.err)
		}
		return e.countSucceeded(ctx, ids) >= n/4
	}, "a quarter of the tasks to succeed")
	proxy.Pause()
	cut := proxy.Cut()
	doneAtCut := e.countSucceeded(ctx, ids)
	t.Logf("cut %d connection(s) with %d of %d tasks done", cut, doneAtCut, n)
	if cut == 0 {
		t.Fatal("the worker had no connection through the proxy")
	}
	if doneAtCut == n {
		t.Fatal("every task was done before the cut: the test proves nothing")
	}
	w.waitLog(30*time.Second, "broker connection lost")
	testenv.Eventually(t, 30*time.Second, func() bool { return proxy.Refused() > 0 }, "the worker to try to reconnect")
	time.Sleep(2 * time.Second) // the outage: reconnect attempts keep being refused
	proxy.Resume()
	w.waitLog(30*time.Second, "connected to broker again")

	ms := e.waitAllSucceeded(ctx, 90*time.Second, ids, w)
	for i, m := range ms {
		if i%2 == 0 {
			if string(m.Result) != "1" {
				t.Errorf("task %d (%s): diag.flaky returned %s: it ran more than once", i, ids[i], m.Result)
			}
		}
	}
	for i := 0; i < n; i += 2 {
		runs, err := e.rc.Get(ctx, runKey(i)).Int()
		if err != nil {
			t.Fatalf("run counter of task %d: %v", i, err)
		}
		if runs != 1 {
			t.Errorf("task %d (%s) ran %d times, want 1 (acks_late is off)", i, ids[i], runs)
		}
	}
	for i, id := range ids {
		if c := w.logs.Count("] Task ", id, "succeeded"); c != 1 {
			t.Errorf("task %d (%s): %d 'succeeded' lines, want 1", i, id, c)
		}
	}
	w.stop()
	t.Logf("connections through the proxy: %d accepted, %d refused", proxy.Accepted(), proxy.Refused())
}

// TestRedisConnectionLoss: the result backend goes through a proxy that cuts every connection while
// tasks run and refuses new ones for two seconds. The worker keeps retrying its stores, every result
// ends up stored, and the worker neither crashes nor stops.
func TestRedisConnectionLoss(t *testing.T) {
	t.Parallel()
	const n = 100
	ctx := testCtx(t, 120*time.Second)
	e := newEnv(t)
	redisURL := testenv.RedisURL()
	proxy := tcpproxy.Start(t, serviceAddr(t, redisURL, "6379"))

	w := startWorker(t, "redis-loss", workerSpec{queue: e.queue, backend: viaAddr(t, redisURL, proxy.Addr()),
		args: []string{"-c", "4"}})
	w.waitReady()
	ids := e.sendMany(ctx, n, func(int) string { return "diag.sleep" }, func(i int) []any { return []any{0.05} })
	testenv.Eventually(t, 60*time.Second, func() bool {
		if w.exited() {
			t.Fatalf("worker exited (%v)", w.err)
		}
		return e.countSucceeded(ctx, ids) >= n/5
	}, "a fifth of the tasks to succeed")
	proxy.Pause()
	cut := proxy.Cut()
	doneAtCut := e.countSucceeded(ctx, ids)
	t.Logf("cut %d Redis connection(s) with %d of %d results stored", cut, doneAtCut, n)
	if doneAtCut == n {
		t.Fatal("every result was stored before the cut: the test proves nothing")
	}
	w.waitLog(30*time.Second, "storing result failed, retrying")
	time.Sleep(2 * time.Second) // the outage: stores keep failing
	proxy.Resume()

	ms := e.waitAllSucceeded(ctx, 90*time.Second, ids, w)
	for i, m := range ms {
		if string(m.Result) != "0.05" {
			t.Errorf("task %d: result %s, want 0.05", i, m.Result)
		}
	}
	if w.logs.Count("result stored after the backend came back") == 0 {
		t.Error("no 'result stored after the backend came back' line: no store was retried")
	}
	if w.exited() {
		t.Fatalf("the worker exited: %v", w.err)
	}
	w.stop()
}

// TestUnreachableBrokerAtStart: a worker started while its broker is unreachable keeps retrying
// instead of exiting, and consumes as soon as the broker can be reached.
func TestUnreachableBrokerAtStart(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 90*time.Second)
	e := newEnv(t)
	addr := closedPort(t)
	amqpURL := testenv.AMQPURL()
	w := startWorker(t, "no-broker", workerSpec{queue: e.queue, broker: viaAddr(t, amqpURL, addr), args: []string{"-c", "2"}})

	testenv.Eventually(t, 30*time.Second, func() bool {
		if w.exited() {
			t.Fatalf("the worker exited (%v) instead of retrying", w.err)
		}
		return w.logs.Count("cannot connect to broker, retrying") >= 3
	}, "three refused connection attempts")
	if w.logs.Count("worker ready") != 0 {
		t.Fatal("the worker says it is ready without a broker")
	}

	proxy := tcpproxy.Listen(t, addr, serviceAddr(t, amqpURL, "5672"))
	w.waitLog(60*time.Second, "connected to broker")
	w.waitReady()
	id := e.send(ctx, "diag.add", 2, 3)
	ms := e.waitAllSucceeded(ctx, 30*time.Second, []string{id}, w)
	if string(ms[0].Result) != "5" {
		t.Errorf("diag.add(2, 3) = %s, want 5", ms[0].Result)
	}
	w.stop()
	if proxy.Accepted() == 0 {
		t.Error("the worker did not connect through the address it was given")
	}
}

// TestLostEarlyAckDoesNotRunTaskTwice reproduces, deterministically, the case
// TestRabbitMQConnectionLoss meets by chance: the connection breaks after the worker wrote the early
// acknowledgement of a message but before RabbitMQ read it. The worker's write succeeded, so it runs
// the task; RabbitMQ never saw the ack, so it delivers the message again after the reconnect. The
// README promises that a task never runs twice where acks_late is off.
func TestLostEarlyAckDoesNotRunTaskTwice(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 90*time.Second)
	e := newEnv(t)
	amqpURL := testenv.AMQPURL()
	proxy := tcpproxy.Start(t, serviceAddr(t, amqpURL, "5672"))
	w := startWorker(t, "lost-ack", workerSpec{queue: e.queue, broker: viaAddr(t, amqpURL, proxy.Addr()),
		args: []string{"-c", "1"}})
	w.waitReady()

	// From now on what the worker sends RabbitMQ is lost on the way; deliveries still reach it.
	proxy.DropUpstream(true)
	key := "test:" + e.queue + ":runs"
	e.trackKeys(key)
	id := e.send(ctx, "diag.flaky", key, 0)
	e.waitState(ctx, id, "SUCCESS", w) // acknowledged (in vain), run once, result stored

	proxy.Pause()
	proxy.Cut()
	proxy.DropUpstream(false)
	w.waitLog(30*time.Second, "broker connection lost")
	proxy.Resume()
	w.waitLog(30*time.Second, "connected to broker again")
	// RabbitMQ delivers the unacknowledged message again; let the worker deal with it, then stop.
	testenv.Eventually(t, 30*time.Second, func() bool {
		return w.logs.Count("received", id) >= 2
	}, "the message to be delivered again")
	w.stop()

	runs, err := e.rc.Get(ctx, key).Int()
	if err != nil {
		t.Fatalf("reading the run counter: %v", err)
	}
	if runs != 1 {
		t.Errorf("the task ran %d times, want 1: its early ack was lost with the connection and the "+
			"redelivered message was run again (acks_late is off)", runs)
	}
}
