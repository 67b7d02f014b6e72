package workerops

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves goroutines behind: Stop must end all that Start started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
