package feedgen_test

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/forumads/forumads/ads/creative"
	"github.com/forumads/forumads/ads/feed"
	"github.com/forumads/forumads/ads/feedgen"
)

func gen(t *testing.T, o feedgen.Options) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := feedgen.Write(&b, o); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDeterministic(t *testing.T) {
	t.Parallel()
	o := feedgen.Options{Advertisers: 20, Seed: 42, Invalid: 0.1}
	a, b := gen(t, o), gen(t, o)
	if !bytes.Equal(a, b) {
		t.Error("the same options gave different feeds")
	}
	o.Seed = 43
	if bytes.Equal(a, gen(t, o)) {
		t.Error("different seeds gave the same feed")
	}
	o.Seed, o.Now = 42, time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)
	if bytes.Equal(a, gen(t, o)) {
		t.Error("a different Now gave the same feed")
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := feedgen.Count(feedgen.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c != (feedgen.Counts{Forums: 200, Advertisers: 3000, Campaigns: 6000, Ads: 30000}) {
		t.Errorf("defaults: %+v", c)
	}
}

func TestOptionErrors(t *testing.T) {
	t.Parallel()
	for _, o := range []feedgen.Options{{Advertisers: -1}, {AdsPer: -2}, {Invalid: 1.5}, {Invalid: -0.1}, {Format: "xml"},
		{ImageBase: "ftp://127.0.0.1"}, {ImageBase: "127.0.0.1:5200"}, {ImageBase: "http://"}, {ImageBase: "http://a b"},
		{ImageBase: "http://127.0.0.1:5200/?x=1"}, {ImageBase: "http://127.0.0.1:5200/#top"}} {
		if err := feedgen.Write(io.Discard, o); err == nil {
			t.Errorf("%+v: no error", o)
		}
		if _, err := feedgen.Count(o); err == nil {
			t.Errorf("Count(%+v): no error", o)
		}
	}
}

// read returns the valid rows of a feed and the number of refused rows.
func read(t *testing.T, data []byte, f feed.Format) ([]*feed.Row, int) {
	t.Helper()
	r, err := feed.NewReader(bytes.NewReader(data), f)
	if err != nil {
		t.Fatal(err)
	}
	var rows []*feed.Row
	refused := 0
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return rows, refused
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.Notices) > 0 {
			t.Errorf("notices: %v", rec.Notices)
		}
		if rec.Row != nil {
			rows = append(rows, rec.Row)
		} else if rec.IsRow() {
			refused++
		}
	}
}

func TestEveryRowIsValid(t *testing.T) {
	t.Parallel()
	for _, f := range []feed.Format{feed.CSV, feed.JSONL} {
		o := feedgen.Options{Advertisers: 50, CampaignsPer: 3, AdsPer: 4, Forums: 15, Seed: 1, Format: f}
		want, _ := feedgen.Count(o)
		rows, refused := read(t, gen(t, o), f)
		if refused != 0 {
			t.Errorf("%s: %d rows refused", f, refused)
		}
		got := feedgen.Counts{}
		advertisers, campaigns := map[string]bool{}, map[string]bool{}
		paused, targeted, openEnded := 0, 0, 0
		for _, r := range rows {
			switch r.Kind {
			case feed.KindForum:
				got.Forums++
			case feed.KindAdvertiser:
				got.Advertisers++
				advertisers[r.Advertiser.ExternalID] = true
			case feed.KindCampaign:
				got.Campaigns++
				c := r.Campaign
				campaigns[c.ExternalID] = true
				if !advertisers[c.Advertiser] {
					t.Errorf("campaign %s before its advertiser %s", c.ExternalID, c.Advertiser)
				}
				if c.BidMicros < 50_000 || c.BidMicros > 2_000_000 {
					t.Errorf("bid %d outside 0.05..2.00", c.BidMicros)
				}
				if c.Status == "paused" {
					paused++
				}
				if len(c.Forums)+len(c.Categories)+len(c.Countries)+len(c.Placements) > 0 {
					targeted++
				}
				if c.EndAt.IsZero() {
					openEnded++
				}
				if d := c.StartAt.Sub(feedgen.DefaultNow); d < -61*24*time.Hour || d > 15*24*time.Hour {
					t.Errorf("start %v is not around Now", c.StartAt)
				}
			case feed.KindAd:
				got.Ads++
				if !campaigns[r.Ad.Campaign] {
					t.Errorf("ad %s before its campaign %s", r.Ad.ExternalID, r.Ad.Campaign)
				}
			}
		}
		if got != want {
			t.Errorf("%s: rows %+v, want %+v", f, got, want)
		}
		if paused == 0 || targeted == 0 || openEnded == 0 || targeted == got.Campaigns {
			t.Errorf("%s: not varied: paused %d, targeted %d, open-ended %d of %d", f, paused, targeted, openEnded, got.Campaigns)
		}
	}
}

// TestLocalImages: every image is the serving program's placeholder of its own ad, under the
// default origin or the one given; none is on another host.
func TestLocalImages(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ base, want string }{
		{"", "http://127.0.0.1:5200/creatives/"},
		{"http://127.0.0.1:8080/", "http://127.0.0.1:8080/creatives/"},
		{"https://ads.example.com/static", "https://ads.example.com/static/creatives/"},
	} {
		o := feedgen.Options{Advertisers: 30, Seed: 3, ImageBase: tc.base}
		rows, refused := read(t, gen(t, o), feed.CSV)
		if refused != 0 {
			t.Fatalf("%q: %d rows refused", tc.base, refused)
		}
		ads, images := 0, 0
		for _, r := range rows {
			if r.Kind != feed.KindAd {
				continue
			}
			ads++
			if r.Ad.ImageURL == "" {
				continue
			}
			images++
			if want := tc.want + r.Ad.ExternalID + ".svg"; r.Ad.ImageURL != want || !creative.ValidID(r.Ad.ExternalID) {
				t.Errorf("%q: ad %s has image %q, want %q", tc.base, r.Ad.ExternalID, r.Ad.ImageURL, want)
			}
		}
		if images == 0 || images == ads {
			t.Errorf("%q: %d of %d ads have an image, want most but not all", tc.base, images, ads)
		}
	}
}

func TestInvalidRows(t *testing.T) {
	t.Parallel()
	for _, inv := range []float64{0.1, 0.5, 1} {
		for _, f := range []feed.Format{feed.CSV, feed.JSONL} {
			o := feedgen.Options{Advertisers: 20, CampaignsPer: 2, AdsPer: 4, Forums: 3, Seed: 5, Format: f, Invalid: inv}
			c, _ := feedgen.Count(o)
			rows, refused := read(t, gen(t, o), f)
			campaigns := map[string]bool{}
			for _, r := range rows {
				if r.Campaign != nil {
					campaigns[r.Campaign.ExternalID] = true
				}
			}
			unknown := 0 // refused by the importer, which knows the database
			for _, r := range rows {
				if r.Ad != nil && !campaigns[r.Ad.Campaign] {
					unknown++
				}
			}
			if refused+unknown != c.InvalidAds || c.InvalidAds != int(float64(c.Ads)*inv+0.5) {
				t.Errorf("%s invalid %v: %d refused + %d unknown campaigns, want %d", f, inv, refused, unknown, c.InvalidAds)
			}
		}
	}
}

// FuzzWrite checks that any small feed reads back complete: every row present, exactly the
// promised invalid ads refused (by the reader, or for an unknown campaign by the importer).
func FuzzWrite(f *testing.F) {
	f.Add(int64(1), uint8(3), uint8(2), uint8(2), uint8(2), uint8(10), false)
	f.Add(int64(-7), uint8(9), uint8(1), uint8(3), uint8(0), uint8(100), true)
	f.Add(int64(99), uint8(1), uint8(3), uint8(1), uint8(5), uint8(0), true)
	f.Fuzz(func(t *testing.T, seed int64, adv, cp, ap, forums, invPct uint8, jsonl bool) {
		o := feedgen.Options{Advertisers: int(adv%12) + 1, CampaignsPer: int(cp%3) + 1, AdsPer: int(ap%4) + 1,
			Forums: int(forums%6) + 1, Seed: seed, Invalid: float64(invPct%101) / 100, Format: feed.CSV}
		if jsonl {
			o.Format = feed.JSONL
		}
		c, err := feedgen.Count(o)
		if err != nil {
			t.Fatal(err)
		}
		rows, refused := read(t, gen(t, o), o.Format)
		if len(rows)+refused != c.Rows() {
			t.Fatalf("%+v: %d rows + %d refused, want %d", o, len(rows), refused, c.Rows())
		}
		campaigns := map[string]bool{}
		for _, r := range rows {
			if r.Campaign != nil {
				campaigns[r.Campaign.ExternalID] = true
			}
		}
		unknown := 0
		for _, r := range rows {
			if r.Ad != nil && !campaigns[r.Ad.Campaign] {
				unknown++
			}
		}
		if refused+unknown != c.InvalidAds {
			t.Fatalf("%+v: %d refused + %d unknown campaigns, want %d invalid", o, refused, unknown, c.InvalidAds)
		}
	})
}
