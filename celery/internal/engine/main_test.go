package engine

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind (a worker, consumer, timer or connection not stopped).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
