package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/forumads/forumads/bench/internal/procstat"
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
	env := procstat.WithEnv(os.Environ(), map[string]string{
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
		env = procstat.WithEnv(env, map[string]string{"PYTHONPATH": b.o.pytasks, "PYTHONDONTWRITEBYTECODE": "1"})
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
	return procstat.LastLines(string(data), lines, "  "+p.kind+" worker log| ")
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

// procStatus is what the bench reads from /proc/<pid>/status.
type procStatus struct {
	hwmKB, rssKB int64
}

// readProcStatus reads VmHWM and VmRSS of process pid from one reading of /proc/<pid>/status.
func readProcStatus(pid int) (procStatus, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procStatus{}, err
	}
	var st procStatus
	if st.hwmKB, err = procstat.StatusKB(data, "VmHWM"); err != nil {
		return st, err
	}
	st.rssKB, err = procstat.StatusKB(data, "VmRSS")
	return st, err
}
