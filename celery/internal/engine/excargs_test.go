package engine

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
)

type argsError struct{ args []any }

func (e *argsError) Error() string  { return fmt.Sprint(e.args...) }
func (e *argsError) ExcArgs() []any { return e.args }

func TestExcArgs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want []any
	}{
		{"one message", errors.New("boom"), []any{"boom"}},
		{"several args", &argsError{[]any{"Task expected to fail", "test"}}, []any{"Task expected to fail", "test"}},
		{"no args", &argsError{[]any{}}, []any{}},
		{"nil args fall back to the message", &argsError{nil}, []any{"boom"}},
		{"wrapped", fmt.Errorf("ctx: %w", &argsError{[]any{1}}), []any{1}},
	} {
		if got := excArgs(tc.err, "boom"); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: exc_message %#v, want %#v", tc.name, got, tc.want)
		}
	}
}
