package main

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFormatting(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, got, want string
	}{
		{"rate", perSecond(18500.4), "18500/s"},
		{"no rate", perSecond(0), "-"},
		{"times", times(18000, 3600), "5.0x"},
		{"times unmeasured", times(18000, 0), "-"},
		{"fraction", fraction(18500, 19000), "0.97"},
		{"fraction unmeasured", fraction(0, 19000), "-"},
		{"fraction rounds down", fraction(7996, 10000), "0.79"},
		{"times rounds down", times(4999, 1000), "4.9x"},
		{"exact target shows as met", fraction(8000, 10000), "0.80"},
		{"seconds", seconds(1081 * time.Millisecond), "1.081s"},
		{"mib", mib(43012), "42.0 MiB"},
		{"verdict met", verdict(18000, 3600, 5), "met"},
		{"verdict missed", verdict(17000, 3600, 5), "MISSED"},
		{"verdict unmeasured", verdict(17000, 0, 5), "not measured"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

func TestRateOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n    int
		d    time.Duration
		want float64
	}{
		{20000, time.Second, 20000},
		{20000, 4 * time.Second, 5000},
		{1, 0, 0},
		{1, -time.Second, 0},
	} {
		if got := rateOf(tc.n, tc.d); got != tc.want {
			t.Errorf("rateOf(%d, %s) = %g, want %g", tc.n, tc.d, got, tc.want)
		}
	}
}

func TestMedian(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{7}, 7},
		{[]float64{9, 1, 5}, 5},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		in := slices.Clone(tc.in)
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %g, want %g", tc.in, got, tc.want)
		}
		if !slices.Equal(in, tc.in) {
			t.Errorf("median reordered its argument: %v", tc.in)
		}
	}
}

func TestSummaryTable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		s     summary
		lines []string
	}{
		{
			name: "all measured",
			s: summary{ignoreGo: 18500, ignorePy: 3600, ignoreBare: 19000, ignoreBareMulti: 30000, ignoreGoLate: 27300,
				redisGo: 15000, redisPy: 2900, etaN: 10000, etaPeakKB: 43008},
			lines: []string{
				"mode            go         python     bare       go/python  go/bare",
				"ignore_result   18500/s    3600/s     19000/s    5.1x       0.97",
				"  bare multi-ack                       30000/s               0.61",
				"  go acks_late  27300/s                          7.5x       0.91 (multi-ack)",
				"redis_results   15000/s    2900/s     -          5.1x       -",
				"eta_hold        peak RSS of the Go worker with 10000 ETA tasks held: 42.0 MiB",
				"targets: go/python >= 5x: met (ignore_result), met (redis_results); go/bare >= 0.80: met",
			},
		},
		{
			name: "targets missed, no eta, no multi-ack run",
			s:    summary{ignoreGo: 10000, ignorePy: 3600, ignoreBare: 19000, redisGo: 9000, redisPy: 3000},
			lines: []string{
				"mode            go         python     bare       go/python  go/bare",
				"ignore_result   10000/s    3600/s     19000/s    2.7x       0.52",
				"redis_results   9000/s     3000/s     -          3.0x       -",
				"targets: go/python >= 5x: MISSED (ignore_result), MISSED (redis_results); go/bare >= 0.80: MISSED",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, l := range strings.Split(strings.TrimRight(tc.s.table(), "\n"), "\n") {
				got = append(got, strings.TrimRight(l, " "))
			}
			if !slices.Equal(got, tc.lines) {
				t.Fatalf("table:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.lines, "\n"))
			}
		})
	}
}

func TestParseOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		args     []string
		wantErr  bool
		wantRuns []string // nil: not checked
	}{
		{"defaults", []string{"-worker", "w"}, false,
			[]string{"bare", "bare-multi", "eta", "go-ignore", "go-ignore-late", "go-redis", "python-ignore", "python-redis"}},
		{"runs by name", []string{"-worker", "w", "-runs", "go-ignore, go-ignore-late,bare-multi,,redis"}, false,
			[]string{"bare-multi", "go-ignore", "go-ignore-late", "go-redis", "python-redis"}},
		{"no worker", nil, true, nil},
		{"zero n", []string{"-worker", "w", "-n", "0"}, true, nil},
		{"negative python n", []string{"-worker", "w", "-pyn", "-1"}, true, nil},
		{"negative eta", []string{"-worker", "w", "-eta", "-1"}, true, nil},
		{"zero concurrency", []string{"-worker", "w", "-c", "0"}, true, nil},
		{"zero rounds", []string{"-worker", "w", "-rounds", "0"}, true, nil},
		{"unknown run", []string{"-worker", "w", "-runs", "ignore,fast"}, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o, err := parseOptions(tc.args, &strings.Builder{})
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseOptions(%q) error = %v, want error %v", tc.args, err, tc.wantErr)
			}
			if err == nil && (o.n != 20000 || o.pyN != 20000 || o.eta != 10000 || o.goConc != 25 || o.pyConc != 2 || o.multiplier != 4) {
				t.Fatalf("defaults = %+v", o)
			}
			if tc.wantRuns != nil {
				if got := slices.Sorted(maps.Keys(o.runs)); !slices.Equal(got, tc.wantRuns) {
					t.Errorf("runs = %q, want %q", got, tc.wantRuns)
				}
			}
		})
	}
}
