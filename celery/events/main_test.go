package events

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a Dispatcher, Heartbeat or Receiver left a goroutine behind.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "events: leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}
