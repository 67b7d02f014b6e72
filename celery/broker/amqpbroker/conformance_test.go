package amqpbroker

import (
	"log/slog"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/brokertest"
	"github.com/forumads/forumads/internal/testenv"
)

// TestConformance runs the broker conformance suite against RabbitMQ.
func TestConformance(t *testing.T) {
	brokertest.Run(t, brokertest.Adapter{
		Open: func(t *testing.T) broker.Broker {
			b, err := New(testenv.AMQPURL(), Options{ConnectionName: "amqpbroker-conformance", Logger: slog.New(slog.DiscardHandler),
				MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		Names:  func(t *testing.T, names ...string) { testenv.DeleteQueuesAtCleanup(t, names...) },
		Shared: true,
	})
}
