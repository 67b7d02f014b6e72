// This file holds what a running task's Request shows of its message beyond Celery's headers:
// the delivery properties and the replacement nesting.

package celery

import "github.com/forumads/forumads/celery/protocol"

// Properties returns the message's delivery properties as Celery's task.request.properties
// (kombu's message.properties) holds them: correlation_id, reply_to, delivery_mode, and, when the
// sender set them, priority, content_type, content_encoding and app_id. The map is built on each
// call (a task that never asks costs nothing) and is the caller's; outside a worker (Apply) it is
// empty.
func (r *Request) Properties() map[string]any {
	if r.props == nil {
		return map[string]any{}
	}
	return requestProperties(r.props)
}

// requestProperties returns the properties the sender set on e (see Request.Properties).
func requestProperties(e *protocol.Envelope) map[string]any {
	p := map[string]any{
		"correlation_id": e.CorrelationID,
		"reply_to":       e.ReplyTo,
		"delivery_mode":  int(e.DeliveryMode),
	}
	if e.ContentType != "" {
		p["content_type"] = e.ContentType
	}
	if e.ContentEncoding != "" {
		p["content_encoding"] = e.ContentEncoding
	}
	if e.Priority != 0 {
		p["priority"] = int(e.Priority)
	}
	if e.AppID != "" {
		p["app_id"] = e.AppID
	}
	return p
}

// replacedNesting reads the replaced_task_nesting header Celery 5.2 sets on a replacement (0
// when absent or not a number).
func replacedNesting(m *protocol.TaskMessage) int {
	switch v := m.ExtraHeaders["replaced_task_nesting"].(type) {
	case int64:
		return int(v)
	case float64:
		return int(v)
	case int:
		return v
	}
	return 0
}
