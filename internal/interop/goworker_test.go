package interop

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/forumads/forumads/internal/testenv"
)

// goWorker is the ./worker program consuming queues of its own.
type goWorker struct {
	*process
	queue      string // the plain queue (created as a missing queue: exchange = name)
	prioQueue  string // declared in task_queues with max_priority 10
	deadLetter string // worker_dead_letter_queue
}

// connectionTrouble are phrases the worker logs when it lost or had to reopen its broker connection.
var connectionTrouble = []string{"connection lost", "connected to broker again", "consuming again", "consuming stopped", "settling a message twice"}

// startGoWorker writes a configuration, starts ./worker on two new queues and waits until it consumes.
// At cleanup it is stopped with SIGTERM and must exit 0 without ever having lost its connection; its
// queues are deleted.
func startGoWorker(t *testing.T, label string) *goWorker {
	t.Helper()
	testenv.AMQP(t) // fail early and clearly without RabbitMQ
	testenv.Redis(t)
	q := testenv.Name(t, "interop")
	w := &goWorker{queue: q, prioQueue: q + ".prio", deadLetter: q + ".dlq"}
	testenv.DeleteQueuesAtCleanup(t, w.queue, w.prioQueue, w.deadLetter)
	// The dead-letter queue exists from the start so that a reader can poll it before anything was
	// dead-lettered; the worker declares it the same way (durable, no arguments).
	declareQueue(t, w.deadLetter)

	cfg := fmt.Sprintf(`# interop test worker
broker_url: %q
result_backend: %q
accept_content: [json]
result_extended: true
result_expires: 3600
worker_concurrency: 8
worker_dead_letter_queue: %q
task_queues:
  - {name: %q, exchange: %q, exchange_type: direct, routing_key: %q, max_priority: 10}
`, testenv.AMQPURL(), testenv.RedisURL(), w.deadLetter, w.prioQueue, w.prioQueue, w.prioQueue)
	path := filepath.Join(t.TempDir(), "celeryconfig.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(workerBin, "--config", path, "-Q", w.queue+","+w.prioQueue, "-c", "8",
		"-n", "interop-"+testenv.Suffix()+"@%h", "-l", "info")
	cmd.Env = append(os.Environ(), "CELERY_BROKER_URL="+testenv.AMQPURL(), "CELERY_RESULT_BACKEND="+testenv.RedisURL())
	w.process = startProcess(t, "go worker ("+label+")", cmd, "worker ready")
	t.Cleanup(func() {
		if err := w.stop(30 * time.Second); err != nil {
			t.Errorf("go worker (%s): warm shutdown should exit 0: %v", label, err)
		}
		w.assertConnectionKept(t)
	})
	if err := w.log.waitFor("worker ready", w.exited, 30*time.Second); err != nil {
		t.Fatalf("go worker (%s): %v", label, err)
	}
	return w
}

// assertConnectionKept fails the test if the worker's log shows a lost broker connection.
func (w *goWorker) assertConnectionKept(t *testing.T) {
	t.Helper()
	log := w.log.String()
	for _, phrase := range connectionTrouble {
		if strings.Contains(log, phrase) {
			t.Errorf("%s logged %q: it lost its broker connection", w.name, phrase)
		}
	}
}

// declareQueue declares a durable queue without arguments, as the worker and Celery declare
// their queues.
func declareQueue(t *testing.T, name string) {
	t.Helper()
	ch, err := testenv.AMQP(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if _, err := ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
		t.Fatalf("declaring %s: %v", name, err)
	}
}

// clientPool runs testdata/client.py processes concurrently, at most n at a time: they mostly wait
// (for the broker, the worker, countdowns), so running them one or two at a time, as t.Parallel
// would on a small machine, is slow. At cleanup it kills what still runs and deletes the results of
// every task the scripts sent.
type clientPool struct {
	sem    chan struct{}
	ctx    context.Context
	wg     sync.WaitGroup
	mu     sync.Mutex
	keys   []string
	python string
	script string
}

func newClientPool(t *testing.T, n int) *clientPool {
	t.Helper()
	rc := testenv.Redis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	p := &clientPool{sem: make(chan struct{}, n), ctx: ctx, python: pythonPath(),
		script: filepath.Join(testdataDir(t), "client.py")}
	t.Cleanup(func() {
		cancel()
		p.wg.Wait()
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(p.keys) > 0 {
			if err := rc.Del(context.Background(), p.keys...).Err(); err != nil {
				t.Errorf("deleting results: %v", err)
			}
		}
	})
	return p
}

// clientRun is one client.py process.
type clientRun struct {
	desc   string
	done   chan struct{}
	out    []byte
	stderr string
	err    error
}

// start runs client.py for one case against w in the background.
func (p *clientPool) start(w *goWorker, protocol int, tc string, env map[string]string) *clientRun {
	vars := map[string]string{
		"BROKER_URL": testenv.AMQPURL(), "BACKEND_URL": testenv.RedisURL(), "QUEUE": w.queue,
		"PROTOCOL": fmt.Sprint(protocol), "DLQ": w.deadLetter, "PRIORITY_QUEUE": w.prioQueue,
		"GET_TIMEOUT": "20",
	}
	for k, v := range env {
		vars[k] = v
	}
	r := &clientRun{desc: fmt.Sprintf("client.py %s (protocol %d)", tc, protocol), done: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(r.done)
		select {
		case p.sem <- struct{}{}:
		case <-p.ctx.Done():
			r.err = p.ctx.Err()
			return
		}
		defer func() { <-p.sem }()
		ctx, cancel := context.WithTimeout(p.ctx, 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, p.python, p.script, tc)
		cmd.Env = pythonEnv(vars)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		r.out, r.err = cmd.Output()
		r.stderr = stderr.String()
		sent, _, _ := parseOutput(r.out)
		p.mu.Lock()
		for _, id := range sent {
			p.keys = append(p.keys, "celery-task-meta-"+id)
		}
		p.mu.Unlock()
	}()
	return r
}

// report waits for the process and returns its report, failing the test if it did not end well.
func (r *clientRun) report(t *testing.T) []byte {
	t.Helper()
	<-r.done
	if r.err != nil {
		t.Fatalf("%s: %v\nstderr:\n%s\nstdout:\n%.4000s", r.desc, r.err, r.stderr, r.out)
	}
	_, report, err := parseOutput(r.out)
	if err != nil {
		t.Fatalf("%s: %v\nstdout:\n%.4000s", r.desc, err, r.out)
	}
	return report
}

// redisKeyAtCleanup returns a unique Redis key deleted when the test ends.
func redisKeyAtCleanup(t *testing.T, prefix string) string {
	t.Helper()
	key := prefix + testenv.Suffix()
	testenv.DeleteKeysAtCleanup(t, testenv.Redis(t), key)
	return key
}
