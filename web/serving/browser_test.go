package serving

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/internal/browsertest"
)

// advertiser is the advertisers' side of the browser test: landing pages (the click
// destinations) and ad images.
type advertiser struct {
	srv    *httptest.Server
	landed atomic.Int64
}

func newAdvertiser(t *testing.T) *advertiser {
	a := &advertiser{}
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for x := range 64 {
		for y := range 64 {
			img.Set(x, y, color.RGBA{uint8(40 + x*2), uint8(90 + y), 200, 255})
		}
	}
	var pngBytes bytes.Buffer
	if err := png.Encode(&pngBytes, img); err != nil {
		t.Fatal(err)
	}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/img/"):
			w.Header().Set("Content-Type", "image/png")
			_, _ = w.Write(pngBytes.Bytes())
		case r.URL.Path == "/landing":
			a.landed.Add(1)
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, "<!doctype html><title>Landing</title><h1>Landing page of ad %s</h1>", template.HTMLEscapeString(r.URL.Query().Get("ad")))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *advertiser) creative(id int64, title string) rkeys.Creative {
	return rkeys.Creative{ID: id, CampaignID: id * 10, AdvertiserID: id * 100, Advertiser: "Advertiser " + itoa(id),
		Title: title, Body: "Hand-picked deal number " + itoa(id) + " for your car.",
		ImageURL: a.srv.URL + "/img/" + itoa(id) + ".png", ClickURL: a.srv.URL + "/landing?ad=" + itoa(id)}
}

// forumPage serves a forum's page from another origin, including the embed from ?ads=<origin>.
var forumPage = template.Must(template.New("forum").Parse(`<!doctype html><html><head><title>Forum</title></head>
<body><h1>Another forum</h1><div id="slot"><script src="{{.}}/embed.js" data-forum="cars" data-placement="sidebar" data-count="2" async></script></div></body></html>`))

func serveForum(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = forumPage.Execute(w, r.URL.Query().Get("ads"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestBrowser drives headless chromium through the demo thread (render, impressions once when
// visible, a real click to the advertiser), a forum on another origin (CORS), and a hostile or
// broken ads origin (nothing rendered, nothing thrown).
func TestBrowser(t *testing.T) {
	t.Parallel()
	adv := newAdvertiser(t)
	allowedForum, otherForum := serveForum(t), serveForum(t)
	f := newFixture(t, func(o *Options) { o.CORSOrigins = []string{allowedForum.URL} })
	f.putList("sidebar", "cars", cand(1, 420000), cand(2, 300000), cand(3, 250000), cand(5, 100000, "FR"))
	f.putList("inline", "cars", cand(4, 90000))
	titles := map[int64]string{1: "Synthetic 5W-30, 5 qt: 20% off", 2: "PCV valves for every engine", 3: "Free brake inspection this week", 4: "Winter tyres, fitted & balanced"}
	for id, title := range titles {
		f.putCreative(adv.creative(id, title))
	}
	b := browsertest.Start(t)

	t.Run("demo thread", func(t *testing.T) {
		b.Navigate(f.srv.URL + "/demo/thread")
		var ads []struct {
			ID    string `json:"id"`
			Title string `json:"title"`
			Href  string `json:"href"`
			Rel   string `json:"rel"`
			Img   string `json:"img"`
		}
		browsertest.Poll(t, "the sidebar ads", func() bool {
			b.Eval(`Array.from(document.querySelectorAll('#sidebar-slot .forumads-ad')).map(e => ({
				id: e.dataset.adId, title: e.querySelector('.forumads-title').textContent,
				href: e.querySelector('.forumads-title').href, rel: e.querySelector('.forumads-title').rel,
				img: (e.querySelector('img') || {}).src || ''}))`, &ads)
			return len(ads) == 3
		})
		for i, ad := range ads {
			id := int64(i + 1)
			if ad.ID != itoa(id) || ad.Title != titles[id] || ad.Rel != "sponsored noopener" ||
				!strings.HasPrefix(ad.Href, f.srv.URL+"/v1/click/") || ad.Img != adv.srv.URL+"/img/"+itoa(id)+".png" {
				t.Fatalf("sidebar ad %d rendered as %+v", i, ad)
			}
		}
		// The sidebar is in view: one impression per ad, counted once.
		browsertest.Poll(t, "the sidebar impressions", func() bool {
			return f.counter(1, "cars", rkeys.Impressions) == 1 && f.counter(2, "cars", rkeys.Impressions) == 1 &&
				f.counter(3, "cars", rkeys.Impressions) == 1
		})
		b.Screenshot("serving-demo-thread.png")

		// The inline slot: counted once it has been scrolled into view, and only once however
		// often it is seen.
		b.Eval(`document.getElementById('inline-slot').scrollIntoView({block: 'center'}); true`, nil)
		browsertest.Poll(t, "the inline ad's impression", func() bool { return f.counter(4, "cars", rkeys.Impressions) == 1 })
		b.Eval(`window.scrollTo(0, 0); true`, nil)
		b.Eval(`new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))).then(() => true)`, nil)
		b.Eval(`document.getElementById('inline-slot').scrollIntoView({block: 'center'}); true`, nil)
		b.Eval(`new Promise(r => setTimeout(r, 300)).then(() => true)`, nil)
		b.Eval(`window.scrollTo(0, 0); true`, nil)

		// A real mouse click on the first sidebar ad's title (on its first line: the middle of a
		// wrapped link's bounding box may be beside the text).
		var box struct{ X, Y float64 }
		b.Eval(`(() => { const r = document.querySelector('#sidebar-slot .forumads-title').getClientRects()[0];
			return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()`, &box)
		b.ClickAt(box.X, box.Y)
		browsertest.Poll(t, "the advertiser's landing page", func() bool {
			var href string
			if !b.TryEval(`location.href`, &href) { // the page is being replaced
				return false
			}
			return href == adv.srv.URL+"/landing?ad=1" && adv.landed.Load() == 1
		})
		if c, s := f.counter(1, "cars", rkeys.Clicks), f.counter(1, "cars", rkeys.Spend); c != 1 || s != 420000 {
			t.Fatalf("after the click: clicks %d spend %d, want 1 and 420000", c, s)
		}
		for id := int64(1); id <= 4; id++ {
			if n := f.counter(id, "cars", rkeys.Impressions); n != 1 {
				t.Fatalf("ad %d: %d impressions, want exactly 1", id, n)
			}
		}
		if n := f.counter(5, "cars", rkeys.Impressions); n != 0 {
			t.Fatalf("the FR-only ad was shown to a viewer of unknown country (%d impressions)", n)
		}
	})

	t.Run("forum on another origin", func(t *testing.T) {
		for _, tc := range []struct {
			forum *httptest.Server
			state string
			ads   int
		}{{allowedForum, "filled", 2}, {otherForum, "empty", 0}} {
			b.Navigate(tc.forum.URL + "/?ads=" + url.QueryEscape(f.srv.URL))
			var state string
			browsertest.Poll(t, "the embed on "+tc.forum.URL, func() bool {
				b.Eval(`(document.querySelector('.forumads-slot') || {}).dataset?.forumadsState || ''`, &state)
				return state == "filled" || state == "empty"
			})
			var n int
			b.Eval(`document.querySelectorAll('.forumads-ad').length`, &n)
			if state != tc.state || n != tc.ads {
				t.Fatalf("%s: slot %s with %d ads, want %s with %d", tc.forum.URL, state, n, tc.state, tc.ads)
			}
		}
	})

	t.Run("broken and hostile ads origin", func(t *testing.T) {
		// An ads origin that serves the real embed but answers /v1/ads badly per forum.
		embed := f.do("GET", "/embed.js", nil).body
		bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/embed.js":
				w.Header().Set("Content-Type", "text/javascript")
				_, _ = w.Write(embed)
				return
			case "/page":
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				fmt.Fprint(w, `<!doctype html><title>t</title><body>`)
				for _, slot := range []string{"badjson", "hang", "fail", "notalist", "hostile", "badcount"} {
					count := "1"
					if slot == "badcount" {
						count = "lots"
					}
					fmt.Fprintf(w, `<div class="forumads-slot" id="%s" data-forum="%s" data-count="%s"></div>`, slot, slot, count)
				}
				fmt.Fprint(w, `<script src="/embed.js" async></script></body>`)
				return
			}
			switch forum := r.URL.Query().Get("forum"); forum {
			case "badjson":
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, `{"ads": [`)
			case "hang": // longer than the embed's 2 s timeout
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
			case "fail":
				http.Error(w, "<html>boom</html>", http.StatusInternalServerError)
			case "notalist":
				_ = json.NewEncoder(w).Encode(map[string]any{"ads": "nope"})
			case "hostile":
				_ = json.NewEncoder(w).Encode(map[string]any{"ads": []map[string]any{
					{"id": 1, "title": `<img src=x onerror="window.pwned=1">`, "body": `<script>window.pwned=2</script>`,
						"click_url": "/v1/click/abc", "impression_url": "/v1/impression/abc", "image_url": "javascript:window.pwned=3"},
					{"id": 2, "title": "evil link", "click_url": "javascript:window.pwned=4", "impression_url": "/v1/impression/abc"},
					{"id": 3, "title": "elsewhere", "click_url": "https://evil.example/", "impression_url": "/v1/impression/abc"},
					{"id": 4, "title": 5, "click_url": "/v1/click/abc", "impression_url": "/v1/impression/abc"},
				}})
			default:
				http.Error(w, `{"error":{"code":"invalid_parameter"}}`, http.StatusBadRequest)
			}
		}))
		defer bad.Close()
		b.Navigate(bad.URL + "/page")
		browsertest.Poll(t, "every slot to settle", func() bool {
			var loading int
			b.Eval(`document.querySelectorAll('.forumads-slot:not([data-forumads-state="filled"]):not([data-forumads-state="empty"])').length`, &loading)
			return loading == 0
		})
		var got struct {
			States map[string]string `json:"states"`
			Ads    int               `json:"ads"`
			Title  string            `json:"title"`
			Kids   int               `json:"kids"`
			Imgs   int               `json:"imgs"`
			Href   string            `json:"href"`
			Pwned  any               `json:"pwned"`
		}
		b.Eval(`(() => {
			const states = {};
			document.querySelectorAll('.forumads-slot').forEach(s => states[s.id] = s.dataset.forumadsState);
			const t = document.querySelector('#hostile .forumads-title');
			return {states, ads: document.querySelectorAll('.forumads-ad').length, title: t ? t.textContent : '',
				kids: t ? t.children.length : -1, imgs: document.querySelectorAll('#hostile img').length,
				href: t ? t.getAttribute('href') : '', pwned: window.pwned || null};
		})()`, &got)
		want := map[string]string{"badjson": "empty", "hang": "empty", "fail": "empty", "notalist": "empty", "hostile": "filled", "badcount": "empty"}
		for id, st := range want {
			if got.States[id] != st {
				t.Errorf("slot %s: state %q, want %q", id, got.States[id], st)
			}
		}
		if got.Ads != 1 || got.Title != `<img src=x onerror="window.pwned=1">` || got.Kids != 0 || got.Imgs != 0 ||
			got.Href != bad.URL+"/v1/click/abc" || got.Pwned != nil {
			t.Fatalf("hostile answer rendered as %+v", got)
		}
	})

	exceptions, console := b.ErrorsSeen()
	if len(exceptions) > 0 {
		t.Fatalf("the embed threw: %v", exceptions)
	}
	t.Logf("console errors (network failures the browser reports itself): %d", len(console))
}

// TestBrowserSampleCreatives: the demo thread shows the generated feed's images as the serving
// program draws them (/creatives/<ad id>.svg, 300×250), with nothing requested from any other
// host (browsertest fails the test otherwise); an ad whose image does not load shows without one.
func TestBrowserSampleCreatives(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.putList("sidebar", "cars", cand(1, 420000), cand(2, 300000), cand(3, 250000))
	for id, img := range map[int64]string{1: "/creatives/ad-1-0-0.svg", 2: "/creatives/ad-1-0-1.svg", 3: "/creatives/not%20an%20id.svg"} {
		f.putCreative(rkeys.Creative{ID: id, CampaignID: 10, AdvertiserID: 100, Advertiser: "Sample", Title: "Sample ad " + itoa(id),
			ImageURL: f.srv.URL + img, ClickURL: f.srv.URL + "/healthz"})
	}
	b := browsertest.Start(t)
	b.Navigate(f.srv.URL + "/demo/thread")
	type shown struct {
		ID     string `json:"id"`
		Img    string `json:"img"`
		Width  int    `json:"width"`
		Height int    `json:"height"`
	}
	var ads []shown
	browsertest.Poll(t, "the sidebar ads with their images loaded or dropped", func() bool {
		b.Eval(`Array.from(document.querySelectorAll('#sidebar-slot .forumads-ad')).map(e => {
			const i = e.querySelector('img');
			return i ? {id: e.dataset.adId, img: i.src, width: i.complete ? i.naturalWidth : -1, height: i.naturalHeight}
			         : {id: e.dataset.adId, img: '', width: 0, height: 0};
		})`, &ads)
		if len(ads) != 3 {
			return false
		}
		for _, a := range ads {
			if a.Width == -1 || (a.Img != "" && a.Width == 0) {
				return false // still loading, or broken and not yet dropped
			}
		}
		return true
	})
	want := []shown{
		{"1", f.srv.URL + "/creatives/ad-1-0-0.svg", 300, 250},
		{"2", f.srv.URL + "/creatives/ad-1-0-1.svg", 300, 250},
		{"3", "", 0, 0},
	}
	for i := range want {
		if ads[i] != want[i] {
			t.Errorf("sidebar ad %d: %+v, want %+v", i, ads[i], want[i])
		}
	}
	b.Screenshot("serving-sample-creatives.png")
}
