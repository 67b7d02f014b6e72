package celery

import "testing"

// Celery 5.2's MapRoute: per mapping, exact names first, then patterns containing '*' compiled
// with Python's fnmatch.translate (whole name, case-sensitive); mappings of a list in order.
func TestRoutesMatchLikeCelery(t *testing.T) {
	t.Parallel()
	rs := Routes{
		{Pattern: "ads.*", Queue: "ads"},
		{Pattern: "ads.import_feed", Queue: "ads.import"},
		{Pattern: "d?ag.*", Queue: "question-mark"},
		{Pattern: "d?ag.x", Queue: "no-star-so-exact"},
		{Pattern: "a*b", Queue: "a-star-b"},
		{Pattern: "x.[ab]*", Queue: "set"},
		{Pattern: "y.[!ab]*", Queue: "negated-set"},
		{Pattern: "z.[z-a]*", Queue: "empty-range"},
		{Pattern: "w.[*", Queue: "unclosed-bracket"},
		{Pattern: "first", Queue: "group0", Group: 0},
		{Pattern: "g*", Queue: "group1-glob", Group: 1},
		{Pattern: "gx", Queue: "group2-exact", Group: 2},
		{Pattern: "k*", Queue: "k-first", Group: 3},
		{Pattern: "k**", Queue: "k-same-regex-later", Group: 3},
	}
	for _, tc := range []struct {
		task, queue string
	}{
		{"ads.import_feed", "ads.import"}, // an exact name beats an earlier pattern of its mapping
		{"ads.score", "ads"},
		{"ads.", "ads"},    // '*' may be empty
		{"ads.x/y", "ads"}, // and crosses anything
		{"ADS.score", ""},  // case-sensitive
		{"diag.x", "question-mark"},
		{"d?ag.x", "no-star-so-exact"},
		{"ab", "a-star-b"},
		{"axbyz", ""}, // the whole name must match
		{"x.a1", "set"},
		{"x.c1", ""},
		{"y.c", "negated-set"},
		{"y.a", ""},
		{"z.a", ""},
		{"w.[x", "unclosed-bracket"},
		{"gx", "group1-glob"},        // an earlier mapping's glob wins over a later mapping's exact name
		{"kx", "k-same-regex-later"}, // globs translating alike are one entry with the last route
	} {
		r, ok := rs.Match(tc.task)
		if got := r.Queue; ok != (tc.queue != "") || got != tc.queue {
			t.Errorf("Match(%q) = %q, %v; want %q", tc.task, got, ok, tc.queue)
		}
	}
}
