package celery

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestApplyWithReportsStatesAndID(t *testing.T) {
	t.Parallel()
	type args struct {
		N int `celery:"n"`
	}
	reg := NewRegistry()
	Register(reg, "t.count", func(ctx context.Context, t *Task[args]) (string, error) {
		for i := 1; i <= t.Args.N; i++ {
			if err := t.UpdateState(ctx, "PROGRESS", map[string]int{"current": i, "total": t.Args.N}); err != nil {
				return "", err
			}
		}
		return t.ID, nil
	})
	var states []string
	res, err := reg.ApplyWith(context.Background(), "t.count", []json.RawMessage{json.RawMessage(`3`)}, nil, ApplyOptions{
		ID: "fixed-id",
		OnState: func(_ context.Context, state string, meta any) error {
			b, _ := json.Marshal(meta)
			states = append(states, state+" "+string(b))
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(res) != `"fixed-id"` {
		t.Fatalf("result %s, want the given id", res)
	}
	want := `PROGRESS {"current":1,"total":3}|PROGRESS {"current":2,"total":3}|PROGRESS {"current":3,"total":3}`
	if got := strings.Join(states, "|"); got != want {
		t.Fatalf("states %s, want %s", got, want)
	}

	// Without OnState, UpdateState reports that there is nowhere to store the state.
	_, err = reg.Apply(context.Background(), "t.count", []json.RawMessage{json.RawMessage(`1`)}, nil)
	if err == nil || !strings.Contains(err.Error(), "no result backend") {
		t.Fatalf("Apply without a state sink: %v", err)
	}
	var nr *NotRegisteredError
	if _, err := reg.ApplyWith(context.Background(), "t.missing", nil, nil, ApplyOptions{}); !errors.As(err, &nr) {
		t.Fatalf("unknown task: %v", err)
	}
}
