package revoke

import "testing"

func TestParseSignal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		num      int
	}{
		{"", "SIGTERM", 15}, {"TERM", "SIGTERM", 15}, {"SIGKILL", "SIGKILL", 9}, {"9", "SIGKILL", 9},
		{"IOT", "SIGIOT", 6}, {"6", "SIGABRT", 6}, {"SIGUSR1", "SIGUSR1", 10},
	} {
		got, err := ParseSignal(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSignal(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if n, err := SignalNumber(got); err != nil || n != tc.num {
			t.Errorf("SignalNumber(%q) = %d, %v; want %d", got, n, err, tc.num)
		}
	}
	for _, bad := range []string{"kill", "SIGNOPE", "0", "65", "-9", "SIG"} {
		if got, err := ParseSignal(bad); err == nil {
			t.Errorf("ParseSignal(%q) = %q", bad, got)
		}
	}
	if _, err := SignalNumber("TERM"); err == nil {
		t.Error("SignalNumber takes canonical names only")
	}
}
