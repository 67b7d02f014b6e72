package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/forumads/forumads/ads/adsconfig"
	"github.com/forumads/forumads/ads/feed"
	"github.com/forumads/forumads/ads/feedgen"
	"github.com/forumads/forumads/ads/statsgen"
)

// genFeed writes a sample feed (manage gen-feed).
func (e *env) genFeed(argv []string) error {
	fs := flag.NewFlagSet("manage gen-feed", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var o feedgen.Options
	fs.IntVar(&o.Advertisers, "advertisers", 3000, "advertisers")
	fs.IntVar(&o.CampaignsPer, "campaigns-per", 2, "campaigns per advertiser")
	fs.IntVar(&o.AdsPer, "ads-per", 5, "ads per campaign")
	fs.IntVar(&o.Forums, "forums", 200, "forums")
	fs.Int64Var(&o.Seed, "seed", 1, "random seed: the same seed writes the same feed")
	format := fs.String("format", "csv", "csv or jsonl")
	fs.Float64Var(&o.Invalid, "invalid", 0, "fraction (0..1) of ad rows made invalid on purpose, to see row errors")
	fs.StringVar(&o.ImageBase, "image-base", feedgen.DefaultImageBase, "origin of the serving program, which draws the ads' images at /creatives/<ad id>.svg")
	out := fs.String("o", "-", "output file (- = stdout)")
	if err := fs.Parse(argv); err != nil {
		return err
	}
	switch feed.Format(*format) {
	case feed.CSV, feed.JSONL:
		o.Format = feed.Format(*format)
	default:
		return usageError{fmt.Sprintf("gen-feed: --format must be csv or jsonl, got %q", *format)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("gen-feed takes no arguments, got %q", fs.Args())}
	}
	o.Now = time.Now().UTC()
	var w io.Writer = e.stdout
	var f *os.File
	if *out != "-" {
		var err error
		if f, err = os.Create(*out); err != nil {
			return err
		}
		w = f
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	err := feedgen.Write(bw, o)
	if err == nil {
		err = bw.Flush()
	}
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// genStats writes sample delivery stats (manage gen-stats).
func (e *env) genStats(ctx context.Context, argv []string) error {
	fs := flag.NewFlagSet("manage gen-stats", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var o statsgen.HistOptions
	fs.IntVar(&o.Days, "days", 7, "days of hourly stats before the current hour")
	fs.Int64Var(&o.Seed, "seed", 1, "random seed")
	fs.IntVar(&o.Impressions, "impressions", 50, "mean impressions per ad, forum and hour")
	fs.IntVar(&o.ForumsPerAd, "forums-per-ad", 3, "forums an untargeted ad runs on, on average")
	ifEmpty := fs.Bool("if-empty", false, "do nothing when ad_stats_hourly already has rows")
	if err := fs.Parse(argv); err != nil {
		return err
	}
	st, err := adsconfig.FromFile(e.file, nil)
	if err != nil {
		return err
	}
	db, err := adsconfig.OpenDB(st.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	if *ifEmpty {
		var any bool
		if err := db.GetContext(ctx, &any, "SELECT EXISTS (SELECT 1 FROM ad_stats_hourly)"); err != nil {
			return err
		}
		if any {
			fmt.Fprintln(e.stderr, "ad_stats_hourly has rows; nothing written")
			return nil
		}
	}
	n, err := statsgen.Historical(ctx, db, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "%d hourly stats rows written\n", n)
	return nil
}
