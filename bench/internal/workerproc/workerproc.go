// Package workerproc is how the benchmark programs bench/drain and bench/scale run the worker
// processes they measure: start one in a process group of its own (a Python prefork pool's
// children included) with its output in a log file, read its memory from /proc/<pid>/status
// (once, or sampled over a run), stop it warmly with SIGTERM (killing the group past a deadline),
// and kill whatever is still running when the bench ends early.
package workerproc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/forumads/forumads/bench/internal/procstat"
)

// killWait bounds the wait for a killed process to be reaped.
const killWait = 5 * time.Second

// Spec says what to run.
type Spec struct {
	Name string   // for messages and log tails: "go worker", "python worker"
	Argv []string // the program and its arguments
	Env  []string // its whole environment (NAME=value)
	Dir  string   // its working directory
	Log  string   // the file that gets its standard output and error (created or truncated)
}

// Process is a started worker. Its methods may be called from several goroutines.
type Process struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and been reaped
	err  error         // its exit status, once done is closed
}

// Start starts s in a process group of its own.
func Start(s Spec) (*Process, error) {
	if len(s.Argv) == 0 {
		return nil, errors.New("workerproc: no program to start")
	}
	logf, err := os.Create(s.Log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(s.Argv[0], s.Argv[1:]...)
	cmd.Env, cmd.Dir = s.Env, s.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the %s: %w", s.Name, err)
	}
	p := &Process{name: s.Name, log: s.Log, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// PID is the process's pid, which is also its process group's id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Name is the Spec's Name.
func (p *Process) Name() string { return p.name }

// Done is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited returns an error saying how the process ended if it has, nil while it runs.
func (p *Process) Exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("the %s (pid %d) exited: %v", p.name, p.PID(), p.err)
	default:
		return nil
	}
}

// Kill sends SIGKILL to the process group and waits, bounded, for the process to be reaped.
func (p *Process) Kill() {
	if err := syscall.Kill(-p.PID(), syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		_ = p.cmd.Process.Kill()
	}
	select {
	case <-p.done:
	case <-time.After(killWait):
	}
}

// Stop asks every process for a warm shutdown (SIGTERM) at once and waits for them; one still
// running `within` after that is killed. Then each process group is killed, for any child left
// behind. A process that had exited before Stop, ended with a failure status or had to be killed
// is an error.
func Stop(procs []*Process, within time.Duration) error {
	var errs []error
	signalled := make([]bool, len(procs))
	for i, p := range procs {
		if err := p.Exited(); err != nil {
			errs = append(errs, fmt.Errorf("%w, before it was stopped", err))
			continue
		}
		signalled[i] = p.cmd.Process.Signal(syscall.SIGTERM) == nil
	}
	deadline := time.Now().Add(within)
	for i, p := range procs {
		if signalled[i] {
			t := time.NewTimer(time.Until(deadline))
			select {
			case <-p.done:
				t.Stop()
				if p.err != nil {
					errs = append(errs, fmt.Errorf("the %s (pid %d): warm shutdown ended with %v", p.name, p.PID(), p.err))
				}
			case <-t.C:
				errs = append(errs, fmt.Errorf("the %s (pid %d) did not stop within %s of SIGTERM; killed", p.name, p.PID(), within))
			}
		}
		p.Kill()
	}
	return errors.Join(errs...)
}

// Tail is the last lines of the process's log, each line after prefix.
func (p *Process) Tail(lines int, prefix string) string {
	data, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	return procstat.LastLines(string(data), lines, prefix)
}

// ErrorLines counts the lines of the process's log that hold ERROR/ or CRITICAL/ (the level of
// Celery's log format and of the Go worker's).
func (p *Process) ErrorLines() int {
	data, err := os.ReadFile(p.log)
	if err != nil {
		return 0
	}
	n := 0
	for l := range bytes.Lines(data) {
		if bytes.Contains(l, []byte("ERROR/")) || bytes.Contains(l, []byte("CRITICAL/")) {
			n++
		}
	}
	return n
}

// Memory is what the benches read from /proc/<pid>/status, in KiB.
type Memory struct {
	HWM, RSS int64 // VmHWM (the peak RSS so far) and VmRSS
}

// Memory reads VmHWM and VmRSS of the process (its leader alone) from one reading of
// /proc/<pid>/status.
func (p *Process) Memory() (Memory, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID()) + "/status")
	if err != nil {
		return Memory{}, err
	}
	var m Memory
	var err1, err2 error
	m.HWM, err1 = procstat.StatusKB(data, "VmHWM")
	m.RSS, err2 = procstat.StatusKB(data, "VmRSS")
	return m, errors.Join(err1, err2)
}

// sum adds a field of Memory over the processes; one that cannot be read counts 0.
func sum(procs []*Process, field func(Memory) int64) int64 {
	var kb int64
	for _, p := range procs {
		if m, err := p.Memory(); err == nil {
			kb += field(m)
		}
	}
	return kb
}

// RSSTrace is VmRSS in KiB, summed over the processes, at the start, the peak and the end of a
// sampled run.
type RSSTrace struct{ Start, Peak, End int64 }

// Sampler reads the summed VmRSS of processes at an interval until stopped.
type Sampler struct {
	procs []*Process
	stopc chan struct{}
	done  chan struct{}
	trace RSSTrace
}

// SampleRSS reads the summed VmRSS of procs now (the start) and then every interval.
func SampleRSS(procs []*Process, every time.Duration) *Sampler {
	s := &Sampler{procs: procs, stopc: make(chan struct{}), done: make(chan struct{})}
	s.trace.Start = sum(procs, func(m Memory) int64 { return m.RSS })
	s.trace.Peak = s.trace.Start
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stopc:
				return
			case <-t.C:
				s.trace.Peak = max(s.trace.Peak, sum(procs, func(m Memory) int64 { return m.RSS }))
			}
		}
	}()
	return s
}

// Stop ends the sampling and returns the trace: the end is read now, and the peak also counts
// the summed VmHWM, which covers the moments between samples. Stop must be called once.
func (s *Sampler) Stop() RSSTrace {
	close(s.stopc)
	<-s.done
	s.trace.End = sum(s.procs, func(m Memory) int64 { return m.RSS })
	s.trace.Peak = max(s.trace.Peak, s.trace.End, sum(s.procs, func(m Memory) int64 { return m.HWM }))
	return s.trace
}

// Set is the processes a bench has running, to kill if it ends early. The zero Set is empty and
// ready to use.
type Set struct {
	mu    sync.Mutex
	procs []*Process
}

// Add adds p.
func (s *Set) Add(p *Process) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.procs = append(s.procs, p)
}

// Remove removes procs (stopped ones).
func (s *Set) Remove(procs ...*Process) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.procs[:0]
	for _, r := range s.procs {
		gone := false
		for _, p := range procs {
			gone = gone || r == p
		}
		if !gone {
			kept = append(kept, r)
		}
	}
	clear(s.procs[len(kept):])
	s.procs = kept
}

// KillAll kills every process of the set and empties it.
func (s *Set) KillAll() {
	s.mu.Lock()
	procs := s.procs
	s.procs = nil
	s.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
}

// Len is the number of processes in the set.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.procs)
}
