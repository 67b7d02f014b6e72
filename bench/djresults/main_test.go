package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves goroutines behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestCheckRefusesBadFlags: a run without a database, results or writers is refused before it
// connects.
func TestCheckRefusesBadFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		dsn  string
		n, c int
		ok   bool
	}{
		{"postgres://x", 10, 1, true},
		{"", 10, 1, false},
		{"postgres://x", 0, 1, false},
		{"postgres://x", 10, 0, false},
	} {
		if err := check(tc.dsn, tc.n, tc.c); (err == nil) != tc.ok {
			t.Errorf("check(%q, %d, %d) = %v; want ok=%v", tc.dsn, tc.n, tc.c, err, tc.ok)
		}
	}
}
