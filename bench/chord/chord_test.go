package main

import (
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/bench/internal/procstat"
)

func TestParseOptionsDefaults(t *testing.T) {
	t.Setenv("AMQP_URL", "")
	t.Setenv("REDIS_URL", "redis://example:6379/3")
	o, err := parseOptions([]string{"-worker", "w"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.n != 10000 || o.warmup != 10 || o.goConc != 25 || o.pyConc != 2 {
		t.Errorf("n %d, warmup %d, c %d, pyc %d; want 10000, 10, 25, 2", o.n, o.warmup, o.goConc, o.pyConc)
	}
	if !slices.Equal(o.order, []string{sideGo, sidePython}) {
		t.Errorf("order %v, want go then python", o.order)
	}
	if o.amqpURL != "amqp://guest:guest@127.0.0.1:5672/" || o.redisURL != "redis://example:6379/3" {
		t.Errorf("urls %q %q", o.amqpURL, o.redisURL)
	}
	if !strings.HasPrefix(o.worker, "/") || !strings.HasSuffix(o.worker, "/w") || !strings.HasSuffix(o.pytasks, "/bench") {
		t.Errorf("paths not made absolute: worker %q, pytasks %q", o.worker, o.pytasks)
	}
	if o.chordTimeout != 4*time.Minute || o.timeout != 6*time.Minute || o.python != "/usr/bin/python3" {
		t.Errorf("chord-timeout %s, timeout %s, python %q", o.chordTimeout, o.timeout, o.python)
	}
}

func TestParseOptionsSettings(t *testing.T) {
	o, err := parseOptions([]string{"-worker", "/x/worker", "-n", "50", "-warmup", "0", "-c", "8", "-pyc", "4",
		"-order", " python , go", "-chord-timeout", "90s", "-timeout", "3m"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.n != 50 || o.warmup != 0 || o.goConc != 8 || o.pyConc != 4 || o.worker != "/x/worker" {
		t.Errorf("parsed %+v", o)
	}
	if !slices.Equal(o.order, []string{sidePython, sideGo}) {
		t.Errorf("order %v, want python then go", o.order)
	}
	if o.chordTimeout != 90*time.Second || o.timeout != 3*time.Minute {
		t.Errorf("chord-timeout %s, timeout %s", o.chordTimeout, o.timeout)
	}
}

func TestParseOptionsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "-worker is required"},
		{[]string{"-worker", "w", "-n", "0"}, "-n must be positive"},
		{[]string{"-worker", "w", "-warmup", "-1"}, "-warmup"},
		{[]string{"-worker", "w", "-c", "0"}, "-c and -pyc"},
		{[]string{"-worker", "w", "-pyc", "-2"}, "-c and -pyc"},
		{[]string{"-worker", "w", "-timeout", "0s"}, "-timeout"},
		{[]string{"-worker", "w", "-order", "go"}, "both sides"},
		{[]string{"-worker", "w", "-order", "go,go"}, "twice"},
		{[]string{"-worker", "w", "-order", "go,ruby"}, "unknown side"},
		{[]string{"-worker", "w", "-order", "go,python,"}, "unknown side"},
		{[]string{"-worker", "w", "extra"}, "unexpected arguments"},
		{[]string{"-worker", "w", "-n", "many"}, "invalid value"},
	} {
		_, err := parseOptions(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseOptions(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
	if _, err := parseOptions([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}

func TestRunUsageError(t *testing.T) {
	var stderr strings.Builder
	if code := run([]string{"-n", "5"}, io.Discard, &stderr); code != 2 {
		t.Errorf("run without -worker = %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "-worker is required") {
		t.Errorf("stderr %q", stderr.String())
	}
}

func TestExpectedSum(t *testing.T) {
	for n, want := range map[int]int64{1: 0, 2: 1, 10: 45, 10000: 49995000, 1 << 20: 549755289600} {
		if got := expectedSum(n); got != want {
			t.Errorf("expectedSum(%d) = %d, want %d", n, got, want)
		}
		var sum int64
		for i := range n {
			sum += int64(i)
		}
		if sum != want {
			t.Errorf("the loop sum for %d is %d, the table says %d", n, sum, want)
		}
	}
}

func TestRatio(t *testing.T) {
	for _, tc := range []struct {
		slow, fast time.Duration
		want       float64
	}{
		{10 * time.Second, 2 * time.Second, 5.0}, // exact: not rounded down below the target
		{9990 * time.Millisecond, 2 * time.Second, 4.9},
		{7100 * time.Millisecond, time.Second, 7.1},
		{time.Second, 3 * time.Second, 0.3},
		{time.Second, 0, 0},
		{0, time.Second, 0},
	} {
		if got := ratio(tc.slow, tc.fast); got != tc.want {
			t.Errorf("ratio(%s, %s) = %v, want %v", tc.slow, tc.fast, got, tc.want)
		}
	}
}

func TestRatioLine(t *testing.T) {
	for _, tc := range []struct {
		goT, pyT time.Duration
		want     string
	}{
		{time.Second, 7150 * time.Millisecond, "ratio python/go: 7.1x (target >= 5x): met"},
		{2 * time.Second, 10 * time.Second, "ratio python/go: 5.0x (target >= 5x): met"},
		{2 * time.Second, 9999 * time.Millisecond, "ratio python/go: 4.9x (target >= 5x): MISSED"},
		{12517 * time.Millisecond, 17862 * time.Millisecond, "ratio python/go: 1.4x (target >= 5x): MISSED"},
		{0, time.Second, "ratio python/go: - (target >= 5x): not measured"},
	} {
		if got := ratioLine(tc.goT, tc.pyT); got != tc.want {
			t.Errorf("ratioLine(%s, %s) = %q, want %q", tc.goT, tc.pyT, got, tc.want)
		}
	}
}

func TestLine(t *testing.T) {
	r := sideResult{side: sideGo, n: 10000, elapsed: 1230 * time.Millisecond, send: time.Second,
		cpu: procstat.CPU{Group: 2100 * time.Millisecond, RabbitMQ: 615 * time.Millisecond, Redis: 0, RabbitMQPID: 10, RedisPID: 11}, peakKB: 25 * 1024, procs: 1}
	want := "go-workers: chord of 10000: 1.230 s (8130 header tasks/s), cpu: worker 2.10 s (1.71 CPUs), " +
		"rabbitmq 0.61 s (0.50 CPUs), redis 0.00 s (0.00 CPUs); Send took 1.000 s, the result came 0.230 s after it; peak RSS 25.0 MiB"
	if got := r.line(); got != want {
		t.Errorf("line:\n got %q\nwant %q", got, want)
	}
	r.side, r.procs, r.peakKB = sidePython, 3, 3*1024+512
	if got := r.line(); !strings.HasPrefix(got, "python-workers: chord of 10000: ") || !strings.HasSuffix(got, "; peak RSS 3.5 MiB (sum over 3 processes)") {
		t.Errorf("python line %q", got)
	}
	r.peakKB = 0
	if got := r.line(); strings.Contains(got, "peak RSS") {
		t.Errorf("line without a peak RSS reading mentions one: %q", got)
	}
	r.cpu.RabbitMQPID = 0 // not the same broker process in both readings
	if got := r.line(); !strings.Contains(got, ", rabbitmq n/a, redis 0.00 s") {
		t.Errorf("line without a RabbitMQ reading: %q", got)
	}
}

func TestRate(t *testing.T) {
	if got := rate(10000, 2*time.Second); got != 5000 {
		t.Errorf("rate = %v, want 5000", got)
	}
	if got := rate(10, 0); got != 0 {
		t.Errorf("rate over 0 = %v, want 0", got)
	}
}

func TestCheckResult(t *testing.T) {
	ok := `{"status": "SUCCESS", "result": 49995000, "traceback": null, "children": [], "date_done": "2024-01-01T00:00:00.000000", "task_id": "x"}`
	if err := checkResult([]byte(ok), 49995000); err != nil {
		t.Errorf("a correct result: %v", err)
	}
	if err := checkResult([]byte(ok), 49995001); err == nil || !strings.Contains(err.Error(), "want 49995001") {
		t.Errorf("a wrong value: %v", err)
	}
	for _, pending := range []string{"PENDING", "STARTED", "RETRY"} {
		if err := checkResult([]byte(`{"status": "`+pending+`", "result": null}`), 1); !errors.Is(err, errNotReady) {
			t.Errorf("%s: %v, want errNotReady", pending, err)
		}
	}
	failure := `{"status": "FAILURE", "result": {"exc_type": "ChordError", "exc_message": ["Dependency x raised"]}, "traceback": "Traceback: boom"}`
	if err := checkResult([]byte(failure), 1); err == nil || errors.Is(err, errNotReady) ||
		!strings.Contains(err.Error(), "state FAILURE") || !strings.Contains(err.Error(), "ChordError") || !strings.Contains(err.Error(), "boom") {
		t.Errorf("a failure: %v", err)
	}
	for _, bad := range []string{
		`{"status": "SUCCESS", "result": 1.5}`,
		`{"status": "SUCCESS", "result": "45"}`,
		`{"status": "SUCCESS", "result": [45]}`,
		`{"status": "SUCCESS", "result": 99999999999999999999999}`,
		`{"status": "SUCCESS"}`,
		`not json`,
	} {
		if err := checkResult([]byte(bad), 45); err == nil || errors.Is(err, errNotReady) {
			t.Errorf("checkResult(%s) = %v, want an error", bad, err)
		}
	}
}

func TestWorkerCommand(t *testing.T) {
	o := options{worker: "/t/worker", python: "/usr/bin/python3", pytasks: "/r/bench", goConc: 25, pyConc: 2,
		amqpURL: "amqp://a/", redisURL: "redis://r/0"}
	argv, env, err := workerCommand(o, sideGo, "q1", "n@%h", "/t/cfg.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/t/worker", "--config", "/t/cfg.yaml", "-Q", "q1", "-c", "25", "-n", "n@%h", "-l", "warning",
		"--without-mingle", "--metrics-addr", ""}
	if !slices.Equal(argv, want) {
		t.Errorf("go argv %q, want %q", argv, want)
	}
	if env["CELERY_BROKER_URL"] != "amqp://a/" || env["CELERY_RESULT_BACKEND"] != "redis://r/0" {
		t.Errorf("go env %v", env)
	}
	argv, env, err = workerCommand(o, sidePython, "q2", "p@%h", "")
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"/usr/bin/python3", "-m", "celery", "-A", "pytasks", "worker", "-Q", "q2", "-c", "2", "-P", "prefork",
		"--without-mingle", "--without-gossip", "-n", "p@%h", "-l", "warning"}
	if !slices.Equal(argv, want) {
		t.Errorf("python argv %q, want %q", argv, want)
	}
	if env["PYTHONPATH"] != "/r/bench" || env["CELERY_BROKER_URL"] != "amqp://a/" || env["CELERY_RESULT_BACKEND"] != "redis://r/0" {
		t.Errorf("python env %v", env)
	}
	if _, _, err := workerCommand(o, "ruby", "q", "n", ""); err == nil {
		t.Error("an unknown side has a command")
	}
}

func TestGoWorkerConfig(t *testing.T) {
	cfg := goWorkerConfig(options{amqpURL: "amqp://a/", redisURL: "redis://r/0", goConc: 25}, "bench.dlq")
	for _, want := range []string{`broker_url: "amqp://a/"`, `result_backend: "redis://r/0"`, "worker_concurrency: 25",
		"worker_prefetch_multiplier: 4", `worker_dead_letter_queue: "bench.dlq"`, "accept_content: [json]"} {
		if !strings.Contains(cfg, want+"\n") {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}
}
