// This file holds how a task run ends: success, failure, retry, reject and lost outcomes, the
// exception info stored for them, result storing and settling the message (ack, reject, republish).

package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/events"
	"github.com/forumads/forumads/celery/protocol"
)

// finish records the outcome of a run and settles the message.
func (w *Engine) finish(j *job, o taskSettings, out Outcome, abandoned bool) {
	runtime := w.now().Sub(j.started)
	m := j.msg
	result, err, sig := out.Result, out.Err, out.Signal
	if err != nil && w.terminated.Load() {
		w.lost(j, o, err)
		return
	}
	if sig, ok := j.terminatedBy(); ok {
		w.revokedWhileRunning(j, o, sig, runtime)
		return
	}
	if err != nil {
		if def := j.def; def.Options.AutoRetryFor != nil && sig.Kind == Fail && !abandoned && def.Options.AutoRetryFor(err) {
			d := w.backoff(j)
			sig = Signal{Kind: Retry, Err: err, Countdown: &d}
		}
	}
	switch {
	case err == nil:
		w.stats.Succeeded.Add(1)
		if w.infoOn() {
			w.log.Info(fmt.Sprintf("Task %s[%s] succeeded in %.6fs: %s", m.Task, m.ID, runtime.Seconds(), protocol.SafeRepr(result, protocol.ReprMaxSize)),
				"task", m.Task, "task_id", m.ID, "runtime", runtime.Seconds())
		}
		children := w.canvasSucceeded(j, result)
		meta := protocol.ResultMeta{Status: protocol.StateSuccess, Result: result, Children: children}
		if w.isChordMember(m) && !o.ignoreResult && w.backend != nil {
			full := w.resultMeta(j, meta) // stored with its chord part, in one round trip
			w.chordPartStoring(m, protocol.StateSuccess, result, &full)
		} else {
			if !o.ignoreResult {
				w.store(j, meta)
			}
			w.chordPart(m, protocol.StateSuccess, result)
		}
		if o.acksLate {
			w.settle(j, j.d.AckAfterRun)
		}
		w.sendTaskEvent(func() events.Event { return events.NewTaskSucceeded(m.ID, result, runtime) })
		w.finished(j, "success", runtime)
	case sig.Kind == Ignore:
		w.log.Info(fmt.Sprintf("Task %s[%s] ignored", m.Task, m.ID), "task_id", m.ID)
		if o.acksLate {
			w.settle(j, j.d.AckAfterRun)
		}
		w.finished(j, "ignored", runtime)
	case sig.Kind == Reject:
		w.reject(j, o, sig)
	case sig.Kind == Retry:
		w.retry(j, o, sig)
	default:
		w.fail(j, o, err, runtime, abandoned)
	}
}

// lost handles a task stopped by a cold shutdown: with acks_late its message goes back to the
// queue and nothing is stored (it will run again); otherwise its message is gone, and the failure
// is stored as Celery's WorkerLostError so that callers are not left waiting.
func (w *Engine) lost(j *job, o taskSettings, err error) {
	m := j.msg
	if o.acksLate {
		w.log.Warn(fmt.Sprintf("Task %s[%s] stopped by cold shutdown; its message returns to the queue", m.Task, m.ID), "task_id", m.ID, "error", err)
		w.settle(j, func() error { return j.d.Reject(true) })
		return
	}
	w.stats.Failed.Add(1)
	w.finished(j, "failure", w.now().Sub(j.started))
	w.log.Error(fmt.Sprintf("Task %s[%s] stopped by cold shutdown after its message was acknowledged", m.Task, m.ID), "task_id", m.ID, "error", err)
	tb := fmt.Sprintf("WorkerLostError: cold shutdown of %s while the task ran: %v\n", w.hostname, err)
	w.sendTaskEvent(func() events.Event {
		return events.NewTaskFailed(m.ID, "WorkerLostError('Worker exited prematurely: cold shutdown')", tb)
	})
	w.store(j, protocol.ResultMeta{Status: protocol.StateFailure, Traceback: &tb,
		Result: exceptionJSON("WorkerLostError", "billiard.exceptions", "Worker exited prematurely: cold shutdown")})
}

func (w *Engine) fail(j *job, o taskSettings, err error, runtime time.Duration, abandoned bool) {
	m := j.msg
	w.stats.Failed.Add(1)
	info, tb := w.exceptionInfo(err)
	w.log.Error(fmt.Sprintf("Task %s[%s] raised unexpected: %s", m.Task, m.ID, excRepr(info)),
		"task", m.Task, "task_id", m.ID, "runtime", runtime.Seconds(), "error", err)
	w.sendTaskEvent(func() events.Event { return events.NewTaskFailed(m.ID, excRepr(info), tb) })
	w.finished(j, "failure", runtime)
	failure := protocol.ResultMeta{Status: protocol.StateFailure, Result: protocol.ExceptionResult(info), Traceback: &tb}
	if !(pick(j.def.Options.IgnoreResult, false) && !j.def.Options.StoreErrorsEvenIfIgnored) {
		w.store(j, failure)
	}
	if w.canvas != nil {
		t := w.now().UTC()
		failure.DateDone = &t
		w.canvasFailed(j, failure)
		w.chordPart(m, protocol.StateFailure, failure.Result)
	}
	if !o.acksLate {
		return
	}
	switch {
	case abandoned && o.rejectOnLost:
		w.settle(j, func() error { return j.d.Reject(true) })
	case o.acksOnFailure:
		w.settle(j, j.d.AckAfterRun)
	default:
		w.deadLetter(j.d, fmt.Sprintf("task failed and acks_on_failure_or_timeout is off: %s: %v", info.Type, err))
	}
}

func (w *Engine) reject(j *job, o taskSettings, rj Signal) {
	m := j.msg
	w.log.Warn(fmt.Sprintf("Task %s[%s] rejected (requeue=%v): %v", m.Task, m.ID, rj.Requeue, rj.Err), "task_id", m.ID)
	w.sendTaskEvent(func() events.Event { return events.NewTaskRejected(m.ID, rj.Requeue) })
	w.finished(j, "rejected", w.now().Sub(j.started))
	if !o.acksLate {
		// Already acknowledged before it ran (early ack); nothing can be requeued.
		if rj.Requeue {
			w.log.Warn("Reject(requeue=true) has no effect without acks_late: the message was acknowledged before the task ran", "task_id", m.ID)
		}
		return
	}
	if rj.Requeue {
		w.settle(j, func() error { return j.d.Reject(true) })
		return
	}
	reason := "rejected by the task"
	if rj.Err != nil {
		reason += ": " + rj.Err.Error()
	}
	w.deadLetter(j.d, reason)
}

// retry republishes the task with retries+1 and an eta, as Task.retry does, and stores RETRY.
func (w *Engine) retry(j *job, o taskSettings, rerr Signal) {
	m := j.msg
	maxRetries := w.cfg.DefaultMaxRetries
	if j.def.Options.MaxRetries != nil {
		maxRetries = *j.def.Options.MaxRetries
	}
	if rerr.MaxRetries != nil {
		maxRetries = *rerr.MaxRetries
	}
	if maxRetries >= 0 && m.Retries >= maxRetries {
		err := w.errs.MaxRetriesExceeded(m.Task, m.ID, protocol.ReprArgs(m.Args), protocol.ReprKwargs(m.KwargsOrder, m.Kwargs))
		if rerr.Err != nil {
			err = rerr.Err
		}
		w.fail(j, o, err, w.now().Sub(j.started), false)
		return
	}
	delay := w.cfg.DefaultRetryDelay
	if j.def.Options.DefaultRetryDelay != nil {
		delay = *j.def.Options.DefaultRetryDelay
	}
	if rerr.Countdown != nil {
		delay = *rerr.Countdown
	}
	eta := w.now().Add(delay)
	if rerr.ETA != nil {
		eta = *rerr.ETA
	}
	next := *m
	next.Retries = m.Retries + 1
	next.ETA = &eta
	next.ParentID = m.ID
	next.ExtraHeaders = republishHeaders(m.ExtraHeaders)
	if p := j.d.Priority; p > 0 || m.Priority != nil {
		next.Priority = &p
	}
	env, err := protocol.EncodeV2(&next, protocol.EncodeOptions{Serializer: w.cfg.Serializer})
	if err == nil {
		env.ReplyTo = m.ReplyTo
		pub := broker.Publishing{Exchange: j.d.Exchange, RoutingKey: j.d.RoutingKey, Envelope: env, Timestamp: w.now()}
		if j.d.Exchange == "" {
			pub.RoutingKey = j.d.Queue
			if j.d.RoutingKey != "" {
				pub.RoutingKey = j.d.RoutingKey
			}
		}
		err = w.publish(pub)
	}
	if err != nil {
		w.log.Error(fmt.Sprintf("Task %s[%s] could not be retried: %v", m.Task, m.ID, err), "task_id", m.ID)
		w.fail(j, o, fmt.Errorf("retry could not be published: %w", err), w.now().Sub(j.started), false)
		return
	}
	w.stats.Retried.Add(1)
	if rerr.ETA != nil {
		delay = eta.Sub(w.now())
	}
	reason := "Retry in " + formatDelay(delay)
	if rerr.Err != nil {
		reason += ": " + rerr.Err.Error()
	}
	w.log.Info(fmt.Sprintf("Task %s[%s] retry: %s", m.Task, m.ID, reason), "task_id", m.ID, "retries", next.Retries)
	var res json.RawMessage
	var tb *string
	if rerr.Err != nil {
		info, t := w.exceptionInfo(rerr.Err)
		res, tb = protocol.ExceptionResult(info), &t
	} else {
		res = exceptionJSON("Retry", "celery.exceptions", reason)
	}
	// The retried message is the task's child, as in Celery (Task.retry applies it from the task).
	w.store(j, protocol.ResultMeta{Status: protocol.StateRetry, Result: res, Traceback: tb, Children: append(append(json.RawMessage("["), protocol.TaskTuple(m.ID)...), ']')})
	if o.acksLate {
		w.settle(j, j.d.Ack)
	}
	w.sendTaskEvent(func() events.Event {
		exc, trace := "Retry("+pyRepr(reason)+")", ""
		if rerr.Err != nil {
			info, t := w.exceptionInfo(rerr.Err)
			exc, trace = excRepr(info), t
		}
		return events.NewTaskRetried(m.ID, exc, trace)
	})
	w.finished(j, "retry", w.now().Sub(j.started))
}

func formatDelay(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return fmt.Sprintf("%gs", d.Round(time.Millisecond).Seconds())
}

// backoff is the countdown of an automatic retry: factor·2^retries capped, with full jitter.
func (w *Engine) backoff(j *job) time.Duration {
	o := j.def.Options
	if o.RetryBackoff <= 0 {
		if o.DefaultRetryDelay != nil {
			return *o.DefaultRetryDelay
		}
		return w.cfg.DefaultRetryDelay
	}
	maxB := o.RetryBackoffMax
	if maxB <= 0 {
		maxB = 600 * time.Second
	}
	d := o.RetryBackoff
	for i := 0; i < j.msg.Retries && d < maxB; i++ {
		d *= 2
	}
	d = min(d, maxB)
	if o.RetryJitter == nil || *o.RetryJitter {
		d = time.Duration(rand.Int64N(int64(d) + 1))
	}
	return d
}

// exceptionInfo describes err for the result backend, with a traceback-like text.
func (w *Engine) exceptionInfo(err error) (protocol.ExceptionInfo, string) {
	var tl *timeLimitError
	if errors.As(err, &tl) {
		if tl.hard {
			return protocol.ExceptionInfo{Type: "TimeLimitExceeded", Module: "billiard.exceptions", Message: []any{tl.limit.Seconds()}},
				fmt.Sprintf("Go task stopped: hard time limit (%gs) exceeded\n", tl.limit.Seconds())
		}
		return protocol.ExceptionInfo{Type: "SoftTimeLimitExceeded", Module: "billiard.exceptions",
				Message: []any{fmt.Sprintf("soft time limit (%gs) exceeded", tl.limit.Seconds())}},
			fmt.Sprintf("Go task stopped: soft time limit (%gs) exceeded: %v\n", tl.limit.Seconds(), tl.cause)
	}
	typ, mod, msg, stack := w.errs.Exception(err)
	tb := "Traceback (most recent call last):\n  Go task error chain:\n"
	for e := err; e != nil; e = errors.Unwrap(e) {
		tb += fmt.Sprintf("    %T: %s\n", e, e.Error())
	}
	tb += stack
	tb += typ + ": " + msg + "\n"
	return protocol.ExceptionInfo{Type: typ, Module: mod, Message: excArgs(err, msg)}, tb
}

// excArgs is the exc_message of err: the args its ExcArgs method gives (the root's ExcArgser,
// for an exception raised with several arguments), else [message].
func excArgs(err error, message string) []any {
	var a interface{ ExcArgs() []any }
	if errors.As(err, &a) {
		if args := a.ExcArgs(); args != nil {
			return args
		}
	}
	return []any{message}
}

func exceptionJSON(typ, module, msg string) json.RawMessage {
	return protocol.ExceptionResult(protocol.ExceptionInfo{Type: typ, Module: module, Message: []any{msg}})
}

// pyRepr is Python's repr() of v, for log lines shaped like Celery's.
func pyRepr(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return protocol.Repr(raw)
}

// excRepr is Python's repr() of the exception info describes, e.g. ValueError('boom').
func excRepr(info protocol.ExceptionInfo) string {
	parts := make([]string, len(info.Message))
	for i, m := range info.Message {
		parts[i] = pyRepr(m)
	}
	return info.Type + "(" + strings.Join(parts, ", ") + ")"
}

// extend adds the result_extended fields.
func (w *Engine) extend(j *job, m *protocol.ResultMeta) {
	if !w.cfg.ResultExtended {
		return
	}
	args, _ := json.Marshal(j.msg.Args)
	if j.msg.Args == nil {
		args = []byte("[]")
	}
	kwargs, _ := json.Marshal(j.msg.Kwargs)
	if j.msg.Kwargs == nil {
		kwargs = []byte("{}")
	}
	name := j.msg.Task
	ptn, _ := j.msg.ExtraHeaders["periodic_task_name"].(string)
	m.Extended = &protocol.ExtendedMeta{Name: name, Args: args, Kwargs: kwargs, Worker: w.hostname,
		Retries: j.msg.Retries, Queue: j.d.RoutingKey,
		ArgsRepr: j.msg.ArgsRepr, KwargsRepr: j.msg.KwargsRepr, PeriodicTaskName: ptn}
}

// store writes a state for the job, retrying with backoff while the backend is unreachable: a
// finished task's result is never dropped because Redis blinked. It gives up only on cold shutdown.
func (w *Engine) store(j *job, m protocol.ResultMeta) {
	if w.backend == nil {
		return
	}
	w.storeMeta(w.resultMeta(j, m))
}

// resultMeta completes m for j's message: its ids, date_done for a ready state and, with
// result_extended, the request fields.
func (w *Engine) resultMeta(j *job, m protocol.ResultMeta) protocol.ResultMeta {
	m.TaskID = j.msg.ID
	m.GroupID = j.msg.GroupID
	m.ParentID = j.msg.ParentID
	if protocol.IsReady(m.Status) {
		t := w.now().UTC()
		m.DateDone = &t
	}
	w.extend(j, &m)
	return m
}

func (w *Engine) storeMeta(m protocol.ResultMeta) {
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := w.backend.Store(ctx, m)
		cancel()
		var tmp interface{ Temporary() bool }
		if err != nil && errors.As(err, &tmp) && !tmp.Temporary() {
			// Not a connection problem: storing again cannot help. A SUCCESS already stored (a
			// redelivered task that had finished) is kept, as Celery keeps it.
			w.log.Warn("result not stored", "task_id", m.TaskID, "state", m.Status, "reason", err)
			return
		}
		if err == nil {
			if attempt > 1 {
				w.log.Info("result stored after the backend came back", "task_id", m.TaskID, "attempts", attempt)
			}
			return
		}
		if w.taskCtx != nil && w.taskCtx.Err() != nil {
			w.log.Error("result lost: cold shutdown while the result backend was unreachable", "task_id", m.TaskID, "state", m.Status, "error", err)
			return
		}
		if attempt == 1 || attempt%20 == 0 {
			w.log.Error("storing result failed, retrying", "task_id", m.TaskID, "state", m.Status, "attempt", attempt, "error", err)
		}
		time.Sleep(backoff)
		backoff = min(backoff*2, 5*time.Second)
	}
}

// settle acknowledges or rejects a message, logging (not failing) when its connection is gone.
func (w *Engine) settle(j *job, f func() error) {
	if err := f(); err != nil {
		if errors.Is(err, broker.ErrStaleDelivery) {
			w.log.Warn("could not settle the message: its connection was lost and the broker delivers it again", "task_id", j.msg.ID)
			return
		}
		if errors.Is(err, broker.ErrAlreadySettled) {
			w.log.Error("settling a message twice (a bug: nothing was sent to the broker)", "task_id", j.msg.ID, "task", j.msg.Task,
				"stack", string(debug.Stack()))
			return
		}
		w.log.Error("settling a message", "task_id", j.msg.ID, "error", err)
	}
}

// publish sends a message the worker produces (retry, dead letter, park), waiting for the confirm;
// it keeps trying across reconnects, for at most a minute.
func (w *Engine) publish(p broker.Publishing) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return w.br.Publish(ctx, p)
}

// republishHeaders are the custom headers a retry carries over: everything but what brokers and
// this worker add on the way (x-death from RabbitMQ's dead-lettering, the dead-letter markers).
func republishHeaders(h map[string]any) map[string]any {
	if len(h) == 0 {
		return h
	}
	out := make(map[string]any, len(h))
	for k, v := range h {
		switch k {
		case "x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
			"x-last-death-exchange", "x-last-death-queue", "x-last-death-reason",
			broker.HeaderDeadLetterReason, broker.HeaderOriginalQueue, broker.HeaderOriginalExchange, broker.HeaderOriginalKey,
			broker.HeaderDeadLetteredBy, broker.HeaderDeadLetteredAt:
			continue
		}
		out[k] = v
	}
	return out
}
