package diag

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/internal/testenv"
)

func raw(ss ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(ss))
	for i, s := range ss {
		out[i] = json.RawMessage(s)
	}
	return out
}

func TestDiagTasks(t *testing.T) {
	t.Parallel()
	rc := testenv.Redis(t)
	reg := celery.NewRegistry()
	Register(reg, Deps{Redis: rc, FlakyCountdown: time.Millisecond})
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		task   string
		args   []json.RawMessage
		kwargs map[string]json.RawMessage
		want   string
	}{
		{"ints", "diag.add", raw("2", "3"), nil, "5"},
		{"big ints stay exact", "diag.add", raw("9007199254740993", "1"), nil, "9007199254740994"},
		{"floats", "diag.add", raw("1.5", "2"), nil, "3.5"},
		{"kwargs", "diag.add", nil, map[string]json.RawMessage{"x": json.RawMessage("1"), "y": json.RawMessage("-1")}, "0"},
		{"echo", "diag.echo", raw("1", `"é"`), map[string]json.RawMessage{"k": json.RawMessage(`{"n":[1]}`)}, `{"args":[1,"é"],"kwargs":{"k":{"n":[1]}}}`},
		{"echo nothing", "diag.echo", nil, nil, `{"args":[],"kwargs":{}}`},
		{"sleep", "diag.sleep", raw("0.01"), nil, "0.01"},
		{"sum of a chord's results", "diag.sum", raw("[1, 2, 3]"), nil, "6"},
		{"sum stays exact", "diag.sum", raw("[9007199254740993, 1]"), nil, "9007199254740994"},
		{"sum of floats", "diag.sum", raw("[0.5, 1, 2]"), nil, "3.5"},
		{"sum of nothing", "diag.sum", raw("[]"), nil, "0"},
	} {
		got, err := reg.Apply(ctx, tc.task, tc.args, tc.kwargs)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: %s = %s, %v; want %s", tc.name, tc.task, got, err, tc.want)
		}
	}
	for _, bad := range [][]json.RawMessage{raw(`["1", "x"]`), raw(`"notalist"`)} {
		if _, err := reg.Apply(ctx, "diag.sum", bad, nil); err == nil {
			t.Errorf("diag.sum(%s) succeeded", bad[0])
		} else if typ, _, _ := celery.ExceptionOf(err); typ != "TypeError" {
			t.Errorf("diag.sum(%s): %v is %s, want TypeError", bad[0], err, typ)
		}
	}
	_, err := reg.Apply(ctx, "diag.fail", raw(`"boom"`), nil)
	var de *DiagError
	if !errors.As(err, &de) || de.Message != "boom" {
		t.Fatalf("diag.fail: %v", err)
	}
	if typ, _, msg := celery.ExceptionOf(err); typ != "DiagError" || msg != "boom" {
		t.Fatalf("diag.fail is %s(%q) in Python", typ, msg)
	}
	key := "test:diag:flaky:" + testenv.Suffix()
	testenv.DeleteKeysAtCleanup(t, rc, key)
	for i := 1; i <= 2; i++ {
		_, err := reg.Apply(ctx, "diag.flaky", raw(`"`+key+`"`, "2"), nil)
		var re *celery.RetryError
		if !errors.As(err, &re) || *re.Countdown != time.Millisecond {
			t.Fatalf("attempt %d: want a retry, got %v", i, err)
		}
	}
	if got, err := reg.Apply(ctx, "diag.flaky", raw(`"`+key+`"`, "2"), nil); err != nil || string(got) != "3" {
		t.Fatalf("third attempt: %s, %v", got, err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := reg.Apply(sctx, "diag.sleep", raw("5"), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("diag.sleep must stop with its context: %v", err)
	}
}
