package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/forumads/forumads/bench/internal/procstat"
	"github.com/forumads/forumads/bench/internal/workerproc"
)

// process is a worker the bench started (bench/internal/workerproc: a process group of its own,
// Python's prefork pool children included, with its output in a log file).
type process struct {
	*workerproc.Process
	kind string // "go" or "python"
}

// startWorker starts the Go or the Python worker on queue q; acksLate is the Go worker's
// task_acks_late.
func (b *bench) startWorker(kind, q, label string, acksLate bool) (*process, error) {
	var argv []string
	env := procstat.WithEnv(os.Environ(), map[string]string{
		"CELERY_BROKER_URL":     b.o.amqpURL,
		"CELERY_RESULT_BACKEND": b.o.redisURL,
	})
	name := fmt.Sprintf("bench-%s-%s-%s@%%h", kind, label, b.sfx)
	switch kind {
	case "go":
		cfg, err := b.configFile(label, acksLate)
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
	wp, err := workerproc.Start(workerproc.Spec{Name: kind + " worker", Argv: argv, Env: env, Dir: b.tmp,
		Log: filepath.Join(b.tmp, fmt.Sprintf("%s-%s.log", kind, label))})
	if err != nil {
		return nil, err
	}
	b.procs.Add(wp)
	return &process{Process: wp, kind: kind}, nil
}

// stopWorker asks for a warm shutdown (SIGTERM) and waits for the exit; past stopWithin it kills
// the process group. A worker that exited on its own before is an error.
func (b *bench) stopWorker(p *process) error {
	defer b.procs.Remove(p.Process)
	return workerproc.Stop([]*workerproc.Process{p.Process}, stopWithin)
}

// tail is the end of the worker's log, for error reports.
func (p *process) tail(lines int) string {
	return p.Tail(lines, "  "+p.kind+" worker log| ")
}
