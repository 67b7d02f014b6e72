package interop

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/backend/redisbackend"
	"github.com/forumads/forumads/celery/canvas"
	"github.com/forumads/forumads/internal/testenv"
)

// succeededRe matches the "Task name[id] succeeded in" line both workers log.
var succeededRe = regexp.MustCompile(`Task (diag\.\w+)\[([0-9a-f-]{36})\] succeeded in`)

// runsIn counts, per task id, the successful runs a worker logged.
func runsIn(log string) map[string]int {
	runs := map[string]int{}
	for _, m := range succeededRe.FindAllStringSubmatch(log, -1) {
		runs[m[2]]++
	}
	return runs
}

// TestChordAcrossGoAndPythonWorkers: a chord of 1,000 header tasks on one queue consumed by two Go
// workers and one real Celery 5.2 worker. The header tasks are split between the three, the chord
// counter in Redis (celery-taskset-meta-<gid>.j/.t) is shared by both implementations, and the
// body runs exactly once, on whichever worker completed the chord, with the sum of every member.
func TestChordAcrossGoAndPythonWorkers(t *testing.T) {
	t.Parallel()
	const n = 1000
	rc := testenv.Redis(t)
	queue := testenv.Name(t, "interop.chord1k")
	testenv.DeleteQueuesAtCleanup(t, queue)
	py := startPythonWorkerOn(t, "diagapp", queue, "interop-chord1k-"+testenv.Suffix()+"@%h", "python diag worker")
	goLogs := []*testenv.LogBuffer{{}, {}}
	for i, l := range goLogs {
		startCanvasGoWorkerOn(t, queue, l)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("go worker %d log:\n%s", i+1, l.String())
			}
		})
	}
	s, b := canvasSender(t, queue)

	header := make([]canvas.Signature, n)
	want := 0
	for i := range header {
		header[i] = canvas.S("diag.add", i, 1)
		want += i + 1
	}
	// The body names its queue: whichever worker completes the chord publishes it with its own
	// routing, and the Python worker's default queue is "celery", as in Celery.
	res := sendCanvas(t, s, canvas.Chord(canvas.Group(header...), canvas.S("diag.sum").Queue(queue)))
	ids := append([]string{res.ID}, res.Parent.Group.Results...)
	for _, id := range ids {
		testenv.DeleteKeysAtCleanup(t, rc, redisbackend.TaskKey("", id))
	}
	gkey := redisbackend.GroupKey("", res.Parent.ID)
	testenv.DeleteKeysAtCleanup(t, rc, gkey+".j", gkey+".t", gkey+".s")

	var got int
	resultOf(t, b, res.ID, &got)
	if got != want {
		t.Fatalf("chord body = %d, want %d", got, want)
	}
	// A second completion would publish the body again: give it the time to show up.
	time.Sleep(2 * time.Second)

	logs := map[string]string{"go worker 1": goLogs[0].String(), "go worker 2": goLogs[1].String(), "python worker": py.log.String()}
	total := map[string]int{}
	for who, log := range logs {
		runs := runsIn(log)
		members := 0
		for _, id := range res.Parent.Group.Results {
			members += runs[id]
		}
		t.Logf("%s ran %d header tasks", who, members)
		if members == 0 {
			t.Errorf("%s ran none of the %d header tasks: the chord was not split across the workers", who, n)
		}
		for id, k := range runs {
			total[id] += k
		}
	}
	for i, id := range res.Parent.Group.Results {
		if total[id] != 1 {
			t.Errorf("header task %d (%s) ran %d times, want exactly once", i, id, total[id])
		}
	}
	if total[res.ID] != 1 {
		t.Errorf("chord body %s ran %d times, want exactly once", res.ID, total[res.ID])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	left, err := rc.Exists(ctx, gkey+".j", gkey+".t").Result()
	if err != nil || left != 0 {
		t.Errorf("chord counter keys left after completion: %d (%v), want 0", left, err)
	}
	ch, err := testenv.AMQP(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil); err != nil || q.Messages != 0 {
		t.Errorf("queue %s after the chord: %d messages (%v), want 0", queue, q.Messages, err)
	}
}
