package celery

import (
	"reflect"
	"strings"
	"testing"
)

// TestQuorumQueueDeclarationsMatchCelery55: the queues are declared with exactly the arguments a
// Celery 5.5 worker gives them (celery/app/amqp.py): task_default_queue_type quorum puts
// x-queue-type quorum on the default queue only (when task_queues is empty),
// task_create_missing_queue_type and _exchange_type shape queues created for routes, and
// task_queues entries keep their own queue_arguments.
func TestQuorumQueueDeclarationsMatchCelery55(t *testing.T) {
	t.Parallel()
	quorum := map[string]any{"x-queue-type": "quorum"}
	for _, tc := range []struct {
		name     string
		cfg      Config
		queue    string
		wantArgs map[string]any
		wantType string
	}{
		{"classic default", Config{}, "celery", nil, "direct"},
		{"quorum default queue", Config{TaskDefaultQueueType: "quorum"}, "celery", quorum, "direct"},
		{"quorum default on a topic exchange", Config{TaskDefaultQueueType: "quorum", TaskDefaultExchangeType: "topic"}, "celery", quorum, "topic"},
		{"explicit classic default", Config{TaskDefaultQueueType: "classic"}, "celery", nil, "direct"},
		{"missing queue stays classic with a quorum default", Config{TaskDefaultQueueType: "quorum"}, "other", nil, "direct"},
		{"missing queue type quorum", Config{TaskCreateMissingQueueType: "quorum"}, "other", quorum, "direct"},
		{"missing queue exchange type", Config{TaskCreateMissingQueueType: "quorum", TaskCreateMissingQueueExchangeType: "topic"}, "other", quorum, "topic"},
		{"task_queues keeps its arguments", Config{TaskDefaultQueueType: "quorum", TaskQueues: []QueueConfig{{Name: "q", QueueArguments: map[string]any{"x-queue-type": "quorum", "x-delivery-limit": 5}}}},
			"q", map[string]any{"x-queue-type": "quorum", "x-delivery-limit": 5}, "direct"},
		{"task_queues entry without arguments stays classic", Config{TaskDefaultQueueType: "quorum", TaskQueues: []QueueConfig{{Name: "q"}}}, "q", nil, "direct"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg.WithDefaults()
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			q, ok := cfg.QueueByName(tc.queue)
			if !ok {
				t.Fatalf("no queue %s", tc.queue)
			}
			if !reflect.DeepEqual(q.QueueArguments, tc.wantArgs) || q.ExchangeType != tc.wantType {
				t.Fatalf("queue %s: arguments %v on a %s exchange, want %v on %s", tc.queue, q.QueueArguments, q.ExchangeType, tc.wantArgs, tc.wantType)
			}
		})
	}
}

func TestQuorumQueuesDetection(t *testing.T) {
	t.Parallel()
	off := false
	for _, tc := range []struct {
		name string
		cfg  Config
		want bool
	}{
		{"classic", Config{}, false},
		{"quorum default queue", Config{TaskDefaultQueueType: "quorum"}, true},
		{"quorum entry in task_queues", Config{TaskQueues: []QueueConfig{{Name: "a"}, {Name: "b", QueueArguments: map[string]any{"x-queue-type": "quorum"}}}}, true},
		{"task_queues overrides the default queue type", Config{TaskDefaultQueueType: "quorum", TaskQueues: []QueueConfig{{Name: "a"}}}, false},
		{"worker_detect_quorum_queues off", Config{TaskDefaultQueueType: "quorum", WorkerDetectQuorumQueues: &off}, false},
	} {
		if got := tc.cfg.QuorumQueues(); got != tc.want {
			t.Errorf("%s: QuorumQueues() = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestValidateQuorumSettings: every bad value of the quorum, delayed-delivery and failover
// settings is a startup error naming the setting, never a silent fallback.
func TestValidateQuorumSettings(t *testing.T) {
	t.Parallel()
	three := 3
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"unknown default queue type", Config{TaskDefaultQueueType: "mirrored"}, `task_default_queue_type: unknown queue type "mirrored"`},
		{"unknown missing queue type", Config{TaskCreateMissingQueueType: "stream"}, `task_create_missing_queue_type: unknown queue type "stream"`},
		{"unknown delayed delivery queue type", Config{BrokerNativeDelayedDeliveryQueueType: "lazy"}, `broker_native_delayed_delivery_queue_type: unknown queue type "lazy"`},
		{"unknown failover strategy", Config{BrokerFailoverStrategy: "random"}, `broker_failover_strategy: unknown strategy "random"`},
		{"unknown missing exchange type", Config{TaskCreateMissingQueueExchangeType: "x"}, "task_create_missing_queue_exchange_type"},
		{"priorities on quorum queues", Config{TaskDefaultQueueType: "quorum", TaskQueueMaxPriority: &three}, "task_queue_max_priority: quorum queues have no priorities"},
		{"unknown x-queue-type in task_queues", Config{TaskQueues: []QueueConfig{{Name: "q", QueueArguments: map[string]any{"x-queue-type": "mirrored"}}}}, `task_queues[0] (q): queue_arguments x-queue-type: unknown queue type "mirrored"`},
		{"x-delivery-limit not a number", Config{TaskQueues: []QueueConfig{{Name: "q", QueueArguments: map[string]any{"x-queue-type": "quorum", "x-delivery-limit": "many"}}}}, "task_queues[0] (q): queue_arguments x-delivery-limit: want a whole number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.WithDefaults().Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error saying %q", err, tc.want)
			}
		})
	}
	for _, ok := range []Config{{TaskDefaultQueueType: "quorum", BrokerFailoverStrategy: "shuffle", BrokerNativeDelayedDeliveryQueueType: "classic"},
		{BrokerFailoverStrategy: "round-robin"}} {
		if err := ok.WithDefaults().Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", ok, err)
		}
	}
}
