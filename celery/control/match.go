package control

import (
	"fmt"
	"regexp"
	"unicode/utf8"

	globmatch "github.com/forumads/forumads/celery/internal/fnmatch"
)

// Matchers a request may name with a pattern (kombu.matcher's registry).
const (
	// MatchGlob is Python's fnmatch.fnmatch(node, pattern), case-sensitive as on POSIX.
	MatchGlob = "glob"
	// MatchPCRE is Python's re.match(pattern, node): a match anchored at the start of the node
	// name only. Go's RE2 syntax stands in for Python's re (no look-around, no backreferences); a
	// pattern RE2 cannot compile makes the request malformed.
	MatchPCRE = "pcre"
)

// compileMatcher returns the node filter for pattern under matcher.
func compileMatcher(pattern, matcher string) (func(node string) bool, error) {
	switch matcher {
	case MatchGlob:
		if !utf8.ValidString(pattern) {
			return nil, fmt.Errorf("glob pattern %q is not valid UTF-8", pattern)
		}
		return func(node string) bool { return fnmatch(node, pattern) }, nil
	case MatchPCRE:
		re, err := regexp.Compile(pattern)
		if err != nil {
			return nil, fmt.Errorf("pcre pattern %q: %w", pattern, err)
		}
		return func(node string) bool {
			loc := re.FindStringIndex(node)
			return loc != nil && loc[0] == 0
		}, nil
	}
	return nil, fmt.Errorf("no matcher installed for %q (want %q or %q)", matcher, MatchGlob, MatchPCRE)
}

// fnmatch reports whether name matches the shell pattern pat exactly as Python's
// fnmatch.fnmatchcase does: the library's one glob, celery/internal/fnmatch.
func fnmatch(name, pat string) bool { return globmatch.Match(name, pat) }
