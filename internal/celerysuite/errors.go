package celerysuite

// ExpectedException is the suite's sentinel exception (t.integration.tasks.ExpectedException):
// Python rebuilds the real class from its module, and two compare equal when their args do.
type ExpectedException struct{ Args []any }

func (e *ExpectedException) Error() string { return pyStrArgs(e.Args) }

// ExcType names the suite's class.
func (e *ExpectedException) ExcType() string { return "ExpectedException" }

// ExcModule is the suite's tasks module, which the Python side imports.
func (e *ExpectedException) ExcModule() string { return module }

// ExcArgs are the exception's args, all of them.
func (e *ExpectedException) ExcArgs() []any { return e.Args }

// valueError is Python's ValueError.
type valueError struct{ msg string }

func (e *valueError) Error() string     { return e.msg }
func (e *valueError) ExcType() string   { return "ValueError" }
func (e *valueError) ExcModule() string { return "builtins" }

// ExcArgs: ValueError() raised without a message has no args.
func (e *valueError) ExcArgs() []any {
	if e.msg == "" {
		return []any{}
	}
	return []any{e.msg}
}
