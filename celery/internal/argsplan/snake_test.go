package argsplan

import "testing"

func TestSnake(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"Feed": "feed", "RowLimit": "row_limit", "URL": "url", "FeedURL": "feed_url", "X": "x"} {
		if got := snake(in); got != want {
			t.Errorf("snake(%q) = %q, want %q", in, got, want)
		}
	}
}
