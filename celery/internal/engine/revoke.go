package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/forumads/forumads/celery/events"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/celery/revoke"
)

// revokeBreak is how long the revoke store is not asked after it failed (intake then relies on
// the ids known in memory), so that a Redis outage does not slow every task down.
const revokeBreak = 5 * time.Second

// revokeTTL is how long a revoked id stays revoked.
func (w *Engine) revokeTTL() time.Duration {
	if w.revokes != nil {
		return w.revokes.TTL()
	}
	d := w.cfg.RevokeExpires
	if d <= 0 {
		d = revoke.DefaultTTL
	}
	return d
}

// revokeMax bounds the revoked ids kept in memory.
func (w *Engine) revokeMax() int {
	if w.cfg.RevokeMax > 0 {
		return w.cfg.RevokeMax
	}
	return revoke.DefaultMaxSize
}

// Revoke marks the task ids revoked, as the revoke control command does: a message with one of
// these ids is not run (it is stored as REVOKED and acknowledged). With terminate, the tasks this
// worker is running are stopped too (their context is cancelled with Errors.Terminated) and end
// as REVOKED; signal is a name such as "SIGTERM" or "KILL" ("" = SIGTERM; see revoke.ParseSignal).
// It returns the ids of the tasks it stopped or will not start. The ids are kept in memory and,
// with a revoke store, in it for every worker sharing it; a store error is returned after the ids were
// revoked here.
func (w *Engine) Revoke(ctx context.Context, ids []string, terminate bool, signal string) ([]string, error) {
	for _, id := range ids {
		if id == "" {
			return nil, errors.New("revoke: empty task id")
		}
	}
	sig := ""
	if terminate {
		var err error
		if sig, err = revoke.ParseSignal(signal); err != nil {
			return nil, fmt.Errorf("revoke: %w", err)
		}
	}
	exp := w.now().Add(w.revokeTTL())
	for _, id := range ids {
		w.revoked.Add(id, exp)
	}
	// Stopped here before the store's notice goes out: the notice would stop them too, and they
	// would be gone before this worker could name them in its reply.
	var terminated []string
	if terminate {
		for _, id := range ids {
			if w.terminateRunning(id, sig) || w.isReserved(id) {
				terminated = append(terminated, id)
			}
		}
	}
	var storeErr error
	if w.revokes != nil && len(ids) > 0 {
		if storeErr = w.revokes.Revoke(ctx, ids, terminate, sig); storeErr != nil {
			storeErr = fmt.Errorf("revoke: the ids are revoked on %s only: %w", w.hostname, storeErr)
		}
	}
	if len(ids) > 0 && !terminate {
		w.log.Info("Tasks flagged as revoked: "+strings.Join(ids, ", "), "task_ids", ids)
	}
	return terminated, storeErr
}

// terminateRunning stops the running task with this id; it reports whether there was one.
func (w *Engine) terminateRunning(id, signal string) bool {
	j, ok := w.active.Load(id)
	if !ok {
		return false
	}
	if j.terminate(signal, w.errs.Terminated(signal)) {
		signum, _ := revoke.SignalNumber(signal)
		w.log.Info(fmt.Sprintf("Terminating %s (%d)", id, signum), "task_id", id, "signal", signal)
	}
	return true
}

// isReserved reports whether a job with this id is held here, not yet started.
func (w *Engine) isReserved(id string) bool {
	found := false
	w.reserved.Range(func(k *job, _ struct{}) bool {
		found = k.msg.ID == id
		return !found
	})
	return found
}

// revokedBeforeStart reports whether a job about to start is revoked: known here, or, for a job
// that was held (ETA, rate limit) and so may have missed a notice, in the store.
func (w *Engine) revokedBeforeStart(j *job) bool {
	if w.revoked.Has(j.msg.ID, w.now()) {
		return true
	}
	if j.waited && w.revokes != nil {
		return w.areRevoked([]string{j.msg.ID})[0]
	}
	return false
}

// areRevoked answers for each id whether it is revoked: known in memory, else (one round trip
// for all) in the revoke store. When the store cannot be asked the answer is the memory's, and
// the store is left alone for revokeBreak: revokes never stop task processing.
func (w *Engine) areRevoked(ids []string) []bool {
	out := make([]bool, len(ids))
	now := w.now()
	missing := 0
	for i, id := range ids {
		if w.revoked.Has(id, now) {
			out[i] = true
		} else {
			missing++
		}
	}
	if missing == 0 || w.revokes == nil || time.Now().UnixNano() < w.breakUntil.Load() {
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	got, err := w.revokes.AreRevoked(ctx, ids)
	if err != nil {
		// Logged at most once per revokeBreak: the store is not asked again before.
		w.breakUntil.Store(time.Now().Add(revokeBreak).UnixNano())
		w.log.Warn("cannot check revoked ids in the revoke store; using the ones known in memory", "retry_in", revokeBreak, "error", err)
		return out
	}
	w.breakUntil.Store(0)
	exp := now.Add(w.revokeTTL())
	for i, r := range got {
		if r && !out[i] {
			out[i] = true
			w.revoked.Add(ids[i], exp)
		}
	}
	return out
}

// watchRevokes follows the store's revoke notices until ctx ends: revoked ids are remembered, and
// a running task revoked with terminate is stopped, whichever worker received the command.
func (w *Engine) watchRevokes(ctx context.Context) {
	delay := 100 * time.Millisecond
	for failures := 0; ; failures++ {
		ch, err := w.revokes.Subscribe(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if failures%30 == 0 {
				w.log.Warn("cannot follow the revoke store's notices, retrying (running tasks revoked elsewhere with terminate are not stopped meanwhile)",
					"store", w.revokes.String(), "error", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			delay = min(delay*2, 5*time.Second)
			continue
		}
		if failures > 0 {
			w.log.Info("following revoke notices again", "store", w.revokes.String())
		}
		for r := range ch {
			w.revoked.Add(r.ID, r.Expires)
			if r.Terminate {
				w.terminateRunning(r.ID, r.Signal)
			}
		}
		return // the channel closes when ctx ends
	}
}

// discardRevoked settles a revoked job that will not run: REVOKED with TaskRevokedError('revoked')
// is stored and the message acknowledged, as Celery's Request.revoked() does.
func (w *Engine) discardRevoked(j *job) {
	m := j.msg
	w.stats.Revoked.Add(1)
	w.unreserve(j)
	w.log.Info(fmt.Sprintf("Discarding revoked task: %s[%s]", m.Task, m.ID), "task_id", m.ID)
	w.sendTaskEvent(func() events.Event { return events.NewTaskRevoked(m.ID, false, 0, false) })
	w.storeRevoked(j, "revoked")
	if !j.acked.Load() {
		w.settle(j, j.d.Ack)
	}
	w.finished(j, "revoked", 0)
}

// storeRevoked stores REVOKED with TaskRevokedError(reason) and, for a chord header member,
// counts its chord part as REVOKED (which fails the chord), as Celery's backend.mark_as_revoked
// does for a revoked, expired or terminated request.
func (w *Engine) storeRevoked(j *job, reason string) {
	exc := exceptionJSON("TaskRevokedError", "celery.exceptions", reason)
	w.store(j, protocol.ResultMeta{Status: protocol.StateRevoked, Result: exc})
	w.chordPart(j.msg, protocol.StateRevoked, exc)
}

// revokedWhileRunning settles a task terminated by a revoke: REVOKED with
// TaskRevokedError('terminated'), whatever it returned, and its message acknowledged.
func (w *Engine) revokedWhileRunning(j *job, o taskSettings, signal string, runtime time.Duration) {
	m := j.msg
	w.stats.Revoked.Add(1)
	signum, _ := revoke.SignalNumber(signal)
	w.log.Warn(fmt.Sprintf("Task %s[%s] terminated by revoke (%s) after %.6fs", m.Task, m.ID, signal, runtime.Seconds()),
		"task_id", m.ID, "signal", signal)
	w.sendTaskEvent(func() events.Event { return events.NewTaskRevoked(m.ID, true, signum, false) })
	w.storeRevoked(j, "terminated")
	if o.acksLate {
		w.settle(j, j.d.Ack)
	}
	w.finished(j, "revoked", runtime)
}

// RevokedIDs lists the revoked ids: the store's (when there is one and it answers) and those
// known in memory, without duplicates, sorted.
func (w *Engine) RevokedIDs(ctx context.Context) ([]string, error) {
	ids := w.revoked.List(w.now())
	var err error
	if w.revokes != nil {
		var stored []string
		if stored, err = w.revokes.List(ctx); err == nil {
			ids = append(ids, stored...)
		}
	}
	sort.Strings(ids)
	out := ids[:0]
	for i, id := range ids {
		if i == 0 || id != ids[i-1] {
			out = append(out, id)
		}
	}
	return out, err
}
