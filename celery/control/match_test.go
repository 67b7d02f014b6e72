package control

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestFnmatchAgainstPython: every expectation was produced by Python 3.11's fnmatch.fnmatchcase
// (kombu's glob matcher) and re.match (its pcre matcher).
func TestFnmatchAgainstPython(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, pattern string
		want          bool
	}{
		{"celery@h1", "celery@*", true}, {"celery@h1", "celery@h?", true}, {"celery@h10", "celery@h?", false},
		{"celery@h1", "*", true}, {"", "*", true}, {"", "", true}, {"a", "", false},
		{"celery@h1", "celery@h[0-9]", true}, {"celery@ha", "celery@h[0-9]", false},
		{"celery@ha", "celery@h[!0-9]", true}, {"celery@h1", "celery@h[!0-9]", false},
		{"a]", "[]]]", false}, {"]", "[]]", true}, {"[", "[", true}, {"[ab", "[ab", true}, {"a", "[ab", false},
		{"!", "[!]", false}, {"[!]", "[!]", true}, {"-", "[a-]", true}, {"a", "[a-]", true}, {"-", "[-a]", true},
		{"b", "[z-a]", false}, {"b", "[bz-ac]", true}, {"c", "[bz-ac]", true}, {"z", "[bz-ac]", false},
		{"-", "[c-a-e]", true}, {"e", "[c-a-e]", true}, {"d", "[c-a-e]", false}, {"x", "[!z-a]", true},
		{`a\b`, `a\b`, true}, {`a\b`, `a[\]b`, true}, {"ab", `a\b`, false}, {"a/b", "a*b", true},
		{"a\nb", "a?b", true}, {"a\nb", "a*", true}, {"aXbYc", "a*b*c", true}, {"abc", "a*b*c*d", false},
		{"aaaaaaaaaaaaaaaaaaaaaaaab", "a*a*a*a*a*a*a*b", true}, {"CELERY@h", "celery@*", false},
		{"é", "?", true}, {"日本", "??", true}, {"x-y", "x[--/]y", true}, {"x.y", "x[--/]y", true},
		{"b", "[a--]", false}, {"-", "[a--]", false}, {"a", "[!a-c]", false}, {"d", "[!a-c]", true},
		{"^", "[^a]", true}, {"a", "[^a]", true}, {"&", "[&&]", true}, {"*", "[*]", true}, {"a", "[*]", false},
		{"celery@w1.example.com", "celery@w?.*", true}, {"worker", "w*r*e*r", true}, {"a*", "a[*]", true},
	} {
		if got := fnmatch(tc.name, tc.pattern); got != tc.want {
			t.Errorf("fnmatch(%q, %q) = %v, Python says %v", tc.name, tc.pattern, got, tc.want)
		}
	}
}

func TestMatchers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, pattern, matcher string
		want                   bool
	}{
		{"celery@h1", `celery@h\d`, MatchPCRE, true},
		{"xcelery@h1", "celery", MatchPCRE, false}, // re.match anchors at the start
		{"celery@h1", "h1", MatchPCRE, false},
		{"celery@h1", "celery@(h1|h2)$", MatchPCRE, true},
		{"celery@h12", "celery@(h1|h2)$", MatchPCRE, false},
		{"celery@h1", "a|c", MatchPCRE, true},
		{"CELERY@x", "(?i)celery", MatchPCRE, true},
		{"celery@h1", "celery@*", MatchGlob, true},
	} {
		m, err := compileMatcher(tc.pattern, tc.matcher)
		if err != nil {
			t.Fatalf("compileMatcher(%q, %q): %v", tc.pattern, tc.matcher, err)
		}
		if got := m(tc.name); got != tc.want {
			t.Errorf("%s %q on %q = %v, Python says %v", tc.matcher, tc.pattern, tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct{ pattern, matcher, wantErr string }{
		{"(", MatchPCRE, "pcre pattern"},
		{"x", "regex", "no matcher installed"},
		{"\xff", MatchGlob, "UTF-8"},
	} {
		if _, err := compileMatcher(tc.pattern, tc.matcher); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("compileMatcher(%q, %q) = %v, want an error containing %q", tc.pattern, tc.matcher, err, tc.wantErr)
		}
	}
}

func FuzzFnmatch(f *testing.F) {
	f.Add("celery@h1", "celery@*")
	f.Add("a]", "[]]]")
	f.Add("x-y", "x[--/]y")
	f.Add("aaaaaaaaab", "a*a*a*b")
	f.Fuzz(func(t *testing.T, name, pattern string) {
		if !utf8.ValidString(name) || !utf8.ValidString(pattern) {
			return // node names and patterns come from JSON: always valid text
		}
		got := fnmatch(name, pattern) // must not panic
		if !strings.ContainsAny(pattern, "*?[") && got != (name == pattern) {
			t.Fatalf("literal pattern %q on %q = %v", pattern, name, got)
		}
		if !strings.ContainsAny(name, "*?[") && !fnmatch(name, name) {
			t.Fatalf("%q does not match itself", name)
		}
		if got && !fnmatch(name, "*"+pattern) {
			t.Fatalf("%q matches %q but not *%q", name, pattern, pattern)
		}
		if !fnmatch(name, "*") {
			t.Fatalf("%q does not match *", name)
		}
	})
}
