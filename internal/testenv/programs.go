package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// BuildPrograms builds main packages of the repository ("./worker", "./beat") into a new temporary
// directory, for tests that run the real programs as subprocesses. It returns the binaries by package
// and a cleanup function removing them. race builds them with the race detector.
//
// It also sets WORKER_METRICS_ADDR and BEAT_METRICS_ADDR to empty in this process's environment
// (unless set already), so the programs a test starts serve no metrics on the fixed default ports,
// where parallel tests would collide; a test that wants metrics passes --metrics-addr.
func BuildPrograms(race bool, pkgs ...string) (bins map[string]string, cleanup func(), err error) {
	for _, v := range []string{"WORKER_METRICS_ADDR", "BEAT_METRICS_ADDR"} {
		if _, ok := os.LookupEnv(v); !ok {
			if err := os.Setenv(v, ""); err != nil {
				return nil, nil, err
			}
		}
	}
	dir, err := os.MkdirTemp("", "forumads-bin-")
	if err != nil {
		return nil, nil, err
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	bins = map[string]string{}
	for _, pkg := range pkgs {
		bin := filepath.Join(dir, filepath.Base(pkg))
		args := []string{"build", "-o", bin}
		if race {
			args = append(args, "-race")
		}
		build := exec.Command("go", append(args, pkg)...)
		build.Dir = RepoRoot()
		if out, err := build.CombinedOutput(); err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("building %s: %v\n%s", pkg, err, out)
		}
		bins[pkg] = bin
	}
	return bins, cleanup, nil
}

// LogBuffer collects a subprocess's output; it is safe for concurrent use.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Count is how many lines contain every one of parts.
func (l *LogBuffer) Count(parts ...string) int {
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		all := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				all = false
				break
			}
		}
		if all {
			n++
		}
	}
	return n
}
