package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The targets.
const (
	targetGoOverPython = 5.0  // Go >= 5x Python, in both modes
	targetGoOverBare   = 0.80 // Go >= 80% of the bare consumer
)

// summary holds the rates (tasks/s) of a run; 0 means not measured.
type summary struct {
	ignoreGo, ignorePy, ignoreBare, ignoreBareMulti float64
	ignoreGoLate                                    float64 // the Go worker with task_acks_late
	redisGo, redisPy                                float64
	etaN                                            int
	etaPeakKB                                       int64
}

// table renders the summary table with the ratios and whether the targets are met.
func (s summary) table() string {
	var b strings.Builder
	row := func(cols ...string) {
		fmt.Fprintf(&b, "%-15s %-10s %-10s %-10s %-10s %s\n", cols[0], cols[1], cols[2], cols[3], cols[4], cols[5])
	}
	row("mode", "go", "python", "bare", "go/python", "go/bare")
	row(modeIgnore, perSecond(s.ignoreGo), perSecond(s.ignorePy), perSecond(s.ignoreBare),
		times(s.ignoreGo, s.ignorePy), fraction(s.ignoreGo, s.ignoreBare))
	if s.ignoreBareMulti > 0 {
		row("  bare multi-ack", "", "", perSecond(s.ignoreBareMulti), "", fraction(s.ignoreGo, s.ignoreBareMulti))
	}
	if s.ignoreGoLate > 0 {
		row("  go acks_late", perSecond(s.ignoreGoLate), "", "", times(s.ignoreGoLate, s.ignorePy), fraction(s.ignoreGoLate, s.ignoreBareMulti)+" (multi-ack)")
	}
	row(modeRedis, perSecond(s.redisGo), perSecond(s.redisPy), "-", times(s.redisGo, s.redisPy), "-")
	if s.etaN > 0 {
		fmt.Fprintf(&b, "%-15s peak RSS of the Go worker with %d ETA tasks held: %s\n", "eta_hold", s.etaN, mib(s.etaPeakKB))
	}
	fmt.Fprintf(&b, "targets: go/python >= %gx: %s (%s), %s (%s); go/bare >= %.2f: %s\n",
		targetGoOverPython,
		verdict(s.ignoreGo, s.ignorePy, targetGoOverPython), modeIgnore,
		verdict(s.redisGo, s.redisPy, targetGoOverPython), modeRedis,
		targetGoOverBare, verdict(s.ignoreGo, s.ignoreBare, targetGoOverBare))
	return b.String()
}

// verdict says whether a/b reaches target.
func verdict(a, b, target float64) string {
	switch {
	case a <= 0 || b <= 0:
		return "not measured"
	case a/b >= target:
		return "met"
	default:
		return "MISSED"
	}
}

// median is the middle value of xs (the mean of the two middle ones for an even count), 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// rateOf is n per second over d; 0 for a non-positive d.
func rateOf(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// perSecond formats a rate as "18500/s", or "-" when not measured.
func perSecond(r float64) string {
	if r <= 0 {
		return "-"
	}
	return strconv.FormatFloat(r, 'f', 0, 64) + "/s"
}

// times formats a/b as "5.1x", rounded down so that it never shows a target as met when it is
// not, or "-".
func times(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "-"
	}
	return strconv.FormatFloat(math.Floor(a/b*10+1e-9)/10, 'f', 1, 64) + "x"
}

// fraction formats a/b as "0.97", rounded down like times, or "-".
func fraction(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "-"
	}
	return strconv.FormatFloat(math.Floor(a/b*100+1e-9)/100, 'f', 2, 64)
}

// seconds formats a duration in seconds with millisecond precision.
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) + "s"
}

// mib formats kibibytes as MiB with one decimal.
func mib(kb int64) string {
	return strconv.FormatFloat(float64(kb)/1024, 'f', 1, 64) + " MiB"
}
