package timeseries

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/ads/rkeys"
)

func TestParseCounter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		field, value string
		want         counter
		err          string // part of the error; "" for none
	}{
		{"7:general:i", "12", counter{7, "general", 'i', 12}, ""},
		{"9223372036854775807:a-b_c:s", "0", counter{9223372036854775807, "a-b_c", 's', 0}, ""},
		{"7:general:c", "-1", counter{}, "negative"},
		{"7:general:c", "1e3", counter{}, "not an integer"},
		{"7:general:c", "", counter{}, "not an integer"},
		{"+7:general:i", "1", counter{}, "is not <ad id>"},
		{"007:general:i", "1", counter{}, "is not <ad id>"},
		{"7:General:i", "1", counter{}, "not a forum slug"},
		{"7:-x:i", "1", counter{}, "not a forum slug"},
		{"7:" + strings.Repeat("a", 65) + ":i", "1", counter{}, "not a forum slug"},
		{"7:gen\xffral:i", "1", counter{}, "not a forum slug"},
		{"7:general:x", "1", counter{}, "is not <ad id>"},
		{"7:a:b:i", "1", counter{}, "is not <ad id>"},
		{"0:general:i", "1", counter{}, "is not <ad id>"},
		{"-7:general:i", "1", counter{}, "is not <ad id>"},
		{"", "1", counter{}, "is not <ad id>"},
	} {
		got, err := parseCounter(tc.field, tc.value)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("parseCounter(%q, %q) = %+v, %v; want %+v", tc.field, tc.value, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parseCounter(%q, %q) = %+v, %v; want an error with %q", tc.field, tc.value, got, err, tc.err)
		}
	}
}

// FuzzParseCounter: whatever the input, parseCounter does not panic; what it accepts is exactly
// the field rkeys.CounterField makes and a non-negative count equal to the value's integer.
func FuzzParseCounter(f *testing.F) {
	for _, s := range [][2]string{{"7:general:i", "12"}, {"+7:general:i", "1"}, {"7:general:c", "-1"},
		{"1:a:s", "9223372036854775807"}, {"7::i", "1"}, {"x", "y"}, {"12:f_1-2:c", "+3"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, field, value string) {
		c, err := parseCounter(field, value)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if got := rkeys.CounterField(c.ad, c.forum, c.kind); got != field {
			t.Fatalf("accepted %q, which CounterField writes as %q", field, got)
		}
		if n, err := strconv.ParseInt(value, 10, 64); err != nil || n != c.n || c.n < 0 {
			t.Fatalf("accepted count %q as %d", value, c.n)
		}
		if !rkeys.ValidSlug(c.forum) || c.ad <= 0 {
			t.Fatalf("accepted %+v", c)
		}
	})
}

// FuzzCounterFieldRoundTrip: every counter CounterField can write with a valid ad, slug and kind
// parses back to itself, through rkeys.ParseCounterField and parseCounter.
func FuzzCounterFieldRoundTrip(f *testing.F) {
	f.Add(int64(7), "general", byte('i'), int64(3))
	f.Add(int64(9223372036854775807), "a-b_c", byte('s'), int64(0))
	f.Add(int64(-1), "x", byte('c'), int64(1))
	f.Fuzz(func(t *testing.T, ad int64, forum string, kind byte, n int64) {
		field := rkeys.CounterField(ad, forum, kind)
		valid := ad > 0 && rkeys.ValidSlug(forum) && (kind == 'i' || kind == 'c' || kind == 's') && n >= 0
		c, err := parseCounter(field, strconv.FormatInt(n, 10))
		if !valid {
			if err == nil {
				t.Fatalf("accepted %q = %d", field, n)
			}
			return
		}
		if err != nil || c != (counter{ad, forum, kind, n}) {
			t.Fatalf("%q = %d: %+v, %v", field, n, c, err)
		}
		if a, fo, k, ok := rkeys.ParseCounterField(field); !ok || a != ad || fo != forum || k != kind {
			t.Fatalf("rkeys.ParseCounterField(%q) = %d, %q, %c, %v", field, a, fo, k, ok)
		}
	})
}

// FuzzKeyHours: the key-name parsers accept exactly the names the layout makes.
func FuzzKeyHours(f *testing.F) {
	keys := rkeys.New("ads:")
	h := time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC)
	f.Add(keys.Counters(h))
	f.Add(keys.CounterBatch(h, "00ff00ff00ff00ff"))
	f.Add("ads:ctr:hours")
	f.Add("ads:ctr:flushing:2026030113:")
	f.Add("ads:ctr:2026023013")
	f.Fuzz(func(t *testing.T, key string) {
		if hr, ok := hourOfCounters(keys, key); ok {
			if keys.Counters(hr) != key || hr.Truncate(time.Hour) != hr {
				t.Fatalf("hourOfCounters(%q) = %v", key, hr)
			}
		}
		if hr, ok := hourOfBatch(keys, key); ok {
			id := key[strings.LastIndexByte(key, ':')+1:]
			if keys.CounterBatch(hr, id) != key || id == "" {
				t.Fatalf("hourOfBatch(%q) = %v", key, hr)
			}
		}
	})
}
