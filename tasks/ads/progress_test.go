package ads_test

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os/exec"
	"reflect"
	"testing"

	"github.com/forumads/forumads/tasks/ads"
)

// celeryProgressOracle is celery-progress 0.1.1's own ProgressRecorder.set_progress, run by
// Debian's python3-celery-progress: for each [current, total] on stdin it prints the [state, meta]
// the recorder passes to task.update_state.
const celeryProgressOracle = `
import json, sys
from celery_progress.backend import ProgressRecorder

class Task:
    def __init__(self):
        self.calls = []
    def update_state(self, state, meta):
        self.calls.append([state, meta])

task = Task()
rec = ProgressRecorder(task)
for current, total, description in json.load(sys.stdin):
    rec.set_progress(current, total, description)
json.dump(task.calls, sys.stdout)
`

// TestProgressMatchesCeleryProgress compares the PROGRESS state and meta ads.import_feed stores
// with what celery-progress's ProgressRecorder writes for the same counts (percent rounding, half
// to even, a zero total, counts past 2^53), byte for byte after decoding both as JSON.
func TestProgressMatchesCeleryProgress(t *testing.T) {
	t.Parallel()
	type call struct {
		current, total int64
	}
	calls := []call{
		{0, 0}, {0, 100}, {1, 3}, {2, 3}, {1, 8}, {1, 800}, {3, 800}, {5, 800}, {7, 800}, // x.125 and x.375: half to even
		{1, 1600}, {1, 6}, {5, 6}, {99999, 100000}, {100000, 100000}, {12000, 30000}, {39200, 39200},
		{1, 7}, {10, 0}, {5, -1}, {-1, 3}, {1 << 53, (1 << 53) + 1}, {math.MaxInt64 / 10001, math.MaxInt64 / 10000},
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		total := rnd.Int64N(1_000_000) + 1
		calls = append(calls, call{rnd.Int64N(total + 1), total})
	}
	var in [][]any
	for _, c := range calls {
		in = append(in, []any{c.current, c.total, ads.ProgressDescription})
	}
	stdin, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/bin/python3", "-c", celeryProgressOracle)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("/usr/bin/python3 with python3-celery-progress is required (apt-get install python3-celery-progress): %v\n%s", err, stderr.String())
	}
	var want []json.RawMessage
	if err := json.Unmarshal(out, &want); err != nil || len(want) != len(calls) {
		t.Fatalf("celery-progress printed %d calls (%v), want %d: %.300s", len(want), err, len(calls), out)
	}
	for i, c := range calls {
		got, err := json.Marshal([]any{ads.ProgressState, ads.NewProgress(c.current, c.total, ads.ProgressDescription)})
		if err != nil {
			t.Fatal(err)
		}
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(want[i], &w); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("set_progress(%d, %d): Go stores %s, celery-progress %s", c.current, c.total, got, want[i])
		}
	}
}
