package scoring

import (
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"testing"

	"github.com/forumads/forumads/ads/rkeys"
)

func TestTopKKeepsTheBest(t *testing.T) {
	t.Parallel()
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 1))
		n, k := rng.IntN(300), 1+rng.IntN(50)
		all := make([]entry, n)
		for i := range all {
			// Few distinct EVs, so ties (broken by position) are common.
			all[i] = entry{ev: float64(rng.IntN(20)), i: int32(i)}
		}
		top := &topK{k: k}
		for _, i := range rng.Perm(n) {
			top.push(all[i])
		}
		want := slices.Clone(all)
		sort.Slice(want, func(a, b int) bool { return better(want[a], want[b]) })
		want = want[:min(k, n)]
		if got := top.sorted(); !slices.Equal(got, want) {
			t.Fatalf("seed %d n %d k %d: %v, want %v", seed, n, k, got, want)
		}
	}
}

func TestMerge(t *testing.T) {
	t.Parallel()
	a := []entry{{9, 1}, {5, 4}, {5, 7}}
	b := []entry{{9, 0}, {5, 5}}
	c := []entry{{7, 2}}
	cases := []struct {
		k     int
		lists [][]entry
		want  []entry
	}{
		{10, [][]entry{a, b, c}, []entry{{9, 0}, {9, 1}, {7, 2}, {5, 4}, {5, 5}, {5, 7}}},
		{3, [][]entry{a, b, c}, []entry{{9, 0}, {9, 1}, {7, 2}}},
		{3, [][]entry{nil, a, nil}, a},
		{3, nil, []entry{}},
	}
	for _, tc := range cases {
		if got := merge(nil, tc.k, tc.lists...); !slices.Equal(got, tc.want) {
			t.Errorf("merge(k=%d) = %v, want %v", tc.k, got, tc.want)
		}
	}
}

func TestParseCounter(t *testing.T) {
	t.Parallel()
	cases := []struct {
		field, value string
		ad           int64
		kind         byte
		n            int64
		ok           bool
	}{
		{"12:f1:i", "3", 12, 'i', 3, true},
		{"12:f1:s", "0", 12, 's', 0, true},
		{"12:f1:c", "-1", 0, 0, 0, false},
		{"12:f1:c", "1.5", 0, 0, 0, false},
		{"12:f1:x", "1", 0, 0, 0, false},
		{"f1:c", "1", 0, 0, 0, false},
		{"0:f1:c", "1", 0, 0, 0, false},
		{"", "", 0, 0, 0, false},
	}
	for _, tc := range cases {
		ad, kind, n, err := parseCounter(tc.field, tc.value)
		if (err == nil) != tc.ok || ad != tc.ad || kind != tc.kind || n != tc.n {
			t.Errorf("parseCounter(%q, %q) = %d %c %d %v", tc.field, tc.value, ad, kind, n, err)
		}
	}
}

func TestListRoundTrip(t *testing.T) {
	t.Parallel()
	cs := []rkeys.Candidate{{Ad: 1, Campaign: 2, Advertiser: 3, EV: 1234.5, CTR: 0.0123, Bid: 100000, Countries: []string{"DE"}},
		{Ad: 4, Campaign: 2, Advertiser: 3, EV: 0.1, CTR: 1e-7, Bid: 1}}
	b, err := EncodeList(cs)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeList(b)
	if err != nil || !slices.EqualFunc(back, cs, func(a, b rkeys.Candidate) bool {
		return a.Ad == b.Ad && a.EV == b.EV && a.CTR == b.CTR && slices.Equal(a.Countries, b.Countries)
	}) {
		t.Errorf("round trip: %v %v", back, err)
	}
	if b, _ := EncodeList(nil); string(b) != "[]" {
		t.Errorf("empty list encodes as %s", b)
	}
	for _, bad := range []string{"", "null", "{}", `[{"ad":0,"c":1,"a":1,"b":1}]`, `[{"ad":1,"c":1,"a":1,"b":0}]`,
		`[{"ad":1,"c":1,"a":1,"b":1,"ctr":2}]`, `[{"ad":1,"c":1,"a":1,"b":1,"ev":-1}]`, `[1]`, `[] x`, `[{"ad":"1"}]`} {
		if _, err := DecodeList([]byte(bad)); err == nil {
			t.Errorf("DecodeList(%q) accepted", bad)
		}
	}
}

func FuzzDecodeList(f *testing.F) {
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"ad":1,"c":2,"a":3,"ev":1234.5,"ctr":0.0123,"b":100000,"co":["DE","US"]}]`))
	f.Add([]byte(`[{"ad":1,"c":2,"a":3,"ev":0,"ctr":0,"b":1,"co":[]},{"ad":9,"c":2,"a":3,"ev":1e-300,"ctr":1,"b":7}]`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[{"ad":-1}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cs, err := DecodeList(data)
		if err != nil {
			if cs != nil {
				t.Fatalf("error %v with a result", err)
			}
			return
		}
		b, err := EncodeList(cs)
		if err != nil {
			t.Fatalf("a decoded list does not encode: %v", err)
		}
		again, err := DecodeList(b)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", b, err)
		}
		b2, _ := EncodeList(again)
		if string(b) != string(b2) || len(again) != len(cs) {
			t.Fatalf("round trip changed the list:\n%s\n%s", b, b2)
		}
		for _, c := range again {
			if c.Ad <= 0 || c.Bid <= 0 || c.CTR < 0 || c.CTR > 1 || c.EV < 0 || (c.Countries != nil && len(c.Countries) == 0) {
				t.Fatalf("DecodeList let through %+v", c)
			}
		}
	})
}

func FuzzParseCounter(f *testing.F) {
	f.Add("12:f1:i", "3")
	f.Add("12:f1:s", "-1")
	f.Add("9223372036854775807:x:c", "9223372036854775807")
	f.Add("1::c", "1")
	f.Add("a:b:c", "x")
	f.Fuzz(func(t *testing.T, field, value string) {
		ad, kind, n, err := parseCounter(field, value)
		if err != nil {
			return
		}
		_, forum, _, _ := rkeys.ParseCounterField(field)
		ad2, forum2, kind2, ok := rkeys.ParseCounterField(rkeys.CounterField(ad, forum, kind))
		if ad <= 0 || n < 0 || !ok || ad2 != ad || forum2 != forum || kind2 != kind {
			t.Fatalf("parseCounter(%q, %q) = %d %q %c %d", field, value, ad, forum, kind, n)
		}
		if m, err := strconv.ParseInt(value, 10, 64); err != nil || m != n {
			t.Fatalf("value %q read as %d", value, n)
		}
	})
}

func BenchmarkTopKPush(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	evs := make([]float64, 1<<16)
	for i := range evs {
		evs[i] = rng.Float64() * 1e5
	}
	b.ReportAllocs()
	top := &topK{k: rkeys.MaxCandidates}
	for i := 0; b.Loop(); i++ {
		top.push(entry{ev: evs[i&(len(evs)-1)], i: int32(i)})
	}
}
