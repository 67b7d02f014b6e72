package feed

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// lineReader reads physical lines, at most max bytes of each.
type lineReader struct {
	br   *bufio.Reader
	line int64 // lines returned so far: the number of the last one
	max  int
	buf  []byte
	bom  bool // the start has been checked for a byte order mark
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10), max: max}
}

// next returns the next line with its '\n' (absent on the last line when the input does not
// end with one). The slice is valid until the next call. When the line is longer than max,
// its first max bytes are returned with tooLong set and the rest is consumed.
func (l *lineReader) next() (line []byte, tooLong bool, err error) {
	if !l.bom {
		l.bom = true
		if p, err := l.br.Peek(3); err == nil && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF {
			_, _ = l.br.Discard(3)
		}
	}
	l.buf = l.buf[:0]
	for {
		frag, err := l.br.ReadSlice('\n')
		if err == nil && len(l.buf) == 0 && len(frag) <= l.max {
			l.line++
			return frag, false, nil // the common case: no copy
		}
		if !tooLong {
			if room := l.max - len(l.buf); len(frag) > room {
				l.buf = append(l.buf, frag[:room]...)
				tooLong = true
			} else {
				l.buf = append(l.buf, frag...)
			}
		}
		switch {
		case err == nil:
			l.line++
			return l.buf, tooLong, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(l.buf) == 0 && !tooLong {
				return nil, false, io.EOF
			}
			l.line++
			return l.buf, tooLong, nil
		default:
			return nil, false, fmt.Errorf("read feed after line %d: %w", l.line, err)
		}
	}
}

// isBlank reports whether a line holds only white space.
func isBlank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}
