package feed

import (
	"errors"
	"fmt"
	"io"
)

// csv parser states.
const (
	stStart      = iota // at the start of a field
	stUnquoted          // inside an unquoted field
	stQuoted            // inside a quoted field
	stQuoteSeen         // a quote inside a quoted field: the end, or the first of a doubled quote
	stAfterQuote        // after a closing quote: only blanks until ',' or the end of the line
)

// csvParser splits RFC 4180 CSV into records, tracking lines and keeping each record's raw text.
type csvParser struct {
	lr     *lineReader
	fields []string
	cur    []byte
	raw    []byte
}

// read returns the next record's fields, the line it starts on, its raw text and a syntax
// problem ("" when none; then fields are incomplete). Blank lines between records are skipped.
// At the end it returns io.EOF.
func (p *csvParser) read() (fields []string, line int64, raw []byte, problem string, err error) {
	p.fields, p.cur, p.raw = p.fields[:0], p.cur[:0], p.raw[:0]
	st := stStart
	for {
		b, tooLong, err := p.lr.next()
		if errors.Is(err, io.EOF) {
			if line == 0 {
				return nil, 0, nil, "", io.EOF
			}
			return p.fields, line, p.raw, fmt.Sprintf("a quoted field opened on line %d is not closed before the end of the feed", line), nil
		}
		if err != nil {
			return nil, line, p.raw, "", err
		}
		if line == 0 {
			if isBlank(b) {
				continue
			}
			line = p.lr.line
		}
		if tooLong || len(p.raw)+len(b) > MaxRowBytes {
			p.raw = append(p.raw, b[:min(len(b), MaxRawBytes)]...)
			return p.fields, line, p.raw, fmt.Sprintf("row longer than %d bytes", MaxRowBytes), nil
		}
		p.raw = append(p.raw, b...)
		if done, problem := p.scan(b, &st); done {
			return p.fields, line, p.raw, problem, nil
		}
	}
}

// scan parses one physical line, continuing the record in state st. It reports whether the
// record is complete (false: a quoted field goes on on the next line).
func (p *csvParser) scan(b []byte, st *int) (done bool, problem string) {
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch *st {
		case stStart:
			switch c {
			case '"':
				*st = stQuoted
			case ',':
				p.emit(false)
			case '\n':
				p.emit(true)
				return true, ""
			default:
				p.cur = append(p.cur, c)
				*st = stUnquoted
			}
		case stUnquoted:
			switch c {
			case ',':
				p.emit(false)
				*st = stStart
			case '\n':
				p.emit(true)
				return true, ""
			case '"':
				if !isBlank(p.cur) {
					return true, fmt.Sprintf(`a quote (") inside an unquoted field on line %d: quote the whole field and double the quotes inside it`, p.lr.line)
				}
				p.cur = p.cur[:0] // blanks before an opening quote
				*st = stQuoted
			default:
				p.cur = append(p.cur, c)
			}
		case stQuoted:
			if c == '"' {
				*st = stQuoteSeen
			} else {
				p.cur = append(p.cur, c)
			}
		case stQuoteSeen, stAfterQuote:
			switch {
			case c == '"' && *st == stQuoteSeen:
				p.cur = append(p.cur, '"')
				*st = stQuoted
			case c == ',':
				p.emit(false)
				*st = stStart
			case c == '\n':
				p.emit(false)
				return true, ""
			case c == ' ' || c == '\t' || c == '\r':
				*st = stAfterQuote
			default:
				return true, fmt.Sprintf(`unexpected text after the closing quote of a field on line %d`, p.lr.line)
			}
		}
	}
	if *st == stQuoted {
		return false, ""
	}
	p.emit(*st == stUnquoted || *st == stStart)
	return true, ""
}

// emit ends the current field; at the end of a line an unquoted field loses a trailing '\r'.
func (p *csvParser) emit(eol bool) {
	if eol && len(p.cur) > 0 && p.cur[len(p.cur)-1] == '\r' {
		p.cur = p.cur[:len(p.cur)-1]
	}
	p.fields = append(p.fields, string(p.cur))
	p.cur = p.cur[:0]
}
