// Package feedgen writes realistic sample ads feeds (format: package ads/feed) for tests,
// benchmarks and demos. The output depends only on the [Options]: the same options give the
// same bytes.
//
// A feed lists the forums first, then each advertiser followed by its campaigns, each campaign
// followed by its ads. Advertisers have names, https://example-advertiser-N.com sites and
// emails there; campaigns have bids from 0.05 to 2.00, daily budgets, start dates around
// Options.Now (some open-ended), some targeting (forums, categories, countries, placements) and
// a few are paused or ended; ads have titles, bodies, click URLs and (most of them) an image: a
// placeholder the serving program draws itself (package ads/creative), at
// Options.ImageBase/creatives/<ad id>.svg, so nothing the demo shows comes from another host.
// Options.Invalid makes a fraction of the ad rows deliberately invalid, in ways the importer
// must refuse one by one.
package feedgen

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/forumads/forumads/ads/creative"
	"github.com/forumads/forumads/ads/feed"
)

// Defaults of [Options]: 3,000 advertisers × 2 campaigns × 5 ads = 30,000 ads, and 200 forums.
const (
	DefaultAdvertisers  = 3000
	DefaultCampaignsPer = 2
	DefaultAdsPer       = 5
	DefaultForums       = 200
)

// DefaultImageBase is the origin of the ads' images when Options.ImageBase is empty: the serving
// program as scripts/run.sh starts it (foreman's PORT 5200).
const DefaultImageBase = "http://127.0.0.1:5200"

// DefaultNow is the date feeds are generated around when Options.Now is zero (fixed, so the
// output does not depend on the clock).
var DefaultNow = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Options describe a feed. Zero fields take the defaults; negative sizes are an error.
type Options struct {
	Advertisers  int         // advertisers (default 3000)
	CampaignsPer int         // campaigns per advertiser (default 2)
	AdsPer       int         // ads per campaign (default 5)
	Forums       int         // forums (default 200)
	Seed         int64       // the random seed
	Format       feed.Format // feed.CSV (default) or feed.JSONL
	Now          time.Time   // campaigns start around this time (default DefaultNow)
	// Invalid is the fraction (0..1) of ad rows made invalid: every k-th ad row, with
	// k = round(1/Invalid), gets one fault (a bad URL, a missing or too long title, an unknown
	// campaign, a bad status, a too long body, or a duplicate of the previous ad's id).
	Invalid float64
	// ImageBase is the origin (http:// or https://, optionally with a path) serving the ads'
	// placeholder images: an ad's image_url is ImageBase + "/creatives/<ad id>.svg" (default
	// DefaultImageBase).
	ImageBase string
}

func (o Options) withDefaults() (Options, error) {
	if o.Advertisers < 0 || o.CampaignsPer < 0 || o.AdsPer < 0 || o.Forums < 0 {
		return o, fmt.Errorf("feedgen: negative size in %+v", o)
	}
	if o.Invalid < 0 || o.Invalid > 1 || math.IsNaN(o.Invalid) {
		return o, fmt.Errorf("feedgen: Invalid must be between 0 and 1, got %v", o.Invalid)
	}
	if o.Advertisers == 0 {
		o.Advertisers = DefaultAdvertisers
	}
	if o.CampaignsPer == 0 {
		o.CampaignsPer = DefaultCampaignsPer
	}
	if o.AdsPer == 0 {
		o.AdsPer = DefaultAdsPer
	}
	if o.Forums == 0 {
		o.Forums = DefaultForums
	}
	if o.Format == "" {
		o.Format = feed.CSV
	}
	if o.Format != feed.CSV && o.Format != feed.JSONL {
		return o, fmt.Errorf("feedgen: unknown format %q (want csv or jsonl)", o.Format)
	}
	if o.Now.IsZero() {
		o.Now = DefaultNow
	}
	if o.ImageBase == "" {
		o.ImageBase = DefaultImageBase
	}
	if p := feed.URLProblem(creative.URL(o.ImageBase, "x")); p != "" || strings.ContainsAny(o.ImageBase, "?#") {
		if p == "" {
			p = "must not have a query or a fragment"
		}
		return o, fmt.Errorf("feedgen: ImageBase %q: %s", o.ImageBase, p)
	}
	return o, nil
}

// Counts are the rows a feed holds.
type Counts struct {
	Forums, Advertisers, Campaigns, Ads int
	InvalidAds                          int // ad rows made invalid (included in Ads)
}

// Rows is the number of rows of every kind.
func (c Counts) Rows() int { return c.Forums + c.Advertisers + c.Campaigns + c.Ads }

// Count returns what [Write] writes for o.
func Count(o Options) (Counts, error) {
	o, err := o.withDefaults()
	if err != nil {
		return Counts{}, err
	}
	c := Counts{Forums: o.Forums, Advertisers: o.Advertisers, Campaigns: o.Advertisers * o.CampaignsPer}
	c.Ads = c.Campaigns * o.AdsPer
	if k := o.every(); k > 0 {
		c.InvalidAds = c.Ads / k
	}
	return c, nil
}

// every is k: every k-th ad is invalid (0: none).
func (o Options) every() int {
	if o.Invalid <= 0 {
		return 0
	}
	return max(1, int(math.Round(1/o.Invalid)))
}

// Write writes the feed o describes to w.
func Write(w io.Writer, o Options) error {
	o, err := o.withDefaults()
	if err != nil {
		return err
	}
	fw, err := feed.NewWriter(w, o.Format)
	if err != nil {
		return err
	}
	g := &gen{o: o, rnd: rand.New(rand.NewPCG(uint64(o.Seed), 0x5eed_f0e1_6a3d_2c11)), w: fw, k: o.every()}
	if err := g.write(); err != nil {
		return err
	}
	return fw.Flush()
}

type gen struct {
	o      Options
	rnd    *rand.Rand
	w      *feed.Writer
	forums []string
	k      int // every k-th ad is invalid
	ads    int // ads written
	prevAd string
}

var categories = []string{"tech", "gaming", "cooking", "cars", "travel", "finance", "fitness", "music", "photography", "diy"}

var forumTopics = map[string][]string{
	"tech":        {"Linux Users", "Home Lab", "Web Developers", "Gadget Talk", "Retro Computing"},
	"gaming":      {"Strategy Gamers", "Speedrunners", "Board Game Night", "Indie Games", "Console Corner"},
	"cooking":     {"Sourdough Bakers", "Home Cooks", "Vegan Kitchen", "BBQ Pit", "Spice Traders"},
	"cars":        {"Classic Cars", "EV Owners", "Track Day", "Off Road", "Motorbike Riders"},
	"travel":      {"Backpackers", "Rail Travel", "Budget Travel", "Van Life", "City Breaks"},
	"finance":     {"Personal Finance", "Index Investors", "Frugal Living", "Crypto Skeptics", "Early Retirement"},
	"fitness":     {"Runners", "Home Gym", "Cycling Club", "Climbers", "Yoga Practice"},
	"music":       {"Guitar Players", "Synth Lovers", "Vinyl Collectors", "Home Studio", "Choir Singers"},
	"photography": {"Film Photography", "Street Shooters", "Wildlife Lens", "Drone Pilots", "Darkroom"},
	"diy":         {"Woodworkers", "Home Repair", "Makers", "Garden Builders", "3D Printing"},
}

var (
	adjectives = []string{"Blue", "Northern", "Bright", "Summit", "Silver", "Green", "Urban", "Golden", "Swift", "Harbor", "Cedar", "Atlas", "Maple", "Pioneer", "Coastal", "Red", "Quiet", "Iron"}
	nouns      = []string{"River", "Peak", "Fox", "Forge", "Field", "Lane", "Bay", "Stone", "Oak", "Wave", "Bridge", "Point", "Grove", "Hill", "Star"}
	suffixes   = []string{"Outfitters", "Labs", "Co.", "Supply", "Studios", "Goods", "Works", "Kitchen", "Motors", "Travel", "Finance", "Audio", "Gear", "Games"}
	products   = []string{"headphones", "running shoes", "espresso machines", "camping tents", "mechanical keyboards", "cookware", "e-bikes", "guitar strings", "travel insurance", "savings accounts", "board games", "drones", "tool kits", "yoga mats", "dash cams", "film cameras"}
	seasons    = []string{"Spring", "Summer", "Autumn", "Winter", "Holiday", "Back to School", "Weekend", "Launch", "Clearance", "Evergreen"}
	campTypes  = []string{"Promo", "Sale", "Awareness", "Retargeting", "Launch", "Push"}
	countries  = []string{"US", "GB", "DE", "FR", "CA", "AU", "NL", "SE", "ES", "IT", "JP", "BR", "IN", "IE", "NZ", "PL"}
	titleForms = []string{"Save %d%% on %s", "New %s, made to last", "%s: free shipping this week", "Top-rated %s for less", "Upgrade your %s today", "The %s forum members love"}
	bodyForms  = []string{
		"Hand-picked %s with a 30-day return policy. Order today and get it by Friday.",
		"Thousands of happy customers trust us for %s. See why.",
		"Limited stock: our best %s at the lowest price of the season.",
		"Compare our %s side by side and choose what fits you. Free advice from real people.",
	}
)

func (g *gen) pick(l []string) string { return l[g.rnd.IntN(len(l))] }

// some returns 1..n distinct entries of l.
func (g *gen) some(l []string, n int) []string {
	n = 1 + g.rnd.IntN(min(n, len(l)))
	out := make([]string, 0, n)
	for _, i := range g.rnd.Perm(len(l))[:n] {
		out = append(out, l[i])
	}
	return out
}

func (g *gen) chance(p float64) bool { return g.rnd.Float64() < p }

func (g *gen) write() error {
	for i := 1; i <= g.o.Forums; i++ {
		cat := categories[(i-1)%len(categories)]
		topic := g.pick(forumTopics[cat])
		slug := strings.ToLower(strings.ReplaceAll(topic, " ", "-")) + fmt.Sprintf("-%d", i)
		g.forums = append(g.forums, slug)
		if err := g.w.Write(&feed.Row{Kind: feed.KindForum, Forum: &feed.Forum{Slug: slug, Name: topic + " Forum", Category: cat}}); err != nil {
			return err
		}
	}
	for a := 1; a <= g.o.Advertisers; a++ {
		if err := g.advertiser(a); err != nil {
			return err
		}
	}
	return nil
}

func (g *gen) advertiser(a int) error {
	adv := &feed.Advertiser{
		ExternalID: fmt.Sprintf("adv-%d", a),
		Name:       fmt.Sprintf("%s %s %s", g.pick(adjectives), g.pick(nouns), g.pick(suffixes)),
		Status:     "active",
	}
	if g.chance(0.8) {
		adv.Email = fmt.Sprintf("ads@example-advertiser-%d.com", a)
	}
	switch r := g.rnd.Float64(); {
	case r < 0.04:
		adv.Status = "paused"
	case r < 0.05:
		adv.Status = "archived"
	}
	if err := g.w.Write(&feed.Row{Kind: feed.KindAdvertiser, Advertiser: adv}); err != nil {
		return err
	}
	for c := 1; c <= g.o.CampaignsPer; c++ {
		if err := g.campaign(a, c); err != nil {
			return err
		}
	}
	return nil
}

func (g *gen) campaign(a, c int) error {
	product := g.pick(products)
	start := g.o.Now.Truncate(24*time.Hour).AddDate(0, 0, g.rnd.IntN(75)-60)
	if g.chance(0.5) {
		start = start.Add(time.Duration(g.rnd.IntN(24)) * time.Hour)
	}
	cmp := &feed.Campaign{
		ExternalID:        fmt.Sprintf("cmp-%d-%d", a, c),
		Advertiser:        fmt.Sprintf("adv-%d", a),
		Name:              fmt.Sprintf("%s %s %s", g.pick(seasons), titleCase(product), g.pick(campTypes)),
		Status:            "active",
		BidMicros:         int64(5+g.rnd.IntN(196)) * 10_000, // 0.05 .. 2.00
		DailyBudgetMicros: int64(10+g.rnd.IntN(991)) * feed.MicrosPerUnit,
		StartAt:           start.UTC(),
		Forums:            []string{},
		Categories:        []string{},
		Countries:         []string{},
		Placements:        []string{},
	}
	if g.chance(0.3) {
		cmp.DailyBudgetMicros += feed.MicrosPerUnit / 2
	}
	if g.chance(0.7) {
		cmp.EndAt = start.AddDate(0, 0, 7+g.rnd.IntN(114)).UTC()
	}
	switch r := g.rnd.Float64(); {
	case r < 0.08:
		cmp.Status = "paused"
	case r < 0.12:
		cmp.Status = "ended"
	case r < 0.13:
		cmp.Status = "archived"
	}
	if g.chance(0.25) && len(g.forums) > 0 {
		cmp.Forums = g.some(g.forums, 3)
	}
	if g.chance(0.25) {
		cmp.Categories = g.some(categories, 2)
	}
	if g.chance(0.4) {
		cmp.Countries = g.some(countries, 4)
	}
	if g.chance(0.3) {
		cmp.Placements = g.some([]string{"sidebar", "inline", "header", "footer"}, 2)
	}
	if err := g.w.Write(&feed.Row{Kind: feed.KindCampaign, Campaign: cmp}); err != nil {
		return err
	}
	for n := 1; n <= g.o.AdsPer; n++ {
		if err := g.ad(a, c, n, product); err != nil {
			return err
		}
	}
	return nil
}

func (g *gen) ad(a, c, n int, product string) error {
	id := fmt.Sprintf("ad-%d-%d-%d", a, c, n)
	title := g.pick(titleForms)
	if strings.HasPrefix(title, "Save") {
		title = fmt.Sprintf(title, 10+5*g.rnd.IntN(9), product)
	} else {
		title = fmt.Sprintf(title, product)
	}
	ad := &feed.Ad{
		ExternalID: id,
		Campaign:   fmt.Sprintf("cmp-%d-%d", a, c),
		Title:      upperFirst(title),
		Body:       fmt.Sprintf(g.pick(bodyForms), product),
		ClickURL: fmt.Sprintf("https://example-advertiser-%d.com/%s?utm_source=forumads&utm_campaign=cmp-%d-%d&utm_content=%s",
			a, strings.ReplaceAll(product, " ", "-"), a, c, id),
		Status: "active",
	}
	if g.chance(0.8) {
		ad.ImageURL = creative.URL(g.o.ImageBase, id)
	}
	switch r := g.rnd.Float64(); {
	case r < 0.06:
		ad.Status = "paused"
	case r < 0.08:
		ad.Status = "rejected"
	case r < 0.10:
		ad.Status = "archived"
	}
	g.ads++
	if g.k > 0 && g.ads%g.k == 0 {
		g.spoil(ad, (g.ads/g.k)%8)
	}
	g.prevAd = ad.ExternalID
	return g.w.Write(&feed.Row{Kind: feed.KindAd, Ad: ad})
}

// spoil makes an ad invalid in one of eight ways.
func (g *gen) spoil(ad *feed.Ad, how int) {
	if how == 6 && (g.k == 1 || g.prevAd == "") {
		how = 7 // a duplicate needs a valid previous ad
	}
	switch how {
	case 0:
		ad.ClickURL = "ftp://files.example.com/landing"
	case 1:
		ad.Title = ""
	case 2:
		ad.Title = strings.Repeat("Very long title ", 6)
	case 3:
		ad.Campaign = "cmp-missing-" + ad.ExternalID
	case 4:
		ad.Status = "pending"
	case 5:
		ad.ImageURL = "javascript:void(0)"
	case 6:
		ad.ExternalID = g.prevAd
	case 7:
		ad.Body = strings.Repeat("This body is far too long. ", 12)
	}
}

func titleCase(s string) string {
	words := strings.Fields(s)
	for i, w := range words {
		words[i] = upperFirst(w)
	}
	return strings.Join(words, " ")
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
