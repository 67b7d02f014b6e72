package amqpwire

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves goroutines behind (the fake
// broker's, or amqp091-go's of a connection not closed).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
