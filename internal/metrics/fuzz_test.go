package metrics

import (
	"slices"
	"testing"
	"unicode/utf8"
)

// FuzzLabels: whatever a message carries, a label value is valid UTF-8, bounded in length, and
// either the input itself or one of the fixed stand-ins; the dead-letter reason is always one of
// the documented kinds.
func FuzzLabels(f *testing.F) {
	for _, s := range []string{"", "diag.add", "\xff", `NotRegistered: task "x"`, "task failed and x", "rejected by the task",
		"success", "retry", string(make([]byte, 300))} {
		f.Add(s)
	}
	l := newLimiter(3)
	known := newLimiter(3)
	known.setKnown([]string{"diag.add", "ads.score"})
	f.Fuzz(func(t *testing.T, s string) {
		for _, lim := range []*limiter{l, known} {
			v := lim.value(s)
			if !utf8.ValidString(v) || v == "" || len(v) > maxLabelLen {
				t.Fatalf("label value %q for %q is not a valid bounded label", v, s)
			}
			if v != s && v != LabelUnknown && v != LabelOther {
				t.Fatalf("label value %q for %q is neither the input nor a stand-in", v, s)
			}
			if lim.value(s) != v && v != LabelOther {
				t.Fatalf("label value for %q changed from %q", s, v)
			}
		}
		if v := known.value(s); v != LabelUnknown && v != "diag.add" && v != "ads.score" {
			t.Fatalf("a known set let %q through", v)
		}
		if len(l.seen) > 3 {
			t.Fatalf("limiter kept %d values, cap 3", len(l.seen))
		}
		if k := reasonKind(s); k != LabelOther && !slices.Contains(DeadLetterReasons, k) {
			t.Fatalf("reasonKind(%q) = %q, not a documented kind", s, k)
		}
		if o := oneOf(s, Outcomes); o != LabelUnknown && o != s {
			t.Fatalf("oneOf(%q) = %q", s, o)
		}
	})
}
