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
// that was held (ETA, rate limit) and so may have been revoked since intake, in the store unless
// the memory is synced with it (areRevoked).
func (w *Engine) revokedBeforeStart(j *job) bool {
	if w.revoked.Has(j.msg.ID, w.now()) {
		return true
	}
	if j.waited && w.revokes != nil {
		return w.areRevoked([]string{j.msg.ID})[0]
	}
	return false
}

// areRevoked answers for each id whether it is revoked: known in memory, else, unless the memory
// is synced with the revoke store (revokesSynced), in the store (one round trip for all). When the
// store cannot be asked the answer is the memory's, and the store is left alone for revokeBreak:
// revokes never stop task processing.
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
	if missing == 0 || w.revokes == nil || w.revokesSynced() || time.Now().UnixNano() < w.breakUntil.Load() {
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

// revokesSynced reports whether the memory holds every id revoked in the store, so that intake
// need not ask the store. That is so only with a revoke.Follower, from the moment its set was
// loaded (with each id's expiry from the store, Entries) after a Live marker, that is after the
// subscription was confirmed, until the next Gap marker, which the store sends as soon as its
// subscription fails; and only while the memory evicted no id to make room (more revoked ids than
// worker_revoke_max). A Store that is not a Follower is never synced: intake asks it for every
// batch, as it does between a Gap and the reload that follows the next Live.
//
// What stays: a revoke is known here once its notice is read, so a task sent right after a revoke
// by another path (another broker connection) can in principle arrive first; and a subscription
// broken without an error (a network path gone silent) is a gap only once the store notices it.
// Both hold for the store's answer too while it cannot be reached (revokeBreak).
func (w *Engine) revokesSynced() bool {
	return w.synced.Load() && w.revoked.Evicted() == w.syncEvicted.Load()
}

// setSynced changes synced and tells onSync of a change.
func (w *Engine) setSynced(v bool) {
	if w.synced.Swap(v) != v && w.onSync != nil {
		w.onSync(v)
	}
}

// watchRevokes follows the store's revoke notices until ctx ends: revoked ids are remembered, and
// a running task revoked with terminate is stopped, whichever worker received the command. With
// a revoke.Follower it also keeps synced (see revokesSynced).
func (w *Engine) watchRevokes(ctx context.Context) {
	defer w.setSynced(false)
	f, follows := w.revokes.(revoke.Follower)
	delay := 100 * time.Millisecond
	for failures := 0; ; failures++ {
		var ch <-chan revoke.Revocation
		var err error
		if follows {
			ch, err = f.Follow(ctx)
		} else {
			ch, err = w.revokes.Subscribe(ctx)
		}
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
		w.followRevokes(ctx, ch, f)
		return // the channel closes when ctx ends
	}
}

// followRevokes applies what ch delivers until it closes: revocations, and with a Follower (f
// non-nil) its markers: a Gap ends synced at once, a Live reloads the store's set and starts it.
// A reload that fails is tried again (100 ms, doubling to 5 s) until it succeeds or a Gap comes.
func (w *Engine) followRevokes(ctx context.Context, ch <-chan revoke.Revocation, f revoke.Follower) {
	var retry <-chan time.Time // set while a Live waits for a reload that failed
	delay := 100 * time.Millisecond
	reload := func() {
		if w.reloadRevokes(ctx, f) {
			retry, delay = nil, 100*time.Millisecond
			return
		}
		retry = time.After(delay)
		delay = min(delay*2, 5*time.Second)
	}
	for {
		select {
		case r, ok := <-ch:
			if !ok {
				return
			}
			switch {
			case f != nil && r.Gap:
				retry, delay = nil, 100*time.Millisecond
				if w.synced.Load() {
					w.log.Info("revoke notices may have been lost; intake asks the revoke store again", "store", w.revokes.String())
				}
				w.setSynced(false)
			case f != nil && r.Live:
				reload()
			case r.ID != "":
				w.revoked.Add(r.ID, r.Expires)
				if r.Terminate {
					w.terminateRunning(r.ID, r.Signal)
				}
			}
		case <-retry:
			reload()
		}
	}
}

// reloadRevokes puts the store's set in memory, each id with the expiry the store keeps, and
// sets synced unless the memory had to evict ids to hold them; it reports false if the store
// could not be read (to try again).
func (w *Engine) reloadRevokes(ctx context.Context, f revoke.Follower) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	entries, err := f.Entries(ctx)
	if err != nil {
		if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			w.log.Warn("cannot load the revoke store's ids; intake asks the store meanwhile", "store", w.revokes.String(), "error", err)
		}
		return false
	}
	evicted := w.revoked.Evicted()
	for _, e := range entries {
		w.revoked.Add(e.ID, e.Expires)
	}
	if w.revoked.Evicted() != evicted {
		w.log.Warn("more revoked ids than the worker keeps in memory (worker_revoke_max); intake asks the revoke store for each batch",
			"store", w.revokes.String(), "ids", len(entries), "max", w.revokeMax())
		w.setSynced(false)
		return true
	}
	w.syncEvicted.Store(evicted)
	w.setSynced(true)
	w.log.Debug("revoke store loaded; intake checks revoked ids in memory", "store", w.revokes.String(), "ids", len(entries))
	return true
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
