package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/internal/testenv"
	"go.uber.org/goleak"
)

// workerBin is the worker program built once for the tests that run it as a subprocess.
var workerBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	bins, cleanup, err := testenv.BuildPrograms(false, "./worker")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	workerBin = bins["./worker"]
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			return 1
		}
	}
	return code
}

func TestNodeName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, host, want string
	}{
		{"celery@%h", "web1.example.com", "celery@web1.example.com"},
		{"w1@%h", "web1.example.com", "w1@web1.example.com"},
		{"w1@%n", "web1.example.com", "w1@web1"},
		{"w1@%d", "web1.example.com", "w1@example.com"},
		{"%n.%d", "web1.example.com", "celery@web1.example.com"},
		{"%h", "localhost", "celery@localhost"},
		{"w@%n-%d", "localhost", "w@localhost-"},
		{"worker", "web1", "celery@worker"},
		{"w@100%%", "web1", "w@100%"},
		{"%%h", "web1", "celery@%h"},
		{"%%n@%n", "a.b", "%n@a"},
		{"a@b@%h", "web1", "a@b@web1"},
		{"w@%x", "web1", "w@%x"},
		{"", "web1", "celery@"},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"/"+tt.host, func(t *testing.T) {
			if got := NodeName(tt.pattern, tt.host); got != tt.want {
				t.Errorf("NodeName(%q, %q) = %q, want %q", tt.pattern, tt.host, got, tt.want)
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	t.Parallel()
	defaults := flags{hostname: "celery@%h", loglevel: "INFO", heartbeat: 2 * time.Second, metricsAddr: metricsAddrDefault()}
	with := func(f flags) flags {
		f.heartbeat, f.metricsAddr = defaults.heartbeat, defaults.metricsAddr
		return f
	}
	tests := []struct {
		name    string
		args    []string
		want    flags
		wantErr string
	}{
		{name: "defaults", args: nil, want: defaults},
		{name: "short", args: []string{"-Q", "a,b", "-c", "3", "-n", "w1@%h", "-l", "debug", "--config", "X"},
			want: with(flags{config: "X", queues: "a,b", hostname: "w1@%h", loglevel: "debug", concurrency: 3})},
		{name: "long", args: []string{"--queues=a", "--concurrency=2", "--hostname", "h@x", "--loglevel", "warning", "-config", "c.yaml"},
			want: with(flags{config: "c.yaml", queues: "a", hostname: "h@x", loglevel: "warning", concurrency: 2})},
		{name: "last wins", args: []string{"-Q", "a", "--queues", "b"},
			want: with(flags{queues: "b", hostname: "celery@%h", loglevel: "INFO"})},
		{name: "operations", args: []string{"-E", "--without-heartbeat", "--without-mingle", "--without-gossip", "--heartbeat-interval", "0.5", "--metrics-addr", ""},
			want: flags{hostname: "celery@%h", loglevel: "INFO", taskEvents: true, withoutHeartbeat: true, withoutMingle: true,
				withoutGossip: true, heartbeat: 500 * time.Millisecond}},
		{name: "task events long", args: []string{"--task-events", "--metrics-addr=0.0.0.0:1"},
			want: flags{hostname: "celery@%h", loglevel: "INFO", taskEvents: true, heartbeat: 2 * time.Second, metricsAddr: "0.0.0.0:1"}},
		{name: "bad heartbeat", args: []string{"--heartbeat-interval", "0"}, wantErr: "heartbeat-interval"},
		{name: "positional", args: []string{"-E", "extra"}, wantErr: "unexpected arguments"},
		{name: "bad concurrency", args: []string{"-c", "three"}, wantErr: "invalid value"},
		{name: "unknown flag", args: []string{"--autoscale", "4,2"}, wantErr: "not defined"},
		{name: "missing value", args: []string{"-Q"}, wantErr: "needs an argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			got, err := parseFlags(tt.args, &out)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("parseFlags(%q) succeeded with %+v, want an error", tt.args, got)
				}
				if !strings.Contains(out.String(), tt.wantErr) {
					t.Errorf("usage output %q does not mention %q", out.String(), tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags(%q): %v", tt.args, err)
			}
			if got != tt.want {
				t.Errorf("parseFlags(%q) = %+v, want %+v", tt.args, got, tt.want)
			}
		})
	}
}

// TestBadStartExits runs the built program with arguments it must refuse before touching any
// service: it exits with a non-zero code and says why.
func TestBadStartExits(t *testing.T) {
	t.Parallel()
	good := filepath.Join(t.TempDir(), "celeryconfig.yaml")
	if err := os.WriteFile(good, []byte("task_default_queue: never-used\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("worker_prefetch_multiplier: -1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantMsg  []string
	}{
		{"bad loglevel", []string{"--config", good, "--loglevel", "LOUD"}, 2, []string{"unknown log level", `"LOUD"`}},
		{"bad short loglevel", []string{"--config", good, "-l", "verbose"}, 2, []string{"unknown log level"}},
		{"missing config", []string{"--config", missing}, 1, []string{missing, "no such file"}},
		{"invalid setting", []string{"--config", bad}, 1, []string{"worker_prefetch_multiplier"}},
		{"bad flag", []string{"--config", good, "-c", "many"}, 2, []string{"invalid value", "-c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, workerBin, tt.args...)
			// A broker nobody listens on: if the program went as far as connecting, it would hang
			// retrying and the context would kill it.
			cmd.Env = append(os.Environ(), "CELERY_BROKER_URL=amqp://guest:guest@127.0.0.1:1//", "CELERY_RESULT_BACKEND=")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = io.Discard, &out
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("the worker did not exit by itself (killed after 30s); output:\n%s", out.String())
			}
			if err == nil {
				t.Fatalf("the worker exited 0; output:\n%s", out.String())
			}
			if code := cmd.ProcessState.ExitCode(); code != tt.wantCode {
				t.Errorf("exit code %d, want %d", code, tt.wantCode)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(out.String(), m) {
					t.Errorf("output does not mention %q:\n%s", m, out.String())
				}
			}
		})
	}
}

// TestUnreachableBrokerAtStartupExits: with broker_connection_max_retries, or with
// broker_connection_retry_on_startup off, a worker whose broker never answers gives up with an
// ERROR that names the broker (without its password) and the setting, and exits with status 1.
func TestUnreachableBrokerAtStartupExits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, settings, reason string
	}{
		{"max retries", "broker_connection_max_retries: 2\n", "gave up after 3 attempts: broker_connection_max_retries is 2"},
		{"no retry on startup", "broker_connection_retry_on_startup: false\n", "gave up after 1 attempts: broker_connection_retry_on_startup is off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := filepath.Join(t.TempDir(), "celeryconfig.yaml")
			if err := os.WriteFile(cfg, []byte("task_default_queue: never-used\n"+tc.settings), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, workerBin, "--config", cfg, "--metrics-addr", "")
			cmd.Env = append(os.Environ(), "CELERY_BROKER_URL=amqp://guest:s3cret@127.0.0.1:1//", "CELERY_RESULT_BACKEND=")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = io.Discard, &out
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("the worker kept retrying (killed after 2 minutes); output:\n%s", out.String())
			}
			if code := cmd.ProcessState.ExitCode(); err == nil || code != 1 {
				t.Fatalf("exit code %d, want 1; output:\n%s", code, out.String())
			}
			var last string
			for _, l := range strings.Split(out.String(), "\n") {
				if strings.Contains(l, "ERROR/MainProcess] worker stopped with an error") {
					last = l
				}
			}
			if !strings.Contains(last, "amqp://guest:xxxxx@127.0.0.1:1/") || !strings.Contains(last, tc.reason) {
				t.Fatalf("no ERROR naming the broker and %q; output:\n%s", tc.reason, out.String())
			}
			if strings.Contains(out.String(), "s3cret") {
				t.Fatalf("the password is in the output:\n%s", out.String())
			}
		})
	}
}

// TestBackendCleanupIsRegistered: the worker program runs Celery's built-in
// celery.backend_cleanup (as beat sends it at 4:00): on the Redis result backend, whose keys
// expire by themselves, it succeeds with None.
func TestBackendCleanupIsRegistered(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 60*time.Second)
	e := newEnv(t)
	w := startWorker(t, "cleanup", workerSpec{queue: e.queue})
	w.waitReady()
	id := e.send(ctx, "celery.backend_cleanup")
	e.waitState(ctx, id, "SUCCESS", w)
	m := e.results(ctx, []string{id})[0]
	if m.Status != "SUCCESS" || string(m.Result) != "null" {
		t.Fatalf("celery.backend_cleanup: %s %s, want SUCCESS null", m.Status, m.Result)
	}
	w.stop()
}
