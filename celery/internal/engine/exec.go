// This file holds task execution: processing a reserved job, its effective settings, running the
// task with its time limits, and UpdateState for a running task.

package engine

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"sync/atomic"
	"time"

	"github.com/forumads/forumads/celery/events"
	"github.com/forumads/forumads/celery/protocol"
)

// process runs one job on a pool goroutine.
func (w *Engine) process(j *job) {
	w.unreserve(j)
	if w.stopping.Load() || j.d.Generation < w.gen.Load() {
		if !w.stopping.Load() {
			return // stale: redelivered by the broker
		}
		w.giveBack(j)
		return
	}
	if w.expired(j) {
		return
	}
	if w.revokedBeforeStart(j) {
		w.discardRevoked(j)
		return
	}
	o := w.taskOpts(j)
	if o.acksLate && j.d.Redelivered && w.cfg.DeduplicateSuccess && w.alreadySucceeded(j) {
		w.log.Info(fmt.Sprintf("Task %s[%s] was already successfully executed: discarding the redelivered message", j.msg.Task, j.msg.ID), "task_id", j.msg.ID)
		w.settle(j, j.d.Ack)
		return
	}
	if !o.acksLate && j.d.Redelivered && w.ranBefore(j) {
		w.log.Warn(fmt.Sprintf("Task %s[%s] already ran: discarding its redelivered message (its ack was lost with the connection)", j.msg.Task, j.msg.ID), "task_id", j.msg.ID)
		w.settle(j, j.d.Ack)
		return
	}
	if !o.acksLate {
		if err := j.d.Ack(); err != nil {
			// The connection was lost: the broker will deliver the message again. Running it now
			// would run it twice.
			w.log.Info("not running a task whose message could not be acknowledged", "task_id", j.msg.ID, "error", err)
			return
		}
		j.acked.Store(true)
	}
	w.started.Add(w.startKey(j.msg))
	w.running.Add(1)
	defer w.running.Done()
	w.active.Store(j.msg.ID, j)
	defer w.active.Delete(j.msg.ID)
	// A revoke that arrived since the check above found the job neither here nor in the set in
	// time: the revoke marks the set before it looks for active tasks, so one of the two sees it.
	if w.revoked.Has(j.msg.ID, w.now()) {
		w.discardRevoked(j)
		return
	}
	now := w.now()
	j.startedAt.Store(now.UnixNano())
	j.started = now
	w.stats.Started.Add(1)
	w.countStart(j.msg.Task)
	if w.metrics != nil {
		w.metrics.TaskStarted(j.msg.Task, now.Sub(j.due()))
	}
	w.sendTaskEvent(func() events.Event { return events.NewTaskStarted(j.msg.ID) })
	if o.trackStarted {
		res, _ := json.Marshal(map[string]any{"pid": w.pid, "hostname": w.hostname})
		w.store(j, protocol.ResultMeta{Status: protocol.StateStarted, Result: res})
	}
	out, abandoned := w.run(j, o)
	w.finish(j, o, out, abandoned)
}

// countStart counts a started task by name (stats "total").
func (w *Engine) countStart(task string) {
	c, ok := w.totals.Load(task)
	if !ok {
		c, _ = w.totals.LoadOrStore(task, new(atomic.Int64))
	}
	c.(*atomic.Int64).Add(1)
}

// ranBefore reports whether a redelivered message's task already ran: this worker started it
// (same id and retry count) or its result is final in the backend. Without acks_late the message
// was acknowledged before the task ran, so a redelivery only means the ack was lost in flight.
func (w *Engine) ranBefore(j *job) bool {
	if w.started.Has(w.startKey(j.msg)) {
		return true
	}
	if w.backend == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := w.backend.Get(ctx, j.msg.ID)
	return err == nil && protocol.IsReady(m.Status)
}

// startKey is the key of (m's id, retries) in the started set: a 64-bit hash with the worker's
// own random seed. Two different keys collide with a chance of about 2^-64 each, so a
// redelivered message is wrongly taken for one that ran with a chance of about 65,536 / 2^64
// (the set's size); the hash keeps the set at about a megabyte and costs no allocation.
func (w *Engine) startKey(m *protocol.TaskMessage) uint64 {
	var h maphash.Hash
	h.SetSeed(w.startSeed)
	h.WriteString(m.ID)
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(m.Retries))
	h.Write(n[:])
	return h.Sum64()
}

// alreadySucceeded reports whether the backend holds a SUCCESS for the job's id
// (worker_deduplicate_successful_tasks).
func (w *Engine) alreadySucceeded(j *job) bool {
	if w.backend == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := w.backend.Get(ctx, j.msg.ID)
	return err == nil && m.Status == protocol.StateSuccess
}

// taskSettings are a job's effective options.
type taskSettings struct {
	acksLate, acksOnFailure, rejectOnLost, trackStarted, ignoreResult bool
	hard, soft                                                        time.Duration
}

func (w *Engine) taskOpts(j *job) taskSettings {
	t := j.def.Options
	s := taskSettings{
		acksLate:      pick(t.AcksLate, w.cfg.AcksLate),
		acksOnFailure: pick(t.AcksOnFailureOrTimeout, w.cfg.AcksOnFailure),
		rejectOnLost:  pick(t.RejectOnWorkerLost, w.cfg.RejectOnLost),
		trackStarted:  pick(t.TrackStarted, w.cfg.TrackStarted),
		ignoreResult:  pick(t.IgnoreResult, w.cfg.IgnoreResult) || j.msg.IgnoreResult,
		hard:          w.cfg.TimeLimit,
		soft:          w.cfg.SoftTimeLimit,
	}
	if t.TimeLimit != nil {
		s.hard = *t.TimeLimit
	}
	if t.SoftTimeLimit != nil {
		s.soft = *t.SoftTimeLimit
	}
	if v, ok := w.limits.Load(j.def.Name); ok {
		// Set by the time_limit control command: like Celery's task attributes, a limit it left
		// unset falls back to the configured one.
		l := v.(timeLimits)
		s.hard, s.soft = w.cfg.TimeLimit, w.cfg.SoftTimeLimit
		if l.hard != nil {
			s.hard = *l.hard
		}
		if l.soft != nil {
			s.soft = *l.soft
		}
	}
	if h := j.msg.TimeLimit.Hard; h != nil && *h > 0 {
		s.hard = time.Duration(*h * float64(time.Second))
	}
	if sl := j.msg.TimeLimit.Soft; sl != nil && *sl > 0 {
		s.soft = time.Duration(*sl * float64(time.Second))
	}
	return s
}

func pick(v *bool, def bool) bool {
	if v != nil {
		return *v
	}
	return def
}

// run executes the task body with its time limits. abandoned is true when the hard time limit
// expired and the worker stopped waiting for the task's goroutine.
func (w *Engine) run(j *job, o taskSettings) (out Outcome, abandoned bool) {
	ctx, cancel := context.WithCancelCause(w.taskCtx)
	defer cancel(nil)
	j.setCancel(cancel)
	if o.soft > 0 {
		t := time.AfterFunc(o.soft, func() { cancel(w.errs.SoftTimeLimit) })
		defer t.Stop()
	}
	call := Call{Msg: j.msg, Delivery: j.d, Engine: w}
	if o.hard <= 0 {
		out = j.def.Run(ctx, call)
	} else {
		done := make(chan Outcome, 1)
		go func() { done <- j.def.Run(ctx, call) }()
		t := time.NewTimer(o.hard)
		defer t.Stop()
		select {
		case out = <-done:
		case <-t.C:
			cancel(w.errs.HardTimeLimit)
			w.log.Error(fmt.Sprintf("Hard time limit (%gs) exceeded for %s[%s]; its goroutine is abandoned (its context is cancelled)",
				o.hard.Seconds(), j.msg.Task, j.msg.ID), "task_id", j.msg.ID)
			return Outcome{Err: &timeLimitError{hard: true, limit: o.hard}}, true
		}
	}
	if out.Err != nil && errors.Is(context.Cause(ctx), w.errs.SoftTimeLimit) && out.Signal.Kind == Fail {
		out.Err = &timeLimitError{limit: o.soft, cause: out.Err}
	}
	return out, false
}

// timeLimitError is a task stopped by a time limit; Python sees billiard's exceptions.
type timeLimitError struct {
	hard  bool
	limit time.Duration
	cause error
}

func (e *timeLimitError) Error() string {
	if e.hard {
		return fmt.Sprintf("TimeLimitExceeded(%g)", e.limit.Seconds())
	}
	return fmt.Sprintf("SoftTimeLimitExceeded(%g): %v", e.limit.Seconds(), e.cause)
}
func (e *timeLimitError) Unwrap() error { return e.cause }

// HasBackend reports whether results are stored (UpdateState needs it).
func (w *Engine) HasBackend() bool { return w.backend != nil }

// UpdateState stores a custom state with its JSON meta for a running task (the root's
// Request.UpdateState), with the result_extended fields of the task's message.
func (w *Engine) UpdateState(ctx context.Context, taskID, groupID, parentID, state string, raw json.RawMessage) error {
	if w.backend == nil {
		return errors.New("update_state: no result backend configured")
	}
	m := protocol.ResultMeta{Status: state, Result: raw, TaskID: taskID, GroupID: groupID, ParentID: parentID}
	if j, ok := w.active.Load(taskID); ok {
		w.extend(j, &m)
	}
	return w.backend.Store(ctx, m)
}
