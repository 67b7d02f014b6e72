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

// kind is the type of one element of a compiled pattern.
type kind uint8

const (
	lit   kind = iota // one given character
	any1              // '?': any one character
	star              // '*': any run of characters
	set               // "[...]": one character in (or, negated, not in) the items
	never             // a set that can match no character ("[z-a]")
)

// item is one member of a set: the character lo, or the range lo-hi.
type item struct {
	lo, hi  rune
	isRange bool
}

type token struct {
	kind   kind
	r      rune // lit
	negate bool // set
	items  []item
}

// Pattern is a compiled glob. The zero value matches only the empty name. It is safe for
// concurrent use.
type Pattern struct {
	toks []token
}

// Compile reads a glob. Every string is a valid glob, so Compile never fails.
func Compile(pattern string) *Pattern {
	p := []rune(pattern)
	var toks []token
	for i := 0; i < len(p); {
		c := p[i]
		i++
		switch c {
		case '*':
			if len(toks) == 0 || toks[len(toks)-1].kind != star {
				toks = append(toks, token{kind: star}) // "**" is "*", as fnmatch.translate has it
			}
		case '?':
			toks = append(toks, token{kind: any1})
		case '[':
			t, next, ok := readSet(p, i)
			if !ok {
				toks = append(toks, token{kind: lit, r: '['})
				continue
			}
			toks = append(toks, t)
			i = next
		default:
			toks = append(toks, token{kind: lit, r: c})
		}
	}
	return &Pattern{toks: toks}
}

// readSet reads the set whose '[' is just before p[i]. ok is false when the '[' has no closing
// ']' (it is then a literal). next is the index after the closing ']'.
func readSet(p []rune, i int) (t token, next int, ok bool) {
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
		return token{}, 0, false
	}
	body := p[i:j]
	t.kind = set
	if len(body) > 0 && body[0] == '!' {
		t.negate = true
		body = body[1:]
	}
	for k := 0; k < len(body); {
		if k+2 < len(body) && body[k+1] == '-' {
			if lo, hi := body[k], body[k+2]; lo <= hi { // a reversed range is dropped, as translate does
				t.items = append(t.items, item{lo: lo, hi: hi, isRange: true})
			}
			k += 3
			continue
		}
		t.items = append(t.items, item{lo: body[k], hi: body[k]})
		k++
	}
	switch {
	case len(t.items) == 0 && t.negate:
		return token{kind: any1}, j + 1, true // "[!]" after dropping empty ranges: any character
	case len(t.items) == 0:
		return token{kind: never}, j + 1, true
	}
	return t, j + 1, true
}

// one reports whether the non-star token t matches the character c.
func (t *token) one(c rune) bool {
	switch t.kind {
	case lit:
		return t.r == c
	case any1:
		return true
	case set:
		in := false
		for _, it := range t.items {
			if it.lo <= c && c <= it.hi {
				in = true
				break
			}
		}
		return in != t.negate
	}
	return false
}

// Match reports whether the whole of name matches the pattern.
func (p *Pattern) Match(name string) bool {
	n := []rune(name)
	// Every token but '*' takes exactly one character, so backtracking to the last '*' only is
	// complete: linear in practice, never exponential.
	ni, ti := 0, 0
	starT, starN := -1, 0
	for ni < len(n) {
		if ti < len(p.toks) {
			t := &p.toks[ti]
			if t.kind == star {
				ti++
				starT, starN = ti, ni
				continue
			}
			if t.one(n[ni]) {
				ni++
				ti++
				continue
			}
		}
		if starT < 0 {
			return false
		}
		starN++
		ni, ti = starN, starT
	}
	for ti < len(p.toks) && p.toks[ti].kind == star {
		ti++
	}
	return ti == len(p.toks)
}

// String returns the pattern in a canonical form: two patterns have the same String exactly when
// fnmatch.translate gives them the same regular expression ("*" and "**", "?" and "[!z-a]",
// "[z-a]" and "[y-b]"). Celery keys glob routes by that expression, so routes whose
// globs translate alike are one route.
func (p *Pattern) String() string {
	var b strings.Builder
	for _, t := range p.toks {
		switch t.kind {
		case lit:
			if strings.ContainsRune(`*?[\`, t.r) {
				b.WriteByte('\\')
			}
			b.WriteRune(t.r)
		case any1:
			b.WriteByte('?')
		case star:
			b.WriteByte('*')
		case never:
			b.WriteString("[]")
		case set:
			b.WriteByte('[')
			if t.negate {
				b.WriteByte('!')
			}
			for _, it := range t.items {
				setRune(&b, it.lo)
				if it.isRange {
					b.WriteByte('-')
					setRune(&b, it.hi)
				}
			}
			b.WriteByte(']')
		}
	}
	return b.String()
}

func setRune(b *strings.Builder, r rune) {
	if strings.ContainsRune(`\]-!`, r) {
		b.WriteByte('\\')
	}
	b.WriteRune(r)
}

// Match reports whether name matches the glob pattern, as Python's fnmatch.fnmatchcase(name,
// pattern).
func Match(name, pattern string) bool { return Compile(pattern).Match(name) }
