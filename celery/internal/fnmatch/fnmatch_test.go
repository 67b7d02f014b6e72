package fnmatch

import (
	"path"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestMatchAgainstPython: every expectation was produced by Python 3.11's fnmatch.fnmatchcase(name,
// pattern), the glob of Celery's task_routes (fnmatch.translate) and of kombu's glob matcher.
func TestMatchAgainstPython(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, pattern string
		want          bool
	}{
		{"ads.score", "ads.*", true}, {"ads.", "ads.*", true}, {"ads.x/y", "ads.*", true},
		{"ADS.score", "ads.*", false}, {"diag.x", "d?ag.*", true}, {"ab", "a*b", true},
		{"axbyz", "a*b", false}, {"x.a1", "x.[ab]*", true}, {"x.c1", "x.[ab]*", false},
		{"y.c", "y.[!ab]*", true}, {"y.a", "y.[!ab]*", false}, {"z.a", "z.[z-a]*", false},
		{"w.[x", "w.[*", true}, {"kx", "k**", true}, {"", "*", true},
		{"", "", true}, {"a", "", false}, {"", "?", false},
		{"é", "?", true}, {"日本", "??", true}, {"0\uf5ec00", "?*??00", false}, {"0\uf5ec000", "?*??00", true}, {"celery@h1", "celery@h[0-9]", true},
		{"celery@ha", "celery@h[!0-9]", true}, {"a]", "[]]]", false}, {"]", "[]]", true},
		{"[", "[", true}, {"[ab", "[ab", true}, {"a", "[ab", false},
		{"!", "[!]", false}, {"[!]", "[!]", true}, {"-", "[a-]", true},
		{"a", "[a-]", true}, {"-", "[-a]", true}, {"b", "[z-a]", false},
		{"b", "[bz-ac]", true}, {"c", "[bz-ac]", true}, {"z", "[bz-ac]", false},
		{"-", "[c-a-e]", true}, {"e", "[c-a-e]", true}, {"d", "[c-a-e]", false},
		{"x", "[!z-a]", true}, {"a\\b", "a\\b", true}, {"a\\b", "a[\\]b", true},
		{"ab", "a\\b", false}, {"a/b", "a*b", true}, {"a\nb", "a?b", true},
		{"a\nb", "a*", true}, {"aXbYc", "a*b*c", true}, {"abc", "a*b*c*d", false},
		{"aaaaaaaaaaaaaaaaaaaaaaaab", "a*a*a*a*a*a*a*b", true}, {"x-y", "x[--/]y", true}, {"x.y", "x[--/]y", true},
		{"b", "[a--]", false}, {"-", "[a--]", false}, {"a", "[!a-c]", false},
		{"d", "[!a-c]", true}, {"^", "[^a]", true}, {"a", "[^a]", true},
		{"b", "[^a]", false}, {"&", "[&&]", true}, {"~", "[~~]", true},
		{"|", "[a||]", true}, {"*", "[*]", true}, {"a", "[*]", false},
		{"a*", "a[*]", true}, {"-", "[!--/]", false}, {".", "[!--/]", false},
		{"0", "[!--/]", true}, {"c", "[a-b-d]", false}, {"-", "[a-b-d]", true},
		{"b", "[a-cz-ab-d]", true}, {"d", "[a-cz-ab-d]", true}, {"z", "[a-cz-ab-d]", false},
		{"-", "[x-c-a]", true}, {"a", "[x-c-a]", true}, {"b", "[x-c-a]", false},
		{"[", "[[]", true}, {"]", "[!]]", false}, {"a", "[!]]", true},
		{"a]", "[!]]]", true}, {"[]", "[]", true}, {"[a]", "[]a]", false},
		{"]", "[]-a]", true}, {"^", "[]-a]", true}, {"b", "[]-a]", false},
		{"\\", "[\\-a]", true}, {"_", "[\\-a]", true}, {"aXb", "a[!]b", false},
		{"a[!]b", "a[!]b", true}, {"ab", "a**b", true}, {"a", "**", true},
		{"abcabd", "*abd", true}, {"abcab", "*ab*ab", true}, {"mississippi", "*sip*", true},
		{"ads.import_feed", "ads.*_feed", true}, {"ads.import", "ads.*_feed", false}, {"tasks.a.b", "tasks.*.b", true},
		{"😀x", "?x", true}, {"é", "[à-ê]", true}, {"è", "[!é]", true},
		{"(", "(*", true}, {"a+", "a+", true}, {"aa", "a+", false},
		{"a.b", "a.b", true}, {"axb", "a.b", false}, {"$", "$", true},
		{"a{2}", "a{2}", true},
	} {
		if got := Match(tc.name, tc.pattern); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, Python says %v", tc.name, tc.pattern, got, tc.want)
		}
	}
}

// TestStringIsTranslateEquality: two patterns have the same String exactly when Python 3.11's
// fnmatch.translate returns the same regular expression for both (every pair of the list below,
// the expectation printed by Python).
func TestStringIsTranslateEquality(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"*", "**", true}, {"*", "a*", false}, {"*", "a**b", false}, {"*", "a*b", false},
		{"*", "?", false}, {"*", "[!z-a]", false}, {"*", "[z-a]", false}, {"*", "[y-b]", false},
		{"*", "[a]", false}, {"*", "a", false}, {"*", "[ab]", false}, {"*", "[ba]", false},
		{"*", "[az-ab]", false}, {"*", "[!a]", false}, {"*", "[^a]", false}, {"*", "[a-c]", false},
		{"*", "[a-cz-ab-d]", false}, {"*", "[a-cb-d]", false}, {"*", "[-a]", false}, {"*", "[a-]", false},
		{"*", "[!]", false}, {"*", "[]]", false}, {"*", "[]", false}, {"*", "x[!z-a]y", false},
		{"*", "x?y", false}, {"*", "k*", false}, {"*", "k***", false}, {"*", "[a-a]", false},
		{"*", "[x-c-a]", false}, {"*", "[\\-a]", false}, {"**", "a*", false}, {"**", "a**b", false},
		{"**", "a*b", false}, {"**", "?", false}, {"**", "[!z-a]", false}, {"**", "[z-a]", false},
		{"**", "[y-b]", false}, {"**", "[a]", false}, {"**", "a", false}, {"**", "[ab]", false},
		{"**", "[ba]", false}, {"**", "[az-ab]", false}, {"**", "[!a]", false}, {"**", "[^a]", false},
		{"**", "[a-c]", false}, {"**", "[a-cz-ab-d]", false}, {"**", "[a-cb-d]", false}, {"**", "[-a]", false},
		{"**", "[a-]", false}, {"**", "[!]", false}, {"**", "[]]", false}, {"**", "[]", false},
		{"**", "x[!z-a]y", false}, {"**", "x?y", false}, {"**", "k*", false}, {"**", "k***", false},
		{"**", "[a-a]", false}, {"**", "[x-c-a]", false}, {"**", "[\\-a]", false}, {"a*", "a**b", false},
		{"a*", "a*b", false}, {"a*", "?", false}, {"a*", "[!z-a]", false}, {"a*", "[z-a]", false},
		{"a*", "[y-b]", false}, {"a*", "[a]", false}, {"a*", "a", false}, {"a*", "[ab]", false},
		{"a*", "[ba]", false}, {"a*", "[az-ab]", false}, {"a*", "[!a]", false}, {"a*", "[^a]", false},
		{"a*", "[a-c]", false}, {"a*", "[a-cz-ab-d]", false}, {"a*", "[a-cb-d]", false}, {"a*", "[-a]", false},
		{"a*", "[a-]", false}, {"a*", "[!]", false}, {"a*", "[]]", false}, {"a*", "[]", false},
		{"a*", "x[!z-a]y", false}, {"a*", "x?y", false}, {"a*", "k*", false}, {"a*", "k***", false},
		{"a*", "[a-a]", false}, {"a*", "[x-c-a]", false}, {"a*", "[\\-a]", false}, {"a**b", "a*b", true},
		{"a**b", "?", false}, {"a**b", "[!z-a]", false}, {"a**b", "[z-a]", false}, {"a**b", "[y-b]", false},
		{"a**b", "[a]", false}, {"a**b", "a", false}, {"a**b", "[ab]", false}, {"a**b", "[ba]", false},
		{"a**b", "[az-ab]", false}, {"a**b", "[!a]", false}, {"a**b", "[^a]", false}, {"a**b", "[a-c]", false},
		{"a**b", "[a-cz-ab-d]", false}, {"a**b", "[a-cb-d]", false}, {"a**b", "[-a]", false}, {"a**b", "[a-]", false},
		{"a**b", "[!]", false}, {"a**b", "[]]", false}, {"a**b", "[]", false}, {"a**b", "x[!z-a]y", false},
		{"a**b", "x?y", false}, {"a**b", "k*", false}, {"a**b", "k***", false}, {"a**b", "[a-a]", false},
		{"a**b", "[x-c-a]", false}, {"a**b", "[\\-a]", false}, {"a*b", "?", false}, {"a*b", "[!z-a]", false},
		{"a*b", "[z-a]", false}, {"a*b", "[y-b]", false}, {"a*b", "[a]", false}, {"a*b", "a", false},
		{"a*b", "[ab]", false}, {"a*b", "[ba]", false}, {"a*b", "[az-ab]", false}, {"a*b", "[!a]", false},
		{"a*b", "[^a]", false}, {"a*b", "[a-c]", false}, {"a*b", "[a-cz-ab-d]", false}, {"a*b", "[a-cb-d]", false},
		{"a*b", "[-a]", false}, {"a*b", "[a-]", false}, {"a*b", "[!]", false}, {"a*b", "[]]", false},
		{"a*b", "[]", false}, {"a*b", "x[!z-a]y", false}, {"a*b", "x?y", false}, {"a*b", "k*", false},
		{"a*b", "k***", false}, {"a*b", "[a-a]", false}, {"a*b", "[x-c-a]", false}, {"a*b", "[\\-a]", false},
		{"?", "[!z-a]", true}, {"?", "[z-a]", false}, {"?", "[y-b]", false}, {"?", "[a]", false},
		{"?", "a", false}, {"?", "[ab]", false}, {"?", "[ba]", false}, {"?", "[az-ab]", false},
		{"?", "[!a]", false}, {"?", "[^a]", false}, {"?", "[a-c]", false}, {"?", "[a-cz-ab-d]", false},
		{"?", "[a-cb-d]", false}, {"?", "[-a]", false}, {"?", "[a-]", false}, {"?", "[!]", false},
		{"?", "[]]", false}, {"?", "[]", false}, {"?", "x[!z-a]y", false}, {"?", "x?y", false},
		{"?", "k*", false}, {"?", "k***", false}, {"?", "[a-a]", false}, {"?", "[x-c-a]", false},
		{"?", "[\\-a]", false}, {"[!z-a]", "[z-a]", false}, {"[!z-a]", "[y-b]", false}, {"[!z-a]", "[a]", false},
		{"[!z-a]", "a", false}, {"[!z-a]", "[ab]", false}, {"[!z-a]", "[ba]", false}, {"[!z-a]", "[az-ab]", false},
		{"[!z-a]", "[!a]", false}, {"[!z-a]", "[^a]", false}, {"[!z-a]", "[a-c]", false}, {"[!z-a]", "[a-cz-ab-d]", false},
		{"[!z-a]", "[a-cb-d]", false}, {"[!z-a]", "[-a]", false}, {"[!z-a]", "[a-]", false}, {"[!z-a]", "[!]", false},
		{"[!z-a]", "[]]", false}, {"[!z-a]", "[]", false}, {"[!z-a]", "x[!z-a]y", false}, {"[!z-a]", "x?y", false},
		{"[!z-a]", "k*", false}, {"[!z-a]", "k***", false}, {"[!z-a]", "[a-a]", false}, {"[!z-a]", "[x-c-a]", false},
		{"[!z-a]", "[\\-a]", false}, {"[z-a]", "[y-b]", true}, {"[z-a]", "[a]", false}, {"[z-a]", "a", false},
		{"[z-a]", "[ab]", false}, {"[z-a]", "[ba]", false}, {"[z-a]", "[az-ab]", false}, {"[z-a]", "[!a]", false},
		{"[z-a]", "[^a]", false}, {"[z-a]", "[a-c]", false}, {"[z-a]", "[a-cz-ab-d]", false}, {"[z-a]", "[a-cb-d]", false},
		{"[z-a]", "[-a]", false}, {"[z-a]", "[a-]", false}, {"[z-a]", "[!]", false}, {"[z-a]", "[]]", false},
		{"[z-a]", "[]", false}, {"[z-a]", "x[!z-a]y", false}, {"[z-a]", "x?y", false}, {"[z-a]", "k*", false},
		{"[z-a]", "k***", false}, {"[z-a]", "[a-a]", false}, {"[z-a]", "[x-c-a]", false}, {"[z-a]", "[\\-a]", false},
		{"[y-b]", "[a]", false}, {"[y-b]", "a", false}, {"[y-b]", "[ab]", false}, {"[y-b]", "[ba]", false},
		{"[y-b]", "[az-ab]", false}, {"[y-b]", "[!a]", false}, {"[y-b]", "[^a]", false}, {"[y-b]", "[a-c]", false},
		{"[y-b]", "[a-cz-ab-d]", false}, {"[y-b]", "[a-cb-d]", false}, {"[y-b]", "[-a]", false}, {"[y-b]", "[a-]", false},
		{"[y-b]", "[!]", false}, {"[y-b]", "[]]", false}, {"[y-b]", "[]", false}, {"[y-b]", "x[!z-a]y", false},
		{"[y-b]", "x?y", false}, {"[y-b]", "k*", false}, {"[y-b]", "k***", false}, {"[y-b]", "[a-a]", false},
		{"[y-b]", "[x-c-a]", false}, {"[y-b]", "[\\-a]", false}, {"[a]", "a", false}, {"[a]", "[ab]", false},
		{"[a]", "[ba]", false}, {"[a]", "[az-ab]", false}, {"[a]", "[!a]", false}, {"[a]", "[^a]", false},
		{"[a]", "[a-c]", false}, {"[a]", "[a-cz-ab-d]", false}, {"[a]", "[a-cb-d]", false}, {"[a]", "[-a]", false},
		{"[a]", "[a-]", false}, {"[a]", "[!]", false}, {"[a]", "[]]", false}, {"[a]", "[]", false},
		{"[a]", "x[!z-a]y", false}, {"[a]", "x?y", false}, {"[a]", "k*", false}, {"[a]", "k***", false},
		{"[a]", "[a-a]", false}, {"[a]", "[x-c-a]", false}, {"[a]", "[\\-a]", false}, {"a", "[ab]", false},
		{"a", "[ba]", false}, {"a", "[az-ab]", false}, {"a", "[!a]", false}, {"a", "[^a]", false},
		{"a", "[a-c]", false}, {"a", "[a-cz-ab-d]", false}, {"a", "[a-cb-d]", false}, {"a", "[-a]", false},
		{"a", "[a-]", false}, {"a", "[!]", false}, {"a", "[]]", false}, {"a", "[]", false},
		{"a", "x[!z-a]y", false}, {"a", "x?y", false}, {"a", "k*", false}, {"a", "k***", false},
		{"a", "[a-a]", false}, {"a", "[x-c-a]", false}, {"a", "[\\-a]", false}, {"[ab]", "[ba]", false},
		{"[ab]", "[az-ab]", true}, {"[ab]", "[!a]", false}, {"[ab]", "[^a]", false}, {"[ab]", "[a-c]", false},
		{"[ab]", "[a-cz-ab-d]", false}, {"[ab]", "[a-cb-d]", false}, {"[ab]", "[-a]", false}, {"[ab]", "[a-]", false},
		{"[ab]", "[!]", false}, {"[ab]", "[]]", false}, {"[ab]", "[]", false}, {"[ab]", "x[!z-a]y", false},
		{"[ab]", "x?y", false}, {"[ab]", "k*", false}, {"[ab]", "k***", false}, {"[ab]", "[a-a]", false},
		{"[ab]", "[x-c-a]", false}, {"[ab]", "[\\-a]", false}, {"[ba]", "[az-ab]", false}, {"[ba]", "[!a]", false},
		{"[ba]", "[^a]", false}, {"[ba]", "[a-c]", false}, {"[ba]", "[a-cz-ab-d]", false}, {"[ba]", "[a-cb-d]", false},
		{"[ba]", "[-a]", false}, {"[ba]", "[a-]", false}, {"[ba]", "[!]", false}, {"[ba]", "[]]", false},
		{"[ba]", "[]", false}, {"[ba]", "x[!z-a]y", false}, {"[ba]", "x?y", false}, {"[ba]", "k*", false},
		{"[ba]", "k***", false}, {"[ba]", "[a-a]", false}, {"[ba]", "[x-c-a]", false}, {"[ba]", "[\\-a]", false},
		{"[az-ab]", "[!a]", false}, {"[az-ab]", "[^a]", false}, {"[az-ab]", "[a-c]", false}, {"[az-ab]", "[a-cz-ab-d]", false},
		{"[az-ab]", "[a-cb-d]", false}, {"[az-ab]", "[-a]", false}, {"[az-ab]", "[a-]", false}, {"[az-ab]", "[!]", false},
		{"[az-ab]", "[]]", false}, {"[az-ab]", "[]", false}, {"[az-ab]", "x[!z-a]y", false}, {"[az-ab]", "x?y", false},
		{"[az-ab]", "k*", false}, {"[az-ab]", "k***", false}, {"[az-ab]", "[a-a]", false}, {"[az-ab]", "[x-c-a]", false},
		{"[az-ab]", "[\\-a]", false}, {"[!a]", "[^a]", false}, {"[!a]", "[a-c]", false}, {"[!a]", "[a-cz-ab-d]", false},
		{"[!a]", "[a-cb-d]", false}, {"[!a]", "[-a]", false}, {"[!a]", "[a-]", false}, {"[!a]", "[!]", false},
		{"[!a]", "[]]", false}, {"[!a]", "[]", false}, {"[!a]", "x[!z-a]y", false}, {"[!a]", "x?y", false},
		{"[!a]", "k*", false}, {"[!a]", "k***", false}, {"[!a]", "[a-a]", false}, {"[!a]", "[x-c-a]", false},
		{"[!a]", "[\\-a]", false}, {"[^a]", "[a-c]", false}, {"[^a]", "[a-cz-ab-d]", false}, {"[^a]", "[a-cb-d]", false},
		{"[^a]", "[-a]", false}, {"[^a]", "[a-]", false}, {"[^a]", "[!]", false}, {"[^a]", "[]]", false},
		{"[^a]", "[]", false}, {"[^a]", "x[!z-a]y", false}, {"[^a]", "x?y", false}, {"[^a]", "k*", false},
		{"[^a]", "k***", false}, {"[^a]", "[a-a]", false}, {"[^a]", "[x-c-a]", false}, {"[^a]", "[\\-a]", false},
		{"[a-c]", "[a-cz-ab-d]", false}, {"[a-c]", "[a-cb-d]", false}, {"[a-c]", "[-a]", false}, {"[a-c]", "[a-]", false},
		{"[a-c]", "[!]", false}, {"[a-c]", "[]]", false}, {"[a-c]", "[]", false}, {"[a-c]", "x[!z-a]y", false},
		{"[a-c]", "x?y", false}, {"[a-c]", "k*", false}, {"[a-c]", "k***", false}, {"[a-c]", "[a-a]", false},
		{"[a-c]", "[x-c-a]", false}, {"[a-c]", "[\\-a]", false}, {"[a-cz-ab-d]", "[a-cb-d]", true}, {"[a-cz-ab-d]", "[-a]", false},
		{"[a-cz-ab-d]", "[a-]", false}, {"[a-cz-ab-d]", "[!]", false}, {"[a-cz-ab-d]", "[]]", false}, {"[a-cz-ab-d]", "[]", false},
		{"[a-cz-ab-d]", "x[!z-a]y", false}, {"[a-cz-ab-d]", "x?y", false}, {"[a-cz-ab-d]", "k*", false}, {"[a-cz-ab-d]", "k***", false},
		{"[a-cz-ab-d]", "[a-a]", false}, {"[a-cz-ab-d]", "[x-c-a]", false}, {"[a-cz-ab-d]", "[\\-a]", false}, {"[a-cb-d]", "[-a]", false},
		{"[a-cb-d]", "[a-]", false}, {"[a-cb-d]", "[!]", false}, {"[a-cb-d]", "[]]", false}, {"[a-cb-d]", "[]", false},
		{"[a-cb-d]", "x[!z-a]y", false}, {"[a-cb-d]", "x?y", false}, {"[a-cb-d]", "k*", false}, {"[a-cb-d]", "k***", false},
		{"[a-cb-d]", "[a-a]", false}, {"[a-cb-d]", "[x-c-a]", false}, {"[a-cb-d]", "[\\-a]", false}, {"[-a]", "[a-]", false},
		{"[-a]", "[!]", false}, {"[-a]", "[]]", false}, {"[-a]", "[]", false}, {"[-a]", "x[!z-a]y", false},
		{"[-a]", "x?y", false}, {"[-a]", "k*", false}, {"[-a]", "k***", false}, {"[-a]", "[a-a]", false},
		{"[-a]", "[x-c-a]", true}, {"[-a]", "[\\-a]", false}, {"[a-]", "[!]", false}, {"[a-]", "[]]", false},
		{"[a-]", "[]", false}, {"[a-]", "x[!z-a]y", false}, {"[a-]", "x?y", false}, {"[a-]", "k*", false},
		{"[a-]", "k***", false}, {"[a-]", "[a-a]", false}, {"[a-]", "[x-c-a]", false}, {"[a-]", "[\\-a]", false},
		{"[!]", "[]]", false}, {"[!]", "[]", false}, {"[!]", "x[!z-a]y", false}, {"[!]", "x?y", false},
		{"[!]", "k*", false}, {"[!]", "k***", false}, {"[!]", "[a-a]", false}, {"[!]", "[x-c-a]", false},
		{"[!]", "[\\-a]", false}, {"[]]", "[]", false}, {"[]]", "x[!z-a]y", false}, {"[]]", "x?y", false},
		{"[]]", "k*", false}, {"[]]", "k***", false}, {"[]]", "[a-a]", false}, {"[]]", "[x-c-a]", false},
		{"[]]", "[\\-a]", false}, {"[]", "x[!z-a]y", false}, {"[]", "x?y", false}, {"[]", "k*", false},
		{"[]", "k***", false}, {"[]", "[a-a]", false}, {"[]", "[x-c-a]", false}, {"[]", "[\\-a]", false},
		{"x[!z-a]y", "x?y", true}, {"x[!z-a]y", "k*", false}, {"x[!z-a]y", "k***", false}, {"x[!z-a]y", "[a-a]", false},
		{"x[!z-a]y", "[x-c-a]", false}, {"x[!z-a]y", "[\\-a]", false}, {"x?y", "k*", false}, {"x?y", "k***", false},
		{"x?y", "[a-a]", false}, {"x?y", "[x-c-a]", false}, {"x?y", "[\\-a]", false}, {"k*", "k***", true},
		{"k*", "[a-a]", false}, {"k*", "[x-c-a]", false}, {"k*", "[\\-a]", false}, {"k***", "[a-a]", false},
		{"k***", "[x-c-a]", false}, {"k***", "[\\-a]", false}, {"[a-a]", "[x-c-a]", false}, {"[a-a]", "[\\-a]", false},
		{"[x-c-a]", "[\\-a]", false},
	} {
		ka, kb := Compile(tc.a).String(), Compile(tc.b).String()
		if (ka == kb) != tc.same {
			t.Errorf("String(%q) = %q, String(%q) = %q; Python's translate says alike = %v", tc.a, ka, tc.b, kb, tc.same)
		}
	}
}

// TestZeroPatternMatchesOnlyEmpty: the zero Pattern is the empty glob.
func TestZeroPatternMatchesOnlyEmpty(t *testing.T) {
	t.Parallel()
	var p Pattern
	if !p.Match("") || p.Match("a") {
		t.Fatalf("zero Pattern: Match(\"\") = %v, Match(\"a\") = %v; want true, false", p.Match(""), p.Match("a"))
	}
}

// pathComparable reports whether path.Match gives pattern and name fnmatch's meaning: no '/' in
// the name ('*' and '?' stop at '/' there), no '\\' (an escape there), no '!' or '^' (negation
// is "[^" there, a literal '!' in fnmatch's "[!"), valid UTF-8, and a pattern path.Match accepts
// (it refuses an unclosed '[', a ']' or '-' where fnmatch reads them literally, and "[]").
//
// Nor a '*' before a multi-byte rune of the name: path.Match retries the rest of the pattern after
// '*' at every byte offset, so a '?' can start inside a rune and take one of its bytes
// (path.Match("?*??00", "0\uf5ec00") is true; Python's fnmatchcase and Match say false: 4 runes
// cannot fill 5 places).
func pathComparable(name, pattern string) bool {
	if strings.ContainsRune(name, '/') || strings.ContainsAny(pattern, `\!^`) ||
		!utf8.ValidString(name) || !utf8.ValidString(pattern) {
		return false
	}
	if strings.Contains(pattern, "*") && strings.ContainsFunc(name, func(r rune) bool { return r >= utf8.RuneSelf }) {
		return false
	}
	_, err := path.Match(pattern, name)
	return err == nil
}

// FuzzMatch: Match never panics; agrees with path.Match wherever the two syntaxes mean the same;
// a pattern without special characters matches only itself; '*' matches everything; a match of p
// is a match of "*"+p; and "*"+p and "**"+p have
// the same String and the same matches.
func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{{"ads.score", "ads.*"}, {"a]", "[]]]"}, {"x-y", "x[--/]y"},
		{"aaaaaaaaab", "a*a*a*b"}, {"w.[x", "w.[*"}, {"z", "[a-cz-ab-d]"}, {"é", "[à-ê]"}, {"ab", "[a-c]?"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, name, pattern string) {
		p := Compile(pattern)
		got := p.Match(name)
		if pathComparable(name, pattern) {
			if want, _ := path.Match(pattern, name); got != want {
				t.Fatalf("Match(%q, %q) = %v, path.Match says %v", name, pattern, got, want)
			}
		}
		if utf8.ValidString(pattern) && utf8.ValidString(name) && !strings.ContainsAny(pattern, "*?[") && got != (name == pattern) {
			t.Fatalf("literal pattern %q on %q = %v", pattern, name, got)
		}
		if !Match(name, "*") {
			t.Fatalf("%q does not match *", name)
		}
		if got && !Match(name, "*"+pattern) {
			t.Fatalf("%q matches %q but not *%q", name, pattern, pattern)
		}
		one, two := Compile("*"+pattern), Compile("**"+pattern)
		if one.String() != two.String() || one.Match(name) != two.Match(name) {
			t.Fatalf("*%q and **%q: String %q and %q, matching %q = %v and %v",
				pattern, pattern, one.String(), two.String(), name, one.Match(name), two.Match(name))
		}
	})
}

func BenchmarkMatch(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if !Match("celery@worker-17.example.com", "celery@worker-[0-9]*.*.com") {
			b.Fatal("no match")
		}
	}
}

// FuzzCompile (moved from celery's FuzzGlobToRegexp when the routes' glob moved here): every
// pattern compiles and matches without panicking, and a valid UTF-8 pattern without special
// characters matches itself.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{"ads.*", "a[!b-d]*", "[", "[]]*", "[!]", "x[z-a]", "\\*", "é*😀", "\xff"} {
		f.Add(s, "ads.x")
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		p := Compile(pattern)
		_ = p.Match(name)
		if !strings.ContainsAny(pattern, "*?[") && utf8.ValidString(pattern) && !p.Match(pattern) {
			t.Fatalf("literal pattern %q does not match itself", pattern)
		}
	})
}
