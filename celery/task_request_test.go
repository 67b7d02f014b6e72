package celery

import (
	"reflect"
	"testing"

	"github.com/forumads/forumads/celery/protocol"
)

func TestRequestProperties(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  protocol.Envelope
		want map[string]any
	}{
		{"what Celery 5.2 sends", protocol.Envelope{CorrelationID: "id", ReplyTo: "r", DeliveryMode: 2, Priority: 7,
			ContentType: "application/json", ContentEncoding: "utf-8", AppID: "1234"},
			map[string]any{"correlation_id": "id", "reply_to": "r", "delivery_mode": 2, "priority": 7,
				"content_type": "application/json", "content_encoding": "utf-8", "app_id": "1234"}},
		{"no priority, no app_id", protocol.Envelope{CorrelationID: "id", DeliveryMode: 1},
			map[string]any{"correlation_id": "id", "reply_to": "", "delivery_mode": 1}},
	} {
		r := &Request{props: &tc.env}
		if got := r.Properties(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := (&Request{}).Properties(); len(got) != 0 {
		t.Errorf("outside a worker: %v, want no properties", got)
	}
	for _, tc := range []struct {
		headers map[string]any
		want    int
	}{
		{nil, 0}, {map[string]any{"replaced_task_nesting": int64(2)}, 2}, {map[string]any{"replaced_task_nesting": "x"}, 0},
	} {
		if got := replacedNesting(&protocol.TaskMessage{ExtraHeaders: tc.headers}); got != tc.want {
			t.Errorf("nesting of %v: %d, want %d", tc.headers, got, tc.want)
		}
	}
}
