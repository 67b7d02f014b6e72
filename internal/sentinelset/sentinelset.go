// Package sentinelset runs the Redis Sentinel set of scripts/redis-sentinel.sh for tests: a master
// on 127.0.0.1:6390, replicas on 6391-6392 and Sentinels on 26390-26392 monitoring "mymaster",
// with passwords on both the Redis nodes and the Sentinels so that every password option is
// exercised. Its tests are the Sentinel integration tests (the backend, revokes, beat and serving
// through Sentinel; a failover under load); they are the only tests using these ports.
//
// [Start] takes an exclusive lock on a file beside the set's state directory for as long as the
// set runs, so two test processes never share (or kill) one set.
package sentinelset

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/forumads/forumads/internal/testenv"
)

const (
	// MasterName is the name the Sentinels monitor the master under.
	MasterName = "mymaster"
	// Password is the Redis nodes' password (the master's, in the first sentinel:// URL).
	Password = "sentinelset-master-pw"
	// SentinelPassword is the Sentinels' own password (sentinel_kwargs: {password: …}).
	SentinelPassword = "sentinelset-sentinel-pw"
)

// SentinelPorts are the Sentinels' ports on 127.0.0.1.
var SentinelPorts = []string{"26390", "26391", "26392"}

// Set is a running Sentinel set.
type Set struct {
	dir  string
	lock *os.File
}

// Start stops whatever a previous run of the script left (only its own processes), starts a fresh
// set and waits until it is ready; it fails when the set cannot start (ports taken, redis-server
// or redis-sentinel missing), saying why.
func Start() (*Set, error) {
	dir := os.Getenv("REDIS_SENTINEL_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "forumads-redis-sentinel")
	}
	lock, err := os.OpenFile(dir+".testlock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sentinel set lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("sentinel set lock: %w", err)
	}
	s := &Set{dir: dir, lock: lock}
	if _, err := s.script("stop"); err != nil {
		s.unlock()
		return nil, err
	}
	if _, err := s.script("start"); err != nil {
		_, _ = s.script("stop")
		s.unlock()
		return nil, err
	}
	return s, nil
}

// Stop stops the set's processes and releases the lock.
func (s *Set) Stop() error {
	_, err := s.script("stop")
	s.unlock()
	return err
}

func (s *Set) unlock() {
	_ = syscall.Flock(int(s.lock.Fd()), syscall.LOCK_UN)
	_ = s.lock.Close()
}

// URL is the set's sentinel:// list, with the master's password in the first URL (as Celery reads
// it), database db.
func (s *Set) URL(db int) string {
	urls := make([]string, len(SentinelPorts))
	for i, p := range SentinelPorts {
		urls[i] = fmt.Sprintf("sentinel://127.0.0.1:%s/%d", p, db)
	}
	urls[0] = fmt.Sprintf("sentinel://:%s@127.0.0.1:%s/%d", Password, SentinelPorts[0], db)
	return strings.Join(urls, ";")
}

// TransportOptions are the transport options the set needs: master_name and the Sentinels'
// password.
func (s *Set) TransportOptions() map[string]any {
	return map[string]any{"master_name": MasterName, "sentinel_kwargs": map[string]any{"password": SentinelPassword}}
}

// Master is the master's host:port as the Sentinels name it.
func (s *Set) Master() (string, error) { return s.script("master") }

// KillMaster SIGKILLs the current master and returns its port.
func (s *Set) KillMaster() (string, error) { return s.script("kill-master") }

// Revive starts the set's stopped Redis nodes again as replicas of the current master.
func (s *Set) Revive() error {
	_, err := s.script("revive")
	return err
}

// script runs scripts/redis-sentinel.sh with the set's passwords and returns its output's last
// line.
func (s *Set) script(cmd string) (string, error) {
	c := exec.Command(filepath.Join(testenv.RepoRoot(), "scripts", "redis-sentinel.sh"), cmd)
	c.Env = append(os.Environ(), "REDIS_SENTINEL_DIR="+s.dir, "REDIS_SENTINEL_PASSWORD="+Password,
		"REDIS_SENTINEL_SENTINEL_PASSWORD="+SentinelPassword)
	out, err := c.CombinedOutput()
	text := strings.TrimSpace(string(out))
	if err != nil {
		return "", fmt.Errorf("scripts/redis-sentinel.sh %s: %w\n%s", cmd, err, text)
	}
	if i := strings.LastIndexByte(text, '\n'); i >= 0 {
		text = text[i+1:]
	}
	return text, nil
}
