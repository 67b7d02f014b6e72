package feed

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// field identifies a known column / JSON field.
type field int

const (
	fKind field = iota
	fExternalID
	fAdvertiser
	fCampaign
	fName
	fEmail
	fStatus
	fBid
	fDailyBudget
	fStartAt
	fEndAt
	fForums
	fCategories
	fCountries
	fPlacements
	fTitle
	fBody
	fImageURL
	fClickURL
	fCategory
	nFields
)

// fieldNames are the column names, in the order the CSV [Writer] writes them.
var fieldNames = [nFields]string{
	"kind", "external_id", "advertiser", "campaign", "name", "email", "status", "bid", "daily_budget",
	"start_at", "end_at", "forums", "categories", "countries", "placements", "title", "body",
	"image_url", "click_url", "category",
}

// Columns returns the known column names, in the order the CSV [Writer] writes them.
func Columns() []string { return append([]string(nil), fieldNames[:]...) }

func lookupField(name string) (field, bool) {
	for i, n := range fieldNames {
		if n == name {
			return field(i), true
		}
	}
	return 0, false
}

// IsGzip reports whether data starts with the gzip magic bytes.
func IsGzip(prefix []byte) bool { return len(prefix) >= 2 && prefix[0] == 0x1f && prefix[1] == 0x8b }

// FormatFromName returns the format a name's extension gives (.csv, .jsonl, .ndjson, each
// optionally followed by .gz; case-insensitive), and false when it gives none.
func FormatFromName(name string) (Format, bool) {
	n := strings.ToLower(name)
	n = strings.TrimSuffix(n, ".gz")
	switch path.Ext(n) {
	case ".csv":
		return CSV, true
	case ".jsonl", ".ndjson":
		return JSONL, true
	}
	return "", false
}

// SniffFormat returns the format of (decompressed) content from its start: JSONL when the first
// byte that is not white space (after a byte order mark) is '{', else CSV.
func SniffFormat(prefix []byte) Format {
	prefix = bytes.TrimPrefix(prefix, []byte("\xEF\xBB\xBF"))
	prefix = bytes.TrimLeft(prefix, " \t\r\n")
	if len(prefix) > 0 && prefix[0] == '{' {
		return JSONL
	}
	return CSV
}

// Open returns a reader for a feed that may be gzip-compressed (recognised by its magic bytes).
// The format comes from name's extension, else from the content (see [SniffFormat]); name may
// be empty.
func Open(r io.Reader, name string) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var in io.Reader = br
	if p, _ := br.Peek(2); IsGzip(p) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("feed: gzip: %w", err)
		}
		in = zr
	}
	f, ok := FormatFromName(name)
	if !ok {
		b := bufio.NewReaderSize(in, 64<<10)
		p, err := b.Peek(4096)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("feed: read: %w", err)
		}
		f = SniffFormat(p)
		in = b
	}
	return NewReader(in, f)
}

// Reader reads a feed's rows, validating each one. It is not safe for concurrent use.
type Reader struct {
	format  Format
	csv     *csvParser
	lines   *lineReader
	header  []int // CSV: column index → field, or -1 for an unknown column
	started bool
	seen    [4]map[string]int64 // per kind: external id → line of its first valid row
	unknown map[string]bool     // unknown field names already reported
	rr      rawRow
}

// NewReader returns a reader for an uncompressed feed in format f.
func NewReader(r io.Reader, f Format) (*Reader, error) {
	if f != CSV && f != JSONL {
		return nil, fmt.Errorf("feed: unknown format %q (want csv or jsonl)", f)
	}
	rd := &Reader{format: f, lines: newLineReader(r, MaxRowBytes), unknown: map[string]bool{}}
	for i := range rd.seen {
		rd.seen[i] = map[string]int64{}
	}
	if f == CSV {
		rd.csv = &csvParser{lr: rd.lines}
	}
	return rd, nil
}

// Format is the feed's format.
func (r *Reader) Format() Format { return r.format }

// Next returns the next record, io.EOF after the last one, or another error when the feed as a
// whole cannot be read (see the package documentation).
func (r *Reader) Next() (Record, error) {
	if r.format == CSV {
		if !r.started {
			r.started = true
			notices, err := r.readHeader()
			if err != nil {
				return Record{}, err
			}
			if len(notices) > 0 {
				return Record{Notices: notices}, nil
			}
		}
		return r.nextCSV()
	}
	return r.nextJSONL()
}

func (r *Reader) readHeader() ([]Issue, error) {
	cols, line, raw, problem, err := r.csv.read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("feed: the CSV feed is empty: its first line must be the header (kind,external_id,...)")
	}
	if err != nil {
		return nil, fmt.Errorf("feed: %w", err)
	}
	if problem != "" {
		return nil, fmt.Errorf("feed: line %d: CSV header: %s", line, problem)
	}
	r.header = make([]int, len(cols))
	have := map[field]int{}
	var notices []Issue
	for i, c := range cols {
		name := strings.ToLower(strings.TrimSpace(c))
		f, ok := lookupField(name)
		if !ok {
			r.header[i] = -1
			if !r.unknown[name] {
				r.unknown[name] = true
				notices = append(notices, r.unknownNotice(line, SafeText(name, 200), raw))
			}
			continue
		}
		if j, dup := have[f]; dup {
			return nil, fmt.Errorf("feed: line %d: CSV header: column %q appears twice (columns %d and %d)", line, name, j+1, i+1)
		}
		have[f] = i
		r.header[i] = int(f)
	}
	for _, f := range []field{fKind, fExternalID} {
		if _, ok := have[f]; !ok {
			return nil, fmt.Errorf("feed: line %d: CSV header: the required column %q is missing (the first line must name the columns: kind,external_id,...)", line, fieldNames[f])
		}
	}
	return notices, nil
}

func (r *Reader) unknownNotice(line int64, name string, raw []byte) Issue {
	return Issue{Line: line, Field: name, Reason: fmt.Sprintf("unknown field %q ignored", name), Raw: SafeText(string(raw), MaxRawBytes), Notice: true}
}

func (r *Reader) nextCSV() (Record, error) {
	cols, line, raw, problem, err := r.csv.read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return Record{}, io.EOF
		}
		return Record{}, fmt.Errorf("feed: %w", err)
	}
	rr := &r.rr
	rr.reset(line, raw)
	if problem != "" {
		rr.rowErr("", problem)
	} else if len(cols) != len(r.header) {
		rr.rowErr("", fmt.Sprintf("the row has %d fields but the header has %d", len(cols), len(r.header)))
	}
	if len(rr.errs) == 0 {
		for i, v := range cols {
			if f := r.header[i]; f >= 0 {
				rr.set(field(f), v)
			}
		}
	} else {
		// Still name the row in the error when its first fields can be read.
		for i, v := range cols {
			if i < len(r.header) && (r.header[i] == int(fKind) || r.header[i] == int(fExternalID)) {
				rr.set(field(r.header[i]), v)
			}
		}
	}
	return r.finish(rr, nil), nil
}

// finish validates the collected fields and makes the record.
func (r *Reader) finish(rr *rawRow, notices []Issue) Record {
	row := r.validate(rr)
	rec := Record{Notices: notices}
	if row == nil {
		rec.Errors = rr.issues()
		return rec
	}
	rec.Row = row
	return rec
}
