package clustertest

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind. Started with
// CLUSTERTEST_POISON_WORKER set, the test binary is instead a Go worker process of the poison
// test (see poisonWorker), which that test kills and starts again.
func TestMain(m *testing.M) {
	if spec := os.Getenv(poisonWorkerEnv); spec != "" {
		os.Exit(poisonWorker(spec))
	}
	goleak.VerifyTestMain(m)
}
