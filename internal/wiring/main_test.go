package wiring

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind (a broker or backend the wiring opened and did not close).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
