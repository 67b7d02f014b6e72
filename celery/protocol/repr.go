package protocol

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ReprMaxSize is the length limit, in characters, Celery applies to the
// argsrepr and kwargsrepr headers (argsrepr_maxsize, kwargsrepr_maxsize) and
// to result reprs in events (resultrepr_maxsize).
const ReprMaxSize = 1024

// invalidRepr stands for a value that is not valid JSON.
const invalidRepr = "<invalid JSON>"

// Repr returns Python's repr() of the value json.loads makes of v: None, True,
// False, ints of any size, floats as Python prints them (1.5, 3.0, 1e+20, inf),
// strings quoted and escaped like Python 3 (non-printable characters as \x, \u
// or \U escapes, printable non-ASCII kept), lists as [a, b] and dicts as
// {'k': v} with Python's duplicate-key rule. There is no length or depth limit;
// see SafeRepr for Celery's truncating form. Invalid JSON gives "<invalid JSON>".
func Repr(v json.RawMessage) string {
	pv, err := parsePyValue(v)
	if err != nil {
		return invalidRepr
	}
	return string(appendRepr(nil, &pv))
}

// ReprArgs returns what Celery puts in the argsrepr header for these
// positional arguments: celery.utils.saferepr of the args tuple, limited to
// ReprMaxSize characters ("()", "(2,)", "(2, 3)").
//
// saferepr is not repr: strings are written between single quotes with only
// the quote escaped (no other escapes, so a newline stays a newline);
// containers nested three levels deep are written as [...] or {...}; and once
// the output reaches the limit, the next element is replaced by ", ..." and
// the open brackets are closed (a long string or number is itself cut at its
// last space within the remaining budget and ends in "..."). The result can
// therefore be a little longer than ReprMaxSize, exactly as in Celery.
func ReprArgs(args []json.RawMessage) string {
	return safeReprArgs(args, ReprMaxSize, true)
}

// ReprKwargs returns what Celery puts in the kwargsrepr header: saferepr of
// the kwargs dict in the given key order (keys missing from order follow,
// sorted), limited like ReprArgs ("{}", "{'a': 1}").
func ReprKwargs(order []string, kwargs map[string]json.RawMessage) string {
	return safeReprKwargs(order, kwargs, ReprMaxSize)
}

// SafeRepr returns celery.utils.saferepr of the value json.loads makes of v,
// limited to maxLen characters as described for ReprArgs; maxLen <= 0 means
// no limit. Celery uses it with ReprMaxSize for result reprs in task-succeeded
// events and logs.
func SafeRepr(v json.RawMessage, maxLen int) string {
	pv, err := parsePyValue(v)
	if err != nil {
		return invalidRepr
	}
	s := newSafeRepr(maxLen)
	s.walk(&pv)
	return string(s.out)
}

func safeReprArgs(args []json.RawMessage, maxLen int, tuple bool) string {
	list := pyValue{kind: pyList, items: make([]pyValue, len(args))}
	for i, a := range args {
		pv, err := parsePyValue(a)
		if err != nil {
			pv = pyValue{kind: pyInvalid}
		}
		list.items[i] = pv
	}
	s := newSafeRepr(maxLen)
	if tuple {
		s.walkTuple(&list)
	} else {
		s.walk(&list)
	}
	return string(s.out)
}

func safeReprKwargs(order []string, kwargs map[string]json.RawMessage, maxLen int) string {
	keys := orderedKeys(order, kwargs)
	dict := pyValue{kind: pyDict, items: make([]pyValue, len(keys)), keys: make([][]rune, len(keys))}
	for i, k := range keys {
		dict.keys[i] = []rune(k)
		pv, err := parsePyValue(kwargs[k])
		if err != nil {
			pv = pyValue{kind: pyInvalid}
		}
		dict.items[i] = pv
	}
	s := newSafeRepr(maxLen)
	s.walk(&dict)
	return string(s.out)
}

type pyKind uint8

const (
	pyNone pyKind = iota
	pyBool
	pyInt
	pyFloat
	pyStr
	pyList
	pyDict
	pyInvalid
)

// pyValue is the value Python's json.loads would build, for repr purposes.
// Strings are code points, lone surrogates included.
type pyValue struct {
	kind  pyKind
	b     bool
	num   string // int digits (normalised) or float repr
	s     []rune
	items []pyValue // list items or dict values
	keys  [][]rune  // dict keys
}

func parsePyValue(raw []byte) (pyValue, error) {
	top, err := topValue(raw)
	if err != nil {
		return pyValue{}, err
	}
	return buildPyValue(top), nil
}

// buildPyValue converts a valid JSON value (depth already bounded by the scan).
func buildPyValue(raw []byte) pyValue {
	switch jsonKind(raw) {
	case 'n':
		return pyValue{kind: pyNone}
	case 't':
		return pyValue{kind: pyBool, b: true}
	case 'f':
		return pyValue{kind: pyBool}
	case '"':
		return pyValue{kind: pyStr, s: codePoints(raw)}
	case '[':
		v := pyValue{kind: pyList}
		_ = eachElem(raw, func(e []byte) error {
			v.items = append(v.items, buildPyValue(e))
			return nil
		})
		return v
	case '{':
		v := pyValue{kind: pyDict}
		var index map[string]int
		_ = eachMember(raw, func(k, e []byte) error {
			key := codePoints(k)
			at := -1
			if index != nil {
				if i, ok := index[string(runeKey(key))]; ok {
					at = i
				}
			} else {
				for i, o := range v.keys {
					if slices.Equal(o, key) {
						at = i
						break
					}
				}
			}
			if at >= 0 {
				v.items[at] = buildPyValue(e)
				return nil
			}
			v.keys = append(v.keys, key)
			v.items = append(v.items, buildPyValue(e))
			if index == nil && len(v.keys) > 16 {
				index = make(map[string]int, 32)
				for i, o := range v.keys {
					index[string(runeKey(o))] = i
				}
			} else if index != nil {
				index[string(runeKey(key))] = len(v.keys) - 1
			}
			return nil
		})
		return v
	default:
		_, isInt, _ := scanNumber(raw, 0)
		if isInt {
			return pyValue{kind: pyInt, num: string(appendPyNumber(nil, raw, true))}
		}
		// Out of range is ±Inf, printed inf/-inf as Python does.
		f, _ := strconv.ParseFloat(string(raw), 64)
		return pyValue{kind: pyFloat, num: string(appendPyFloat(nil, f))}
	}
}

func codePoints(raw []byte) []rune {
	out := make([]rune, 0, len(raw)-2)
	decodeCodePoints(raw, func(r rune) { out = append(out, r) })
	return out
}

func runeKey(r []rune) []byte {
	b := make([]byte, 0, 4*len(r))
	for _, c := range r {
		b = append(b, byte(c>>24), byte(c>>16), byte(c>>8), byte(c))
	}
	return b
}

func appendRepr(dst []byte, v *pyValue) []byte {
	switch v.kind {
	case pyNone:
		return append(dst, "None"...)
	case pyBool:
		if v.b {
			return append(dst, "True"...)
		}
		return append(dst, "False"...)
	case pyInt, pyFloat:
		return append(dst, v.num...)
	case pyStr:
		return appendStrRepr(dst, v.s)
	case pyList:
		dst = append(dst, '[')
		for i := range v.items {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendRepr(dst, &v.items[i])
		}
		return append(dst, ']')
	case pyDict:
		dst = append(dst, '{')
		for i := range v.items {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendStrRepr(dst, v.keys[i])
			dst = append(dst, ": "...)
			dst = appendRepr(dst, &v.items[i])
		}
		return append(dst, '}')
	default:
		return append(dst, invalidRepr...)
	}
}

// appendStrRepr writes Python 3's repr of a str.
func appendStrRepr(dst []byte, s []rune) []byte {
	quote := '\''
	if slices.Contains(s, '\'') && !slices.Contains(s, '"') {
		quote = '"'
	}
	dst = append(dst, byte(quote))
	for _, r := range s {
		switch {
		case r == quote || r == '\\':
			dst = append(dst, '\\', byte(r))
		case r == '\t':
			dst = append(dst, '\\', 't')
		case r == '\n':
			dst = append(dst, '\\', 'n')
		case r == '\r':
			dst = append(dst, '\\', 'r')
		case r < ' ' || r == 0x7f:
			dst = append(dst, '\\', 'x', lowerHex[r>>4], lowerHex[r&0xf])
		case r < 0x7f:
			dst = append(dst, byte(r))
		case pyPrintable(r):
			dst = utf8.AppendRune(dst, r)
		case r <= 0xff:
			dst = append(dst, '\\', 'x', lowerHex[r>>4], lowerHex[r&0xf])
		case r <= 0xffff:
			dst = append(dst, '\\', 'u', lowerHex[r>>12&0xf], lowerHex[r>>8&0xf], lowerHex[r>>4&0xf], lowerHex[r&0xf])
		default:
			dst = append(dst, '\\', 'U')
			for sh := 28; sh >= 0; sh -= 4 {
				dst = append(dst, lowerHex[r>>sh&0xf])
			}
		}
	}
	return append(dst, byte(quote))
}

// pyPrintable matches Python's str.isprintable for one character: Go's
// unicode.IsPrint excludes the same categories (Cc, Cf, Cs, Co, Cn, Zl, Zp and
// Zs other than the space). Both follow their own Unicode version.
func pyPrintable(r rune) bool {
	return (r < 0xd800 || r > 0xdfff) && unicode.IsPrint(r)
}

// safeRepr emulates celery.utils.saferepr: a token stream with a running
// length budget and a nesting limit.
type safeRepr struct {
	out       []byte
	limited   bool
	budget    int // characters left when limited
	maxLevels int
	level     int
	closers   []string
	stopped   bool
}

func newSafeRepr(maxLen int) *safeRepr {
	return &safeRepr{limited: maxLen > 0, budget: maxLen, maxLevels: 3}
}

// over reports whether the budget is spent; if so it writes the ", ..." marker
// and the closing brackets of every open container, and stops the stream.
func (s *safeRepr) over() bool {
	if s.stopped {
		return true
	}
	if !s.limited || s.budget > 0 {
		return false
	}
	s.out = append(s.out, ", ..."...)
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.out = append(s.out, s.closers[i]...)
	}
	s.stopped = true
	return true
}

func (s *safeRepr) emit(text string, chars int) {
	s.out = append(s.out, text...)
	s.budget -= chars
}

// literal writes a bracket or separator; these are never truncated.
func (s *safeRepr) literal(text string) {
	if !s.over() {
		s.emit(text, len(text))
	}
}

func (s *safeRepr) open(open, close string) {
	if s.stopped {
		return
	}
	s.level++
	s.closers = append(s.closers, close)
	s.literal(open)
}

func (s *safeRepr) close() {
	if s.stopped {
		return
	}
	s.level--
	c := s.closers[len(s.closers)-1]
	s.closers = s.closers[:len(s.closers)-1]
	s.literal(c)
}

// text writes a scalar's text, truncated like celery.utils.text.truncate.
func (s *safeRepr) text(t string) {
	if s.over() {
		return
	}
	r := []rune(t)
	r, cut := s.truncate(r)
	out := string(r)
	if cut {
		out += "..."
	}
	s.emit(out, utf8.RuneCountInString(out))
}

// quoted writes a string the saferepr way: '...' with only ' escaped.
func (s *safeRepr) quoted(r []rune) {
	if s.over() {
		return
	}
	r, cut := s.truncate(r)
	var b strings.Builder
	b.WriteByte('\'')
	n := 2
	for _, c := range r {
		if c == '\'' {
			b.WriteByte('\\')
			n++
		}
		b.WriteRune(c)
		n++
	}
	if cut {
		b.WriteString("...")
		n += 3
	}
	b.WriteByte('\'')
	s.emit(b.String(), n)
}

// truncate cuts r to the budget at its last space when it is at least as long
// as the budget (celery.utils.text.truncate); the caller appends "...".
func (s *safeRepr) truncate(r []rune) ([]rune, bool) {
	if !s.limited || len(r) < s.budget {
		return r, false
	}
	r = r[:s.budget]
	for i := len(r) - 1; i >= 0; i-- {
		if r[i] == ' ' {
			return r[:i], true
		}
	}
	return r, true
}

func (s *safeRepr) walk(v *pyValue) {
	if s.stopped {
		return
	}
	switch v.kind {
	case pyNone:
		s.text("None")
	case pyBool:
		if v.b {
			s.text("True")
		} else {
			s.text("False")
		}
	case pyInt, pyFloat:
		s.text(v.num)
	case pyStr:
		s.quoted(v.s)
	case pyList:
		if s.maxLevels > 0 && s.level >= s.maxLevels {
			s.text("[...]")
			return
		}
		s.open("[", "]")
		for i := range v.items {
			if i > 0 {
				s.literal(", ")
			}
			s.walk(&v.items[i])
		}
		s.close()
	case pyDict:
		if s.maxLevels > 0 && s.level >= s.maxLevels {
			s.text("{...}")
			return
		}
		s.open("{", "}")
		for i := range v.items {
			if i > 0 {
				s.literal(", ")
			}
			s.quoted(v.keys[i])
			s.literal(": ")
			s.walk(&v.items[i])
		}
		s.close()
	default:
		s.text(invalidRepr)
	}
}

// walkTuple writes a list as a Python tuple (the args of a task).
func (s *safeRepr) walkTuple(v *pyValue) {
	closer := ")"
	if len(v.items) == 1 {
		closer = ",)"
	}
	s.open("(", closer)
	for i := range v.items {
		if i > 0 {
			s.literal(", ")
		}
		s.walk(&v.items[i])
	}
	s.close()
}
