package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

const sampleStatus = "Name:\tworker\nUmask:\t0022\nState:\tS (sleeping)\nVmPeak:\t 1288244 kB\nVmHWM:\t   43012 kB\nVmRSS:\t   40960 kB\nThreads:\t9\n"

func TestParseStatusKB(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, status, field string
		want                int64
		wantErr             bool
	}{
		{"hwm", sampleStatus, "VmHWM", 43012, false},
		{"rss", sampleStatus, "VmRSS", 40960, false},
		{"last line without newline", "VmHWM:\t7 kB", "VmHWM", 7, false},
		{"prefix of another field is not it", "VmHWMX:\t1 kB\n", "VmHWM", 0, true},
		{"missing", "Name:\tx\n", "VmHWM", 0, true},
		{"not kB", "VmHWM:\t12 MB\n", "VmHWM", 0, true},
		{"not a number", "VmHWM:\tlots kB\n", "VmHWM", 0, true},
		{"negative", "VmHWM:\t-5 kB\n", "VmHWM", 0, true},
		{"no value", "VmHWM:\n", "VmHWM", 0, true},
		{"empty", "", "VmHWM", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseStatusKB([]byte(tc.status), tc.field)
			if tc.wantErr {
				if !errors.Is(err, errNoField) {
					t.Fatalf("parseStatusKB(%q) = %d, %v; want errNoField", tc.status, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseStatusKB(%q) = %d, %v; want %d", tc.status, got, err, tc.want)
			}
		})
	}
}

// FuzzParseStatusKB checks that any input gives a non-negative value or errNoField, and that a
// well-formed line added to any input that lacks the field is read back exactly.
func FuzzParseStatusKB(f *testing.F) {
	f.Add([]byte(sampleStatus), int64(1))
	f.Add([]byte("VmHWM:\t12 MB\n"), int64(0))
	f.Add([]byte(""), int64(9223372036854775807))
	f.Fuzz(func(t *testing.T, status []byte, v int64) {
		got, err := parseStatusKB(status, "VmHWM")
		switch {
		case err != nil && !errors.Is(err, errNoField):
			t.Fatalf("untyped error %v", err)
		case err == nil && got < 0:
			t.Fatalf("negative value %d", got)
		}
		if v < 0 || strings.Contains(string(status), "VmHWM:") {
			return
		}
		doc := string(status)
		if doc != "" && !strings.HasSuffix(doc, "\n") {
			doc += "\n"
		}
		doc += fmt.Sprintf("VmHWM:\t%8d kB\n", v)
		if got, err := parseStatusKB([]byte(doc), "VmHWM"); err != nil || got != v {
			t.Fatalf("round trip of %d through %q: %d, %v", v, doc, got, err)
		}
	})
}

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
			s: summary{ignoreGo: 18500, ignorePy: 3600, ignoreBare: 19000, ignoreBareMulti: 30000,
				redisGo: 15000, redisPy: 2900, etaN: 10000, etaPeakKB: 43008},
			lines: []string{
				"mode            go         python     bare       go/python  go/bare",
				"ignore_result   18500/s    3600/s     19000/s    5.1x       0.97",
				"  bare multi-ack                       30000/s               0.61",
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

func TestTailLines(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		n        int
		want     string
	}{
		{"shorter than n", "a\nb\n", 5, "> a\n> b\n"},
		{"last n", "a\nb\nc\nd", 2, "> c\n> d\n"},
		{"empty", "", 3, ""},
	} {
		if got := tailLines(tc.in, tc.n, "> "); got != tc.want {
			t.Errorf("%s: tailLines(%q, %d) = %q, want %q", tc.name, tc.in, tc.n, got, tc.want)
		}
	}
}

func TestChildEnv(t *testing.T) {
	t.Parallel()
	got := childEnv([]string{"PATH=/bin", "CELERY_BROKER_URL=amqp://elsewhere//", "HOME=/root"},
		map[string]string{"CELERY_BROKER_URL": "amqp://here//"})
	slices.Sort(got)
	want := []string{"CELERY_BROKER_URL=amqp://here//", "HOME=/root", "PATH=/bin"}
	if !slices.Equal(got, want) {
		t.Fatalf("childEnv = %q, want %q", got, want)
	}
}

func TestChunks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   []string
		size int
		want [][]string
	}{
		{nil, 3, nil},
		{[]string{"a", "b"}, 3, [][]string{{"a", "b"}}},
		{[]string{"a", "b", "c", "d", "e"}, 2, [][]string{{"a", "b"}, {"c", "d"}, {"e"}}},
	} {
		var got [][]string
		for c := range chunks(tc.in, tc.size) {
			got = append(got, c)
		}
		if !slices.EqualFunc(got, tc.want, slices.Equal) {
			t.Errorf("chunks(%q, %d) = %q, want %q", tc.in, tc.size, got, tc.want)
		}
	}
}

func TestParseOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr bool
	}{
		{"defaults", []string{"-worker", "w"}, false},
		{"no worker", nil, true},
		{"zero n", []string{"-worker", "w", "-n", "0"}, true},
		{"negative eta", []string{"-worker", "w", "-eta", "-1"}, true},
		{"zero concurrency", []string{"-worker", "w", "-c", "0"}, true},
		{"zero rounds", []string{"-worker", "w", "-rounds", "0"}, true},
		{"unknown run", []string{"-worker", "w", "-runs", "ignore,fast"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o, err := parseOptions(tc.args, &strings.Builder{})
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseOptions(%q) error = %v, want error %v", tc.args, err, tc.wantErr)
			}
			if err == nil && (o.n != 20000 || o.eta != 10000 || o.goConc != 25 || o.pyConc != 2 || o.multiplier != 4) {
				t.Fatalf("defaults = %+v", o)
			}
		})
	}
}

const sampleStat = "2956 (beam.smp) S 1 2950 2950 0 -1 4194560 91234 0 12 0 2412 1031 0 0 20 0 39 0 1234 4194304000 30000 18446744073709551615 1 1 0 0 0 0 0 4224 17987 0 0 0 17 1 0 0 0 0 0\n"

func TestParseStat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, stat string
		want       procStat
		wantErr    bool
	}{
		{"beam", sampleStat, procStat{pid: 2956, comm: "beam.smp", pgrp: 2950, cpu: 34430 * time.Millisecond}, false},
		{"name with spaces and parens", "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 5 6 0\n",
			procStat{pid: 7, comm: "a (b) c", pgrp: 7, cpu: 110 * time.Millisecond}, false},
		{"truncated", "7 (w) R 1 7 7 0 -1 0 0 0 0 0 5", procStat{}, true},
		{"no name", "7 w R 1 7 7 0 -1 0 0 0 0 0 5 6 0", procStat{}, true},
		{"bad pid", "x (w) R 1 7 7 0 -1 0 0 0 0 0 5 6 0", procStat{}, true},
		{"negative time", "7 (w) R 1 7 7 0 -1 0 0 0 0 0 -5 6 0", procStat{}, true},
		{"huge time", "7 (w) R 1 7 7 0 -1 0 0 0 0 0 9223372036854775807 6 0", procStat{}, true},
		{"empty", "", procStat{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseStat([]byte(tc.stat))
			if tc.wantErr {
				if !errors.Is(err, errBadStat) {
					t.Fatalf("parseStat(%q) = %+v, %v; want errBadStat", tc.stat, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseStat(%q) = %+v, %v; want %+v", tc.stat, got, err, tc.want)
			}
		})
	}
}

// FuzzParseStat checks that any input gives errBadStat or sane values, and that a stat line built
// from the values read back gives the same values.
func FuzzParseStat(f *testing.F) {
	f.Add([]byte(sampleStat))
	f.Add([]byte("7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 5 6 0\n"))
	f.Add([]byte("1 () R"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseStat(data)
		if err != nil {
			if !errors.Is(err, errBadStat) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if st.pid <= 0 || st.pgrp < 0 || st.cpu < 0 {
			t.Fatalf("insane values %+v from %q", st, data)
		}
		if strings.ContainsAny(st.comm, "\x00") {
			return
		}
		ticks := int64(st.cpu / (time.Second / userHZ))
		line := fmt.Sprintf("%d (%s) S 1 %d 0 0 -1 0 0 0 0 0 %d 0 0\n", st.pid, st.comm, st.pgrp, ticks)
		again, err := parseStat([]byte(line))
		if err != nil || again != st {
			t.Fatalf("round trip of %+v through %q: %+v, %v", st, line, again, err)
		}
	})
}
