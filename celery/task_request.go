// This file holds what a running task's Request shows of its message beyond Celery's headers:
// the delivery properties and the replacement nesting.

package celery

import "github.com/forumads/forumads/celery/protocol"

// requestProperties returns the delivery properties of a task message as Celery's
// task.request.properties holds them (kombu's message.properties): the properties the sender set.
func requestProperties(e protocol.Envelope) map[string]any {
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
