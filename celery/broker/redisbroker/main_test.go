package redisbroker_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind (a consumer or the maintenance
// loop of a Broker not closed, a subscription not ended).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
