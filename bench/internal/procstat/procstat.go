// Package procstat holds what the benchmark programs bench/drain and bench/chord share: reading
// processes from Linux's /proc (the fields of /proc/<pid>/stat, kB fields of /proc/<pid>/status,
// the processes of a group, the CPU time of a worker, RabbitMQ and Redis), the environment and
// log tails of the workers they start, the process listening on a port (which RabbitMQ and which
// Redis to read), and the cleanup of the queues they declare.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// userHZ is USER_HZ, the unit of the CPU times in /proc/<pid>/stat (100 on Linux).
const userHZ = 100

// maxTicks bounds each CPU time read from /proc/<pid>/stat, so that user + system time in
// nanoseconds cannot overflow a time.Duration.
const maxTicks = math.MaxInt64 / 2 / (int64(time.Second) / userHZ)

// ErrBadStat is returned by ParseStat for contents that are not in /proc/<pid>/stat's format.
var ErrBadStat = errors.New("malformed /proc/<pid>/stat")

// ErrNoField is returned (wrapped) by StatusKB when the field is missing or is not a kB value.
var ErrNoField = errors.New("field not found or malformed")

// Stat is what the benchmarks take from /proc/<pid>/stat.
type Stat struct {
	PID  int
	Comm string // the command name, without its parentheses
	Pgrp int    // the process group
	CPU  time.Duration
}

// ParseStat reads the pid, the command name, the process group and the user + system CPU time
// from the contents of /proc/<pid>/stat. The name is between the first '(' and the last ')': it
// may itself hold spaces and parentheses. Anything out of format, or out of range, is ErrBadStat.
func ParseStat(data []byte) (Stat, error) {
	s := string(data)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return Stat{}, ErrBadStat
	}
	pid, err := strconv.Atoi(strings.TrimSpace(s[:open]))
	if err != nil || pid <= 0 {
		return Stat{}, ErrBadStat
	}
	// After the name: state(0) ppid(1) pgrp(2) session tty_nr tpgid flags minflt cminflt majflt
	// cmajflt utime(11) stime(12) ...
	rest := strings.Fields(s[closing+1:])
	if len(rest) < 13 {
		return Stat{}, ErrBadStat
	}
	pgrp, err := strconv.ParseInt(rest[2], 10, 64)
	if err != nil || pgrp < 0 || pgrp > math.MaxInt32 {
		return Stat{}, ErrBadStat
	}
	var ticks int64
	for _, f := range rest[11:13] {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil || v < 0 || v > maxTicks {
			return Stat{}, ErrBadStat
		}
		ticks += v
	}
	return Stat{PID: pid, Comm: s[open+1 : closing], Pgrp: int(pgrp),
		CPU: time.Duration(ticks) * (time.Second / userHZ)}, nil
}

// Processes reads /proc/<pid>/stat of every process on the machine. A process that exits
// meanwhile, or whose line does not parse, is left out.
func Processes() []Stat {
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	out := make([]Stat, 0, len(paths))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			continue // gone meanwhile
		}
		if st, err := ParseStat(data); err == nil {
			out = append(out, st)
		}
	}
	return out
}

// GroupPIDs returns the pids of the processes in process group pgid, in ascending order; none for
// a pgid that is not positive.
func GroupPIDs(pgid int) []int {
	var pids []int
	if pgid <= 0 {
		return pids
	}
	for _, st := range Processes() {
		if st.Pgrp == pgid {
			pids = append(pids, st.PID)
		}
	}
	slices.Sort(pids)
	return pids
}

// CPU is the CPU time (user + system) used so far by the processes under measure, by RabbitMQ's
// Erlang VM and by redis-server: the processes listening on the ports of Servers (never every
// beam.smp on the machine, which may run other brokers too). A server whose process is not found
// counts 0 with PID 0.
type CPU struct {
	Group    time.Duration // the process group, or the single process, being measured
	RabbitMQ time.Duration
	Redis    time.Duration
	// RabbitMQPID and RedisPID are the processes read (0: not found). In a difference (Sub) they
	// are 0, with the time 0, when the two readings were not of the same process: unavailable.
	RabbitMQPID, RedisPID int
}

// RabbitMQOK reports whether c.RabbitMQ is a reading (or, after Sub, a difference of two readings
// of one process).
func (c CPU) RabbitMQOK() bool { return c.RabbitMQPID != 0 }

// RedisOK reports whether c.Redis is a reading (or, after Sub, a difference of two readings of one
// process).
func (c CPU) RedisOK() bool { return c.RedisPID != 0 }

// Sub is the CPU time used between an earlier reading and c. A server read from different
// processes in the two (restarted, or another one took the port), or not found in either, is
// never subtracted: its time and PID are 0.
func (c CPU) Sub(earlier CPU) CPU {
	d := CPU{Group: c.Group - earlier.Group}
	if c.RabbitMQPID != 0 && c.RabbitMQPID == earlier.RabbitMQPID {
		d.RabbitMQ, d.RabbitMQPID = c.RabbitMQ-earlier.RabbitMQ, c.RabbitMQPID
	}
	if c.RedisPID != 0 && c.RedisPID == earlier.RedisPID {
		d.Redis, d.RedisPID = c.Redis-earlier.Redis, c.RedisPID
	}
	return d
}

// GroupCPU reads the CPU time of every process in process group pgid (none for a pgid that is not
// positive), of RabbitMQ and of Redis.
func GroupCPU(pgid int, s Servers) CPU {
	return readCPU(s, func(st Stat) bool { return pgid > 0 && st.Pgrp == pgid })
}

// ProcessCPU reads the CPU time of process pid alone, of RabbitMQ and of Redis.
func ProcessCPU(pid int, s Servers) CPU {
	return readCPU(s, func(st Stat) bool { return st.PID == pid })
}

// readCPU sums the CPU time of the processes that measured selects into Group, and reads those of
// the processes listening on the ports of s into RabbitMQ and Redis.
func readCPU(s Servers, measured func(Stat) bool) CPU {
	var c CPU
	if s.AMQPPort > 0 {
		c.RabbitMQPID, _ = ListenerPID(s.AMQPPort)
	}
	if s.RedisPort > 0 {
		c.RedisPID, _ = ListenerPID(s.RedisPort)
	}
	mqRead, redisRead := false, false
	for _, st := range Processes() {
		if measured(st) {
			c.Group += st.CPU
		}
		if c.RabbitMQPID != 0 && st.PID == c.RabbitMQPID {
			c.RabbitMQ, mqRead = st.CPU, true
		}
		if c.RedisPID != 0 && st.PID == c.RedisPID {
			c.Redis, redisRead = st.CPU, true
		}
	}
	// A server that exited between the lookup and the reading was not read.
	if !mqRead {
		c.RabbitMQPID = 0
	}
	if !redisRead {
		c.RedisPID = 0
	}
	return c
}

// StatusKB reads the value of a "Field:   1234 kB" line from the contents of /proc/<pid>/status.
// The first line of that field counts: if it is not a non-negative kB value, or there is none,
// the error wraps ErrNoField.
func StatusKB(status []byte, field string) (int64, error) {
	for line := range bytes.Lines(status) {
		name, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok || string(name) != field {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || v < 0 {
			break
		}
		return v, nil
	}
	return 0, fmt.Errorf("/proc/<pid>/status %s: %w", field, ErrNoField)
}

// ReadStatusKB reads field (a kB value such as VmHWM or VmRSS) from /proc/<pid>/status.
func ReadStatusKB(pid int, field string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return StatusKB(data, field)
}

// LastLines returns the last n lines of s (trailing newlines ignored), each with prefix in front
// and a newline after; "" for an empty s or an n that is not positive.
func LastLines(s string, n int, prefix string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" || n <= 0 {
		return ""
	}
	lines := strings.Split(s, "\n")
	var b strings.Builder
	for _, l := range lines[max(0, len(lines)-n):] {
		b.WriteString(prefix)
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// WithEnv returns a copy of env (NAME=value entries, as from os.Environ) with the variables of
// set added, in name order, after removing the earlier entries of the same names.
func WithEnv(env []string, set map[string]string) []string {
	out := make([]string, 0, len(env)+len(set))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if _, replaced := set[name]; !replaced {
			out = append(out, kv)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(set)) {
		out = append(out, k+"="+set[k])
	}
	return out
}

// EnvOr returns the environment variable name, or def when it is unset or empty.
func EnvOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// DeleteQueues deletes on conn each of the named queues and the exchange of the same name (Celery
// declares one per queue). A queue or exchange that does not exist is not an error; failing to
// open a channel is.
func DeleteQueues(conn *amqp.Connection, names []string) error {
	for _, n := range names {
		// Deleting a missing queue or exchange closes the channel: one channel per delete.
		for _, exchange := range []bool{false, true} {
			ch, err := conn.Channel()
			if err != nil {
				return fmt.Errorf("deleting queues: %w", err)
			}
			if exchange {
				_ = ch.ExchangeDelete(n, false, false)
			} else {
				_, _ = ch.QueueDelete(n, false, false, false)
			}
			_ = ch.Close()
		}
	}
	return nil
}
