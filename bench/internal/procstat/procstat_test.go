package procstat

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const sampleStat = "2956 (beam.smp) S 1 2950 2950 0 -1 4194560 91234 0 12 0 2412 1031 0 0 20 0 39 0 1234 4194304000 30000 18446744073709551615 1 1 0 0 0 0 0 4224 17987 0 0 0 17 1 0 0 0 0 0\n"

func TestParseStat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, stat string
		want       Stat
		wantErr    bool
	}{
		{"beam", sampleStat, Stat{PID: 2956, Comm: "beam.smp", Pgrp: 2950, CPU: 34430 * time.Millisecond}, false},
		{"name with spaces and parens", "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 5 6 0\n",
			Stat{PID: 7, Comm: "a (b) c", Pgrp: 7, CPU: 110 * time.Millisecond}, false},
		{"celery worker, no newline", "4242 (celery (worker) x) S 1 4200 4200 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 3 0 100 0 0",
			Stat{PID: 4242, Comm: "celery (worker) x", Pgrp: 4200, CPU: 3250 * time.Millisecond}, false},
		{"exactly the fields needed", "1 (a) S 1 2 3 4 5 6 7 8 9 10 11 12",
			Stat{PID: 1, Comm: "a", Pgrp: 2, CPU: 230 * time.Millisecond}, false},
		{"truncated", "7 (w) R 1 7 7 0 -1 0 0 0 0 0 5", Stat{}, true},
		{"one field short", "1 (a) S 1 2 3 4 5 6 7 8 9 10 11", Stat{}, true},
		{"no name", "7 w R 1 7 7 0 -1 0 0 0 0 0 5 6 0", Stat{}, true},
		{"no parentheses", "4242 celery S 1 4200", Stat{}, true},
		{"bad pid", "x (w) R 1 7 7 0 -1 0 0 0 0 0 5 6 0", Stat{}, true},
		{"bad pid, exact length", "x (a) S 1 2 3 4 5 6 7 8 9 10 11 12", Stat{}, true},
		{"bad process group", "1 (a) S 1 two 3 4 5 6 7 8 9 10 11 12", Stat{}, true},
		{"process group out of range", "1 (a) S 1 4294967296 3 4 5 6 7 8 9 10 11 12", Stat{}, true},
		{"negative utime", "7 (w) R 1 7 7 0 -1 0 0 0 0 0 -5 6 0", Stat{}, true},
		{"negative stime", "1 (a) S 1 2 3 4 5 6 7 8 9 10 11 -12", Stat{}, true},
		{"huge time", "7 (w) R 1 7 7 0 -1 0 0 0 0 0 9223372036854775807 6 0", Stat{}, true},
		{"empty", "", Stat{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseStat([]byte(tc.stat))
			if tc.wantErr {
				if !errors.Is(err, ErrBadStat) {
					t.Fatalf("ParseStat(%q) = %+v, %v; want ErrBadStat", tc.stat, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseStat(%q) = %+v, %v; want %+v", tc.stat, got, err, tc.want)
			}
		})
	}
}

// FuzzParseStat checks that any input gives ErrBadStat or sane values, and that a stat line built
// from the values read back gives the same values.
func FuzzParseStat(f *testing.F) {
	f.Add([]byte(sampleStat))
	f.Add([]byte("7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 5 6 0\n"))
	f.Add([]byte("1 () R"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseStat(data)
		if err != nil {
			if !errors.Is(err, ErrBadStat) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if st.PID <= 0 || st.Pgrp < 0 || st.CPU < 0 {
			t.Fatalf("insane values %+v from %q", st, data)
		}
		if strings.ContainsAny(st.Comm, "\x00") {
			return
		}
		ticks := int64(st.CPU / (time.Second / userHZ))
		line := fmt.Sprintf("%d (%s) S 1 %d 0 0 -1 0 0 0 0 0 %d 0 0\n", st.PID, st.Comm, st.Pgrp, ticks)
		again, err := ParseStat([]byte(line))
		if err != nil || again != st {
			t.Fatalf("round trip of %+v through %q: %+v, %v", st, line, again, err)
		}
	})
}

func TestStatusKB(t *testing.T) {
	t.Parallel()
	const status = "Name:\tworker\nVmPeak:\t  900000 kB\nVmHWM:\t   42100 kB\nVmRSS:\t   40000 kB\nThreads:\t9\n"
	for _, tc := range []struct {
		name, status, field string
		want                int64 // -1: an error wrapping ErrNoField
	}{
		{"VmHWM", status, "VmHWM", 42100},
		{"VmRSS", status, "VmRSS", 40000},
		{"missing field", status, "VmSwap", -1},
		{"not kB", status, "Threads", -1},
		{"not a number", status, "Name", -1},
		{"last line, no newline", "Name:\tw\nVmHWM:\t 5 kB", "VmHWM", 5},
		{"a longer name is another field", "VmHWMax:\t3 kB\nVmHWM:\t4 kB\n", "VmHWM", 4},
		{"the first line of the field counts", "VmHWM:\t1 MB\nVmHWM:\t2 kB\n", "VmHWM", -1},
		{"negative", "VmHWM:\t-3 kB\n", "VmHWM", -1},
		{"extra words", "VmHWM:\t3 kB more\n", "VmHWM", -1},
		{"no value", "VmHWM:\n", "VmHWM", -1},
		{"only a longer name", "VmHWMX:\t1 kB\n", "VmHWM", -1},
		{"nothing", "", "VmHWM", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := StatusKB([]byte(tc.status), tc.field)
			if tc.want < 0 {
				if !errors.Is(err, ErrNoField) || !strings.Contains(err.Error(), tc.field) {
					t.Fatalf("StatusKB(%q, %s) = %d, %v; want an error naming the field and wrapping ErrNoField", tc.status, tc.field, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("StatusKB(%q, %s) = %d, %v; want %d", tc.status, tc.field, got, err, tc.want)
			}
		})
	}
}

// FuzzStatusKB: any input gives a non-negative value or an ErrNoField error, and a well-formed
// line added to an input that lacks the field is read back exactly.
func FuzzStatusKB(f *testing.F) {
	f.Add([]byte("Name:\tworker\nVmHWM:\t   43012 kB\nVmRSS:\t   40960 kB\n"), int64(1))
	f.Add([]byte("VmHWM:\t12 MB\n"), int64(0))
	f.Add([]byte(""), int64(9223372036854775807))
	f.Fuzz(func(t *testing.T, status []byte, v int64) {
		got, err := StatusKB(status, "VmHWM")
		switch {
		case err != nil && !errors.Is(err, ErrNoField):
			t.Fatalf("untyped error %v", err)
		case err == nil && got < 0:
			t.Fatalf("negative value %d", got)
		}
		if v < 0 || strings.Contains(string(status), "VmHWM:") {
			return
		}
		doc := string(status)
		if doc != "" && !strings.HasSuffix(doc, "\n") {
			doc += "\n"
		}
		doc += fmt.Sprintf("VmHWM:\t%8d kB\n", v)
		if got, err := StatusKB([]byte(doc), "VmHWM"); err != nil || got != v {
			t.Fatalf("round trip of %d through %q: %d, %v", v, doc, got, err)
		}
	})
}

func TestReadStatusKB(t *testing.T) {
	t.Parallel()
	for _, field := range []string{"VmHWM", "VmRSS"} {
		if v, err := ReadStatusKB(os.Getpid(), field); err != nil || v <= 0 {
			t.Errorf("%s of this process: %d, %v; want a positive value", field, v, err)
		}
	}
	if v, err := ReadStatusKB(os.Getpid(), "Threads"); !errors.Is(err, ErrNoField) {
		t.Errorf("Threads (not kB): %d, %v; want ErrNoField", v, err)
	}
	if _, err := ReadStatusKB(-1, "VmHWM"); err == nil {
		t.Error("a process that does not exist has a status")
	}
}

func TestCPUSub(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                 string
		later, earlier, want CPU
	}{
		{"same servers",
			CPU{Group: 5 * time.Second, RabbitMQ: 3 * time.Second, Redis: time.Second, RabbitMQPID: 7, RedisPID: 9},
			CPU{Group: 2 * time.Second, RabbitMQ: time.Second, Redis: time.Second, RabbitMQPID: 7, RedisPID: 9},
			CPU{Group: 3 * time.Second, RabbitMQ: 2 * time.Second, RabbitMQPID: 7, RedisPID: 9}},
		{"rabbitmq pid changed: never subtracted",
			CPU{Group: 5 * time.Second, RabbitMQ: time.Second, Redis: 2 * time.Second, RabbitMQPID: 8, RedisPID: 9},
			CPU{Group: 2 * time.Second, RabbitMQ: 3 * time.Second, Redis: time.Second, RabbitMQPID: 7, RedisPID: 9},
			CPU{Group: 3 * time.Second, Redis: time.Second, RedisPID: 9}},
		{"redis pid changed",
			CPU{RabbitMQ: 2 * time.Second, Redis: time.Second, RabbitMQPID: 7, RedisPID: 10},
			CPU{RabbitMQ: time.Second, Redis: 4 * time.Second, RabbitMQPID: 7, RedisPID: 9},
			CPU{RabbitMQ: time.Second, RabbitMQPID: 7}},
		{"servers found only later", CPU{Redis: time.Millisecond, RedisPID: 3, RabbitMQ: time.Second, RabbitMQPID: 4}, CPU{}, CPU{}},
		{"nothing", CPU{}, CPU{}, CPU{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.later.Sub(tc.earlier)
			if got != tc.want {
				t.Errorf("%+v.Sub(%+v) = %+v, want %+v", tc.later, tc.earlier, got, tc.want)
			}
			if got.RabbitMQOK() != (tc.want.RabbitMQPID != 0) || got.RedisOK() != (tc.want.RedisPID != 0) {
				t.Errorf("RabbitMQOK %v, RedisOK %v for %+v", got.RabbitMQOK(), got.RedisOK(), got)
			}
		})
	}
}

func TestListenInodes(t *testing.T) {
	t.Parallel()
	const header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	const table = header +
		"   0: 0100007F:1628 00000000:0000 0A 00000000:00000000 00:00000000 00000000   107        0 31337 1 0000000000000000 100 0 0 10 0\n" + // 127.0.0.1:5672 LISTEN
		"   1: 0100007F:18EB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n" + // :6379 LISTEN
		"   2: 0100007F:1628 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000   107        0 5555 1 0000000000000000 20 4 30 10 -1\n" + // :5672 ESTABLISHED
		"   3: 0100007F:A0DE 0100007F:1628 01 00000000:00000000 00:00000000 00000000     0        0 6666 1 0000000000000000 20 4 30 10 -1\n" // a client of :5672
	const table6 = header +
		"   0: 00000000000000000000000000000000:1628 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   107        0 777 1 0000000000000000 100 0 0 10 0\n"
	for _, tc := range []struct {
		name  string
		table string
		port  int
		want  []uint64
	}{
		{"listener among connections", table, 5672, []uint64{31337}},
		{"another port", table, 6379, []uint64{4242}},
		{"no listener", table, 15672, nil},
		{"a port only connected to", table, 41182, nil},
		{"ipv6", table6, 5672, []uint64{777}},
		{"empty", "", 5672, nil},
		{"malformed lines", header + "   0: 0100007F 00000000:0000 0A 0 0 0 0 0 1\n   1: 0100007F:ZZZZ 0:0 0A 0 0 0 0 0 2\n   2: 0100007F:1628 0:0 0A 0 0 0 0 0 x\n", 5672, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ListenInodes([]byte(tc.table), tc.port); !slices.Equal(got, tc.want) {
				t.Errorf("ListenInodes(port %d) = %v, want %v", tc.port, got, tc.want)
			}
		})
	}
}

// TestListenerPID finds this process by the listeners it opens, and no process for a port it
// closed.
func TestListenerPID(t *testing.T) {
	t.Parallel()
	open := func(t *testing.T, network, addr string) int {
		ln, err := net.Listen(network, addr)
		if err != nil {
			t.Skipf("cannot listen on %s %s: %v", network, addr, err)
		}
		t.Cleanup(func() { _ = ln.Close() })
		return ln.Addr().(*net.TCPAddr).Port
	}
	closed := func(t *testing.T) int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		if err := ln.Close(); err != nil {
			t.Fatal(err)
		}
		return port
	}
	for _, tc := range []struct {
		name    string
		port    func(t *testing.T) int
		wantPID int // 0: ErrNoListener
	}{
		{"ipv4 loopback", func(t *testing.T) int { return open(t, "tcp4", "127.0.0.1:0") }, os.Getpid()},
		{"ipv6 loopback", func(t *testing.T) int { return open(t, "tcp6", "[::1]:0") }, os.Getpid()},
		{"closed port", closed, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := tc.port(t)
			pid, err := ListenerPID(port)
			switch {
			case tc.wantPID == 0 && !errors.Is(err, ErrNoListener):
				t.Errorf("ListenerPID(%d) = %d, %v; want ErrNoListener", port, pid, err)
			case tc.wantPID != 0 && (err != nil || pid != tc.wantPID):
				t.Errorf("ListenerPID(%d) = %d, %v; want %d", port, pid, err, tc.wantPID)
			}
		})
	}
}

// TestServerCPU reads the local RabbitMQ and Redis (scripts/services.sh) by their ports: the
// processes found are beam.smp and redis-server, and their times do not go backwards.
func TestServerCPU(t *testing.T) {
	t.Parallel()
	s := ServersOf(EnvOr("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"), EnvOr("REDIS_URL", "redis://127.0.0.1:6379/0"))
	c0 := ProcessCPU(os.Getpid(), s)
	if !c0.RabbitMQOK() || !c0.RedisOK() {
		t.Fatalf("reading %+v: %+v, want both servers found (run scripts/services.sh)", s, c0)
	}
	for _, tc := range []struct {
		pid  int
		comm string
	}{{c0.RabbitMQPID, "beam.smp"}, {c0.RedisPID, "redis-server"}} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", tc.pid))
		if err != nil {
			t.Fatal(err)
		}
		if st, err := ParseStat(data); err != nil || st.Comm != tc.comm {
			t.Errorf("process %d: %+v, %v; want %s", tc.pid, st, err, tc.comm)
		}
	}
	d := ProcessCPU(os.Getpid(), s).Sub(c0)
	if d.RabbitMQPID != c0.RabbitMQPID || d.RedisPID != c0.RedisPID || d.RabbitMQ < 0 || d.Redis < 0 {
		t.Errorf("difference of two readings: %+v (first %+v)", d, c0)
	}
}

func TestServersOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		amqp, redis string
		want        Servers
	}{
		{"amqp://guest:guest@127.0.0.1:5672/", "redis://127.0.0.1:6379/0", Servers{5672, 6379}},
		{"amqp://guest:guest@127.0.0.1:5673/", "redis://127.0.0.1:6380/2", Servers{5673, 6380}},
		{"amqp://localhost/", "redis://localhost", Servers{5672, 6379}},
		{"::not a url", "redis://h:99999/0", Servers{5672, 6379}},
	} {
		if got := ServersOf(tc.amqp, tc.redis); got != tc.want {
			t.Errorf("ServersOf(%q, %q) = %+v, want %+v", tc.amqp, tc.redis, got, tc.want)
		}
	}
}

// TestProcesses reads this machine's /proc: this process, a child in a process group of its own,
// and the CPU time of both.
func TestProcesses(t *testing.T) {
	t.Parallel()
	self := os.Getpid()
	procs := Processes()
	i := slices.IndexFunc(procs, func(st Stat) bool { return st.PID == self })
	if i < 0 {
		t.Fatalf("this process (%d) is not among the %d of Processes()", self, len(procs))
	}
	if st := procs[i]; st.Pgrp != syscall.Getpgrp() || st.Comm == "" {
		t.Errorf("this process: %+v, want process group %d and a name", st, syscall.Getpgrp())
	}

	child := exec.Command("sleep", "60")
	child.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-child.Process.Pid, syscall.SIGKILL)
		_ = child.Wait()
	})
	pgid := child.Process.Pid
	if got := GroupPIDs(pgid); !slices.Equal(got, []int{pgid}) {
		t.Errorf("GroupPIDs(%d) = %v, want the child alone", pgid, got)
	}
	if !slices.Contains(GroupPIDs(syscall.Getpgrp()), self) {
		t.Errorf("GroupPIDs(%d) = %v, lacks this process", syscall.Getpgrp(), GroupPIDs(syscall.Getpgrp()))
	}
	for _, bad := range []int{0, -1} {
		if got := GroupPIDs(bad); len(got) != 0 {
			t.Errorf("GroupPIDs(%d) = %v, want none", bad, got)
		}
		if got := GroupCPU(bad, Servers{}); got.Group != 0 {
			t.Errorf("GroupCPU(%d).Group = %s, want 0", bad, got.Group)
		}
	}

	// Spin until the kernel has charged this process at least two ticks.
	deadline := time.Now().Add(10 * time.Second)
	var own CPU
	for own = ProcessCPU(self, Servers{}); own.Group < 2*time.Second/userHZ && time.Now().Before(deadline); own = ProcessCPU(self, Servers{}) {
		for spin := time.Now(); time.Since(spin) < 20*time.Millisecond; {
		}
	}
	if own.Group < 2*time.Second/userHZ {
		t.Fatalf("ProcessCPU(self, Servers{}).Group = %s after spinning", own.Group)
	}
	if group := GroupCPU(syscall.Getpgrp(), Servers{}); group.Group < own.Group {
		t.Errorf("GroupCPU of this process's group = %s, below this process's own %s", group.Group, own.Group)
	}
	if got := ProcessCPU(self, Servers{}).Sub(own); got.Group < 0 || got.RabbitMQ < 0 || got.Redis < 0 {
		t.Errorf("CPU time went backwards: %+v", got)
	}
}

func TestLastLines(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		n        int
		want     string
	}{
		{"shorter than n", "a\nb\n", 5, "> a\n> b\n"},
		{"one line shorter than n", "a\n", 5, "> a\n"},
		{"last n", "a\nb\nc\nd", 2, "> c\n> d\n"},
		{"trailing newlines ignored", "a\nb\nc\n\n", 2, "> b\n> c\n"},
		{"blank lines inside kept", "a\n\nb\n", 3, "> a\n> \n> b\n"},
		{"empty", "", 3, ""},
		{"only newlines", "\n\n", 3, ""},
		{"zero lines", "a\nb\n", 0, ""},
		{"negative n", "a\nb\n", -1, ""},
	} {
		if got := LastLines(tc.in, tc.n, "> "); got != tc.want {
			t.Errorf("%s: LastLines(%q, %d) = %q, want %q", tc.name, tc.in, tc.n, got, tc.want)
		}
	}
}

func TestWithEnv(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  []string
		set  map[string]string
		want []string // the kept entries in order, then the set ones by name
	}{
		{"replaces", []string{"PATH=/bin", "CELERY_BROKER_URL=amqp://elsewhere//", "HOME=/root"},
			map[string]string{"CELERY_BROKER_URL": "amqp://here//"},
			[]string{"PATH=/bin", "HOME=/root", "CELERY_BROKER_URL=amqp://here//"}},
		{"replaces and adds, keeps an entry without '='", []string{"A=1", "B=2", "PYTHONPATH=/old", "C"},
			map[string]string{"PYTHONPATH": "/new", "D": "4"},
			[]string{"A=1", "B=2", "C", "D=4", "PYTHONPATH=/new"}},
		{"every earlier value goes", []string{"X=1", "Y=2", "X=3"}, map[string]string{"X": "4", "W": ""},
			[]string{"Y=2", "W=", "X=4"}},
		{"nothing to set", []string{"A=1"}, nil, []string{"A=1"}},
		{"empty environment", nil, map[string]string{"B": "2", "A": "1"}, []string{"A=1", "B=2"}},
	} {
		in := slices.Clone(tc.env)
		got := WithEnv(tc.env, tc.set)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: WithEnv(%q, %v) = %q, want %q", tc.name, tc.env, tc.set, got, tc.want)
		}
		if !slices.Equal(in, tc.env) {
			t.Errorf("%s: WithEnv changed its argument: %q", tc.name, tc.env)
		}
	}
}

func TestEnvOr(t *testing.T) {
	name := "PROCSTAT_TEST_" + rand.Text()
	for _, tc := range []struct {
		name       string
		set        bool
		value, def string
		want       string
	}{
		{"unset", false, "", "fallback", "fallback"},
		{"empty", true, "", "fallback", "fallback"},
		{"set", true, "amqp://x/", "fallback", "amqp://x/"},
	} {
		if tc.set {
			t.Setenv(name, tc.value)
		} else {
			_ = os.Unsetenv(name)
		}
		if got := EnvOr(name, tc.def); got != tc.want {
			t.Errorf("%s: EnvOr = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestDeleteQueues declares a queue and an exchange of the same name, as Celery does, and deletes
// them with a name that does not exist in between. RabbitMQ is required.
func TestDeleteQueues(t *testing.T) {
	t.Parallel()
	url := EnvOr("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("RabbitMQ is required at %s (run scripts/services.sh): %v", url, err)
	}
	defer conn.Close()
	sfx := rand.Text()
	kept, gone, missing := "procstat.test.kept."+sfx, "procstat.test.gone."+sfx, "procstat.test.missing."+sfx
	t.Cleanup(func() {
		if c, err := amqp.Dial(url); err == nil {
			_ = DeleteQueues(c, []string{kept, gone})
			_ = c.Close()
		}
	})
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{kept, gone} {
		if err := ch.ExchangeDeclare(q, "direct", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if err := ch.QueueBind(q, q, q, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	_ = ch.Close()

	if err := DeleteQueues(conn, []string{missing, gone}); err != nil {
		t.Fatalf("DeleteQueues: %v", err)
	}
	exists := func(name string, exchange bool) bool {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		defer ch.Close()
		if exchange {
			err = ch.ExchangeDeclarePassive(name, "direct", true, false, false, false, nil)
		} else {
			_, err = ch.QueueDeclarePassive(name, true, false, false, false, nil)
		}
		var aerr *amqp.Error
		if err != nil && !(errors.As(err, &aerr) && aerr.Code == amqp.NotFound) {
			t.Fatalf("checking %s: %v", name, err)
		}
		return err == nil
	}
	for _, tc := range []struct {
		name string
		want bool
	}{{gone, false}, {missing, false}, {kept, true}} {
		for _, exchange := range []bool{false, true} {
			if got := exists(tc.name, exchange); got != tc.want {
				t.Errorf("%s (exchange %t) exists: %t, want %t", tc.name, exchange, got, tc.want)
			}
		}
	}

	if err := DeleteQueues(conn, []string{kept}); err != nil {
		t.Fatalf("DeleteQueues: %v", err)
	}
	if exists(kept, false) || exists(kept, true) {
		t.Errorf("%s still exists after DeleteQueues", kept)
	}

	_ = conn.Close()
	if err := DeleteQueues(conn, []string{kept}); err == nil || !strings.Contains(err.Error(), "deleting queues") {
		t.Errorf("DeleteQueues on a closed connection: %v, want a deleting queues error", err)
	}
}
