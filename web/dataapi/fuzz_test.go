package dataapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/web/httpx"
)

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ res, key string }{{"ads", "1"}, {"ads", "9223372036854775807"}, {"forums", "rust-lang_2"}, {"x", "a|b"}} {
		c := EncodeCursor(tc.res, tc.key)
		if strings.ContainsAny(c, "+/=") {
			t.Errorf("cursor %q is not URL-safe", c)
		}
		got, err := DecodeCursor(tc.res, c)
		if err != nil || got != tc.key {
			t.Errorf("DecodeCursor(EncodeCursor(%q, %q)) = %q, %v", tc.res, tc.key, got, err)
		}
	}
	for _, bad := range []string{"", "!", "djF8YWRzfDE=", EncodeCursor("campaigns", "1"), EncodeCursor("ads", ""),
		"dj", strings.Repeat("A", maxCursor+1), "v1|ads|1"} {
		if _, err := DecodeCursor("ads", bad); err == nil {
			t.Errorf("DecodeCursor accepted %q", bad)
		}
	}
	if _, err := decodeIDCursor("ads", EncodeCursor("ads", "007")); err == nil {
		t.Error("a non-canonical id was accepted")
	}
}

func FuzzDecodeCursor(f *testing.F) {
	for _, s := range []string{EncodeCursor("ads", "1"), EncodeCursor("ads", "123456789"), EncodeCursor("forums", "go"),
		EncodeCursor("ads", "a|b"), "", "!!", "djF8YWRzfDE", "djF8YWRzfDE=", "djF8YWRzfA"} {
		f.Add(s, "1")
	}
	f.Fuzz(func(t *testing.T, cursor, key string) {
		got, err := DecodeCursor("ads", cursor)
		if err == nil {
			// Canonical: the cursor is exactly what EncodeCursor makes of its key.
			if got == "" || EncodeCursor("ads", got) != cursor {
				t.Fatalf("DecodeCursor(%q) = %q, which encodes to %q", cursor, got, EncodeCursor("ads", got))
			}
		} else {
			var he *httpx.Error
			if !errors.As(err, &he) || he.Status != 400 {
				t.Fatalf("DecodeCursor(%q): %v is not a 400", cursor, err)
			}
		}
		if id, err := decodeIDCursor("ads", cursor); err == nil && (id <= 0 || EncodeCursor("ads", itoa(id)) != cursor) {
			t.Fatalf("decodeIDCursor(%q) = %d", cursor, id)
		}
		// Every key round-trips.
		if key != "" && len(EncodeCursor("ads", key)) <= maxCursor {
			if back, err := DecodeCursor("ads", EncodeCursor("ads", key)); err != nil || back != key {
				t.Fatalf("key %q came back as %q, %v", key, back, err)
			}
		}
	})
}

func itoa(id int64) string {
	b, _ := json.Marshal(id)
	return string(b)
}

func TestCheckRawJSON(t *testing.T) {
	t.Parallel()
	for body, ok := range map[string]bool{
		`{"a": "\ud83d\ude00"}`: true, // a surrogate pair
		`{"a": "\\ud800"}`:      true, // an escaped backslash, then text
		`{"a": "\u00e9"}`:       true,
		`{"a": "\ud800"}`:       false,
		`{"a": "\ud800\u0041"}`: false,
		`{"a": "\udfff"}`:       false,
		`{"a": "\ud83d`:         false,
		"{\"a\": \"\xc3\"}":     false,
		`{"a": "\uZZZZ"}`:       true, // left to the decoder to refuse
	} {
		if err := checkRawJSON([]byte(body)); (err == nil) != ok {
			t.Errorf("checkRawJSON(%s) = %v, want ok=%v", body, err, ok)
		}
	}
}

// bodyKeys are the JSON names of a body type's fields.
func bodyKeys[B any]() map[string]bool {
	out := map[string]bool{}
	rt := reflect.TypeFor[B]()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		out[name] = true
	}
	return out
}

// decodeFor runs a body through the API's decoding as a request would.
func decodeFor(body []byte, v any) error {
	r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return decodeBody(httptest.NewRecorder(), r, v)
}

// checkAnswer fails unless err is a client error naming what was wrong.
func checkAnswer(t *testing.T, body []byte, err error) {
	t.Helper()
	var he *httpx.Error
	if !errors.As(err, &he) {
		t.Fatalf("%q: %v is not an *httpx.Error", body, err)
	}
	switch he.Status {
	case 400, 413, 415:
	case 422:
		if he.Field == "" && !(he.Code == "unknown_field" && strings.HasPrefix(he.Message, `"": `)) {
			t.Fatalf("%q: a 422 without a field: %+v", body, he)
		}
	default:
		t.Fatalf("%q: status %d: %+v", body, he.Status, he)
	}
	if he.Message == "" || he.Code == "" {
		t.Fatalf("%q: error without a code or message: %+v", body, he)
	}
}

// fuzzKind decodes body as k's create and as a patch of existing. Whatever it accepts must
// validate again unchanged when its view is sent back as a body (validation is idempotent and the
// view shows exactly what was stored).
func fuzzKind[R any, B any](t *testing.T, k *kind[R, B], body []byte, existing R) {
	for _, creating := range []bool{true, false} {
		var b B
		if err := decodeFor(body, &b); err != nil {
			checkAnswer(t, body, err)
			return
		}
		row := k.defaults()
		if !creating {
			row = existing
		}
		if err := k.apply(&b, &row, creating); err != nil {
			checkAnswer(t, body, err)
			continue
		}
		shown := bodyOf[B](t, k.view(&row))
		var b2 B
		if err := decodeFor(shown, &b2); err != nil {
			t.Fatalf("%q accepted, but its view %s is refused: %v", body, shown, err)
		}
		row2 := k.defaults()
		if err := k.apply(&b2, &row2, true); err != nil {
			t.Fatalf("%q accepted, but its view %s is refused: %v", body, shown, err)
		}
		if again := bodyOf[B](t, k.view(&row2)); !bytes.Equal(again, shown) {
			t.Fatalf("%q: view %s became %s", body, shown, again)
		}
	}
}

// bodyOf is the part of a view a body of type B can set, as JSON.
func bodyOf[B any](t *testing.T, view any) []byte {
	raw, err := json.Marshal(view)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	keys := bodyKeys[B]()
	for name := range m {
		if !keys[name] {
			delete(m, name)
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func FuzzBodies(f *testing.F) {
	for _, s := range []string{
		`{"external_id": "a-1", "name": "Acme", "email": "ads@acme.example", "status": "Paused"}`,
		`{"external_id": "c-1", "advertiser_id": 3, "name": "Spring", "bid": "0.35", "daily_budget": 100, "start_at": "2026-03-01",
		  "end_at": "2026-04-01T10:00:00+02:00", "target_countries": ["us", "GB"], "target_placements": ["Sidebar"], "target_forums": ["rust"]}`,
		`{"external_id": "ad-1", "campaign_id": 2, "title": " Buy now ", "body": "line\nline", "click_url": "https://a.example/x", "image_url": null}`,
		`{"slug": "rust", "name": "Rust", "category": "programming"}`,
		`{"source": "https://feeds.example.com/a.csv.gz"}`,
		`{"email": null, "end_at": null}`, `{"bid": "1e-1"}`, `{"bid": 0.0000001}`, `{"name": "\u0000"}`, `{"name": "\ud800"}`,
		`{}`, `[]`, `null`, ``, `{"a": 1}`, `{"name": 5}`, `{"start_at": "0001-01-01"}`,
	} {
		f.Add([]byte(s))
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	adv := advertiserRow{ID: 1, ExternalID: "adv", Name: "Adv", Status: "active", CreatedAt: t0, UpdatedAt: t0, Version: 3}
	camp := campaignRow{ID: 2, ExternalID: "camp", AdvertiserID: 1, Name: "Camp", Status: "active", BidMicros: 350000,
		DailyBudgetMicros: 1e8, StartAt: t0, TargetForums: pq.StringArray{}, TargetCategories: pq.StringArray{},
		TargetCountries: pq.StringArray{"US"}, TargetPlacements: pq.StringArray{}, CreatedAt: t0, UpdatedAt: t0, Version: 1}
	ad := adRow{ID: 3, ExternalID: "ad", CampaignID: 2, Title: "T", ClickURL: "https://a.example/", Status: "active", CreatedAt: t0, UpdatedAt: t0, Version: 1}
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzKind(t, advertiserKind(), body, adv)
		fuzzKind(t, campaignKind(), body, camp)
		fuzzKind(t, adKind(), body, ad)
		var fb ForumBody
		if err := decodeFor(body, &fb); err != nil {
			checkAnswer(t, body, err)
		} else {
			var row forumRow
			if err := applyForum(&fb, &row, true); err != nil {
				checkAnswer(t, body, err)
			} else if !rkeys.ValidSlug(row.Slug) || !rkeys.ValidSlug(row.Category) || row.Name == "" {
				t.Fatalf("%q: forum %+v accepted", body, row)
			}
		}
		var ib ImportBody
		if err := decodeFor(body, &ib); err != nil {
			checkAnswer(t, body, err)
		} else if err := required("source", ib.Source, ""); err != nil {
			checkAnswer(t, body, err)
		} else if src, err := checkSource(ib.Source.V); err != nil {
			checkAnswer(t, body, err)
		} else if again, err := checkSource(src); err != nil || again != src {
			t.Fatalf("%q: source %q is not stable: %q, %v", body, src, again, err)
		}
	})
}
