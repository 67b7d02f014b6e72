package celery

import (
	"errors"
	"fmt"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/protocol"
)

// Headers the worker adds to a dead-lettered message, visible in the RabbitMQ management UI.
const (
	HeaderDeadLetterReason = "x-dead-letter-reason"
	HeaderOriginalQueue    = "x-original-queue"
	HeaderOriginalExchange = "x-original-exchange"
	HeaderOriginalKey      = "x-original-routing-key"
	HeaderDeadLetteredBy   = "x-dead-lettered-by"
	HeaderDeadLetteredAt   = "x-dead-lettered-at"
)

// badMessage handles a message that cannot be run: it is logged, a FAILURE explaining why is stored
// when the task id is known, and the message goes to the dead-letter queue, never back to its queue.
func (w *Worker) badMessage(d *broker.Delivery, msg *protocol.TaskMessage, err error) {
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
		tb := fmt.Sprintf("%s: %s\n(the message was moved to the dead-letter queue %q)\n", excType, reason, w.cfg.WorkerDeadLetterQueue)
		w.storeMeta(protocol.ResultMeta{Status: protocol.StateFailure, TaskID: id, Traceback: &tb,
			Result: exceptionJSON(excType, excModule, reason), DateDone: ptr(w.now().UTC())})
	}
	w.deadLetter(d, excType+": "+reason)
}

// unknownTask handles a message for a task this worker does not have, as Celery does (FAILURE
// NotRegistered), but keeps the message in the dead-letter queue so it can be replayed once a worker
// that knows the task is deployed.
func (w *Worker) unknownTask(d *broker.Delivery, msg *protocol.TaskMessage) {
	w.log.Error(fmt.Sprintf("Received unregistered task of type %s. The message was moved to the dead-letter queue %q.",
		pyRepr(msg.Task), w.cfg.WorkerDeadLetterQueue), "task", msg.Task, "task_id", msg.ID, "queue", d.Queue)
	if w.backend != nil {
		tb := fmt.Sprintf("NotRegistered: %s\n", pyRepr(msg.Task))
		w.storeMeta(protocol.ResultMeta{Status: protocol.StateFailure, TaskID: msg.ID, GroupID: msg.GroupID,
			ParentID: msg.ParentID, Traceback: &tb,
			Result: exceptionJSON("NotRegistered", "celery.exceptions", msg.Task), DateDone: ptr(w.now().UTC())})
	}
	w.stats.Failed.Add(1)
	w.deadLetter(d, fmt.Sprintf("NotRegistered: task %q is not registered on %s", msg.Task, w.hostname))
}

// deadLetter copies the message, unchanged but for the added x-dead-letter-* headers, to the
// dead-letter queue, then acknowledges the original. If the copy cannot be confirmed the original is
// returned to its queue instead, so nothing is lost.
func (w *Worker) deadLetter(d *broker.Delivery, reason string) {
	h := make(map[string]any, len(d.Headers)+6)
	for k, v := range d.Headers {
		h[k] = v
	}
	h[HeaderDeadLetterReason] = reason
	h[HeaderOriginalQueue] = d.Queue
	h[HeaderOriginalExchange] = d.Exchange
	h[HeaderOriginalKey] = d.RoutingKey
	h[HeaderDeadLetteredBy] = w.hostname
	h[HeaderDeadLetteredAt] = protocol.FormatTime(w.now().UTC())
	env := d.Envelope
	env.Headers = h
	if env.DeliveryMode == 0 {
		env.DeliveryMode = 2
	}
	// A per-message TTL would make RabbitMQ drop the dead letter silently.
	env.Expiration = ""
	dlq := w.cfg.WorkerDeadLetterQueue
	err := w.publish(broker.Publishing{RoutingKey: dlq, Envelope: env, Declare: &QueueConfig{Name: dlq}})
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

// park moves a message whose ETA is far away to a TTL queue that dead-letters it back into its
// queue after worker_eta_park_after, so that no message stays unacknowledged longer than that
// (RabbitMQ's consumer_timeout closes channels holding one for 30 minutes).
func (w *Worker) park(j *job) {
	d := j.d
	ttl := w.parkAfter()
	secs := int(ttl / time.Second)
	if secs < 1 {
		secs = 1
	}
	name := fmt.Sprintf("%s.eta-park-%ds", d.Queue, secs)
	q := QueueConfig{Name: name, QueueArguments: map[string]any{
		"x-message-ttl":             int32(secs * 1000),
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": d.Queue,
	}}
	env := d.Envelope
	if env.DeliveryMode == 0 {
		env.DeliveryMode = 2
	}
	if err := w.publish(broker.Publishing{RoutingKey: name, Envelope: env, Declare: &q}); err != nil {
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
