package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves goroutines behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseCounts(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
	}{
		{"1,2,4", []int{1, 2, 4}},
		{" 4 ", []int{4}},
		{"64", []int{64}},
		{"0", nil},
		{"65", nil},
		{"1,,2", nil},
		{"", nil},
		{"x", nil},
	} {
		got, err := parseCounts("-procs", tc.in)
		if (err == nil) != (tc.want != nil) || len(got) != len(tc.want) {
			t.Fatalf("parseCounts(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("parseCounts(%q) = %v; want %v", tc.in, got, tc.want)
			}
		}
	}
}

func FuzzParseCounts(f *testing.F) {
	for _, s := range []string{"1,2,4", "0", "1,,", "-3", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseCounts("-procs", s)
		if err != nil && got != nil {
			t.Fatalf("parseCounts(%q) returned %v with error %v", s, got, err)
		}
		for _, v := range got {
			if v < 1 || v > 64 {
				t.Fatalf("parseCounts(%q) = %v: out of range", s, got)
			}
		}
	})
}

func TestParseOptionsRejects(t *testing.T) {
	for _, args := range [][]string{
		{},                                 // no -worker
		{"-worker", "w", "-n", "0"},        // nothing to drain
		{"-worker", "w", "-eta", "-1"},     // negative
		{"-worker", "w", "-runs", "bogus"}, // unknown run
		{"-worker", "w", "-queues", "0"},   // no queue
	} {
		if _, err := parseOptions(args, &bytes.Buffer{}); err == nil {
			t.Errorf("parseOptions(%q) accepted", args)
		}
	}
}

// testDB is the Redis database of the end-to-end test's results: one of its own, so that "no
// result key left" can be checked.
const testDB = 11

// TestRunScalesHoldsAndCleansUp runs every mode with small counts against the real RabbitMQ and
// Redis and the real worker (built from ./worker): a line per
// process/queue count, the large drain with RSS, the ETA lines, and nothing left behind.
func TestRunScalesHoldsAndCleansUp(t *testing.T) {
	worker := filepath.Join(t.TempDir(), "worker")
	if out, err := exec.Command("go", "build", "-o", worker, "github.com/forumads/forumads/worker").CombinedOutput(); err != nil {
		t.Fatalf("building the worker: %v\n%s", err, out)
	}
	t.Setenv("REDIS_URL", fmt.Sprintf("redis://127.0.0.1:6379/%d", testDB))
	var out, errOut bytes.Buffer
	code := run([]string{"-worker", worker, "-n", "400", "-procs", "1,2", "-queues", "1,2", "-big", "600", "-eta", "300", "-timeout", "3m"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("run exited %d:\n%s\n%s", code, out.String(), errOut.String())
	}
	text := out.String()
	for _, want := range []string{
		`1 proc x 1 queue\(s\) +400 tasks: [0-9]+ in .* RSS start [0-9.]+ MiB, peak [0-9.]+ MiB, end [0-9.]+ MiB`,
		`2 proc x 1 queue\(s\) +400 tasks: [0-9]+ in `,
		`1 proc x 2 queue\(s\) +400 tasks: [0-9]+ in `,
		`2 proc x 2 queue\(s\) +400 tasks: [0-9]+ in `,
		`1 proc x 1 queue\(s\) +600 tasks: [0-9]+ in `,
		`300 of 300 held, .* peak \(VmHWM\) [0-9.]+ MiB`,
	} {
		if !regexp.MustCompile(want).MatchString(text) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	sfx := regexp.MustCompile(`names end in \.([0-9a-f]{8})`).FindStringSubmatch(text)
	if sfx == nil {
		t.Fatalf("output names no suffix:\n%s", text)
	}
	// The runs in order: label, run number, queue count.
	names := []string{"bench.scale.deadletter." + sfx[1]}
	for i, r := range []struct {
		label  string
		queues int
	}{{"p1q1", 1}, {"p2q1", 1}, {"p1q2", 2}, {"p2q2", 2}, {"p1q1", 1}, {"eta", 1}} {
		for q := range r.queues {
			names = append(names, fmt.Sprintf("bench.scale.%s.%d.%d.%s", r.label, i+1, q, sfx[1]))
		}
		if r.label != "eta" { // the drains start their workers on an idle queue
			names = append(names, fmt.Sprintf("bench.scale.idle.%d.%s", i+1, sfx[1]))
		}
	}
	conn, err := amqp.Dial("amqp://guest:guest@127.0.0.1:5672/")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range names {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclarePassive(q, true, false, false, false, nil); err == nil {
			t.Errorf("queue %s left behind", q)
			_ = ch.Close()
		}
	}
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DB: testDB})
	defer rc.Close()
	keys, err := rc.Keys(context.Background(), "celery-task-meta-*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) > 0 {
		t.Errorf("%d result keys left in Redis database %d, e.g. %s", len(keys), testDB, keys[0])
	}
}
