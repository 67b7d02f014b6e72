package beatops

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves goroutines behind (closeSent must stop the dispatcher).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
