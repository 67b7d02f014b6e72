package workerctl

import "testing"

// TestTransportName: inspect stats and report name the transport of broker_url as kombu does,
// instead of always "amqp".
func TestTransportName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, want string }{
		{"amqp://guest:guest@127.0.0.1:5672//", "amqp"},
		{"amqps://u:p@h:5671/vh", "amqp"},
		{"pyamqp://h//", "pyamqp"},
		{"AMQP://h//", "amqp"},
		{"memory://", "memory"},
		{"redis://127.0.0.1:6379/0", "redis"},
		{" amqp://a//;memory://", "amqp"},
		{"", "amqp"},
		{"no-scheme", "amqp"},
	} {
		if got := transportName(tc.url); got != tc.want {
			t.Errorf("transportName(%q) = %q, want %q", tc.url, got, tc.want)
		}
		if got := brokerInfo(tc.url)["transport"]; got != tc.want {
			t.Errorf("brokerInfo(%q) transport = %v, want %q", tc.url, got, tc.want)
		}
	}
}
