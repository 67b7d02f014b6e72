package rkeys

import (
	"strings"
	"testing"
	"time"
)

func TestParseCounterFieldRefusesWhatCounterFieldCannotMake(t *testing.T) {
	t.Parallel()
	for _, f := range []string{"+7:general:i", "007:general:i", "0:general:i", "-7:general:i", "7::i", "7:a:b:i",
		"7:general:x", "7:general:", "7:general", ":general:i", "x:general:c", "99999999999999999999:f:i"} {
		if _, _, _, ok := ParseCounterField(f); ok {
			t.Errorf("ParseCounterField(%q) accepted", f)
		}
	}
	ad, forum, kind, ok := ParseCounterField(CounterField(42, "tech-talk", Clicks))
	if !ok || ad != 42 || forum != "tech-talk" || kind != Clicks {
		t.Fatalf("round trip: %d %q %c %v", ad, forum, kind, ok)
	}
}

func TestKeysUnderPrefix(t *testing.T) {
	t.Parallel()
	k := New("")
	hour := time.Date(2026, 11, 25, 20, 59, 59, 0, time.UTC)
	for got, want := range map[string]string{
		k.RankForum("sidebar", "cars"):                 "ads:rank:sidebar:forum:cars",
		k.RankCategory("inline", "tech"):               "ads:rank:inline:category:tech",
		k.RankDefault("header"):                        "ads:rank:header:default",
		k.Creative(7):                                  "ads:creative:7",
		k.Counters(hour):                               "ads:ctr:2026112520",
		k.CounterBatch(hour.Truncate(time.Hour), "b1"): "ads:ctr:flushing:2026112520:b1",
		k.CounterRejected():                            "ads:ctr:rejected",
		New("t:1:").Series(9):                          "t:1:ts:9",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	if h, err := ParseHour("2026112520"); err != nil || !h.Equal(hour.Truncate(time.Hour)) {
		t.Fatalf("ParseHour: %v %v", h, err)
	}
}

// FuzzParseCounterField: whatever ParseCounterField accepts, CounterField gives back unchanged.
func FuzzParseCounterField(f *testing.F) {
	for _, s := range []string{"7:general:i", "+7:general:i", "1:a:s", "12:f_1-2:c", "7::i", ":::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ad, forum, kind, ok := ParseCounterField(s)
		if ok && CounterField(ad, forum, kind) != s {
			t.Fatalf("%q parsed as (%d, %q, %c), which CounterField writes as %q", s, ad, forum, kind, CounterField(ad, forum, kind))
		}
	})
}

func TestValidSlug(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"cars": true, "a": true, "0-9_x": true, "": false, "-cars": false, "_x": false, "Cars": false,
		"car s": false, "car:s": false, "é": false, strings.Repeat("a", 64): true, strings.Repeat("a", 65): false,
	} {
		if got := ValidSlug(s); got != want {
			t.Errorf("ValidSlug(%q) = %v, want %v", s, got, want)
		}
	}
}
