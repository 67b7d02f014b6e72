package control

import (
	"fmt"
	"regexp"
	"unicode/utf8"
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
// fnmatch.fnmatchcase does (fnmatch.translate's regular expression, full match, DOTALL): '*'
// matches any run of characters ('/' and newlines included), '?' any one character, "[seq]" and
// "[!seq]" a character in or not in seq, where a leading ']' is literal, "a-z" is a range, a range
// whose ends are reversed matches nothing, a '-' first or last is literal, and backslash is an
// ordinary character. A '[' without its ']' is literal.
func fnmatch(name, pat string) bool {
	n, p := []rune(name), []rune(pat)
	// Iterative matching with backtracking to the last '*': linear in practice, never exponential.
	ni, pi := 0, 0
	starP, starN := -1, 0
	for ni < len(n) {
		if pi < len(p) {
			switch p[pi] {
			case '*':
				for pi < len(p) && p[pi] == '*' {
					pi++
				}
				starP, starN = pi, ni
				continue
			case '?':
				ni++
				pi++
				continue
			case '[':
				if ok, next, isClass := matchClass(p, pi, n[ni]); isClass {
					if ok {
						ni++
						pi = next
						continue
					}
					break
				}
				if n[ni] == '[' {
					ni++
					pi++
					continue
				}
			default:
				if n[ni] == p[pi] {
					ni++
					pi++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starN++
		ni, pi = starN, starP
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// matchClass reads the bracket expression starting at p[at] == '['. isClass is false when the '['
// has no closing ']' (it is then a literal). Otherwise ok says whether c is matched and next is
// the index after the closing ']'.
func matchClass(p []rune, at int, c rune) (ok bool, next int, isClass bool) {
	i := at + 1
	// Find the closing ']' as fnmatch.translate does: skip a leading '!', then a leading ']'.
	j := i
	if j < len(p) && p[j] == '!' {
		j++
	}
	if j < len(p) && p[j] == ']' {
		j++
	}
	for j < len(p) && p[j] != ']' {
		j++
	}
	if j >= len(p) {
		return false, 0, false
	}
	set := p[i:j]
	negate := false
	if len(set) > 0 && set[0] == '!' {
		negate = true
		set = set[1:]
	}
	in := false
	for k := 0; k < len(set); {
		lo := set[k]
		if k+2 < len(set) && set[k+1] == '-' {
			hi := set[k+2]
			if lo <= c && c <= hi {
				in = true
			}
			k += 3
			continue
		}
		if c == lo {
			in = true
		}
		k++
	}
	return in != negate, j + 1, true
}
