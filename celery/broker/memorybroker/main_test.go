package memorybroker_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind (a consumer that did not end
// with its context or its broker).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
