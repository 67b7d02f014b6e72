package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/forumads/forumads/bench/internal/procstat"
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
	cmd.Env = procstat.WithEnv(os.Environ(), env)
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
	return procstat.LastLines(string(data), n, "  "+w.side+" worker| ")
}

// groupPeakRSS sums VmHWM (peak resident set) over the processes of group pgid and counts them.
func groupPeakRSS(pgid int) (kb int64, procs int) {
	for _, pid := range procstat.GroupPIDs(pgid) {
		if v, err := procstat.ReadStatusKB(pid, "VmHWM"); err == nil {
			kb += v
			procs++
		}
	}
	return kb, procs
}
