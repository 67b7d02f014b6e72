package broker

import (
	"strings"
	"testing"
)

func TestCheckQueueArguments(t *testing.T) {
	t.Parallel()
	quorum := func(extra map[string]any) Queue {
		args := map[string]any{ArgQueueType: QueueTypeQuorum}
		for k, v := range extra {
			args[k] = v
		}
		return Queue{Name: "q", QueueArguments: args}
	}
	three := 3
	for _, tc := range []struct {
		name string
		q    Queue
		want string // "" = accepted
	}{
		{"classic without arguments", Queue{Name: "q"}, ""},
		{"quorum", quorum(nil), ""},
		{"explicit classic", Queue{Name: "q", QueueArguments: map[string]any{ArgQueueType: "classic"}}, ""},
		{"quorum with delivery limit and dead letters", quorum(map[string]any{ArgDeliveryLimit: 5, ArgDeadLetterExchange: "", ArgDeadLetterRoutingKey: "dlq"}), ""},
		{"delivery limit from JSON", quorum(map[string]any{ArgDeliveryLimit: float64(5)}), ""},
		{"unknown queue type", Queue{Name: "q", QueueArguments: map[string]any{ArgQueueType: "mirrored"}}, `unknown queue type "mirrored"`},
		{"stream", Queue{Name: "q", QueueArguments: map[string]any{ArgQueueType: "stream"}}, `unknown queue type "stream"`},
		{"queue type not a string", Queue{Name: "q", QueueArguments: map[string]any{ArgQueueType: 1}}, "want a string"},
		{"delivery limit not a number", quorum(map[string]any{ArgDeliveryLimit: "five"}), "x-delivery-limit: want a whole number, got string five"},
		{"delivery limit numeric string", quorum(map[string]any{ArgDeliveryLimit: "5"}), "x-delivery-limit: want a whole number"},
		{"delivery limit fraction", quorum(map[string]any{ArgDeliveryLimit: 2.5}), "x-delivery-limit: want a whole number, got 2.5"},
		{"delivery limit negative", quorum(map[string]any{ArgDeliveryLimit: -1}), "must be >= 0"},
		{"delivery limit on classic", Queue{Name: "q", QueueArguments: map[string]any{ArgDeliveryLimit: 5}}, "only quorum queues count deliveries"},
		{"priority argument on quorum", quorum(map[string]any{"x-max-priority": 10}), "quorum queues have no priorities"},
		{"max_priority on quorum", Queue{Name: "q", MaxPriority: &three, QueueArguments: map[string]any{ArgQueueType: QueueTypeQuorum}}, "quorum queues have no priorities"},
		{"dead-letter exchange not a string", quorum(map[string]any{ArgDeadLetterExchange: 7}), "x-dead-letter-exchange: want a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := CheckQueueArguments(tc.q)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestDeliveryCountAndLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		headers map[string]any
		want    int64
	}{
		{nil, 0},
		{map[string]any{HeaderDeliveryCount: int64(3)}, 3},
		{map[string]any{HeaderDeliveryCount: int32(1)}, 1},
		{map[string]any{HeaderDeliveryCount: "x"}, 0},
	} {
		if got := DeliveryCount(tc.headers); got != tc.want {
			t.Errorf("DeliveryCount(%v) = %d, want %d", tc.headers, got, tc.want)
		}
	}
	q := Queue{QueueArguments: map[string]any{ArgQueueType: QueueTypeQuorum, ArgDeliveryLimit: 4}}
	if n, ok := DeliveryLimit(q); !ok || n != 4 {
		t.Errorf("DeliveryLimit = %d, %v; want 4", n, ok)
	}
	if _, ok := DeliveryLimit(Queue{}); ok {
		t.Error("DeliveryLimit of a queue without one reported one")
	}
	if !IsQuorum(q) || IsQuorum(Queue{}) || QueueType(Queue{}) != QueueTypeClassic {
		t.Error("IsQuorum/QueueType")
	}
}
