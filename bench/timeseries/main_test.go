package main

import (
	"fmt"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves goroutines behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseStatusKB(t *testing.T) {
	t.Parallel()
	const status = "Name:\ttimeseries\nVmPeak:\t 1288244 kB\nVmHWM:\t   43012 kB\nVmRSS:\t   40960 kB\n"
	for _, tc := range []struct {
		name, status string
		want         int64
		ok           bool
	}{
		{"hwm", status, 43012, true},
		{"last line without newline", "VmHWM:\t7 kB", 7, true},
		{"missing", "Name:\tx\n", 0, false},
		{"not kB", "VmHWM:\t12 MB\n", 0, false},
		{"not a number", "VmHWM:\tlots kB\n", 0, false},
		{"negative", "VmHWM:\t-5 kB\n", 0, false},
		{"empty", "", 0, false},
	} {
		got, err := parseStatusKB(tc.status, "VmHWM")
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%s: %d, %v; want %d (ok %v)", tc.name, got, err, tc.want, tc.ok)
		}
	}
}

// FuzzParseStatusKB: any input gives a non-negative size or an error naming the field, and a
// well-formed line appended to input lacking the field is read back exactly.
func FuzzParseStatusKB(f *testing.F) {
	f.Add("VmHWM:\t   43012 kB\n", int64(1))
	f.Add("VmHWM:\t12 MB\n", int64(0))
	f.Add("", int64(9223372036854775807))
	f.Fuzz(func(t *testing.T, status string, v int64) {
		got, err := parseStatusKB(status, "VmHWM")
		if err != nil && !strings.Contains(err.Error(), "VmHWM") {
			t.Fatalf("error without the field's name: %v", err)
		}
		if err == nil && got < 0 {
			t.Fatalf("negative size %d", got)
		}
		if v < 0 || strings.Contains(status, "VmHWM:") {
			return
		}
		doc := status
		if doc != "" && !strings.HasSuffix(doc, "\n") {
			doc += "\n"
		}
		doc += fmt.Sprintf("VmHWM:\t%8d kB\n", v)
		if got, err := parseStatusKB(doc, "VmHWM"); err != nil || got != v {
			t.Fatalf("round trip of %d through %q: %d, %v", v, doc, got, err)
		}
	})
}
