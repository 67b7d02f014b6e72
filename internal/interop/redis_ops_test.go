package interop

// On a Redis broker: Celery's command line against a Go worker, a mixed pool of Python and Go
// workers draining one queue, and Go workers SIGKILLed with acks_late.

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend/redisbackend"
	"github.com/forumads/forumads/internal/testenv"
)

// redisCelery runs `python3 -m celery -A opsapp <args>` on the Redis broker and returns stdout; a
// non-zero exit fails the test.
func redisCelery(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, pythonPath(), append([]string{"-m", "celery", "-A", "opsapp"}, args...)...)
	cmd.Dir = testdataDir(t)
	cmd.Env = pythonEnv(map[string]string{"PYTHONPATH": testdataDir(t), "BROKER_URL": redisBrokerURL(t),
		"CELERY_BROKER_URL": redisBrokerURL(t), "BACKEND_URL": testenv.RedisURL(), "PYTHONDONTWRITEBYTECODE": "1"})
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	t.Logf("$ celery -A opsapp %s\n%s", strings.Join(args, " "), out.String())
	if err != nil {
		t.Fatalf("celery %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, out.String(), errb.String())
	}
	return out.String()
}

// TestRedisOpsCeleryCLI: `celery inspect ping/stats/conf/active`, `celery control revoke` and `celery
// events --dump` (Python Celery 5.2, kombu's Redis transport) against a Go worker on Redis.
func TestRedisOpsCeleryCLI(t *testing.T) {
	t.Parallel()
	queue := testenv.Name(t, "ops.redis")
	deleteRedisQueuesAtCleanup(t, queue)
	node := "celery@gotest-redis-" + testenv.Suffix()
	prefix := "t:" + testenv.Suffix() + ":revoked:"
	testenv.DeleteKeysAtCleanup(t, testenv.Redis(t), prefix+"ids")
	w := startRedisGoWorkerOn(t, "ops", queue, fmt.Sprintf("worker_revoke_key_prefix: %q\n", prefix), time.Minute, "-n", node, "-E", "-c", "2")
	t.Cleanup(func() {
		if err := w.stop(30 * time.Second); err != nil {
			t.Errorf("go worker: warm shutdown should exit 0: %v", err)
		}
	})
	c, _ := redisGoClient(t)

	if out := redisCelery(t, "inspect", "ping", "-d", node, "--timeout", "5"); out != "->  "+node+": OK\n        pong\n\n1 node online.\n" {
		t.Errorf("inspect ping printed %q", out)
	}
	has(t, "stats", redisCelery(t, "inspect", "stats", "-d", node, "--timeout", "5"), "->  "+node+": OK", `"max-concurrency": 2`)
	// The transport options the worker was configured with (visibility_timeout: 60), not {}.
	has(t, "conf", redisCelery(t, "inspect", "conf", "-d", node, "--timeout", "5"), "->  "+node+": OK",
		`"broker_transport_options": {`, `"visibility_timeout": 60`)

	sleeper := send(t, c, queue, "diag.sleep", []any{30}, nil)
	testenv.Eventually(t, 30*time.Second, func() bool {
		return strings.Contains(redisCelery(t, "inspect", "active", "-d", node, "--timeout", "5"), "'id': '"+sleeper.ID+"', 'name': 'diag.sleep'")
	}, "diag.sleep in inspect active")
	redisCelery(t, "control", "terminate", "SIGKILL", sleeper.ID, "-d", node, "--timeout", "5")

	id := celery.NewID()
	has(t, "revoke", redisCelery(t, "control", "revoke", id, "-d", node, "--timeout", "5"), "->  "+node+": OK", "tasks "+id+" flagged as revoked")
	r := send(t, c, queue, "diag.add", []any{1, 1}, nil, celery.WithTaskID(id))
	if _, err := r.Get(getCtx(t)); err == nil || !strings.Contains(err.Error(), "REVOKED") {
		t.Errorf("a revoked task: %v, want REVOKED", err)
	}

	cmd := exec.Command(pythonPath(), "-m", "celery", "-A", "opsapp", "events", "--dump")
	cmd.Dir = testdataDir(t)
	cmd.Env = pythonEnv(map[string]string{"PYTHONPATH": testdataDir(t), "BROKER_URL": redisBrokerURL(t),
		"CELERY_BROKER_URL": redisBrokerURL(t), "BACKEND_URL": testenv.RedisURL()})
	rc := redisBrokerClient(t)
	before, _ := rc.SMembers(context.Background(), "_kombu.binding.celeryev").Result()
	dump := startProcess(t, "celery events --dump", cmd, "starting capture")
	t.Cleanup(func() { // kombu leaves its receiver's binding when the dump is terminated
		after, _ := rc.SMembers(context.Background(), "_kombu.binding.celeryev").Result()
		for _, m := range after {
			if !slices.Contains(before, m) {
				_ = rc.SRem(context.Background(), "_kombu.binding.celeryev", m).Err()
			}
		}
	})
	if err := dump.log.waitFor("starting capture", dump.exited, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// PUBLISH keeps nothing for a subscriber not there yet, and "starting capture" is printed
	// before kombu subscribes: wait for a heartbeat of the node, then send.
	testenv.Eventually(t, 30*time.Second, func() bool { return strings.Contains(dump.log.String(), node+" [") }, "a heartbeat in celery events --dump")
	added := send(t, c, queue, "diag.add", []any{2, 3}, nil)
	testenv.Eventually(t, 30*time.Second, func() bool {
		return strings.Contains(dump.log.String(), "task succeeded: diag.add("+added.ID+")")
	}, "the task's events in celery events --dump")
	has(t, "celery events --dump", dump.log.String(), "task received: diag.add("+added.ID+") args=(2, 3)",
		"task started: diag.add("+added.ID+")", "result=5")
	_ = dump.cmd.Process.Signal(syscall.SIGTERM)
	<-dump.exited
}

// TestRedisMixedPoolDrains: two Python Celery 5.2 workers and two Go workers consume one Redis
// queue; 5,000 diag.add tasks sent by the Go client all succeed, none lost, each run once, and
// both kinds of worker ran some.
func TestRedisMixedPoolDrains(t *testing.T) {
	t.Parallel()
	const n = 5000
	queue := testenv.Name(t, "mixed.redis")
	deleteRedisQueuesAtCleanup(t, queue)
	var pys, gos []*process
	for i := range 2 {
		pys = append(pys, startRedisPythonWorker(t, "diagapp", queue, fmt.Sprintf("python worker %d on redis", i), "--prefetch-multiplier", "4"))
	}
	for i := range 2 {
		w := startRedisGoWorkerOn(t, fmt.Sprintf("mixed %d", i), queue, "", time.Minute, "-c", "4")
		gos = append(gos, w)
		t.Cleanup(func() {
			if err := w.stop(30 * time.Second); err != nil {
				t.Errorf("go worker: warm shutdown should exit 0: %v", err)
			}
		})
	}
	c, br := redisGoClient(t)
	rc := testenv.Redis(t)
	ids := make([]string, n)
	var keys []string
	for i := range ids {
		ids[i] = celery.NewID()
		keys = append(keys, redisbackend.TaskKey("", ids[i]))
	}
	testenv.DeleteKeysAtCleanup(t, rc, keys...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for i, id := range ids {
		if _, err := c.SendTask(ctx, "diag.add", []any{i, 1}, nil, celery.WithQueue(queue), celery.WithTaskID(id)); err != nil {
			t.Fatalf("sending %d: %v", i, err)
		}
	}
	_ = br
	var missing []string
	err := testenv.Poll(3*time.Minute, func() (bool, error) {
		vals, err := rc.MGet(ctx, keys...).Result()
		if err != nil {
			return false, nil
		}
		missing = missing[:0]
		for i, v := range vals {
			s, _ := v.(string)
			var meta struct {
				Status string `json:"status"`
				Result int    `json:"result"`
			}
			if json.Unmarshal([]byte(s), &meta) != nil || meta.Status != "SUCCESS" || meta.Result != i+1 {
				missing = append(missing, ids[i])
			}
		}
		return len(missing) == 0, nil
	})
	if err != nil {
		t.Fatalf("%d of %d tasks did not succeed (first: %v): %v", len(missing), n, missing[:min(len(missing), 5)], err)
	}
	// Each once, and by both kinds of worker: the workers' "Task diag.add[<id>] succeeded" lines
	// (Celery's and the Go worker's), which may follow the stored result by a moment.
	runs := map[string]int{}
	ran := map[string]int{}
	count := func() int {
		clear(runs)
		clear(ran)
		total := 0
		for kind, ps := range map[string][]*process{"python": pys, "go": gos} {
			for _, p := range ps {
				for _, m := range succeededLine.FindAllStringSubmatch(p.log.String(), -1) {
					runs[m[1]]++
					ran[kind]++
					total++
				}
			}
		}
		return total
	}
	if err := testenv.Poll(10*time.Second, func() (bool, error) { return count() >= n, nil }); err != nil {
		t.Errorf("the workers logged %d task successes, want %d: %v", count(), n, err)
	}
	var twice []string
	for _, id := range ids {
		if runs[id] != 1 {
			twice = append(twice, fmt.Sprintf("%s ran %d times", id, runs[id]))
		}
	}
	if len(twice) > 0 {
		t.Errorf("%d tasks did not run exactly once (first: %v)", len(twice), twice[:min(len(twice), 5)])
	}
	if ran["python"] == 0 || ran["go"] == 0 {
		t.Errorf("the pool was not mixed: Python workers ran %d tasks, Go workers %d", ran["python"], ran["go"])
	}
	t.Logf("Python workers ran %d tasks, Go workers %d", ran["python"], ran["go"])
}

// succeededLine is the INFO line Celery and the Go worker log for a task that succeeded.
var succeededLine = regexp.MustCompile(`Task diag\.add\[([0-9a-f-]{36})\] succeeded in`)

// heldFor counts the messages of queue held unacknowledged on the Redis broker.
func heldFor(t *testing.T, queue string) int {
	t.Helper()
	n, err := testenv.UnackedFor(context.Background(), redisBrokerClient(t), queue)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRedisKillGoWorkerAcksLate: a Go worker running acks_late tasks is SIGKILLed; what it had
// taken is in kombu's unacked hash (taken and recorded in one step), and a fresh worker restores
// and runs every task once the visibility timeout (3 s here) has passed.
func TestRedisKillGoWorkerAcksLate(t *testing.T) {
	t.Parallel()
	queue := testenv.Name(t, "kill.redis")
	deleteRedisQueuesAtCleanup(t, queue)
	cfg := "task_acks_late: true\n"
	vt := 3 * time.Second
	// Without mingle: a Go worker mingles in the background after "worker ready" (a Python one
	// before it consumes), declaring a reply queue <oid>.reply.celery.pidbox for a second; killed
	// in that second, it leaves that queue's member in _kombu.binding.reply.celery.pidbox, which
	// only the subscription's Close removes (as kombu's basic_cancel of an auto-delete queue does),
	// and which no one else can tell from a live one.
	first := startRedisGoWorkerOn(t, "to be killed", queue, cfg, vt, "-c", "4", "--without-mingle")
	c, _ := redisGoClient(t)
	var rs []*celery.AsyncResult
	for range 24 {
		rs = append(rs, send(t, c, queue, "diag.sleep", []any{0.5}, nil))
	}
	testenv.Eventually(t, 30*time.Second, func() bool { return strings.Contains(first.log.String(), "received") }, "the first worker to take tasks")
	time.Sleep(700 * time.Millisecond)
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.exited
	held := heldFor(t, queue)
	if held == 0 {
		t.Fatal("the killed worker held no message in the unacked hash: the kill tested nothing")
	}
	t.Logf("the killed worker held %d messages", held)
	second := startRedisGoWorkerOn(t, "after the kill", queue, cfg, vt, "-c", "4")
	t.Cleanup(func() {
		if err := second.stop(30 * time.Second); err != nil {
			t.Errorf("go worker: warm shutdown should exit 0: %v", err)
		}
	})
	for i, r := range rs {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		_, err := r.Get(ctx)
		cancel()
		if err != nil {
			t.Errorf("task %d (%s) after the kill: %v", i, r.ID, err)
		}
	}
	// acks_late: a task's message is acknowledged right after its result is stored, so the last
	// acks may land just after the last Get returned; none may stay.
	deadline := time.Now().Add(10 * time.Second)
	for n := heldFor(t, queue); n != 0; n = heldFor(t, queue) {
		if time.Now().After(deadline) {
			t.Errorf("%d messages still unacknowledged 10 s after every task ran", n)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRedisCountdownLongerThanVisibility: a countdown of 7 s with a visibility timeout of 2 s runs
// exactly once, with two Go workers (each restoring what is past its visibility timeout every
// half second) on the queue: the holder renews the message's unacked_index score while it waits.
func TestRedisCountdownLongerThanVisibility(t *testing.T) {
	t.Parallel()
	queue := testenv.Name(t, "countdown.redis")
	deleteRedisQueuesAtCleanup(t, queue)
	for i := range 2 {
		w := startRedisGoWorkerOn(t, fmt.Sprintf("countdown %d", i), queue, "", 2*time.Second, "-c", "2")
		t.Cleanup(func() {
			if err := w.stop(30 * time.Second); err != nil {
				t.Errorf("go worker: warm shutdown should exit 0: %v", err)
			}
		})
	}
	key := redisKeyAtCleanup(t, "countdown-runs-")
	c, _ := redisGoClient(t)
	r := send(t, c, queue, "diag.flaky", []any{key, 0}, nil, celery.WithCountdown(7*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := r.Get(ctx); err != nil {
		t.Fatalf("the countdown task: %v", err)
	}
	time.Sleep(5 * time.Second) // a second run, if there were one, would come within a visibility timeout
	if runs, err := testenv.Redis(t).Get(ctx, key).Int(); err != nil || runs != 1 {
		t.Fatalf("the countdown task ran %d times (%v), want exactly once", runs, err)
	}
}
