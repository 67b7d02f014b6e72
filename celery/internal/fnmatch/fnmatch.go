// Package fnmatch matches names against shell glob patterns exactly as Python's
// fnmatch.fnmatchcase does (the regular expression of fnmatch.translate, matched in full, DOTALL,
// case-sensitive). It is the one glob of the library: task_routes patterns and the remote-control
// glob matcher both use it.
//
// The syntax: '*' matches any run of characters ('/' and newlines included), '?' any one
// character, "[seq]" a character in seq and "[!seq]" one not in it. Inside a set a leading ']' is
// literal, "a-z" is a range, a range whose ends are reversed (z-a) matches nothing, a '-' first or
// last is literal, and a backslash is an ordinary character. A '[' without its ']' is a literal
// '['. Names and patterns are read as UTF-8 text, one character a rune.
package fnmatch

import "strings"

// Pattern is a glob read once. The zero value matches only the empty name. It is safe for
// concurrent use.
type Pattern struct {
	p []rune
}

// Compile reads a glob. Every string is a valid glob, so Compile never fails.
func Compile(pattern string) *Pattern { return &Pattern{p: []rune(pattern)} }

// Match reports whether the whole of name matches the pattern.
func (p *Pattern) Match(name string) bool { return match([]rune(name), p.p) }

// Match reports whether name matches the glob pattern, as Python's fnmatch.fnmatchcase(name,
// pattern).
func Match(name, pattern string) bool { return match([]rune(name), []rune(pattern)) }

// match is the matcher: iterative, backtracking to the last '*' only. Every other element takes
// exactly one character, so that is complete; linear in practice, never exponential.
func match(n, p []rune) bool {
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
				if body, negate, next, ok := setAt(p, pi+1); ok {
					if inSet(body, n[ni]) != negate {
						ni++
						pi = next
						continue
					}
					break
				}
				if n[ni] == '[' { // a '[' without its ']' is a literal
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

// setAt reads the set whose '[' is just before p[i]: its members (body, without the '!') and
// whether it is negated. ok is false when the '[' has no closing ']' (it is then a literal); next
// is the index after the closing ']'.
func setAt(p []rune, i int) (body []rune, negate bool, next int, ok bool) {
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
		return nil, false, 0, false
	}
	body = p[i:j]
	if len(body) > 0 && body[0] == '!' {
		negate, body = true, body[1:]
	}
	return body, negate, j + 1, true
}

// member reads the member of a set body at k: the range lo-hi when body[k+1] is a '-' with a
// character after it, else the one character lo == hi. next is the index after it.
func member(body []rune, k int) (lo, hi rune, isRange bool, next int) {
	if k+2 < len(body) && body[k+1] == '-' {
		return body[k], body[k+2], true, k + 3
	}
	return body[k], body[k], false, k + 1
}

// inSet reports whether c is a member of the set body. A reversed range (z-a) has no members, as
// fnmatch.translate drops it.
func inSet(body []rune, c rune) bool {
	for k := 0; k < len(body); {
		lo, hi, _, next := member(body, k)
		if lo <= c && c <= hi {
			return true
		}
		k = next
	}
	return false
}

// String returns the pattern in a canonical form: two patterns have the same String exactly when
// fnmatch.translate gives them the same regular expression ("*" and "**", "?" and "[!z-a]",
// "[z-a]" and "[y-b]"). Celery keys glob routes by that expression, so routes whose globs
// translate alike are one route. The String is a key, not a glob.
func (p *Pattern) String() string {
	var b strings.Builder
	for i := 0; i < len(p.p); {
		c := p.p[i]
		i++
		switch c {
		case '*':
			for i < len(p.p) && p.p[i] == '*' {
				i++
			}
			b.WriteByte('*')
			continue
		case '?':
			b.WriteByte('?')
			continue
		case '[':
			body, negate, next, ok := setAt(p.p, i)
			if !ok {
				break
			}
			i = next
			writeSet(&b, body, negate)
			continue
		}
		if strings.ContainsRune(`*?[\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// writeSet writes a set's canonical form: its members without the reversed ranges; a set left
// with none matches nothing ("[]"), or, negated, any character ("?").
func writeSet(b *strings.Builder, body []rune, negate bool) {
	var members strings.Builder
	for k := 0; k < len(body); {
		lo, hi, isRange, next := member(body, k)
		k = next
		if lo > hi {
			continue
		}
		setRune(&members, lo)
		if isRange {
			members.WriteByte('-')
			setRune(&members, hi)
		}
	}
	switch {
	case members.Len() == 0 && negate:
		b.WriteByte('?')
	case members.Len() == 0:
		b.WriteString("[]")
	default:
		b.WriteByte('[')
		if negate {
			b.WriteByte('!')
		}
		b.WriteString(members.String())
		b.WriteByte(']')
	}
}

func setRune(b *strings.Builder, r rune) {
	if strings.ContainsRune(`\]-!`, r) {
		b.WriteByte('\\')
	}
	b.WriteRune(r)
}
