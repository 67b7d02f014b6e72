// Package celerytest helps users of package celery test their tasks without RabbitMQ or Redis, as
// rivertest serves river's users: NewWorker starts a real celery.Worker on a fresh in-memory
// broker (memorybroker) and result backend (memorybackend), private to the test, and returns a
// handle whose Client publishes to that broker and reads that backend. The worker is shut down
// (warmly) when the test ends; the test fails if it does not stop in time or if Run returned an
// error other than celery.ErrWorkerClosed.
//
// The handle's helpers wait for a result (WaitForResult), assert one (RequireSuccess,
// RequireFailure, RequireRevoked, RequireRetried, and the generic Success for a typed value),
// revoke a task (Revoke) and read what was published to a queue no worker consumes (RequireSent,
// RequireNotSent), to test code that sends tasks without running them. Every wait is bounded by Worker.Timeout (DefaultTimeout unless WithTimeout says
// otherwise) and fails the test when it runs out: a helper never hangs. Failures are reported
// through the testing.TB given to the helper, with messages that name the task and what was
// found instead.
//
// A test of a task reads:
//
//	func TestAdd(t *testing.T) {
//		reg := celery.NewRegistry()
//		celery.Register(reg, "math.add", add)
//		w := celerytest.NewWorker(t, reg)
//		res := w.Send(t, "math.add", []any{2, 3}, nil)
//		w.RequireSuccess(t, res, 5)
//	}
//
// The broker and backend hold everything in the test process: nothing is shared between tests,
// so tests using celerytest can run with t.Parallel. What the in-memory adapters do not model
// (durability, TTLs, several processes) is listed in their package docs; a test that depends on
// RabbitMQ's or Redis's behaviour needs those services.
package celerytest
