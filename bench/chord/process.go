package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stopWithin is how long a worker has to exit after SIGTERM before its process group is killed.
// A Celery prefork worker stopped while busy can take up to 30 s: each pool process that exits
// waits that long (billiard polls every 0.1 s, 300 times) for the main process, which has
// stopped reading, to have taken its last results.
const stopWithin = 45 * time.Second

// worker is a worker process the bench started. It leads a process group of its own, so that
// Python's pool processes are counted (CPU, RSS) and stopped with it; its output goes to a log.
type worker struct {
	side    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed once the process has been reaped
	waitErr error         // the exit status, valid after exited is closed
}

// workerCommand returns the argv and the extra environment of a side's worker consuming queue q.
// cfgPath is the Go worker's configuration file.
func workerCommand(o options, side, q, node, cfgPath string) ([]string, map[string]string, error) {
	env := map[string]string{
		"CELERY_BROKER_URL":     o.amqpURL,
		"CELERY_RESULT_BACKEND": o.redisURL,
	}
	switch side {
	case sideGo:
		return []string{o.worker, "--config", cfgPath, "-Q", q, "-c", strconv.Itoa(o.goConc), "-n", node,
			"-l", "warning", "--without-mingle", "--metrics-addr", ""}, env, nil
	case sidePython:
		env["PYTHONPATH"] = o.pytasks
		env["PYTHONDONTWRITEBYTECODE"] = "1"
		return []string{o.python, "-m", "celery", "-A", "pytasks", "worker", "-Q", q,
			"-c", strconv.Itoa(o.pyConc), "-P", "prefork", "--without-mingle", "--without-gossip",
			"-n", node, "-l", "warning"}, env, nil
	}
	return nil, nil, fmt.Errorf("unknown side %q", side)
}

// goWorkerConfig is the Go worker's configuration file: JSON only, the prefetch multiplier written
// out (Celery's default 4), and a dead-letter queue of the run's own (dlq) that the bench deletes.
func goWorkerConfig(o options, dlq string) string {
	return fmt.Sprintf("broker_url: %s\nresult_backend: %s\naccept_content: [json]\nworker_concurrency: %d\n"+
		"worker_prefetch_multiplier: 4\nworker_dead_letter_queue: %s\n",
		strconv.Quote(o.amqpURL), strconv.Quote(o.redisURL), o.goConc, strconv.Quote(dlq))
}

// startWorker starts argv in dir with env added to the bench's environment, in a new process group,
// with stdout and stderr in logPath.
func startWorker(side string, argv []string, env map[string]string, dir, logPath string) (*worker, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = withEnv(os.Environ(), env)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the %s worker: %w", side, err)
	}
	w := &worker{side: side, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		w.waitErr = cmd.Wait()
		close(w.exited)
	}()
	return w, nil
}

// pid is the worker's process id, which is also its process group id.
func (w *worker) pid() int { return w.cmd.Process.Pid }

// stop asks for a warm shutdown (SIGTERM) and waits for the process to exit; past stopWithin it
// kills the process group. A worker that had already exited, did not stop in time, or exited with
// an error status is reported as an error. Pool processes left behind are killed in every case.
func (w *worker) stop() error {
	select {
	case <-w.exited:
		w.killGroup()
		return fmt.Errorf("the %s worker had exited by itself (%v)", w.side, w.waitErr)
	default:
	}
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(stopWithin)
	defer timer.Stop()
	select {
	case <-w.exited:
	case <-timer.C:
		w.killGroup()
		return fmt.Errorf("the %s worker did not stop within %s of SIGTERM: killed", w.side, stopWithin)
	}
	w.killGroup()
	if w.waitErr != nil {
		return fmt.Errorf("the %s worker's warm shutdown ended with %v", w.side, w.waitErr)
	}
	return nil
}

// killGroup sends SIGKILL to whatever is left of the process group and waits, bounded, for the
// leader to be reaped.
func (w *worker) killGroup() {
	if err := syscall.Kill(-w.pid(), syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		_ = w.cmd.Process.Kill()
	}
	select {
	case <-w.exited:
	case <-time.After(5 * time.Second):
	}
}

// logTail is the end of the worker's log, indented, for error reports.
func (w *worker) logTail(n int) string {
	data, err := os.ReadFile(w.logPath)
	if err != nil {
		return ""
	}
	return lastLines(string(data), n, "  "+w.side+" worker| ")
}

// lastLines returns the last n lines of s (trailing newlines ignored), each with prefix and a
// newline.
func lastLines(s string, n int, prefix string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" || n <= 0 {
		return ""
	}
	lines := strings.Split(s, "\n")
	lines = lines[max(0, len(lines)-n):]
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(prefix + l + "\n")
	}
	return b.String()
}

// withEnv returns env with the variables of set added, replacing earlier values of the same names.
func withEnv(env []string, set map[string]string) []string {
	out := make([]string, 0, len(env)+len(set))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if _, replaced := set[name]; !replaced {
			out = append(out, kv)
		}
	}
	for k, v := range set {
		out = append(out, k+"="+v)
	}
	return out
}

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat (100 on Linux).
const clockTicks = 100

// statFields is what the bench takes from /proc/<pid>/stat.
type statFields struct {
	pid, pgrp int
	comm      string
	cpu       time.Duration // utime + stime
}

// parseProcStat reads /proc/<pid>/stat's pid, command name, process group and user + system
// CPU time. The name is between the first '(' and the last ')', and may hold spaces and parentheses.
func parseProcStat(line string) (statFields, error) {
	bad := fmt.Errorf("malformed /proc/<pid>/stat line %q", line)
	open, closing := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open <= 0 || closing < open {
		return statFields{}, bad
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line[:open]))
	if err != nil || pid <= 0 {
		return statFields{}, bad
	}
	// After the name: state(0) ppid(1) pgrp(2) session tty_nr tpgid flags minflt cminflt majflt
	// cmajflt utime(11) stime(12) ...
	rest := strings.Fields(line[closing+1:])
	if len(rest) < 13 {
		return statFields{}, bad
	}
	pgrp, err := strconv.Atoi(rest[2])
	if err != nil || pgrp < 0 {
		return statFields{}, bad
	}
	var ticks int64
	for _, f := range rest[11:13] {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil || v < 0 || v > 1<<40 {
			return statFields{}, bad
		}
		ticks += v
	}
	return statFields{pid: pid, pgrp: pgrp, comm: line[open+1 : closing],
		cpu: time.Duration(ticks) * (time.Second / clockTicks)}, nil
}

// cpuTimes is the CPU time used so far by a worker's process group, by RabbitMQ (beam.smp) and by
// redis-server.
type cpuTimes struct {
	worker, rabbit, redis time.Duration
}

// minus is the CPU time used between an earlier reading and c.
func (c cpuTimes) minus(earlier cpuTimes) cpuTimes {
	return cpuTimes{worker: c.worker - earlier.worker, rabbit: c.rabbit - earlier.rabbit, redis: c.redis - earlier.redis}
}

// readCPU reads the CPU times of process group pgid, RabbitMQ and Redis from /proc. A server not
// running on this machine counts 0.
func readCPU(pgid int) cpuTimes {
	var c cpuTimes
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			continue // gone meanwhile
		}
		st, err := parseProcStat(string(bytes.TrimSpace(data)))
		if err != nil {
			continue
		}
		if st.pgrp == pgid {
			c.worker += st.cpu
		}
		switch st.comm {
		case "beam.smp":
			c.rabbit += st.cpu
		case "redis-server":
			c.redis += st.cpu
		}
	}
	return c
}

// statusKB reads a "Field:   1234 kB" line of /proc/<pid>/status.
func statusKB(status, field string) (int64, error) {
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || v < 0 {
			break
		}
		return v, nil
	}
	return 0, fmt.Errorf("no valid %s line in /proc/<pid>/status", field)
}

// groupPeakRSS sums VmHWM (peak resident set) over the processes of group pgid and counts them.
func groupPeakRSS(pgid int) (kb int64, procs int) {
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		st, err := parseProcStat(string(bytes.TrimSpace(data)))
		if err != nil || st.pgrp != pgid {
			continue
		}
		status, err := os.ReadFile(filepath.Join(filepath.Dir(p), "status"))
		if err != nil {
			continue
		}
		if v, err := statusKB(string(status), "VmHWM"); err == nil {
			kb += v
			procs++
		}
	}
	return kb, procs
}
