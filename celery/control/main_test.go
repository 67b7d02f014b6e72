package control

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves goroutines behind (a mailbox still running, or
// amqp091-go's of a connection not closed).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
