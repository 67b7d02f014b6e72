package feed

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Writer encodes rows as a feed in either format. It writes rows as they are, without
// validating them (a test may write deliberately bad rows). Call Flush at the end.
type Writer struct {
	format Format
	bw     *bufio.Writer
	cw     *csv.Writer
	enc    *json.Encoder
	header bool
	rec    [nFields]string
}

// NewWriter returns a writer of format f to w.
func NewWriter(w io.Writer, f Format) (*Writer, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	switch f {
	case CSV:
		return &Writer{format: f, bw: bw, cw: csv.NewWriter(bw)}, nil
	case JSONL:
		enc := json.NewEncoder(bw)
		enc.SetEscapeHTML(false)
		return &Writer{format: f, bw: bw, enc: enc}, nil
	}
	return nil, fmt.Errorf("feed: unknown format %q (want csv or jsonl)", f)
}

// jsonRow is a row's JSON Lines form, fields in the CSV column order.
type jsonRow struct {
	Kind        Kind     `json:"kind"`
	ExternalID  string   `json:"external_id"`
	Advertiser  string   `json:"advertiser,omitempty"`
	Campaign    string   `json:"campaign,omitempty"`
	Name        string   `json:"name,omitempty"`
	Email       string   `json:"email,omitempty"`
	Status      string   `json:"status,omitempty"`
	Bid         string   `json:"bid,omitempty"`
	DailyBudget string   `json:"daily_budget,omitempty"`
	StartAt     string   `json:"start_at,omitempty"`
	EndAt       string   `json:"end_at,omitempty"`
	Forums      []string `json:"forums,omitempty"`
	Categories  []string `json:"categories,omitempty"`
	Countries   []string `json:"countries,omitempty"`
	Placements  []string `json:"placements,omitempty"`
	Title       string   `json:"title,omitempty"`
	Body        string   `json:"body,omitempty"`
	ImageURL    string   `json:"image_url,omitempty"`
	ClickURL    string   `json:"click_url,omitempty"`
	Category    string   `json:"category,omitempty"`
}

func toJSONRow(r *Row) jsonRow {
	j := jsonRow{Kind: r.Kind, ExternalID: r.ExternalID()}
	switch {
	case r.Advertiser != nil:
		a := r.Advertiser
		j.Name, j.Email, j.Status = a.Name, a.Email, a.Status
	case r.Campaign != nil:
		c := r.Campaign
		j.Advertiser, j.Name, j.Status = c.Advertiser, c.Name, c.Status
		j.Bid, j.DailyBudget = FormatMicros(c.BidMicros), FormatMicros(c.DailyBudgetMicros)
		if !c.StartAt.IsZero() {
			j.StartAt = formatTime(c.StartAt)
		}
		if !c.EndAt.IsZero() {
			j.EndAt = formatTime(c.EndAt)
		}
		j.Forums, j.Categories, j.Countries, j.Placements = c.Forums, c.Categories, c.Countries, c.Placements
	case r.Ad != nil:
		a := r.Ad
		j.Campaign, j.Title, j.Body, j.ImageURL, j.ClickURL, j.Status = a.Campaign, a.Title, a.Body, a.ImageURL, a.ClickURL, a.Status
	case r.Forum != nil:
		f := r.Forum
		j.Name, j.Category = f.Name, f.Category
	}
	return j
}

// Write encodes one row.
func (w *Writer) Write(r *Row) error {
	j := toJSONRow(r)
	if w.format == JSONL {
		if err := w.enc.Encode(j); err != nil {
			return fmt.Errorf("feed: write line: %w", err)
		}
		return nil
	}
	if err := w.writeHeader(); err != nil {
		return err
	}
	rec := w.rec[:]
	clear(rec)
	rec[fKind], rec[fExternalID] = string(j.Kind), j.ExternalID
	rec[fAdvertiser], rec[fCampaign], rec[fName], rec[fEmail], rec[fStatus] = j.Advertiser, j.Campaign, j.Name, j.Email, j.Status
	rec[fBid], rec[fDailyBudget], rec[fStartAt], rec[fEndAt] = j.Bid, j.DailyBudget, j.StartAt, j.EndAt
	rec[fForums], rec[fCategories] = strings.Join(j.Forums, "|"), strings.Join(j.Categories, "|")
	rec[fCountries], rec[fPlacements] = strings.Join(j.Countries, "|"), strings.Join(j.Placements, "|")
	rec[fTitle], rec[fBody], rec[fImageURL], rec[fClickURL], rec[fCategory] = j.Title, j.Body, j.ImageURL, j.ClickURL, j.Category
	if err := w.cw.Write(rec); err != nil {
		return fmt.Errorf("feed: write row: %w", err)
	}
	return nil
}

func (w *Writer) writeHeader() error {
	if w.header {
		return nil
	}
	w.header = true
	if err := w.cw.Write(fieldNames[:]); err != nil {
		return fmt.Errorf("feed: write header: %w", err)
	}
	return nil
}

// Flush writes out what is buffered (for CSV, the header even when no row was written).
func (w *Writer) Flush() error {
	if w.format == CSV {
		if err := w.writeHeader(); err != nil {
			return err
		}
		w.cw.Flush()
		if err := w.cw.Error(); err != nil {
			return fmt.Errorf("feed: flush: %w", err)
		}
	}
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("feed: flush: %w", err)
	}
	return nil
}
