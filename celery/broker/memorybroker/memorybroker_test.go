package memorybroker_test

import (
	"testing"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/brokertest"
	"github.com/forumads/forumads/celery/broker/memorybroker"
)

func TestConformance(t *testing.T) {
	brokertest.Run(t, brokertest.Adapter{Open: func(*testing.T) broker.Broker { return memorybroker.New() }})
}

func TestTopicMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, key string
		want         bool
	}{
		{"a.b", "a.b", true},
		{"a.*", "a.b", true},
		{"a.*", "a.b.c", false},
		{"a.*", "a", false},
		{"a.#", "a", true},
		{"a.#", "a.b.c", true},
		{"#", "", true},
		{"#", "x.y", true},
		{"*.b.#", "a.b", true},
		{"*.b.#", "b", false},
		{"#.c", "a.b.c", true},
		{"#.c", "a.b", false},
		{"a.#.c", "a.c", true},
	} {
		if got := memorybroker.TopicMatch(tc.pattern, tc.key); got != tc.want {
			t.Errorf("TopicMatch(%q, %q) = %v, want %v", tc.pattern, tc.key, got, tc.want)
		}
	}
}
