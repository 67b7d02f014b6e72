package celery

import (
	"encoding/json"
	"errors"
	"reflect"

	"github.com/forumads/forumads/celery/internal/argsplan"
)

// ArgsUnmarshaler is implemented by argument types that decode Celery's args and kwargs themselves.
type ArgsUnmarshaler interface {
	UnmarshalCelery(args []json.RawMessage, kwargs map[string]json.RawMessage) error
}

// Raw receives a task's arguments undecoded: the positional args and the keyword args as JSON.
type Raw struct {
	Args   []json.RawMessage          `celery:"*"`
	Kwargs map[string]json.RawMessage `celery:"**"`
}

// argsPlan is a task argument type's plan, with errors that name the task.
type argsPlan struct{ *argsplan.Plan }

func planArgs(t reflect.Type) (*argsPlan, error) {
	p, err := argsplan.New(t)
	if err != nil {
		return nil, err
	}
	return &argsPlan{p}, nil
}

// decode fills dst (a pointer to the struct) from args and kwargs with Python's calling rules;
// its errors are *ArgsError.
func (p *argsPlan) decode(task string, dst reflect.Value, args []json.RawMessage, kwargs map[string]json.RawMessage) error {
	err := p.Decode(dst, args, kwargs)
	var e *argsplan.Error
	if errors.As(err, &e) {
		return &ArgsError{Task: task, Param: e.Param, Err: e.Err}
	}
	return err
}
