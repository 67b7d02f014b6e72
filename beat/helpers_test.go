package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"

	"github.com/forumads/forumads/internal/testenv"
)

var beatBin, workerBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	bins, cleanup, err := testenv.BuildPrograms(true, "./beat", "./worker")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	beatBin, workerBin = bins["./beat"], bins["./worker"]
	code := m.Run()
	if code == 0 {
		// Not goleak.VerifyTestMain: the built programs' cleanup must run before os.Exit.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "beat: leaked goroutines:", err)
			return 1
		}
	}
	return code
}

type proc struct {
	name string
	cmd  *exec.Cmd
	logs *testenv.LogBuffer
	done chan struct{}
	err  error
}

// setup is a test's unique queue and Redis prefix, deleted at cleanup.
type setup struct {
	queue, prefix string
}

func newSetup(t *testing.T) setup {
	t.Helper()
	testenv.AMQP(t)
	rc := testenv.Redis(t)
	s := setup{queue: testenv.Name(t, "beat"), prefix: "beat-test-" + testenv.Suffix() + ":"}
	testenv.DeleteQueuesAtCleanup(t, s.queue, s.queue+".dlq")
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := rc.Keys(ctx, s.prefix+"*").Result()
		if len(keys) > 0 {
			rc.Del(ctx, keys...)
		}
	})
	return s
}

// writeConfig writes a celeryconfig.yaml routing everything to s.queue with the given schedule.
func (s setup) writeConfig(t *testing.T, schedule map[string]any, extra map[string]any) string {
	t.Helper()
	settings := map[string]any{
		"task_default_queue":       s.queue,
		"worker_dead_letter_queue": s.queue + ".dlq",
		"beat_key_prefix":          s.prefix,
		"beat_lock_ttl":            2,
		"beat_schedule":            schedule,
		"result_expires":           600,
	}
	for k, v := range extra {
		settings[k] = v
	}
	data, err := yaml.Marshal(settings)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "celeryconfig.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func start(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	cmd := command(bin, args...)
	p := &proc{name: name, cmd: cmd, logs: &testenv.LogBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s (pid %d) output:\n%s", name, cmd.Process.Pid, p.logs.String())
		}
	})
	return p
}

// command runs bin against the test services. Beat's metrics go to a free port, so beats of
// parallel tests never compete for the default one.
func command(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "CELERY_BROKER_URL="+testenv.AMQPURL(), "CELERY_RESULT_BACKEND="+testenv.RedisURL(),
		"REDIS_URL="+testenv.RedisURL(), "BEAT_METRICS_ADDR=127.0.0.1:0")
	return cmd
}

// stop sends SIGTERM and returns the exit code.
func (p *proc) stop(t *testing.T) int {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not stop on SIGTERM", p.name)
	}
	return p.cmd.ProcessState.ExitCode()
}

// waitLog waits until the output contains s.
func (p *proc) waitLog(t *testing.T, timeout time.Duration, s string) {
	t.Helper()
	errExited := fmt.Errorf("%s exited before logging %q", p.name, s)
	err := testenv.Poll(timeout, func() (bool, error) {
		if strings.Contains(p.logs.String(), s) {
			return true, nil
		}
		select {
		case <-p.done:
			return false, errExited
		default:
			return false, nil
		}
	})
	if err != nil {
		t.Fatalf("%s: waiting for %q: %v", p.name, s, err)
	}
}

// consumer collects the messages of a queue.
type consumer struct{ *testenv.Collector }

func consume(t *testing.T, queue string) *consumer {
	t.Helper()
	return &consumer{testenv.Collect(t, queue)}
}

func (c *consumer) snapshot() []amqp.Delivery { return c.Deliveries() }

func (c *consumer) waitN(t *testing.T, timeout time.Duration, n int, match func(amqp.Delivery) bool) []amqp.Delivery {
	t.Helper()
	var got []amqp.Delivery
	err := testenv.Poll(timeout, func() (bool, error) {
		got = got[:0]
		for _, d := range c.snapshot() {
			if match(d) {
				got = append(got, d)
			}
		}
		return len(got) >= n, nil
	})
	if err != nil {
		t.Fatalf("got %d matching messages, want %d: %v", len(got), n, err)
	}
	return got
}
