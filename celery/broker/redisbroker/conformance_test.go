package redisbroker_test

import (
	"testing"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/brokertest"
	"github.com/forumads/forumads/celery/broker/redisbroker"
)

// TestConformance runs package broker's conformance suite on the Redis adapter.
func TestConformance(t *testing.T) {
	t.Parallel()
	brokertest.Run(t, brokertest.Adapter{
		Open: func(t *testing.T) broker.Broker {
			return open(t, redisbroker.Options{VisibilityTimeout: time.Minute})
		},
		Shared: true,
	})
}
