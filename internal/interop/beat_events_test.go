package interop

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/broker/amqpbroker"
	"github.com/forumads/forumads/celery/events"
	"github.com/forumads/forumads/internal/testenv"
)

// TestBeatSendsTaskSent runs ./beat with task_send_sent_event: every task it publishes is
// announced with a task-sent event (hostname gen<pid>@<host>, the queue it went to), which a
// receiver built as Celery's EventReceiver gets.
func TestBeatSendsTaskSent(t *testing.T) {
	t.Parallel()
	testenv.AMQP(t)
	rc := testenv.Redis(t)
	bins, cleanup, err := testenv.BuildPrograms(false, "./beat")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	queue := testenv.Name(t, "beat-events")
	exchange := testenv.Name(t, "celeryev")
	prefix := "t:" + testenv.Suffix() + ":beat:"
	testenv.DeleteQueuesAtCleanup(t, queue, exchange)
	testenv.DeletePrefixAtCleanup(t, rc, prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tr, err := amqpbroker.NewFanout(testenv.AMQPURL(), amqpbroker.Options{ConnectionName: "beat-events-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	rcv, err := events.NewReceiver(ctx, tr, events.ReceiverOptions{Exchange: exchange})
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	cfg := fmt.Sprintf(`task_default_queue: %q
task_send_sent_event: true
event_exchange: %q
beat_key_prefix: %q
beat_lock_ttl: 2
beat_schedule:
  tick: {task: diag.add, schedule: 1, args: [1, 2]}
`, queue, exchange, prefix)
	path := filepath.Join(t.TempDir(), "celeryconfig.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bins["./beat"], "--config", path, "-l", "info")
	cmd.Env = append(os.Environ(), "CELERY_BROKER_URL="+testenv.AMQPURL(), "CELERY_RESULT_BACKEND="+testenv.RedisURL(),
		"REDIS_URL="+testenv.RedisURL(), "BEAT_METRICS_ADDR=")
	beat := startProcess(t, "beat", cmd)
	defer func() {
		if err := beat.stop(15 * time.Second); err != nil {
			t.Errorf("beat: %v", err)
		}
	}()
	for {
		select {
		case r := <-rcv.C():
			if r.Err != nil {
				t.Fatalf("receiver: %v", r.Err)
			}
			e := r.Event
			if e.Type != events.TypeTaskSent {
				continue
			}
			name, _ := e.GetString("name")
			q, _ := e.GetString("queue")
			args, _ := e.GetString("args")
			if name != "diag.add" || q != queue || args != "[1, 2]" || !strings.HasPrefix(e.Hostname, "gen") {
				t.Errorf("task-sent %+v (name %q, queue %q, args %q)", e, name, q, args)
			}
			if err := e.Validate(); err != nil {
				t.Error(err)
			}
			id := e.UUID()
			rc.Del(context.Background(), "celery-task-meta-"+id)
			return
		case <-ctx.Done():
			t.Fatalf("no task-sent event from beat; its output:\n%s", beat.log.String())
		}
	}
}
