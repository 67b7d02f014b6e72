package main

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is a worker the bench started, in a process group of its own (Python's prefork pool
// children included), with its output in a log file.
type process struct {
	kind    string // "go" or "python"
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	err     error         // its exit status, once done is closed
}

// startWorker starts the Go or the Python worker on queue q.
func (b *bench) startWorker(kind, q, label string) (*process, error) {
	var argv []string
	env := childEnv(os.Environ(), map[string]string{
		"CELERY_BROKER_URL":     b.o.amqpURL,
		"CELERY_RESULT_BACKEND": b.o.redisURL,
	})
	name := fmt.Sprintf("bench-%s-%s-%s@%%h", kind, label, b.sfx)
	switch kind {
	case "go":
		cfg, err := b.configFile()
		if err != nil {
			return nil, err
		}
		argv = []string{b.o.worker, "--config", cfg, "-Q", q, "-c", fmt.Sprint(b.o.goConc), "-n", name, "-l", "warning"}
	case "python":
		argv = []string{b.o.python, "-m", "celery", "-A", "pytasks", "worker", "-P", "prefork",
			"-c", fmt.Sprint(b.o.pyConc), "-Q", q, "-n", name,
			"--without-mingle", "--without-gossip", "--without-heartbeat", "-l", "warning"}
		env = childEnv(env, map[string]string{"PYTHONPATH": b.o.pytasks, "PYTHONDONTWRITEBYTECODE": "1"})
	default:
		return nil, fmt.Errorf("unknown worker kind %q", kind)
	}
	logPath := filepath.Join(b.tmp, fmt.Sprintf("%s-%s.log", kind, label))
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = b.tmp
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the %s worker: %w", kind, err)
	}
	p := &process{kind: kind, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	b.mu.Lock()
	b.running = append(b.running, p)
	b.mu.Unlock()
	return p, nil
}

// stopWorker asks for a warm shutdown (SIGTERM) and waits for the exit; past stopWithin it kills
// the process group. A worker that exited on its own before is an error.
func (b *bench) stopWorker(p *process) error {
	defer func() {
		b.mu.Lock()
		for i, q := range b.running {
			if q == p {
				b.running = append(b.running[:i], b.running[i+1:]...)
				break
			}
		}
		b.mu.Unlock()
	}()
	select {
	case <-p.done:
		p.kill() // leftover children, if any
		return fmt.Errorf("the worker had exited by itself: %v", p.err)
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopWithin):
		p.kill()
		return fmt.Errorf("the worker did not stop within %s of SIGTERM; killed", stopWithin)
	}
	if p.err != nil {
		p.kill() // pool processes it may have left behind
		return fmt.Errorf("the worker's warm shutdown ended with %v", p.err)
	}
	return nil
}

// kill sends SIGKILL to the process group and waits (bounded) for the leader to be reaped.
func (p *process) kill() {
	pid := p.cmd.Process.Pid
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		_ = p.cmd.Process.Kill()
	}
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// tail is the end of the worker's log, for error reports.
func (p *process) tail(lines int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	return tailLines(string(data), lines, "  "+p.kind+" worker log| ")
}

// errorLines counts ERROR and CRITICAL lines in the worker's log.
func (p *process) errorLines() int {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return 0
	}
	n := 0
	for _, l := range bytes.Split(data, []byte("\n")) {
		if bytes.Contains(l, []byte("ERROR/")) || bytes.Contains(l, []byte("CRITICAL/")) {
			n++
		}
	}
	return n
}

// tailLines returns the last n lines of s, each prefixed.
func tailLines(s string, n int, prefix string) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) == 1 && ls[0] == "" {
		return ""
	}
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(prefix)
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// childEnv returns env with the given variables set (replacing earlier values).
func childEnv(env []string, set map[string]string) []string {
	out := make([]string, 0, len(env)+len(set))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; !ok {
			out = append(out, kv)
		}
	}
	for k, v := range set {
		out = append(out, k+"="+v)
	}
	return out
}

// procStatus is what the bench reads from /proc/<pid>/status.
type procStatus struct {
	hwmKB, rssKB int64
}

func readProcStatus(pid int) (procStatus, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procStatus{}, err
	}
	var st procStatus
	if st.hwmKB, err = parseStatusKB(data, "VmHWM"); err != nil {
		return st, err
	}
	st.rssKB, err = parseStatusKB(data, "VmRSS")
	return st, err
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat (USER_HZ, 100 on Linux).
const userHZ = 100

// errBadStat is returned by parseStat for a line that is not /proc/<pid>/stat's format.
var errBadStat = errors.New("malformed /proc/<pid>/stat")

// procStat is what the bench reads from /proc/<pid>/stat.
type procStat struct {
	pid  int
	comm string
	pgrp int
	cpu  time.Duration // user + system
}

// parseStat reads the pid, the command name, the process group and user+system CPU time from the contents of
// /proc/<pid>/stat. The name is in parentheses and may itself hold spaces and parentheses.
func parseStat(data []byte) (procStat, error) {
	s := string(data)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procStat{}, errBadStat
	}
	pid, err := strconv.Atoi(strings.TrimSpace(s[:open]))
	if err != nil || pid <= 0 {
		return procStat{}, errBadStat
	}
	st := procStat{pid: pid, comm: s[open+1 : end]}
	// After the name: state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime.
	f := strings.Fields(s[end+1:])
	if len(f) < 13 {
		return procStat{}, errBadStat
	}
	var vals [3]int64
	for i, idx := range []int{2, 11, 12} {
		v, err := strconv.ParseInt(f[idx], 10, 64)
		if err != nil || v < 0 {
			return procStat{}, errBadStat
		}
		vals[i] = v
	}
	if vals[0] > math.MaxInt32 || vals[1] > math.MaxInt64/2/(int64(time.Second)/userHZ) || vals[2] > math.MaxInt64/2/(int64(time.Second)/userHZ) {
		return procStat{}, errBadStat
	}
	st.pgrp = int(vals[0])
	st.cpu = time.Duration(vals[1]+vals[2]) * (time.Second / userHZ)
	return st, nil
}

// cpuSample is the CPU time used so far by a worker's process group, by RabbitMQ and by Redis.
type cpuSample struct {
	group, broker, redis time.Duration
}

// sub is the CPU time used between an earlier sample and s.
func (s cpuSample) sub(earlier cpuSample) cpuSample {
	return cpuSample{group: s.group - earlier.group, broker: s.broker - earlier.broker, redis: s.redis - earlier.redis}
}

// sampleCPU sums the CPU time of every process in group pgid, or of process pid alone when pgid is
// 0, of RabbitMQ's Erlang VM (beam.smp) and of redis-server; 0 for a server not on this machine.
func sampleCPU(pgid, pid int) cpuSample {
	var s cpuSample
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range dirs {
		data, err := os.ReadFile(path)
		if err != nil {
			continue // exited meanwhile
		}
		st, err := parseStat(data)
		if err != nil {
			continue
		}
		if (pgid > 0 && st.pgrp == pgid) || (pgid == 0 && st.pid == pid) {
			s.group += st.cpu
		}
		switch st.comm {
		case "beam.smp":
			s.broker += st.cpu
		case "redis-server":
			s.redis += st.cpu
		}
	}
	return s
}
