package sentinelset

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// set is the Sentinel set every test of the package uses, started once by TestMain.
var set *Set

// TestMain starts the Sentinel set through scripts/redis-sentinel.sh (failing the package loudly
// when it cannot), runs the tests, stops the set and fails the package if a test left a goroutine
// behind (a client not closed).
func TestMain(m *testing.M) {
	s, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: the Sentinel tests need the set of scripts/redis-sentinel.sh:", err)
		os.Exit(1)
	}
	set = s
	code := m.Run()
	if err := s.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: stopping the Sentinel set:", err)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL: goroutines left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}
