// Command import is the helper of bench/import.sh, which compares ads/importer with psql's \copy
// of the same rows:
//
//	import gen -rows N -out feed.csv        write a feedgen feed of about N rows
//	import tables -in feed.csv -dir DIR     write DIR/{forums,advertisers,campaigns,ads}.csv for \copy,
//	                                        with ids assigned and parent ids resolved
//	import run -db URL -schema S -in FILE   import FILE into schema S with importer.Import; prints
//	                                        the summary as JSON and the elapsed seconds on stderr
package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/forumads/forumads/ads/feed"
	"github.com/forumads/forumads/ads/feedgen"
	"github.com/forumads/forumads/ads/importer"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: import gen|tables|run [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "gen":
		err = gen(os.Args[2:])
	case "tables":
		err = tables(os.Args[2:])
	case "run":
		err = run(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (gen, tables or run)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "import:", err)
		os.Exit(1)
	}
}

// Rows per advertiser: 1 advertiser + 2 campaigns + 10 ads.
const perAdvertiser = 1 + 2 + 2*5

func gen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	rows := fs.Int("rows", 200000, "about this many rows")
	out := fs.String("out", "feed.csv", "output file")
	format := fs.String("format", "csv", "csv or jsonl")
	seed := fs.Int64("seed", 1, "random seed")
	_ = fs.Parse(args)
	forums := min(200, max(1, *rows/100))
	o := feedgen.Options{Advertisers: max(1, (*rows-forums)/perAdvertiser), CampaignsPer: 2, AdsPer: 5, Forums: forums, Seed: *seed, Format: feed.Format(*format)}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	if err := feedgen.Write(f, o); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	c, _ := feedgen.Count(o)
	fmt.Printf("%d %d %d %d %d\n", c.Rows(), c.Forums, c.Advertisers, c.Campaigns, c.Ads)
	return nil
}

// tables converts a feed into one CSV per table, as psql's \copy loads them.
func tables(args []string) error {
	fs := flag.NewFlagSet("tables", flag.ExitOnError)
	in := fs.String("in", "feed.csv", "the feed")
	dir := fs.String("dir", ".", "output directory")
	_ = fs.Parse(args)
	src, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer src.Close()
	r, err := feed.Open(src, *in)
	if err != nil {
		return err
	}
	out := map[feed.Kind]*csv.Writer{}
	var files []*os.File
	for _, k := range feed.Kinds() {
		f, err := os.Create(filepath.Join(*dir, string(k)+"s.csv"))
		if err != nil {
			return err
		}
		files = append(files, f)
		out[k] = csv.NewWriter(f)
	}
	var rows []*feed.Row
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if rec.Row != nil {
			rows = append(rows, rec.Row)
		}
	}
	advID, cmpID := map[string]int64{}, map[string]int64{}
	array := func(l []string) string {
		v, _ := pq.StringArray(l).Value()
		return v.(string)
	}
	end := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Format(time.RFC3339Nano)
	}
	for _, k := range feed.Kinds() { // parents first
		w := out[k]
		for _, row := range rows {
			if row.Kind != k {
				continue
			}
			var rec []string
			switch k {
			case feed.KindForum:
				f := row.Forum
				rec = []string{f.Slug, f.Name, f.Category}
			case feed.KindAdvertiser:
				a := row.Advertiser
				id := int64(len(advID) + 1)
				advID[a.ExternalID] = id
				rec = []string{strconv.FormatInt(id, 10), a.ExternalID, a.Name, a.Email, a.Status}
			case feed.KindCampaign:
				c := row.Campaign
				parent, ok := advID[c.Advertiser]
				if !ok {
					continue
				}
				id := int64(len(cmpID) + 1)
				cmpID[c.ExternalID] = id
				rec = []string{strconv.FormatInt(id, 10), c.ExternalID, strconv.FormatInt(parent, 10), c.Name, c.Status,
					strconv.FormatInt(c.BidMicros, 10), strconv.FormatInt(c.DailyBudgetMicros, 10), end(c.StartAt), end(c.EndAt),
					array(c.Forums), array(c.Categories), array(c.Countries), array(c.Placements)}
			case feed.KindAd:
				a := row.Ad
				parent, ok := cmpID[a.Campaign]
				if !ok {
					continue
				}
				rec = []string{a.ExternalID, strconv.FormatInt(parent, 10), a.Title, a.Body, a.ImageURL, a.ClickURL, a.Status}
			}
			if err := w.Write(rec); err != nil {
				return err
			}
		}
		w.Flush()
		if err := w.Error(); err != nil {
			return err
		}
	}
	for _, f := range files {
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	dbURL := fs.String("db", "", "database URL")
	schema := fs.String("schema", "", "schema (search_path)")
	in := fs.String("in", "feed.csv", "the feed")
	batch := fs.Int("batch", 0, "rows per transaction (0 = the default)")
	verbose := fs.Bool("v", false, "log every batch")
	_ = fs.Parse(args)
	u, err := url.Parse(*dbURL)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("search_path", *schema)
	u.RawQuery = q.Encode()
	db, err := sqlx.Open("postgres", u.String())
	if err != nil {
		return err
	}
	defer db.Close()
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	start := time.Now()
	sum, err := importer.Import(context.Background(), db, *in, importer.Options{BatchSize: *batch, Logger: log})
	elapsed := time.Since(start)
	if err != nil {
		return err
	}
	if err := json.NewEncoder(os.Stdout).Encode(sum); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%.3f\n", elapsed.Seconds())
	return nil
}
