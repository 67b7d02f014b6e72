package importer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/forumads/forumads/ads/feed"
)

// rowSpool holds the valid rows of one kind between the reading pass and the applying pass, in
// a temporary file: length-prefixed records of varints and strings.
type rowSpool struct {
	kind feed.Kind
	f    *os.File
	w    *bufio.Writer
	n    int64
	buf  []byte
}

func newRowSpool(dir string, k feed.Kind) (*rowSpool, error) {
	f, err := os.CreateTemp(dir, "rows-"+string(k)+"-*")
	if err != nil {
		return nil, fmt.Errorf("spool %s rows: %w", k, err)
	}
	return &rowSpool{kind: k, f: f, w: bufio.NewWriterSize(f, 256<<10)}, nil
}

func (s *rowSpool) close() {
	_ = s.f.Close()
	_ = os.Remove(s.f.Name())
}

func putStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func putList(b []byte, l []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(l)))
	for _, s := range l {
		b = putStr(b, s)
	}
	return b
}

func putTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	return binary.AppendVarint(b, t.UnixMicro())
}

func (s *rowSpool) put(r *feed.Row) error {
	b := s.buf[:0]
	b = binary.AppendVarint(b, r.Line)
	b = putStr(b, r.Raw)
	switch s.kind {
	case feed.KindForum:
		f := r.Forum
		b = putStr(putStr(putStr(b, f.Slug), f.Name), f.Category)
	case feed.KindAdvertiser:
		a := r.Advertiser
		b = putStr(putStr(putStr(putStr(b, a.ExternalID), a.Name), a.Email), a.Status)
	case feed.KindCampaign:
		c := r.Campaign
		b = putStr(putStr(putStr(putStr(b, c.ExternalID), c.Advertiser), c.Name), c.Status)
		b = binary.AppendVarint(binary.AppendVarint(b, c.BidMicros), c.DailyBudgetMicros)
		b = putTime(putTime(b, c.StartAt), c.EndAt)
		b = putList(putList(putList(putList(b, c.Forums), c.Categories), c.Countries), c.Placements)
	case feed.KindAd:
		a := r.Ad
		b = putStr(putStr(putStr(putStr(b, a.ExternalID), a.Campaign), a.Title), a.Body)
		b = putStr(putStr(putStr(b, a.ImageURL), a.ClickURL), a.Status)
	}
	s.buf = b
	var n [binary.MaxVarintLen64]byte
	if _, err := s.w.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))]); err != nil {
		return fmt.Errorf("spool %s rows: %w", s.kind, err)
	}
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("spool %s rows: %w", s.kind, err)
	}
	s.n++
	return nil
}

// reader ends the writing and reads the rows back from the start.
func (s *rowSpool) reader() (*spoolReader, error) {
	if err := s.w.Flush(); err != nil {
		return nil, fmt.Errorf("spool %s rows: %w", s.kind, err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("spool %s rows: %w", s.kind, err)
	}
	return &spoolReader{kind: s.kind, r: bufio.NewReaderSize(s.f, 256<<10)}, nil
}

type spoolReader struct {
	kind feed.Kind
	r    *bufio.Reader
	buf  []byte
	b    []byte
	err  error
}

var errCorruptSpool = errors.New("corrupt row spool")

func (s *spoolReader) str() string {
	n, k := binary.Uvarint(s.b)
	if k <= 0 || uint64(len(s.b)-k) < n {
		s.err = errCorruptSpool
		return ""
	}
	v := string(s.b[k : k+int(n)])
	s.b = s.b[k+int(n):]
	return v
}

func (s *spoolReader) varint() int64 {
	v, k := binary.Varint(s.b)
	if k <= 0 {
		s.err = errCorruptSpool
		return 0
	}
	s.b = s.b[k:]
	return v
}

func (s *spoolReader) list() []string {
	n, k := binary.Uvarint(s.b)
	if k <= 0 || n > uint64(len(s.b)) {
		s.err = errCorruptSpool
		return []string{}
	}
	s.b = s.b[k:]
	l := make([]string, 0, n)
	for i := uint64(0); i < n && s.err == nil; i++ {
		l = append(l, s.str())
	}
	return l
}

func (s *spoolReader) time() time.Time {
	if len(s.b) == 0 {
		s.err = errCorruptSpool
		return time.Time{}
	}
	set := s.b[0]
	s.b = s.b[1:]
	if set == 0 {
		return time.Time{}
	}
	return time.UnixMicro(s.varint()).UTC()
}

// next returns the next row, or io.EOF.
func (s *spoolReader) next() (*feed.Row, error) {
	n, err := binary.ReadUvarint(s.r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("read %s rows: %w", s.kind, err)
	}
	if cap(s.buf) < int(n) {
		s.buf = make([]byte, n)
	}
	s.buf = s.buf[:n]
	if _, err := io.ReadFull(s.r, s.buf); err != nil {
		return nil, fmt.Errorf("read %s rows: %w", s.kind, err)
	}
	s.b = s.buf
	r := &feed.Row{Kind: s.kind, Line: s.varint(), Raw: s.str()}
	switch s.kind {
	case feed.KindForum:
		r.Forum = &feed.Forum{Slug: s.str(), Name: s.str(), Category: s.str()}
	case feed.KindAdvertiser:
		r.Advertiser = &feed.Advertiser{ExternalID: s.str(), Name: s.str(), Email: s.str(), Status: s.str()}
	case feed.KindCampaign:
		c := &feed.Campaign{ExternalID: s.str(), Advertiser: s.str(), Name: s.str(), Status: s.str()}
		c.BidMicros, c.DailyBudgetMicros = s.varint(), s.varint()
		c.StartAt, c.EndAt = s.time(), s.time()
		c.Forums, c.Categories, c.Countries, c.Placements = s.list(), s.list(), s.list(), s.list()
		r.Campaign = c
	case feed.KindAd:
		r.Ad = &feed.Ad{ExternalID: s.str(), Campaign: s.str(), Title: s.str(), Body: s.str(), ImageURL: s.str(), ClickURL: s.str(), Status: s.str()}
	}
	if s.err != nil || len(s.b) != 0 {
		return nil, fmt.Errorf("read %s rows: %w", s.kind, errCorruptSpool)
	}
	return r, nil
}
