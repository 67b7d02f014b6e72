// This file holds the worker's intake: decoding deliveries, dead-lettering the undecodable,
// accepting (or revoking) messages and reserving them.

package engine

import (
	"fmt"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/events"
	"github.com/forumads/forumads/celery/protocol"
)

// intake decides what to do with a batch of deliveries, in order: dead-letter, revoke, hold or run.
// The revoked ids of the batch are checked in memory and, unless the memory is synced with the
// revoke store (revokesSynced), in one round trip to the store.
func (w *Engine) intake(batch []*broker.Delivery) {
	jobs := make([]*job, 0, len(batch))
	for _, d := range batch {
		if j := w.decode(d); j != nil {
			jobs = append(jobs, j)
		}
	}
	if len(jobs) == 0 {
		return
	}
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.msg.ID
	}
	revoked := w.areRevoked(ids)
	for i, j := range jobs {
		w.accept1(j, revoked[i])
	}
}

// decode turns a delivery into a job, or handles it (a message that cannot run, an unknown task)
// and returns nil.
func (w *Engine) decode(d *broker.Delivery) *job {
	if w.stopping.Load() {
		_ = d.Reject(true)
		return nil
	}
	if g := d.Generation; g > w.gen.Load() {
		w.newGeneration(g)
	}
	if d.HeaderError != "" {
		w.badMessage(d, nil, fmt.Errorf("the message's AMQP headers could not be read: %s", d.HeaderError))
		return nil
	}
	msg, err := protocol.Decode(d.Envelope, w.accept)
	if err != nil {
		w.badMessage(d, msg, err)
		return nil
	}
	w.stats.Received.Add(1)
	if w.metrics != nil {
		w.metrics.TaskReceived(msg.Task)
	}
	def, ok := w.reg.Lookup(msg.Task)
	if !ok {
		w.unknownTask(d, msg)
		w.sendTaskEvent(func() events.Event {
			return events.NewTaskFailed(msg.ID, "NotRegistered("+pyRepr(msg.Task)+")", "")
		})
		if w.metrics != nil {
			w.metrics.TaskFinished(msg.Task, "failure", 0)
		}
		return nil
	}
	return &job{d: d, msg: msg, def: def, received: w.now()}
}

// countDeadLetter tells the metrics about a message sent to the dead-letter queue.
func (w *Engine) countDeadLetter(reason string) {
	if w.metrics != nil {
		w.metrics.DeadLettered(reason)
	}
}

// accept1 takes a decoded job: revoked and expired ones are discarded (as Celery's strategy does,
// before task-received), due ones go to the pool, others are held or parked until their ETA.
func (w *Engine) accept1(j *job, revoked bool) {
	msg := j.msg
	if revoked {
		w.discardRevoked(j)
		return
	}
	if w.expired(j) {
		return
	}
	w.sendTaskEvent(func() events.Event { return events.NewTaskReceived(TaskInfo(msg)) })
	if w.infoOn() {
		w.log.Info(fmt.Sprintf("Task %s[%s] received", msg.Task, msg.ID), "task", msg.Task, "task_id", msg.ID)
	}
	now := w.now()
	if msg.ETA != nil && msg.ETA.After(now) {
		if msg.ETA.Sub(now) > w.parkAfter() || w.held.Load() >= 60000 {
			w.park(j)
			return
		}
		w.reserve(j)
		j.eta.Store(true)
		w.heldETA.Add(1)
		w.hold(j, *msg.ETA)
		return
	}
	w.reserve(j)
	w.admit(j)
}

// reserve records a job the worker holds but has not started (inspect reserved, scheduled).
func (w *Engine) reserve(j *job) {
	w.reserved.Store(j, struct{}{})
	w.nReserved.Add(1)
}

// unreserve forgets a reserved job: it started, or went back to the broker.
func (w *Engine) unreserve(j *job) {
	if _, ok := w.reserved.LoadAndDelete(j); ok {
		w.nReserved.Add(-1)
	}
	if j.eta.Swap(false) {
		w.heldETA.Add(-1)
	}
}

// admit passes a due job through its task's rate limit to the pool.
func (w *Engine) admit(j *job) {
	if !j.rated {
		j.rated = true
		if wait := w.rateWait(j.def); wait > 0 {
			w.hold(j, w.now().Add(wait))
			return
		}
	}
	w.ready <- j
}
