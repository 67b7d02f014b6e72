package amqpbroker

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind (a consumer, acker or amqp091-go's of a connection not closed).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
