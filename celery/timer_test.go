package celery

import "testing"

func TestRecentSetForgetsOldest(t *testing.T) {
	t.Parallel()
	s := newRecentSet(3)
	for _, k := range []string{"a", "b", "c", "a", "d"} {
		s.add(k)
	}
	for k, want := range map[string]bool{"a": false, "b": true, "c": true, "d": true, "e": false} {
		if s.has(k) != want {
			t.Errorf("has(%q) = %v, want %v", k, !want, want)
		}
	}
}
