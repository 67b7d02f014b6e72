package workerproc

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/bench/internal/procstat"
)

// Shell scripts standing in for workers. Each announces itself on its log ("up") once its TERM
// trap is set, so that a test signals it only then.
const (
	warm    = `trap 'exit 0' TERM; echo up; while :; do sleep 0.05; done`
	failing = `trap 'exit 2' TERM; echo up; while :; do sleep 0.05; done`
	deaf    = `trap '' TERM; echo up; while :; do sleep 0.05; done`
	quits   = `echo up; exit 3`
	// leaves a child behind in its group when it exits warmly; the child's pid is on the log
	parent = `sleep 60 & echo "child $!"; trap 'exit 0' TERM; echo up; while :; do sleep 0.05; done`
)

// start runs script under sh and waits until it logged "up".
func start(t *testing.T, script string) *Process {
	t.Helper()
	p, err := Start(Spec{Name: "test worker", Argv: []string{"sh", "-c", script}, Env: os.Environ(),
		Dir: t.TempDir(), Log: filepath.Join(t.TempDir(), "worker.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.Tail(5, ""), "up\n") {
		if time.Now().After(deadline) {
			t.Fatalf("the script did not start: %q", p.Tail(5, ""))
		}
		time.Sleep(5 * time.Millisecond)
	}
	return p
}

func TestStop(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		script  string
		within  time.Duration
		wantErr string // "" = none
	}{
		{"warm shutdown", warm, time.Minute, ""},
		{"failing shutdown", failing, time.Minute, "warm shutdown ended with exit status 2"},
		{"ignores SIGTERM", deaf, 100 * time.Millisecond, "did not stop within 100ms of SIGTERM; killed"},
		{"exited before", quits, time.Minute, "exited: exit status 3, before it was stopped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := start(t, tc.script)
			if tc.script == quits {
				<-p.Done()
			}
			err := Stop([]*Process{p}, tc.within)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Stop: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Stop: %v, want an error with %q", err, tc.wantErr)
			}
			select {
			case <-p.Done():
			default:
				t.Errorf("the process still runs after Stop")
			}
			if p.Exited() == nil {
				t.Errorf("Exited() = nil after Stop")
			}
		})
	}
}

// TestStopSeveral stops a warm and a deaf process together: the deaf one is killed, the warm one
// is not reported.
func TestStopSeveral(t *testing.T) {
	t.Parallel()
	a, b := start(t, warm), start(t, deaf)
	err := Stop([]*Process{a, b}, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("(pid %d) did not stop", b.PID())) ||
		strings.Contains(err.Error(), fmt.Sprintf("(pid %d)", a.PID())) {
		t.Errorf("Stop: %v, want the deaf process %d alone reported", err, b.PID())
	}
}

// TestStopKillsTheGroup checks that a child left behind in the worker's process group is killed.
func TestStopKillsTheGroup(t *testing.T) {
	t.Parallel()
	p := start(t, parent)
	var child int
	if _, err := fmt.Sscanf(p.Tail(5, ""), "child %d", &child); err != nil || child <= 0 {
		t.Fatalf("no child pid in the log %q: %v", p.Tail(5, ""), err)
	}
	if err := Stop([]*Process{p}, time.Minute); err != nil {
		t.Fatal(err)
	}
	// Sent SIGKILL, the child is soon gone or a zombie waiting for init to reap it.
	running := func() string {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(child) + "/stat")
		if err != nil {
			return ""
		}
		if st, err := procstat.ParseStat(data); err != nil || st.Pgrp != p.PID() || strings.Contains(string(data), ") Z ") {
			return ""
		}
		return string(data)
	}
	for deadline := time.Now().Add(10 * time.Second); running() != "" && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if st := running(); st != "" {
		t.Errorf("the child %d still runs in the group: %s", child, st)
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		spec Spec
	}{
		{"no program", Spec{Name: "w", Log: filepath.Join(t.TempDir(), "a.log")}},
		{"missing program", Spec{Name: "w", Argv: []string{filepath.Join(t.TempDir(), "none")}, Log: filepath.Join(t.TempDir(), "b.log")}},
		{"log in a missing directory", Spec{Name: "w", Argv: []string{"true"}, Log: filepath.Join(t.TempDir(), "none", "c.log")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if p, err := Start(tc.spec); err == nil {
				p.Kill()
				t.Errorf("Start(%+v) succeeded", tc.spec)
			}
		})
	}
}

func TestLog(t *testing.T) {
	t.Parallel()
	p := start(t, `echo "[x: ERROR/MainProcess] a"; echo "b CRITICAL/x"; echo info; echo last; `+warm)
	if got, want := p.ErrorLines(), 2; got != want {
		t.Errorf("ErrorLines() = %d, want %d", got, want)
	}
	if got, want := p.Tail(2, "| "), "| last\n| up\n"; got != want {
		t.Errorf("Tail(2) = %q, want %q", got, want)
	}
	if err := Stop([]*Process{p}, time.Minute); err != nil {
		t.Fatal(err)
	}
}

func TestMemory(t *testing.T) {
	t.Parallel()
	a, b := start(t, warm), start(t, warm)
	m, err := a.Memory()
	if err != nil || m.RSS <= 0 || m.HWM < m.RSS {
		t.Errorf("Memory() = %+v, %v; want a VmRSS and a VmHWM at least as large", m, err)
	}
	s := SampleRSS([]*Process{a, b}, time.Millisecond)
	tr := s.Stop()
	if tr.Start <= m.RSS || tr.Peak < tr.Start || tr.Peak < tr.End || tr.End <= 0 {
		t.Errorf("trace of two processes %+v, one alone has %d KiB", tr, m.RSS)
	}
	if err := Stop([]*Process{a, b}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Memory(); err == nil {
		t.Errorf("Memory() of a stopped process succeeded")
	}
	if tr := SampleRSS([]*Process{a}, time.Millisecond).Stop(); tr != (RSSTrace{}) {
		t.Errorf("trace of a stopped process = %+v, want zeros", tr)
	}
}

func TestSet(t *testing.T) {
	t.Parallel()
	var s Set
	a, b, c := start(t, warm), start(t, warm), start(t, warm)
	for _, p := range []*Process{a, b, c} {
		s.Add(p)
	}
	s.Remove(b)
	if s.Len() != 2 {
		t.Errorf("Len() = %d after removing one of three", s.Len())
	}
	s.KillAll()
	for _, p := range []*Process{a, c} {
		if p.Exited() == nil {
			t.Errorf("pid %d runs after KillAll", p.PID())
		}
	}
	if b.Exited() != nil || s.Len() != 0 {
		t.Errorf("the removed process was killed (%v) or the set is not empty (%d)", b.Exited(), s.Len())
	}
	if err := Stop([]*Process{b}, time.Minute); err != nil {
		t.Error(err)
	}
}
