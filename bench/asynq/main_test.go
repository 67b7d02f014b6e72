package main

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves goroutines behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseInfoCPU(t *testing.T) {
	for _, tc := range []struct {
		name, info string
		want       time.Duration
		err        bool
	}{
		{"redis 7", "# CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:2.500000\r\nused_cpu_sys_children:9.0\r\nused_cpu_user_children:9.0\r\n", 3750 * time.Millisecond, false},
		{"children ignored", "used_cpu_sys_children:1\nused_cpu_user_children:1\nused_cpu_sys:0\nused_cpu_user:0\n", 0, false},
		{"missing user", "used_cpu_sys:1.0\n", 0, true},
		{"not a number", "used_cpu_sys:x\nused_cpu_user:1\n", 0, true},
		{"negative", "used_cpu_sys:-1\nused_cpu_user:1\n", 0, true},
		{"nan", "used_cpu_sys:NaN\nused_cpu_user:1\n", 0, true},
		{"empty", "", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseInfoCPU(tc.info)
			if (err != nil) != tc.err || got != tc.want {
				t.Fatalf("parseInfoCPU = %v, %v; want %v, error %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func FuzzParseInfoCPU(f *testing.F) {
	f.Add("used_cpu_sys:1.5\r\nused_cpu_user:2\r\n")
	f.Add("used_cpu_sys:1e308\nused_cpu_user:1e308\n")
	f.Add(":\n::\nused_cpu_sys\n")
	f.Fuzz(func(t *testing.T, info string) {
		d, err := parseInfoCPU(info)
		if err != nil && !errors.Is(err, errBadInfo) {
			t.Fatalf("unexpected error %v", err)
		}
		if d < 0 || (err != nil && d != 0) {
			t.Fatalf("parseInfoCPU(%q) = %v, %v", info, d, err)
		}
	})
}

func TestParseConcurrencies(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
	}{
		{"8,16", []int{8, 16}},
		{" 4 ", []int{4}},
		{"0", nil},
		{"8,,16", nil},
		{"-1", nil},
		{"x", nil},
		{"10001", nil},
	} {
		got, err := parseConcurrencies(tc.in)
		if (err == nil) != (tc.want != nil) || len(got) != len(tc.want) {
			t.Fatalf("parseConcurrencies(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("parseConcurrencies(%q) = %v; want %v", tc.in, got, tc.want)
			}
		}
	}
}

// TestRunDrainsEveryTaskAndLeavesNoKeys runs the bench on the real Redis with a small N: each
// concurrency prints a drain line with N tasks, and no key of its queues is left behind.
func TestRunDrainsEveryTaskAndLeavesNoKeys(t *testing.T) {
	const url = "redis://127.0.0.1:6379/13"
	var out, errOut bytes.Buffer
	if code := run([]string{"-n", "300", "-c", "2,4", "-redis", url, "-timeout", "60s"}, &out, &errOut); code != 0 {
		t.Fatalf("run exited %d; stderr:\n%s", code, errOut.String())
	}
	line := regexp.MustCompile(`(?m)^no-op +asynq-c(\d+) +300 tasks in [0-9.]+s = [0-9]+/s `)
	got := line.FindAllStringSubmatch(out.String(), -1)
	if len(got) != 2 || got[0][1] != "2" || got[1][1] != "4" {
		t.Fatalf("want one drain line for -c 2 and one for -c 4, got:\n%s", out.String())
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opts)
	defer rc.Close()
	keys, err := rc.Keys(context.Background(), "asynq:{bench-*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		t.Errorf("key left behind: %s", k)
	}
	members, err := rc.SMembers(context.Background(), "asynq:queues").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if strings.HasPrefix(m, "bench-") {
			t.Errorf("queue %s left in asynq:queues", m)
		}
	}
}
