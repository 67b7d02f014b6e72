package serving

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/forumads/forumads/ads/rkeys"
)

// FuzzAnswerJSON: appendAnswer writes, byte for byte, what encoding/json writes for the same
// answer, whatever the creative's text, image URL, forum and placement hold.
func FuzzAnswerJSON(f *testing.F) {
	f.Add("Great deal", "Body <b>&</b> \"quoted\"", "Acme", "https://img.example/1.png", "cars", "sidebar", int64(7), true)
	f.Add("\u2028\x00\xff", "", "", "", "a\"b", "<x>", int64(1), false)
	f.Add("t", "b", "a", "ftp://nope", "f-1", "inline", int64(1<<62), true)
	sign, err := newSigner(testSecret)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, title, body, adv, image, forum, placement string, id int64, images bool) {
		raw, err := json.Marshal(rkeys.Creative{ID: id, Title: title, Body: body, Advertiser: adv, ImageURL: image,
			ClickURL: "https://shop.example/x"})
		if err != nil {
			t.Fatal(err)
		}
		sv, err := decodeCreative(string(raw))
		if err != nil {
			t.Fatalf("decodeCreative: %v", err)
		}
		tok := token{Kind: kindClick, Ad: max(id, 1), Forum: "cars", Placement: "sidebar", Price: 1, Expires: testClockStart}
		click, err := sign.Encode(&tok)
		if err != nil {
			t.Fatal(err)
		}
		ads := []builtAd{{id: id, frag: &sv.frag, click: click, imp: click}, {id: id + 1, frag: &sv.frag, click: click, imp: click}}
		got := appendAnswer(nil, ads, images, forum, placement)
		want := adsAnswer{Forum: forum, Placement: placement}
		for _, a := range ads {
			ad := adJSON{ID: a.id, Title: sv.Title, Body: sv.Body, Advertiser: sv.Advertiser,
				ClickURL: "/v1/click/" + click, ImpressionURL: "/v1/impression/" + click}
			if images && sv.imageOK {
				ad.ImageURL = sv.ImageURL
			}
			want.Ads = append(want.Ads, ad)
		}
		wb, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, wb) {
			t.Fatalf("appendAnswer\n%s\nencoding/json\n%s", got, wb)
		}
		if empty := appendAnswer(nil, nil, images, forum, placement); !json.Valid(empty) {
			t.Fatalf("no ads: invalid JSON %s", empty)
		}
	})
}
