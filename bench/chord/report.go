package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/forumads/forumads/bench/internal/procstat"
)

// targetRatio is the target: the Python workers take at least 5 times as long.
const targetRatio = 5.0

// expectedSum is the body's result for n header tasks diag.add(i, 0), i < n: 0 + 1 + ... + n-1.
func expectedSum(n int) int64 {
	return int64(n) * int64(n-1) / 2
}

// sideResult is one side's timed chord.
type sideResult struct {
	side    string
	n       int
	elapsed time.Duration // Send to the body's result seen
	send    time.Duration // Send alone
	cpu     procstat.CPU  // over elapsed
	peakKB  int64         // sum of VmHWM over the worker's processes; 0 if unknown
	procs   int           // processes counted in peakKB
}

// line renders the side's result line, e.g.
//
//	go-workers: chord of 10000: 1.230 s (8130 header tasks/s), cpu: worker 2.10 s (1.71 CPUs), rabbitmq ...
func (r sideResult) line() string {
	window := r.elapsed.Seconds()
	busy := func(name string, d time.Duration, ok bool) string {
		if !ok {
			return name + " n/a" // its process was not found on its port, or changed between the readings
		}
		s := fmt.Sprintf("%s %.2f s", name, d.Seconds())
		if window > 0 {
			s += fmt.Sprintf(" (%.2f CPUs)", d.Seconds()/window)
		}
		return s
	}
	s := fmt.Sprintf("%s-workers: chord of %d: %s s (%s header tasks/s), cpu: %s, %s, %s; Send took %s s, the result came %s s after it",
		r.side, r.n, secs(r.elapsed), strconv.FormatFloat(rate(r.n, r.elapsed), 'f', 0, 64),
		busy("worker", r.cpu.Group, true), busy("rabbitmq", r.cpu.RabbitMQ, r.cpu.RabbitMQOK()), busy("redis", r.cpu.Redis, r.cpu.RedisOK()), secs(r.send), secs(r.elapsed-r.send))
	if r.peakKB > 0 {
		s += "; peak RSS " + mib(r.peakKB)
		if r.procs > 1 {
			s += fmt.Sprintf(" (sum over %d processes)", r.procs)
		}
	}
	return s
}

// rate is n per second over d, 0 for a non-positive d.
func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// ratio is slow/fast rounded down to a tenth, so that a printed ratio never meets a target the
// measured one misses; 0 when either is not positive.
func ratio(slow, fast time.Duration) float64 {
	if slow <= 0 || fast <= 0 {
		return 0
	}
	return math.Floor(slow.Seconds()/fast.Seconds()*10+1e-9) / 10
}

// ratioLine is the final line: Python's time over Go's, against the target.
func ratioLine(goTime, pyTime time.Duration) string {
	r := ratio(pyTime, goTime)
	if r == 0 {
		return fmt.Sprintf("ratio python/go: - (target >= %gx): not measured", targetRatio)
	}
	verdict := "met"
	if r < targetRatio {
		verdict = "MISSED"
	}
	return fmt.Sprintf("ratio python/go: %sx (target >= %gx): %s", strconv.FormatFloat(r, 'f', 1, 64), targetRatio, verdict)
}

// secs formats d in seconds with millisecond precision.
func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) }

// mib formats kibibytes as MiB with one decimal.
func mib(kb int64) string { return strconv.FormatFloat(float64(kb)/1024, 'f', 1, 64) + " MiB" }

// errNotReady is returned by checkResult for a result that is not final yet (PENDING, STARTED,
// RETRY): the poll goes on.
var errNotReady = errors.New("result not ready")

// checkResult checks a stored celery-task-meta value: status SUCCESS and an integer result equal
// to want. A state that is not final returns errNotReady; any other mismatch a descriptive error.
func checkResult(val []byte, want int64) error {
	var meta struct {
		Status    string          `json:"status"`
		Result    json.RawMessage `json:"result"`
		Traceback *string         `json:"traceback"`
	}
	if err := json.Unmarshal(val, &meta); err != nil {
		return fmt.Errorf("undecodable result meta: %w", err)
	}
	switch meta.Status {
	case "SUCCESS":
	case "PENDING", "STARTED", "RECEIVED", "RETRY":
		return errNotReady
	default:
		msg := fmt.Sprintf("state %s, result %s", meta.Status, clip(meta.Result, 300))
		if meta.Traceback != nil {
			msg += "\n" + clip([]byte(*meta.Traceback), 2000)
		}
		return errors.New(msg)
	}
	dec := json.NewDecoder(bytes.NewReader(meta.Result))
	dec.UseNumber()
	var got any
	if err := dec.Decode(&got); err != nil {
		return fmt.Errorf("undecodable result %s: %w", clip(meta.Result, 300), err)
	}
	num, ok := got.(json.Number)
	if !ok {
		return fmt.Errorf("result %s, want the integer %d", clip(meta.Result, 300), want)
	}
	v, err := num.Int64()
	if err != nil || v != want {
		return fmt.Errorf("result %s, want %d", num, want)
	}
	return nil
}

// clip shortens b to at most n bytes for an error message.
func clip(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}
