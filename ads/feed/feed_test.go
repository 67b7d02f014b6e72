package feed_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/forumads/forumads/ads/feed"
)

// readAll reads a whole feed and returns its valid rows, its issues (errors and notices) and the
// error that stopped it (nil at io.EOF).
func readAll(t testing.TB, r *feed.Reader) (rows []*feed.Row, errs, notices []feed.Issue, err error) {
	t.Helper()
	for i := 0; ; i++ {
		if i > 1_000_000 {
			t.Fatal("reader does not end")
		}
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return rows, errs, notices, nil
		}
		if err != nil {
			return rows, errs, notices, err
		}
		if rec.Row != nil && len(rec.Errors) > 0 {
			t.Fatalf("record has both a row and errors: %+v", rec)
		}
		if !rec.IsRow() && len(rec.Notices) == 0 {
			t.Fatalf("empty record: %+v", rec)
		}
		if rec.Row != nil {
			rows = append(rows, rec.Row)
		}
		errs = append(errs, rec.Errors...)
		notices = append(notices, rec.Notices...)
	}
}

func open(t testing.TB, data, name string) *feed.Reader {
	t.Helper()
	r, err := feed.Open(strings.NewReader(data), name)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return r
}

const csvHeader = "kind,external_id,advertiser,campaign,name,email,status,bid,daily_budget,start_at,end_at,forums,categories,countries,placements,title,body,image_url,click_url,category\n"

func TestValidRows(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		csv  string // a row under csvHeader
		json string // the same row as JSON
		want *feed.Row
	}{
		{
			name: "advertiser",
			csv:  "advertiser,adv-1,,,Acme Inc,ads@acme.example,,,,,,,,,,,,,,",
			json: `{"kind":"advertiser","external_id":"adv-1","name":"Acme Inc","email":"ads@acme.example"}`,
			want: &feed.Row{Kind: feed.KindAdvertiser, Advertiser: &feed.Advertiser{ExternalID: "adv-1", Name: "Acme Inc", Email: "ads@acme.example", Status: "active"}},
		},
		{
			name: "campaign with targeting and normalization",
			csv:  "Campaign, cmp:1 ,adv-1,,Spring sale,,PAUSED,0.35,100.5,2026-03-01,2026-04-01T12:30:00+02:00,tech-talk|cars,tech,us| gb ,Sidebar|inline,,,,,",
			json: `{"kind":"Campaign","external_id":" cmp:1 ","advertiser":"adv-1","name":"Spring sale","status":"PAUSED","bid":0.35,"daily_budget":"100.5","start_at":"2026-03-01","end_at":"2026-04-01T12:30:00+02:00","forums":["tech-talk","cars"],"categories":"tech","countries":["us"," gb "],"placements":"Sidebar|inline"}`,
			want: &feed.Row{Kind: feed.KindCampaign, Campaign: &feed.Campaign{
				ExternalID: "cmp:1", Advertiser: "adv-1", Name: "Spring sale", Status: "paused",
				BidMicros: 350000, DailyBudgetMicros: 100500000, StartAt: start, EndAt: time.Date(2026, 4, 1, 10, 30, 0, 0, time.UTC),
				Forums: []string{"tech-talk", "cars"}, Categories: []string{"tech"}, Countries: []string{"US", "GB"}, Placements: []string{"sidebar", "inline"},
			}},
		},
		{
			name: "campaign without end or targeting",
			csv:  "campaign,c2,adv-1,,Always on,,,1e-1,5,2026-03-01T00:00:00Z,,,,,,,,,,",
			json: `{"kind":"campaign","external_id":"c2","advertiser":"adv-1","name":"Always on","bid":1e-1,"daily_budget":5,"start_at":"2026-03-01T00:00:00Z","forums":null,"end_at":null}`,
			want: &feed.Row{Kind: feed.KindCampaign, Campaign: &feed.Campaign{
				ExternalID: "c2", Advertiser: "adv-1", Name: "Always on", Status: "active", BidMicros: 100000, DailyBudgetMicros: 5000000,
				StartAt: start, Forums: []string{}, Categories: []string{}, Countries: []string{}, Placements: []string{},
			}},
		},
		{
			name: "ad with a multi-line body",
			csv:  "ad,ad-1,,c2,,,,,,,,,,,,Buy now,\"Line one, \"\"quoted\"\"\nline two\",https://img.example/a.png,https://acme.example/x?y=1,",
			json: `{"kind":"ad","external_id":"ad-1","campaign":"c2","title":"Buy now","body":"Line one, \"quoted\"\nline two","image_url":"https://img.example/a.png","click_url":"https://acme.example/x?y=1"}`,
			want: &feed.Row{Kind: feed.KindAd, Ad: &feed.Ad{ExternalID: "ad-1", Campaign: "c2", Title: "Buy now", Body: "Line one, \"quoted\"\nline two", ImageURL: "https://img.example/a.png", ClickURL: "https://acme.example/x?y=1", Status: "active"}},
		},
		{
			name: "forum",
			csv:  "forum,tech-talk,,,Tech Talk,,,,,,,,,,,,,,,tech",
			json: `{"kind":"forum","external_id":"tech-talk","name":"Tech Talk","category":"tech"}`,
			want: &feed.Row{Kind: feed.KindForum, Forum: &feed.Forum{Slug: "tech-talk", Name: "Tech Talk", Category: "tech"}},
		},
		{
			name: "numeric external id in JSON",
			csv:  "advertiser,12345,,,Numbers,,archived,,,,,,,,,,,,,",
			json: `{"kind":"advertiser","external_id":12345,"name":"Numbers","status":"archived"}`,
			want: &feed.Row{Kind: feed.KindAdvertiser, Advertiser: &feed.Advertiser{ExternalID: "12345", Name: "Numbers", Status: "archived"}},
		},
	}
	for _, tc := range cases {
		for _, f := range []struct{ format, data string }{{"csv", csvHeader + tc.csv + "\n"}, {"jsonl", tc.json + "\n"}} {
			t.Run(tc.name+"/"+f.format, func(t *testing.T) {
				t.Parallel()
				rows, errs, _, err := readAll(t, open(t, f.data, "feed."+f.format))
				if err != nil || len(errs) > 0 || len(rows) != 1 {
					t.Fatalf("rows %d, errors %v, err %v", len(rows), errs, err)
				}
				got := rows[0]
				wantLine := int64(1)
				if f.format == "csv" {
					wantLine = 2
				}
				if got.Line != wantLine || got.Raw == "" {
					t.Errorf("line %d raw %q", got.Line, got.Raw)
				}
				got.Line, got.Raw = 0, ""
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("got  %+v\nwant %+v", describe(got), describe(tc.want))
				}
			})
		}
	}
}

func describe(r *feed.Row) any {
	switch {
	case r.Advertiser != nil:
		return *r.Advertiser
	case r.Campaign != nil:
		return *r.Campaign
	case r.Ad != nil:
		return *r.Ad
	case r.Forum != nil:
		return *r.Forum
	}
	return r
}

// csvRow builds a row under csvHeader from column=value pairs.
func csvRow(kv map[string]string) string {
	cols := feed.Columns()
	vals := make([]string, len(cols))
	for i, c := range cols {
		v := kv[c]
		if strings.ContainsAny(v, ",\"\n\r") {
			v = `"` + strings.ReplaceAll(v, `"`, `""`) + `"`
		}
		vals[i] = v
	}
	return strings.Join(vals, ",")
}

func TestInvalidRows(t *testing.T) {
	t.Parallel()
	campaign := func(over map[string]string) map[string]string {
		m := map[string]string{"kind": "campaign", "external_id": "c-1", "advertiser": "adv-1", "name": "N", "bid": "0.5", "daily_budget": "10", "start_at": "2026-01-01"}
		for k, v := range over {
			m[k] = v
		}
		return m
	}
	ad := func(over map[string]string) map[string]string {
		m := map[string]string{"kind": "ad", "external_id": "ad-1", "campaign": "c-1", "title": "T", "click_url": "https://a.example/"}
		for k, v := range over {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		name   string
		row    map[string]string
		field  string
		reason string // a substring of the reason
	}{
		{"missing kind", map[string]string{"external_id": "x"}, "kind", "kind: required"},
		{"bad kind", map[string]string{"kind": "banner", "external_id": "x"}, "kind", `got "banner"`},
		{"missing external id", map[string]string{"kind": "advertiser", "name": "A"}, "external_id", "external_id: required"},
		{"bad external id", map[string]string{"kind": "advertiser", "external_id": "-x", "name": "A"}, "external_id", "starting with a letter or digit"},
		{"long external id", map[string]string{"kind": "advertiser", "external_id": strings.Repeat("a", 65), "name": "A"}, "external_id", "1-64 characters"},
		{"upper-case forum slug", map[string]string{"kind": "forum", "external_id": "Tech", "name": "T", "category": "tech"}, "external_id", "slug"},
		{"missing name", map[string]string{"kind": "advertiser", "external_id": "a"}, "name", "name: required"},
		{"long name", map[string]string{"kind": "advertiser", "external_id": "a", "name": strings.Repeat("é", 201)}, "name", "at most 200 characters, got 201"},
		{"control character", map[string]string{"kind": "advertiser", "external_id": "a", "name": "A\x07B"}, "name", "control character"},
		{"bad email", map[string]string{"kind": "advertiser", "external_id": "a", "name": "A", "email": "nobody"}, "email", "name@example.com"},
		{"bad advertiser status", map[string]string{"kind": "advertiser", "external_id": "a", "name": "A", "status": "ended"}, "status", "active, paused or archived"},
		{"field of another kind", map[string]string{"kind": "advertiser", "external_id": "a", "name": "A", "bid": "1"}, "bid", "not a field of an advertiser row"},
		{"bad bid", campaign(map[string]string{"bid": "abc"}), "bid", `bid: must be a positive decimal, got "abc"`},
		{"zero bid", campaign(map[string]string{"bid": "0"}), "bid", "positive"},
		{"negative bid", campaign(map[string]string{"bid": "-1"}), "bid", "positive"},
		{"bid too high", campaign(map[string]string{"bid": "1000.01"}), "bid", "at most 1000"},
		{"bid too precise", campaign(map[string]string{"bid": "0.0000001"}), "bid", "6 decimal places"},
		{"missing bid", campaign(map[string]string{"bid": ""}), "bid", "bid: required"},
		{"bad budget", campaign(map[string]string{"daily_budget": "1,000"}), "daily_budget", "positive decimal"},
		{"bad start", campaign(map[string]string{"start_at": "01/02/2026"}), "start_at", "RFC 3339"},
		{"missing start", campaign(map[string]string{"start_at": ""}), "start_at", "start_at: required"},
		{"end before start", campaign(map[string]string{"end_at": "2025-12-31"}), "end_at", "after start_at"},
		{"end equals start", campaign(map[string]string{"end_at": "2026-01-01T00:00:00Z"}), "end_at", "after start_at"},
		{"year out of range", campaign(map[string]string{"start_at": "1969-12-31"}), "start_at", "1970"},
		{"nanoseconds", campaign(map[string]string{"start_at": "2026-01-01T00:00:00.123456789Z"}), "start_at", "microsecond"},
		{"bad campaign status", campaign(map[string]string{"status": "rejected"}), "status", "active, paused, ended or archived"},
		{"bad advertiser ref", campaign(map[string]string{"advertiser": "a b"}), "advertiser", "external_id of an advertiser"},
		{"missing advertiser ref", campaign(map[string]string{"advertiser": ""}), "advertiser", "advertiser: required"},
		{"bad country", campaign(map[string]string{"countries": "US|XX"}), "countries", `"XX" is not an ISO 3166-1`},
		{"bad placement", campaign(map[string]string{"placements": "top"}), "placements", "is not a placement"},
		{"empty list entry", campaign(map[string]string{"forums": "a||b"}), "forums", "empty entry"},
		{"bad forum slug", campaign(map[string]string{"forums": "Tech Talk"}), "forums", "is not a forum slug"},
		{"too many entries", campaign(map[string]string{"categories": strings.TrimSuffix(strings.Repeat("c|", 501), "|")}), "categories", "at most 500"},
		{"missing title", ad(map[string]string{"title": ""}), "title", "title: required"},
		{"long title", ad(map[string]string{"title": strings.Repeat("t", 91)}), "title", "at most 90 characters, got 91"},
		{"long body", ad(map[string]string{"body": strings.Repeat("b", 301)}), "body", "at most 300"},
		{"missing click url", ad(map[string]string{"click_url": ""}), "click_url", "click_url: required"},
		{"ftp click url", ad(map[string]string{"click_url": "ftp://a.example/"}), "click_url", "http:// or https://"},
		{"relative click url", ad(map[string]string{"click_url": "/landing"}), "click_url", "http:// or https://"},
		{"click url without host", ad(map[string]string{"click_url": "https:///path"}), "click_url", "with a host"},
		{"click url with space", ad(map[string]string{"click_url": "https://a.example/a b"}), "click_url", "spaces"},
		{"long click url", ad(map[string]string{"click_url": "https://a.example/" + strings.Repeat("x", 2048)}), "click_url", "at most 2048"},
		{"bad image url", ad(map[string]string{"image_url": "javascript:alert(1)"}), "image_url", "http:// or https://"},
		{"bad ad status", ad(map[string]string{"status": "ended"}), "status", "active, paused, rejected or archived"},
		{"missing campaign ref", ad(map[string]string{"campaign": ""}), "campaign", "campaign: required"},
		{"forum without category", map[string]string{"kind": "forum", "external_id": "f", "name": "F"}, "category", "category: required"},
		{"bad category", map[string]string{"kind": "forum", "external_id": "f", "name": "F", "category": "Tech!"}, "category", "a-z"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			data := csvHeader + "advertiser,ok-1,,,Fine,,,,,,,,,,,,,,,\n" + csvRow(tc.row) + "\nadvertiser,ok-2,,,Fine,,,,,,,,,,,,,,,\n"
			rows, errs, _, err := readAll(t, open(t, data, "x.csv"))
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 2 {
				t.Errorf("valid rows: %d, want 2 (the rest of the feed still reads)", len(rows))
			}
			found := false
			for _, e := range errs {
				if e.Line != 3 || e.Notice {
					t.Errorf("issue on line %d (notice %v), want line 3: %v", e.Line, e.Notice, e)
				}
				if e.Field == tc.field && strings.Contains(e.Reason, tc.reason) {
					found = true
				}
			}
			if !found {
				t.Errorf("want field %q reason containing %q, got %v", tc.field, tc.reason, errs)
			}
		})
	}
}

func TestRowLevelErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, data, file string
		line             int64
		field, reason    string
	}{
		{"invalid UTF-8 in CSV", "kind,external_id,name\nadvertiser,a,Bad \xff name\n", "f.csv", 2, "name", "not valid UTF-8"},
		{"invalid UTF-8 in JSON", "{\"kind\":\"advertiser\",\"external_id\":\"a\",\"name\":\"Bad \xff\"}\n", "f.jsonl", 1, "name", "not valid UTF-8"},
		{"NUL in JSON", `{"kind":"advertiser","external_id":"a","name":"a\u0000b"}` + "\n", "f.jsonl", 1, "name", "NUL"},
		{"too many fields", "kind,external_id,name\nadvertiser,a,A,extra\n", "f.csv", 2, "", "has 4 fields but the header has 3"},
		{"too few fields", "kind,external_id,name\nadvertiser,a\n", "f.csv", 2, "", "has 2 fields"},
		{"bare quote", "kind,external_id,name\nadvertiser,a,A \"B\"\n", "f.csv", 2, "", "inside an unquoted field"},
		{"text after quote", "kind,external_id,name\nadvertiser,a,\"A\"B\n", "f.csv", 2, "", "after the closing quote"},
		{"unclosed quote", "kind,external_id,name\nadvertiser,a,\"A\n\nmore", "f.csv", 2, "", "not closed"},
		{"not an object", "[1,2]\n", "f.jsonl", 1, "", "not a JSON object"},
		{"bad JSON", "{\"kind\":\"ad\",}\n", "f.jsonl", 1, "", "invalid JSON"},
		{"duplicate JSON field", `{"kind":"advertiser","external_id":"a","name":"A","name":"B"}` + "\n", "f.jsonl", 1, "name", "appears twice"},
		{"boolean", `{"kind":"advertiser","external_id":"a","name":true}` + "\n", "f.jsonl", 1, "name", "must be a string, got true"},
		{"object", `{"kind":"advertiser","external_id":"a","name":{}}` + "\n", "f.jsonl", 1, "name", "got an object"},
		{"array in a text field", `{"kind":"advertiser","external_id":"a","name":["A"]}` + "\n", "f.jsonl", 1, "name", "got an array"},
		{"number in a list", `{"kind":"campaign","external_id":"c","countries":[1]}` + "\n", "f.jsonl", 1, "countries", "must be strings"},
		{"long line", "kind,external_id,name\nadvertiser,a," + strings.Repeat("x", feed.MaxRowBytes) + "\n", "f.csv", 2, "", "row longer than"},
		{"long JSON line", `{"kind":"advertiser","name":"` + strings.Repeat("x", feed.MaxRowBytes) + "\"}\n", "f.jsonl", 1, "", "row longer than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			good := "advertiser,ok,OK\n"
			if strings.HasSuffix(tc.file, ".jsonl") {
				good = `{"kind":"advertiser","external_id":"ok","name":"OK"}` + "\n"
			}
			rows, errs, _, err := readAll(t, open(t, tc.data+good, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, e := range errs {
				if e.Line == tc.line && e.Field == tc.field && strings.Contains(e.Reason, tc.reason) {
					found = true
				}
				if !utf8.ValidString(e.Raw+e.Reason+e.ExternalID+e.Field) || len(e.Raw) > feed.MaxRawBytes {
					t.Errorf("issue text not safe: %q", e)
				}
			}
			if !found {
				t.Errorf("want line %d field %q reason ~%q, got %v", tc.line, tc.field, tc.reason, errs)
			}
			if tc.name != "unclosed quote" && (len(rows) == 0 || rows[len(rows)-1].ExternalID() != "ok") {
				t.Errorf("the following row was not read: %v", rows)
			}
		})
	}
}

func TestDuplicatesAndUnknownFields(t *testing.T) {
	t.Parallel()
	data := "kind,external_id,name,Color,category, weight\n" +
		"advertiser,a,First,red,,\n" +
		"advertiser,a,Second,,,\n" +
		"forum,a,A forum,,misc,\n" + // another kind: its own id space
		"advertiser,b,,,,\n" + // invalid: does not claim b
		"advertiser,b,Valid b,,,\n" +
		"advertiser,b,Again b,,,\n"
	rows, errs, notices, err := readAll(t, open(t, data, "f.csv"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rows {
		ids = append(ids, string(r.Kind)+":"+r.ExternalID()+"@"+strconv.FormatInt(r.Line, 10))
	}
	if want := "advertiser:a@2 forum:a@4 advertiser:b@6"; strings.Join(ids, " ") != want {
		t.Errorf("rows %s, want %s", strings.Join(ids, " "), want)
	}
	wantErr := map[int64]string{3: "first row, on line 2", 5: "name: required", 7: "first row, on line 6"}
	if len(errs) != len(wantErr) {
		t.Errorf("errors: %v", errs)
	}
	for _, e := range errs {
		if !strings.Contains(e.Reason, wantErr[e.Line]) {
			t.Errorf("line %d: %q, want ~%q", e.Line, e.Reason, wantErr[e.Line])
		}
	}
	if len(notices) != 2 || notices[0].Field != "color" || notices[1].Field != "weight" || notices[0].Line != 1 || !notices[0].Notice {
		t.Errorf("notices: %+v", notices)
	}

	// JSON Lines: reported once, on the first line where the field appears.
	jl := `{"kind":"advertiser","external_id":"a","name":"A"}` + "\n" +
		`{"kind":"advertiser","external_id":"b","name":"B","zeta":1,"alpha":2}` + "\n" +
		`{"kind":"advertiser","external_id":"c","name":"C","zeta":3}` + "\n"
	rows, errs, notices, err = readAll(t, open(t, jl, ""))
	if err != nil || len(rows) != 3 || len(errs) != 0 {
		t.Fatalf("rows %d errs %v err %v", len(rows), errs, err)
	}
	if len(notices) != 2 || notices[0].Field != "alpha" || notices[1].Field != "zeta" || notices[0].Line != 2 || notices[1].Line != 2 {
		t.Errorf("notices: %+v", notices)
	}
}

func TestFeedErrors(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, data, want string }{
		{"empty CSV", "", "empty"},
		{"no kind column", "id,name\n1,a\n", `required column "kind"`},
		{"no external id column", "kind,name\nad,a\n", `required column "external_id"`},
		{"column twice", "kind,external_id,Name,name\n", `column "name" appears twice`},
		{"broken header", "kind,\"external_id\n", "CSV header"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, _, err := readAll(t, open(t, tc.data, "f.csv"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want ~%q", err, tc.want)
			}
		})
	}
	// A truncated gzip stream is an error of the feed, not an end.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(csvHeader + strings.Repeat("advertiser,a,,,A,,,,,,,,,,,,,,,\n", 1000)))
	_ = zw.Close()
	_, _, _, err := readAll(t, open(t, gz.String()[:gz.Len()/2], "f.csv.gz"))
	if err == nil {
		t.Error("truncated gzip: no error")
	}
	if _, err := feed.NewReader(strings.NewReader(""), "xml"); err == nil {
		t.Error("unknown format accepted")
	}
}

func TestFormats(t *testing.T) {
	t.Parallel()
	csvData := "\xEF\xBB\xBFkind,external_id,name\r\n\r\nadvertiser,a,A\r\nadvertiser,b,\"B\"\r\n"
	jsonData := "\xEF\xBB\xBF\n  {\"kind\":\"advertiser\",\"external_id\":\"a\",\"name\":\"A\"}\r\n\n{\"kind\":\"advertiser\",\"external_id\":\"b\",\"name\":\"B\"}"
	gz := func(s string) string {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, _ = zw.Write([]byte(s))
		_ = zw.Close()
		return b.String()
	}
	cases := []struct {
		name, data, file string
		want             feed.Format
	}{
		{"csv by name", csvData, "feed.CSV", feed.CSV},
		{"csv by content", csvData, "feed", feed.CSV},
		{"jsonl by name", jsonData, "x.jsonl", feed.JSONL},
		{"ndjson by name", jsonData, "x.ndjson", feed.JSONL},
		{"jsonl by content", jsonData, "feed.txt", feed.JSONL},
		{"csv gz by name", gz(csvData), "feed.csv.gz", feed.CSV},
		{"jsonl gz by content", gz(jsonData), "download", feed.JSONL},
		{"gzip without .gz", gz(jsonData), "feed.jsonl", feed.JSONL},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := open(t, tc.data, tc.file)
			if r.Format() != tc.want {
				t.Fatalf("format %s, want %s", r.Format(), tc.want)
			}
			rows, errs, _, err := readAll(t, r)
			if err != nil || len(errs) > 0 || len(rows) != 2 {
				t.Fatalf("rows %d errs %v err %v", len(rows), errs, err)
			}
			if rows[0].Advertiser.Name != "A" || rows[1].ExternalID() != "b" {
				t.Errorf("rows: %+v %+v", rows[0].Advertiser, rows[1].Advertiser)
			}
		})
	}
}

func TestParseMicros(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want int64
		err  error
	}{
		{"0.35", 350000, nil}, {"0.1", 100000, nil}, {"12", 12000000, nil}, {".5", 500000, nil}, {"1.", 1000000, nil},
		{"0.000001", 1, nil}, {"000.100000000", 100000, nil}, {"2.5e-1", 250000, nil}, {"1E3", 1000000000, nil},
		{"1234567890123.5", 0, feed.ErrTooLarge}, {"123456789012.5", 123456789012500000, nil}, {"999999999999.999999", 999999999999999999, nil}, {"1e12", 0, feed.ErrTooLarge},
		{"0.0000001", 0, feed.ErrTooPrecise}, {"1e-7", 0, feed.ErrTooPrecise}, {"0.00000010", 0, feed.ErrTooPrecise}, {"1.0000000", 1000000, nil},
		{"0e99999", 0, nil}, {"1e99999", 0, feed.ErrTooLarge}, {"1e-99999", 0, feed.ErrTooPrecise},
		{"", 0, feed.ErrNotDecimal}, {".", 0, feed.ErrNotDecimal}, {"-1", 0, feed.ErrNotDecimal}, {"+1", 0, feed.ErrNotDecimal},
		{"1,5", 0, feed.ErrNotDecimal}, {"abc", 0, feed.ErrNotDecimal}, {"1e", 0, feed.ErrNotDecimal}, {" 1", 0, feed.ErrNotDecimal}, {"NaN", 0, feed.ErrNotDecimal},
	}
	for _, tc := range cases {
		got, err := feed.ParseMicros(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("ParseMicros(%q) = %d, %v; want %d, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
	for m, s := range map[int64]string{0: "0", 1: "0.000001", 350000: "0.35", 2000000: "2", 1234567: "1.234567", -1500000: "-1.5"} {
		if got := feed.FormatMicros(m); got != s {
			t.Errorf("FormatMicros(%d) = %q, want %q", m, got, s)
		}
	}
}

// Schema patterns and limits of schema.sql, checked on every row the reader accepts.
var (
	reExternalID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)
	reSlug       = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	reEmail      = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
	reURL        = regexp.MustCompile(`^https?://[^\s]+$`)
)

// checkSchema fails the test when an accepted row would violate a CHECK of schema.sql.
func checkSchema(t testing.TB, r *feed.Row) {
	t.Helper()
	text := func(s string, lo, hi int, what string) {
		if n := utf8.RuneCountInString(s); n < lo || n > hi || !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
			t.Fatalf("%s %q violates length %d..%d / UTF-8 / NUL", what, s, lo, hi)
		}
	}
	in := func(s string, set ...string) {
		for _, x := range set {
			if s == x {
				return
			}
		}
		t.Fatalf("%q not in %v", s, set)
	}
	if len(r.Raw) > feed.MaxRawBytes || !utf8.ValidString(r.Raw) || r.Line < 1 {
		t.Fatalf("raw/line: %d %q", r.Line, r.Raw)
	}
	switch r.Kind {
	case feed.KindAdvertiser:
		a := r.Advertiser
		if !reExternalID.MatchString(a.ExternalID) || (a.Email != "" && !reEmail.MatchString(a.Email)) {
			t.Fatalf("advertiser %+v", a)
		}
		text(a.Name, 1, 200, "name")
		in(a.Status, "active", "paused", "archived")
	case feed.KindCampaign:
		c := r.Campaign
		if !reExternalID.MatchString(c.ExternalID) || !reExternalID.MatchString(c.Advertiser) {
			t.Fatalf("campaign ids %+v", c)
		}
		text(c.Name, 1, 200, "name")
		in(c.Status, "active", "paused", "ended", "archived")
		if c.BidMicros <= 0 || c.BidMicros > 1_000_000_000 || c.DailyBudgetMicros <= 0 {
			t.Fatalf("campaign money %+v", c)
		}
		if c.StartAt.IsZero() || (!c.EndAt.IsZero() && !c.EndAt.After(c.StartAt)) || c.StartAt.Location() != time.UTC {
			t.Fatalf("campaign times %+v", c)
		}
		if c.Forums == nil || c.Categories == nil || c.Countries == nil || c.Placements == nil {
			t.Fatalf("nil list %+v", c)
		}
		for _, p := range c.Placements {
			in(p, "sidebar", "inline", "header", "footer")
		}
		for _, cc := range c.Countries {
			if !feed.IsCountry(cc) {
				t.Fatalf("country %q", cc)
			}
		}
		for _, s := range append(append([]string{}, c.Forums...), c.Categories...) {
			if !reSlug.MatchString(s) {
				t.Fatalf("slug %q", s)
			}
		}
	case feed.KindAd:
		a := r.Ad
		if !reExternalID.MatchString(a.ExternalID) || !reExternalID.MatchString(a.Campaign) {
			t.Fatalf("ad ids %+v", a)
		}
		text(a.Title, 1, 90, "title")
		text(a.Body, 0, 300, "body")
		if !reURL.MatchString(a.ClickURL) || utf8.RuneCountInString(a.ClickURL) > 2048 {
			t.Fatalf("click_url %q", a.ClickURL)
		}
		if a.ImageURL != "" && (!reURL.MatchString(a.ImageURL) || utf8.RuneCountInString(a.ImageURL) > 2048) {
			t.Fatalf("image_url %q", a.ImageURL)
		}
		in(a.Status, "active", "paused", "rejected", "archived")
	case feed.KindForum:
		f := r.Forum
		if !reSlug.MatchString(f.Slug) || !reSlug.MatchString(f.Category) {
			t.Fatalf("forum %+v", f)
		}
		text(f.Name, 1, 200, "name")
	default:
		t.Fatalf("kind %q", r.Kind)
	}
}

// roundTrip writes rows with the Writer and reads them back, requiring the same rows.
func roundTrip(t testing.TB, rows []*feed.Row, f feed.Format) {
	t.Helper()
	var buf bytes.Buffer
	w, err := feed.NewWriter(&buf, f)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	back, errs, notices, err := readAll(t, open(t, buf.String(), "x."+string(f)))
	if err != nil || len(errs) > 0 || len(notices) > 0 || len(back) != len(rows) {
		t.Fatalf("re-read %s: %d of %d rows, errors %v, notices %v, err %v\n%s", f, len(back), len(rows), errs, notices, err, buf.String())
	}
	for i := range rows {
		a, b := *rows[i], *back[i]
		a.Line, a.Raw, b.Line, b.Raw = 0, "", 0, ""
		if !reflect.DeepEqual(describe(&a), describe(&b)) {
			t.Fatalf("round trip %s:\n got %+v\nwant %+v", f, describe(&b), describe(&a))
		}
	}
}

func TestWriterRoundTrip(t *testing.T) {
	t.Parallel()
	data := csvHeader +
		csvRow(map[string]string{"kind": "forum", "external_id": "f-1", "name": "  Forum, \"one\"  ", "category": "misc"}) + "\n" +
		csvRow(map[string]string{"kind": "advertiser", "external_id": "a", "name": "Ünïcode ✓", "email": "x@y.example", "status": "paused"}) + "\n" +
		csvRow(map[string]string{"kind": "campaign", "external_id": "c", "advertiser": "a", "name": "C", "bid": "0.05", "daily_budget": "12.5", "start_at": "2026-01-01T10:00:00.5Z", "end_at": "2026-02-01", "countries": "fr|de", "placements": "footer"}) + "\n" +
		csvRow(map[string]string{"kind": "ad", "external_id": "ad", "campaign": "c", "title": "T", "body": "a\r\nb\tc \\N", "click_url": "https://x.example/?a=b,c"}) + "\n"
	rows, errs, _, err := readAll(t, open(t, data, "x.csv"))
	if err != nil || len(errs) > 0 || len(rows) != 4 {
		t.Fatalf("rows %d errs %v err %v", len(rows), errs, err)
	}
	for _, f := range []feed.Format{feed.CSV, feed.JSONL} {
		roundTrip(t, rows, f)
	}
	var empty bytes.Buffer
	w, _ := feed.NewWriter(&empty, feed.CSV)
	if err := w.Flush(); err != nil || empty.String() != strings.Join(feed.Columns(), ",")+"\n" {
		t.Errorf("empty CSV: %q %v", empty.String(), err)
	}
}

func TestSafeText(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		max  int
		want string
	}{
		{"abc", 10, "abc"}, {"a\xffb", 10, "a\uFFFDb"}, {"a\x00b", 10, "a\uFFFDb"}, {"ééé", 5, "éé"}, {"abc", 0, ""},
	}
	for _, tc := range cases {
		if got := feed.SafeText(tc.in, tc.max); got != tc.want {
			t.Errorf("SafeText(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}

// checkRead reads a fuzzed feed and checks what a reader promises: no panic, every issue safe
// to store and located, every accepted row within the schema, and writing the accepted rows
// and reading them back gives the same rows.
func checkRead(t *testing.T, data []byte, name string) {
	r, err := feed.Open(bytes.NewReader(data), name)
	if err != nil {
		return
	}
	rows, errs, notices, _ := readAll(t, r)
	for _, e := range append(errs, notices...) {
		if e.Line < 1 || e.Reason == "" || len(e.Raw) > feed.MaxRawBytes {
			t.Fatalf("bad issue %+v", e)
		}
		for _, s := range []string{e.Raw, e.Reason, e.ExternalID, e.Field, string(e.Kind)} {
			if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
				t.Fatalf("issue text unsafe for PostgreSQL: %q", s)
			}
		}
	}
	seen := map[string]bool{}
	for _, row := range rows {
		checkSchema(t, row)
		key := string(row.Kind) + "\x00" + row.ExternalID()
		if seen[key] {
			t.Fatalf("duplicate %s accepted", key)
		}
		seen[key] = true
	}
	if len(rows) > 0 {
		roundTrip(t, rows, feed.CSV)
		roundTrip(t, rows, feed.JSONL)
	}
}

func FuzzReadCSV(f *testing.F) {
	f.Add([]byte(csvHeader + "advertiser,a,,,A,a@b.co,,,,,,,,,,,,,,\ncampaign,c,a,,C,,paused,0.35,10,2026-01-01,2026-02-01T10:00:00+01:00,f1|f2,tech,us|GB,sidebar,,,,,\n"))
	f.Add([]byte(csvHeader + "ad,x,,c,\"T, \"\"q\"\"\",,,,,,,,,,,\"multi\nline\",https://i.example/a.png,https://c.example/,\nforum,f1,,,F,,,,,,,,,,,,,,,cat\n"))
	f.Add([]byte("kind,external_id,name,zzz\nadvertiser,a,\"x\" y,1\nadvertiser,a,B,\n\r\n"))
	f.Add([]byte("\xEF\xBB\xBFkind,external_id\n\"a\nb"))
	f.Fuzz(func(t *testing.T, data []byte) { checkRead(t, data, "f.csv") })
}

func FuzzReadJSONL(f *testing.F) {
	f.Add([]byte(`{"kind":"campaign","external_id":"c","advertiser":"a","name":"C","bid":0.35,"daily_budget":"1e2","start_at":"2026-01-01","countries":["us"],"placements":"inline|header"}` + "\n"))
	f.Add([]byte(`{"kind":"ad","external_id":"x","campaign":"c","title":"T\u00e9","body":"b\nc","click_url":"https://c.example/","image_url":null}` + "\n" + `{"kind":"forum","external_id":"f","name":"F","category":"c","extra":[1]}`))
	f.Add([]byte(`{"kind":"advertiser","external_id":1,"name":"A","name":"B"}` + "\n[]\n{\n"))
	f.Fuzz(func(t *testing.T, data []byte) { checkRead(t, data, "f.jsonl") })
}

func FuzzParseMicros(f *testing.F) {
	for _, s := range []string{"0.35", "1e3", ".5", "1.", "999999999999.999999", "0.0000001", "abc", "1e-6"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := feed.ParseMicros(s)
		if err != nil {
			return
		}
		if m < 0 {
			t.Fatalf("ParseMicros(%q) = %d < 0", s, m)
		}
		back, err := feed.ParseMicros(feed.FormatMicros(m))
		if err != nil || back != m {
			t.Fatalf("round trip %q → %d → %q → %d, %v", s, m, feed.FormatMicros(m), back, err)
		}
	})
}

func benchFeed(b *testing.B, f feed.Format) []byte {
	b.Helper()
	rows := []*feed.Row{
		{Kind: feed.KindAdvertiser, Advertiser: &feed.Advertiser{ExternalID: "adv-1", Name: "Blue Oak Gear", Email: "ads@example-advertiser-1.com", Status: "active"}},
		{Kind: feed.KindCampaign, Campaign: &feed.Campaign{ExternalID: "cmp-1-1", Advertiser: "adv-1", Name: "Winter Cookware Launch", Status: "active",
			BidMicros: 700000, DailyBudgetMicros: 730500000, StartAt: time.Date(2025, 12, 21, 5, 0, 0, 0, time.UTC),
			Forums: []string{}, Categories: []string{"cooking"}, Countries: []string{"FR", "PL", "IT"}, Placements: []string{}}},
	}
	for i := 0; i < 10; i++ {
		rows = append(rows, &feed.Row{Kind: feed.KindAd, Ad: &feed.Ad{ExternalID: "ad-1-1-" + strconv.Itoa(i), Campaign: "cmp-1-1",
			Title: "The cookware forum members love", Body: "Hand-picked cookware with a 30-day return policy. Order today and get it by Friday.",
			ImageURL: "https://picsum.photos/seed/ad-1-1-1/300/250", ClickURL: "https://example-advertiser-1.com/cookware?utm_source=forumads&utm_campaign=cmp-1-1", Status: "active"}})
	}
	var buf bytes.Buffer
	w, _ := feed.NewWriter(&buf, f)
	for n := 0; n < 1000; n++ {
		for _, r := range rows {
			switch {
			case r.Advertiser != nil:
				r.Advertiser.ExternalID = "adv-" + strconv.Itoa(n)
			case r.Campaign != nil:
				r.Campaign.ExternalID = "cmp-" + strconv.Itoa(n)
			default:
				r.Ad.ExternalID = "ad-" + strconv.Itoa(n) + "-" + r.Ad.ExternalID[len(r.Ad.ExternalID)-1:]
			}
			if err := w.Write(r); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkRead measures parsing and validating a feed of 12,000 rows.
func BenchmarkRead(b *testing.B) {
	for _, f := range []feed.Format{feed.CSV, feed.JSONL} {
		b.Run(string(f), func(b *testing.B) {
			data := benchFeed(b, f)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			rows := 0
			for b.Loop() {
				r, err := feed.NewReader(bytes.NewReader(data), f)
				if err != nil {
					b.Fatal(err)
				}
				got, errs, _, err := readAll(b, r)
				if err != nil || len(errs) > 0 {
					b.Fatal(err, errs)
				}
				rows = len(got)
			}
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
