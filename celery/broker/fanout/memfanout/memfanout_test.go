package memfanout

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/forumads/forumads/celery/broker/fanout"
	"github.com/forumads/forumads/celery/broker/fanout/fanouttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestConformance runs the fanout.Transport suite against the in-memory transport.
func TestConformance(t *testing.T) {
	t.Parallel()
	fanouttest.Run(t, fanouttest.Harness{
		New: func(t *testing.T) fanout.Transport {
			tr := New()
			t.Cleanup(func() { _ = tr.Close() })
			return tr
		},
		NoCut: "in memory: there is no connection to lose",
	})
}

func TestTopicMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, key string
		want         bool
	}{
		{"#", "", true}, {"#", "a.b", true}, {"task.*", "task.multi", true}, {"task.*", "task", false},
		{"task.*", "task.a.b", false}, {"task.#", "task", true}, {"*.b.#", "a.b.c.d", true}, {"a", "b", false},
	} {
		if got := topicMatch(split(tc.pattern), split(tc.key)); got != tc.want {
			t.Errorf("topicMatch(%q, %q) = %v, want %v", tc.pattern, tc.key, got, tc.want)
		}
	}
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	start := 0
	for i := range len(s) {
		if s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
