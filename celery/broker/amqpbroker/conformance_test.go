package amqpbroker

import (
	"log/slog"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/brokertest"
	"github.com/forumads/forumads/internal/testenv"
)

// TestConformance runs the broker conformance suite against RabbitMQ, with classic queues and
// with quorum queues (x-queue-type quorum, consumed with per-consumer QoS).
func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		args map[string]any
	}{
		{"classic", nil},
		{"quorum", map[string]any{broker.ArgQueueType: broker.QueueTypeQuorum}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conformance(t, tc.args)
		})
	}
}

func conformance(t *testing.T, args map[string]any) {
	brokertest.Run(t, brokertest.Adapter{
		Open: func(t *testing.T) broker.Broker {
			b, err := New(testenv.AMQPURL(), Options{ConnectionName: "amqpbroker-conformance", Logger: slog.New(slog.DiscardHandler),
				MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		Names:          func(t *testing.T, names ...string) { testenv.DeleteQueuesAtCleanup(t, names...) },
		Shared:         true,
		QueueArguments: args,
	})
}
