package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/protocol"
)

// badMessage handles a message that cannot be run: it is logged, a FAILURE explaining why is stored
// when the task id is known, and the message goes to the dead-letter queue, never back to its queue.
func (w *Engine) badMessage(d *broker.Delivery, msg *protocol.TaskMessage, err error) {
	id, name := d.CorrelationID, ""
	if msg != nil {
		id, name = msg.ID, msg.Task
	}
	var me *protocol.MessageError
	if errors.As(err, &me) {
		if me.TaskID != "" {
			id = me.TaskID
		}
		if me.TaskName != "" {
			name = me.TaskName
		}
	}
	excType, excModule := "InvalidTaskError", "celery.exceptions"
	switch {
	case errors.Is(err, protocol.ErrContentDisallowed):
		excType, excModule = "ContentDisallowed", "kombu.exceptions"
	case errors.Is(err, protocol.ErrUndecodable):
		excType, excModule = "DecodeError", "kombu.exceptions"
	}
	reason := err.Error()
	w.log.Error("Rejecting a message that cannot be run: "+reason, "task_id", id, "task", name,
		"content_type", d.ContentType, "queue", d.Queue, "headers", headerSummary(d.Headers), "error_kind", excType)
	if id != "" && w.backend != nil {
		tb := fmt.Sprintf("%s: %s\n(%s)\n", excType, reason, w.deadLetterFate())
		w.storeMeta(protocol.ResultMeta{Status: protocol.StateFailure, TaskID: id, Traceback: &tb,
			Result: exceptionJSON(excType, excModule, reason), DateDone: ptr(w.now().UTC())})
	}
	w.deadLetter(d, excType+": "+reason)
}

// unknownTask handles a message for a task this worker does not have, as Celery does (FAILURE
// NotRegistered), but keeps the message in the dead-letter queue so it can be replayed once a worker
// that knows the task is deployed.
func (w *Engine) unknownTask(d *broker.Delivery, msg *protocol.TaskMessage) {
	w.log.Error(fmt.Sprintf("Received unregistered task of type %s. %s.",
		pyRepr(msg.Task), upperFirst(w.deadLetterFate())), "task", msg.Task, "task_id", msg.ID, "queue", d.Queue)
	if w.backend != nil {
		tb := fmt.Sprintf("NotRegistered: %s\n", pyRepr(msg.Task))
		w.storeMeta(protocol.ResultMeta{Status: protocol.StateFailure, TaskID: msg.ID, GroupID: msg.GroupID,
			ParentID: msg.ParentID, Traceback: &tb,
			Result: exceptionJSON("NotRegistered", "celery.exceptions", msg.Task), DateDone: ptr(w.now().UTC())})
	}
	w.stats.Failed.Add(1)
	w.deadLetter(d, fmt.Sprintf("NotRegistered: task %q is not registered on %s", msg.Task, w.hostname))
}

// deadLetterer is the broker's dead-letter policy, or nil when it keeps no dead letters.
func (w *Engine) deadLetterer() broker.DeadLetterer {
	if dl, ok := w.br.(broker.DeadLetterer); ok && w.br.Capabilities().DeadLetter {
		return dl
	}
	return nil
}

// deadLetterFate says what happens to a message deadLetter is given, for logs and tracebacks.
func (w *Engine) deadLetterFate() string {
	if w.deadLetterer() == nil {
		return "the message was rejected: the broker keeps no dead letters"
	}
	return fmt.Sprintf("the message was moved to the dead-letter queue %q", w.cfg.DeadLetterQueue)
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// deadLetter has the broker copy the message, unchanged but for the added x-dead-letter-* headers,
// to the dead-letter queue (broker.DeadLetterer), then acknowledges the original. If the copy cannot
// be confirmed the original is returned to its queue instead, so nothing is lost. A broker without
// dead-lettering gets the message rejected without requeue.
func (w *Engine) deadLetter(d *broker.Delivery, reason string) {
	dlq := w.cfg.DeadLetterQueue
	dler := w.deadLetterer()
	if dler == nil {
		w.log.Error("the broker keeps no dead letters; dropping the message", "reason", reason, "queue", d.Queue)
		if err := d.Reject(false); err != nil {
			w.log.Warn("rejected message could not be settled; it will be delivered again", "error", err)
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := dler.DeadLetter(ctx, d, broker.DeadLetter{Queue: dlq, Reason: reason, By: w.hostname, At: w.now()})
	if err != nil {
		w.log.Error("could not move the message to the dead-letter queue; returning it to its queue", "queue", dlq, "error", err)
		if rerr := d.Reject(true); rerr != nil {
			w.log.Error("returning the message", "error", rerr)
		}
		return
	}
	w.stats.DeadLettered.Add(1)
	w.countDeadLetter(reason)
	if err := d.Ack(); err != nil {
		w.log.Warn("dead-lettered message could not be acknowledged; it will be delivered again", "error", err)
	}
}

// park has the broker take back a message whose ETA is far away and deliver it again after
// worker_eta_park_after (broker.Parker; RabbitMQ: a TTL queue that dead-letters it back into its
// queue), so that no message stays unacknowledged longer than that (RabbitMQ's consumer_timeout
// closes channels holding one for 30 minutes). A broker without delayed delivery gets the message
// held until its ETA instead.
func (w *Engine) park(j *job) {
	d := j.d
	pk, ok := w.br.(broker.Parker)
	if !ok || !w.br.Capabilities().DelayedDelivery {
		w.reserve(j)
		j.eta.Store(true)
		w.heldETA.Add(1)
		w.hold(j, *j.msg.ETA)
		return
	}
	ttl := w.parkAfter()
	secs := max(int(ttl/time.Second), 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name, err := pk.Park(ctx, d, ttl)
	if err != nil {
		w.log.Error("could not park a far-future ETA task; holding it instead", "task_id", j.msg.ID, "error", err)
		w.hold(j, *j.msg.ETA)
		return
	}
	w.stats.Parked.Add(1)
	w.log.Info(fmt.Sprintf("Task %s[%s] parked until its eta %s (back in %ds)", j.msg.Task, j.msg.ID,
		protocol.FormatTime(*j.msg.ETA), secs), "task_id", j.msg.ID, "queue", name)
	w.settle(j, d.Ack)
}

func headerSummary(h map[string]any) string {
	s := fmt.Sprint(h)
	if len(s) > 512 {
		s = s[:512] + "..."
	}
	return s
}

func ptr[T any](v T) *T { return &v }
