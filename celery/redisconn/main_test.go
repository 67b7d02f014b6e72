package redisconn

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind (a client or Sentinel connection
// not closed).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
