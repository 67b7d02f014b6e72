package celerytest_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: a worker that was not shut
// down, a consumer of RequireSent that did not end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
