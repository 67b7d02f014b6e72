package control

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/revoke/redisrevoke"
	"github.com/forumads/forumads/internal/testenv"
)

// pythonPath is PYTHON, default /usr/bin/python3 (Debian's python3-celery 5.2).
func pythonPath() string {
	if p := os.Getenv("PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}

// celeryCLI runs `python3 -m celery -A ctlapp <args>` and returns its output and exit code.
func celeryCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, pythonPath(), append([]string{"-m", "celery", "-A", "ctlapp"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PYTHONPATH="+dir, "BROKER_URL="+testenv.AMQPURL(), "CELERY_BROKER_URL="+testenv.AMQPURL(),
		"PYTHONDONTWRITEBYTECODE=1")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errb.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("running celery %v: %v (is python3-celery installed? scripts/services.sh)", args, err)
	}
	return out.String(), errb.String(), 0
}

// TestInteropCeleryCLI drives a Go mailbox with Python Celery 5.2's own `celery inspect` and
// `celery control`, on the real exchanges celery.pidbox and reply.celery.pidbox; a node name of
// its own keeps it apart from every other test and worker.
func TestInteropCeleryCLI(t *testing.T) {
	t.Parallel()
	suffix := testenv.Suffix()
	node := "celery@gotest-" + suffix
	rc := testenv.Redis(t)
	store := redisrevoke.New(rc, "t:"+suffix+":revoked:", 0)
	testenv.DeleteKeysAtCleanup(t, rc, store.SetKey())

	var mu sync.Mutex
	rateLimits := map[string]string{"ads.score": "10/m"}
	startedAt := 1795630000.25
	pid := 4242
	prio := 0
	logs := &testenv.LogBuffer{}
	opts := Options{Logger: slogTo(logs)}
	o, _ := opts.withDefaults()
	testenv.DeleteQueuesAtCleanup(t, o.NodeQueue(node))
	r := &rig{t: t, logs: logs, tr: newTransport(t, testenv.AMQPURL(), logs)}
	r.start(node, opts, map[string]Handler{
		"ping": pong,
		"stats": func(context.Context, json.RawMessage) (any, error) {
			return map[string]any{"total": map[string]int{"ads.score": 3}, "pid": pid, "clock": "7", "uptime": 12,
				"pool":           map[string]any{"max-concurrency": 4, "processes": []int{pid}},
				"broker":         map[string]any{"hostname": "127.0.0.1", "port": 5672, "transport": "amqp"},
				"prefetch_count": 16, "rusage": "N/A"}, nil
		},
		"registered": func(context.Context, json.RawMessage) (any, error) {
			mu.Lock()
			defer mu.Unlock()
			return []string{RegisteredEntry("ads.import_feed", rateLimits["ads.import_feed"]), RegisteredEntry("ads.score", rateLimits["ads.score"])}, nil
		},
		"active": func(_ context.Context, args json.RawMessage) (any, error) {
			a, err := DecodeActiveArgs(args)
			if err != nil {
				return nil, err
			}
			info := RequestInfo{ID: "6f1c0000-0000-4000-8000-" + suffix + "00", Name: "ads.score", Args: json.RawMessage(`[1, 2]`),
				Kwargs: json.RawMessage(`{}`), Type: "ads.score", Hostname: node, TimeStart: &startedAt, Acknowledged: true,
				DeliveryInfo: DeliveryInfo{RoutingKey: "ads", Priority: &prio}, WorkerPID: &pid}
			if a.Safe {
				info.Args, info.Kwargs = json.RawMessage(`"(1, 2)"`), json.RawMessage(`"{}"`)
			}
			return []RequestInfo{info}, nil
		},
		"revoke": func(ctx context.Context, args json.RawMessage) (any, error) {
			a, err := DecodeRevokeArgs(args)
			if err != nil {
				return nil, err
			}
			if err := store.Revoke(ctx, a.TaskIDs, a.Terminate, a.Signal); err != nil {
				return nil, err
			}
			return RevokeReply(a, nil), nil
		},
		"rate_limit": func(_ context.Context, args json.RawMessage) (any, error) {
			a, err := DecodeRateLimitArgs(args)
			if err != nil {
				return nil, err
			}
			mu.Lock()
			defer mu.Unlock()
			if _, ok := rateLimits[a.TaskName]; !ok && a.TaskName != "ads.import_feed" {
				return Error(UnknownTask), nil
			}
			rateLimits[a.TaskName] = a.RateLimit
			return OK(RateLimitSet), nil
		},
	})

	pingFixture := loadFixture(t, "pidbox_inspect_ping.json")
	revokeFixture := loadFixture(t, "pidbox_control_revoke.json")
	taskID := "50bfcad9-ff03-4cc6-8165-" + suffix + "ab"
	fromFixture := func(f *fixture, id string) string {
		s := strings.ReplaceAll(f.CLIStdout, "celery@vm", node)
		return strings.ReplaceAll(s, "50bfcad9-ff03-4cc6-8165-a00e7d5182eb", id)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string // whole stdout, or
		has  []string
	}{
		{name: "inspect ping", args: []string{"inspect", "ping"}, want: fromFixture(pingFixture, "")},
		{name: "control revoke", args: []string{"control", "revoke", taskID}, want: fromFixture(revokeFixture, taskID)},
		{name: "inspect stats", args: []string{"inspect", "stats"},
			has: []string{"->  " + node + ": OK", `"prefetch_count": 16`, `"total": {`, `"ads.score": 3`, "1 node online."}},
		{name: "inspect active", args: []string{"inspect", "active"},
			has: []string{"->  " + node + ": OK", "* {'id': '6f1c0000-0000-4000-8000-" + suffix + "00', 'name': 'ads.score', 'args': [1, 2],",
				"'time_start': 1795630000.25, 'acknowledged': True, 'delivery_info': {'exchange': '', 'routing_key': 'ads', 'priority': 0, 'redelivered': False}, 'worker_pid': 4242}",
				"1 node online."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := append(tc.args, "-d", node, "--timeout", "5")
			out, errOut, code := celeryCLI(t, args...)
			if code != 0 {
				t.Fatalf("celery %v exited %d\nstdout:\n%s\nstderr:\n%s\nmailbox log:\n%s", args, code, out, errOut, logs)
			}
			t.Logf("celery %v:\n%s", args, out)
			if tc.want != "" && out != tc.want {
				t.Errorf("celery %v printed\n%q\nwant\n%q", args, out, tc.want)
			}
			for _, h := range tc.has {
				if !strings.Contains(out, h) {
					t.Errorf("celery %v printed\n%s\nwithout %q", args, out, h)
				}
			}
		})
	}
	t.Run("rate_limit then registered", func(t *testing.T) {
		t.Parallel()
		out, errOut, code := celeryCLI(t, "control", "rate_limit", "ads.import_feed", "10/m", "-d", node, "--timeout", "5")
		if want := fmt.Sprintf("->  %s: OK\n        %s\n", node, RateLimitSet); code != 0 || out != want {
			t.Fatalf("rate_limit exited %d, printed %q (want %q)\nstderr:\n%s", code, out, want, errOut)
		}
		out, errOut, code = celeryCLI(t, "inspect", "registered", "-d", node, "--timeout", "5")
		want := fmt.Sprintf("->  %s: OK\n    * ads.import_feed [rate_limit=10/m]\n    * ads.score [rate_limit=10/m]\n\n1 node online.\n", node)
		if code != 0 || out != want {
			t.Fatalf("registered exited %d, printed %q (want %q)\nstderr:\n%s", code, out, want, errOut)
		}
		out, _, code = celeryCLI(t, "control", "rate_limit", "nosuch.task", "1/s", "-d", node, "--timeout", "5")
		if want := fmt.Sprintf("->  %s: ERROR\n        %s\n", node, UnknownTask); code != 0 || out != want {
			t.Fatalf("rate_limit of an unknown task exited %d, printed %q (want %q)", code, out, want)
		}
	})
	t.Run("Go client against the same mailbox", func(t *testing.T) {
		t.Parallel()
		c, err := NewClient(r.tr, Options{Logger: slogTo(logs)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		got, err := c.Broadcast(ctx20(t), "ping", nil, []string{node}, 5*time.Second)
		if err != nil || compactJSON(got[node]) != `{"ok":"pong"}` || len(got) != 1 {
			t.Fatalf("Broadcast ping: %s, %v", show(got), err)
		}
	})
	t.Run("no reply for another node", func(t *testing.T) {
		t.Parallel()
		out, _, code := celeryCLI(t, "inspect", "ping", "-d", "celery@nobody-"+suffix, "--timeout", "1")
		if code != 69 || strings.Contains(out, node) {
			t.Fatalf("ping of an absent node exited %d (want 69, EX_UNAVAILABLE) and printed %q", code, out)
		}
	})
	t.Cleanup(func() {
		// The revoke went through to the shared store.
		ok, err := store.IsRevoked(context.Background(), taskID)
		if err != nil || !ok {
			t.Errorf("after `celery control revoke %s`: IsRevoked = %v, %v", taskID, ok, err)
		}
	})
}
