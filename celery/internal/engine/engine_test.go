package engine

import (
	"testing"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/protocol"
)

func TestJobDue(t *testing.T) {
	t.Parallel()
	recv := time.Date(2026, 1, 2, 3, 4, 5, 900_000_000, time.UTC)
	eta := recv.Add(time.Minute)
	past := recv.Add(-time.Minute)
	tests := []struct {
		name string
		ts   time.Time
		eta  *time.Time
		want time.Time
	}{
		{"no timestamp", time.Time{}, nil, recv},
		{"timestamp of an earlier second", recv.Add(-10 * time.Second).Truncate(time.Second), nil, recv.Add(-10 * time.Second).Truncate(time.Second).Add(500 * time.Millisecond)},
		{"timestamp of the same second", recv.Truncate(time.Second), nil, recv.Truncate(time.Second).Add(500 * time.Millisecond)},
		{"timestamp never after the receipt", recv.Add(-200 * time.Millisecond).Truncate(time.Second).Add(time.Second), nil, recv},
		{"ETA later wins", recv.Add(-time.Hour).Truncate(time.Second), &eta, eta},
		{"ETA passed before it was sent", recv.Add(-10 * time.Second).Truncate(time.Second), &past, recv.Add(-10 * time.Second).Truncate(time.Second).Add(500 * time.Millisecond)},
		{"ETA passed, no timestamp", time.Time{}, &past, recv},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j := &job{d: &broker.Delivery{Timestamp: tc.ts}, msg: &protocol.TaskMessage{ETA: tc.eta}, received: recv}
			if got := j.due(); !got.Equal(tc.want) {
				t.Errorf("due = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestExcReprIsPythonRepr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		info protocol.ExceptionInfo
		want string
	}{
		{protocol.ExceptionInfo{Type: "ValueError", Message: []any{"boom"}}, "ValueError('boom')"},
		{protocol.ExceptionInfo{Type: "DiagError", Message: []any{"it's"}}, `DiagError("it's")`},
		{protocol.ExceptionInfo{Type: "TimeLimitExceeded", Message: []any{30.5}}, "TimeLimitExceeded(30.5)"},
		{protocol.ExceptionInfo{Type: "Retry"}, "Retry()"},
	} {
		if got := excRepr(tc.info); got != tc.want {
			t.Errorf("excRepr(%+v) = %s, want %s", tc.info, got, tc.want)
		}
	}
}
