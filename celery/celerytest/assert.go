package celerytest

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/protocol"
)

// WaitForResult waits until task id is ready (SUCCESS, FAILURE or REVOKED) and returns its stored
// meta; it fails the test when the Timeout runs out first.
func (w *Worker) WaitForResult(t testing.TB, id string) protocol.ResultMeta {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), w.Timeout)
	defer cancel()
	m, err := w.Backend.Wait(ctx, id)
	if err != nil {
		state := "unknown"
		if cur, gerr := w.Backend.Get(context.Background(), id); gerr == nil {
			state = cur.Status
		}
		t.Fatalf("celerytest: task %s was not ready within %v (state %s): %v", id, w.Timeout, state, err)
		return protocol.ResultMeta{}
	}
	return m
}

// RequireSuccess waits for res and requires a SUCCESS whose value, decoded into a value of want's
// type, equals want (reflect.DeepEqual). It returns the stored meta.
func (w *Worker) RequireSuccess(t testing.TB, res *celery.AsyncResult, want any) protocol.ResultMeta {
	t.Helper()
	m, ok := w.requireSuccess(t, res)
	if !ok {
		return m
	}
	if want == nil {
		if s := strings.TrimSpace(string(m.Result)); m.Result != nil && s != "null" {
			t.Errorf("celerytest: task %s returned %s, want null", res.ID, m.Result)
		}
		return m
	}
	got := reflect.New(reflect.TypeOf(want))
	if err := json.Unmarshal(m.Result, got.Interface()); err != nil {
		t.Errorf("celerytest: task %s returned %s, which does not decode into %T: %v", res.ID, m.Result, want, err)
		return m
	}
	if !reflect.DeepEqual(got.Elem().Interface(), want) {
		t.Errorf("celerytest: task %s returned %#v, want %#v", res.ID, got.Elem().Interface(), want)
	}
	return m
}

// Success waits for res, requires a SUCCESS and returns its value decoded as an R; on anything
// else it fails the test.
func Success[R any](t testing.TB, w *Worker, res *celery.AsyncResult) R {
	t.Helper()
	var v R
	m, ok := w.requireSuccess(t, res)
	if !ok {
		return v
	}
	if err := json.Unmarshal(m.Result, &v); err != nil {
		t.Fatalf("celerytest: task %s returned %s, which does not decode into %T: %v", res.ID, m.Result, v, err)
	}
	return v
}

func (w *Worker) requireSuccess(t testing.TB, res *celery.AsyncResult) (protocol.ResultMeta, bool) {
	t.Helper()
	if res == nil {
		t.Fatalf("celerytest: nil *celery.AsyncResult")
		return protocol.ResultMeta{}, false
	}
	m := w.WaitForResult(t, res.ID)
	if m.Status != protocol.StateSuccess {
		t.Errorf("celerytest: task %s ended %s, want SUCCESS%s", res.ID, m.Status, describeException(m))
		return m, false
	}
	return m, true
}

// RequireFailure waits for res and requires a FAILURE whose exception type is excType and whose
// message contains msg ("" matches any message). It returns the exception as stored.
func (w *Worker) RequireFailure(t testing.TB, res *celery.AsyncResult, excType, msg string) protocol.ExceptionInfo {
	t.Helper()
	if res == nil {
		t.Fatalf("celerytest: nil *celery.AsyncResult")
		return protocol.ExceptionInfo{}
	}
	return w.requireException(t, res.ID, protocol.StateFailure, excType, msg)
}

// RequireRevoked waits for res and requires it REVOKED (expired, revoked before it ran, or
// terminated), with an exception message that contains msg ("" matches any).
func (w *Worker) RequireRevoked(t testing.TB, res *celery.AsyncResult, msg string) protocol.ExceptionInfo {
	t.Helper()
	if res == nil {
		t.Fatalf("celerytest: nil *celery.AsyncResult")
		return protocol.ExceptionInfo{}
	}
	return w.requireException(t, res.ID, protocol.StateRevoked, "", msg)
}

func (w *Worker) requireException(t testing.TB, id, state, excType, msg string) protocol.ExceptionInfo {
	t.Helper()
	m := w.WaitForResult(t, id)
	var exc protocol.ExceptionInfo
	if m.Status != state {
		t.Errorf("celerytest: task %s ended %s (result %s), want %s", id, m.Status, m.Result, state)
		return exc
	}
	if err := json.Unmarshal(m.Result, &exc); err != nil {
		t.Errorf("celerytest: task %s: the %s result %s is not an exception: %v", id, state, m.Result, err)
		return exc
	}
	if excType != "" && exc.Type != excType {
		t.Errorf("celerytest: task %s failed with %s(%s), want exception type %s", id, exc.Type, exceptionMessage(exc), excType)
	}
	if msg != "" && !strings.Contains(exceptionMessage(exc), msg) {
		t.Errorf("celerytest: task %s failed with %s(%q), want a message containing %q", id, exc.Type, exceptionMessage(exc), msg)
	}
	return exc
}

// RequireRetried waits for res and requires that its last run was its retries'th retry (so the
// task was retried that many times), whatever its final state. It needs result_extended, which
// NewWorker turns on unless a WithConfig turned it off.
func (w *Worker) RequireRetried(t testing.TB, res *celery.AsyncResult, retries int) protocol.ResultMeta {
	t.Helper()
	if res == nil {
		t.Fatalf("celerytest: nil *celery.AsyncResult")
		return protocol.ResultMeta{}
	}
	m := w.WaitForResult(t, res.ID)
	if m.Extended == nil {
		t.Errorf("celerytest: task %s: its result has no retries count (result_extended is off)", res.ID)
		return m
	}
	if m.Extended.Retries != retries {
		t.Errorf("celerytest: task %s ended %s after %d retries, want %d", res.ID, m.Status, m.Extended.Retries, retries)
	}
	return m
}

// Sent is one task message read from a queue by RequireSent.
type Sent struct {
	// Message is the decoded task message.
	Message *protocol.TaskMessage
	// Queue, Exchange and RoutingKey say where it was published.
	Queue, Exchange, RoutingKey string
}

// RequireSent requires that at least one message of task taskName was published to queue, waiting
// up to the Timeout for the first, and returns every such message then in the queue, in order,
// removing them from it. Other messages stay in the queue (marked redelivered). queue must be one
// the worker does not consume (see WithQueues), or the worker may take the messages first.
func (w *Worker) RequireSent(t testing.TB, queue, taskName string) []Sent {
	t.Helper()
	sent, err := w.takeSent(queue, taskName)
	if err != nil {
		t.Fatalf("celerytest: %v", err)
		return nil
	}
	return sent
}

func (w *Worker) takeSent(queue, taskName string) ([]Sent, error) {
	cfg := w.Config.WithDefaults()
	q, ok := cfg.QueueByName(queue)
	if !ok {
		return nil, fmt.Errorf("reading queue %q: it is not defined and task_create_missing_queues is off", queue)
	}
	accept, err := protocol.NewAccept(cfg.AcceptContent)
	if err != nil {
		return nil, fmt.Errorf("reading queue %q: accept_content: %w", queue, err)
	}
	others, err := w.awaitSent(q, accept, taskName)
	if err != nil {
		return nil, err
	}
	// The first one is there, and every message the consumer held is back at its place.
	sent, err := w.takeQueued(queue, accept, taskName, true)
	if err != nil {
		return nil, err
	}
	if len(sent) == 0 {
		// Only when something else took the message meanwhile.
		return nil, fmt.Errorf("no %s message left in queue %q (found %s): does a worker consume it?", taskName, queue, strings.Join(others, ", "))
	}
	return sent, nil
}

// RequireNotSent requires that no message of task taskName is in queue now (it does not wait),
// and leaves the queue as it was. Call it after whatever would have sent the task has finished.
func (w *Worker) RequireNotSent(t testing.TB, queue, taskName string) {
	t.Helper()
	cfg := w.Config.WithDefaults()
	accept, err := protocol.NewAccept(cfg.AcceptContent)
	if err != nil {
		t.Fatalf("celerytest: reading queue %q: accept_content: %v", queue, err)
		return
	}
	if _, err := w.Broker.Ready(queue); err != nil {
		return // no such queue: nothing was sent to it
	}
	found, err := w.takeQueued(queue, accept, taskName, false)
	if err != nil {
		t.Fatalf("celerytest: %v", err)
		return
	}
	if len(found) > 0 {
		ids := make([]string, len(found))
		for i, s := range found {
			ids[i] = s.Message.ID
		}
		t.Errorf("celerytest: %d %s message(s) were sent to queue %q, want none (ids %s)", len(found), taskName, queue, strings.Join(ids, ", "))
	}
}

// takeQueued takes every message now ready in queue and returns the decoded ones of taskName, in
// order; it puts the others back in their order, and the task's too unless remove. Messages put
// back are republished through the default exchange to queue.
func (w *Worker) takeQueued(queue string, accept protocol.Accept, taskName string, remove bool) ([]Sent, error) {
	var sent []Sent
	var keep []broker.Publishing
	for {
		p, _, ok, err := w.Broker.Get(queue)
		if err != nil {
			return nil, fmt.Errorf("reading queue %q: %w", queue, err)
		}
		if !ok {
			break
		}
		if msg, err := protocol.Decode(p.Envelope, accept); err == nil && msg.Task == taskName {
			sent = append(sent, Sent{Message: msg, Queue: queue, Exchange: p.Exchange, RoutingKey: p.RoutingKey})
			if remove {
				continue
			}
		}
		keep = append(keep, p)
	}
	for _, p := range keep {
		p.Exchange, p.RoutingKey, p.Declare = "", queue, nil
		if err := w.Broker.Publish(context.Background(), p); err != nil {
			return nil, fmt.Errorf("reading queue %q: putting back a message: %w", queue, err)
		}
	}
	return sent, nil
}

// awaitSent consumes q until a message of taskName arrives (bounded by the Timeout), then gives
// back everything it took, unacknowledged, and returns the names of the other tasks it saw.
func (w *Worker) awaitSent(q celery.QueueConfig, accept protocol.Accept, taskName string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), w.Timeout)
	deliveries, err := w.Broker.Consume(ctx, []celery.QueueConfig{q}, 0)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("reading queue %q: %w", q.Name, err)
	}
	// Ending the consumer puts what it delivered back in the queue at its old place; drain the
	// channel until the consumer has ended so that this has happened before the caller reads.
	defer func() {
		cancel()
		for range deliveries {
		}
	}()
	var others []string
	for {
		select {
		case d, ok := <-deliveries:
			if !ok {
				return nil, fmt.Errorf("reading queue %q: the consumer ended (the broker closed?)", q.Name)
			}
			msg, err := protocol.Decode(d.Envelope, accept)
			switch {
			case err != nil:
				others = append(others, "an undecodable message ("+err.Error()+")")
			case msg.Task == taskName:
				return others, nil
			default:
				others = append(others, msg.Task)
			}
		case <-ctx.Done():
			found := "nothing"
			if len(others) > 0 {
				found = "only " + strings.Join(others, ", ")
			}
			return nil, fmt.Errorf("no %s message was sent to queue %q within %v (found %s)", taskName, q.Name, w.Timeout, found)
		}
	}
}

// describeException renders the exception of a FAILURE or REVOKED meta for a failure message.
func describeException(m protocol.ResultMeta) string {
	if !protocol.IsExceptionState(m.Status) {
		return ""
	}
	var exc protocol.ExceptionInfo
	if err := json.Unmarshal(m.Result, &exc); err != nil {
		return fmt.Sprintf(" (result %s)", m.Result)
	}
	return fmt.Sprintf(" (%s: %s)", exc.Type, exceptionMessage(exc))
}

// exceptionMessage is the exception's message as Python's str(exc) shows a one-argument
// exception: its arguments joined by ", ".
func exceptionMessage(exc protocol.ExceptionInfo) string {
	parts := make([]string, len(exc.Message))
	for i, a := range exc.Message {
		if s, ok := a.(string); ok {
			parts[i] = s
		} else {
			parts[i] = fmt.Sprint(a)
		}
	}
	return strings.Join(parts, ", ")
}
