package procstat

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrNoListener is returned (wrapped) by ListenerPID when no process on this machine listens on
// the port, or the listening socket is not found among the open files of any process.
var ErrNoListener = errors.New("no process listens on the port")

// tcpListen is the st field of a LISTEN socket in /proc/net/tcp and /proc/net/tcp6.
const tcpListen = "0A"

// ListenInodes returns the inodes of the sockets in LISTEN state on TCP port port, from the
// contents of /proc/net/tcp or /proc/net/tcp6 (a header line, then one socket a line:
// "sl local_address rem_address st ... uid timeout inode ..."; addresses are HEX_IP:HEX_PORT).
// Lines out of that format are skipped.
func ListenInodes(table []byte, port int) []uint64 {
	var inodes []uint64
	sc := bufio.NewScanner(bytes.NewReader(table))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[3] != tcpListen {
			continue
		}
		i := strings.LastIndexByte(f[1], ':')
		if i < 0 {
			continue
		}
		p, err := strconv.ParseUint(f[1][i+1:], 16, 16)
		if err != nil || int(p) != port {
			continue
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil || inode == 0 {
			continue
		}
		inodes = append(inodes, inode)
	}
	return inodes
}

// ListenerPID returns the pid of the process that listens on TCP port port on this machine (IPv4
// or IPv6, any address), found by the inode of its LISTEN socket in /proc/net/tcp(6) and the
// /proc/<pid>/fd links that point at it. It reads other users' processes only with the privilege
// to (root, or the same user). More than one process holding the socket is an error: a reading
// of "the" server would then be a guess.
func ListenerPID(port int) (int, error) {
	want := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(table)
		if err != nil {
			continue // no IPv6, say
		}
		for _, inode := range ListenInodes(data, port) {
			want["socket:["+strconv.FormatUint(inode, 10)+"]"] = true
		}
	}
	if len(want) == 0 {
		return 0, fmt.Errorf("port %d: %w", port, ErrNoListener)
	}
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	pid := 0
	for _, fd := range fds {
		link, err := os.Readlink(fd)
		if err != nil || !want[link] {
			continue
		}
		p, err := strconv.Atoi(strings.Split(fd, "/")[2])
		if err != nil || p == pid {
			continue
		}
		if pid != 0 {
			return 0, fmt.Errorf("port %d: the listening socket is held by processes %d and %d", port, pid, p)
		}
		pid = p
	}
	if pid == 0 {
		return 0, fmt.Errorf("port %d: the listening socket is in no process's open files (not permitted to read them?): %w", port, ErrNoListener)
	}
	return pid, nil
}

// Servers are the TCP ports of the RabbitMQ and the Redis whose CPU time GroupCPU and ProcessCPU
// read: the processes listening on them.
type Servers struct {
	AMQPPort, RedisPort int
}

// ServersOf takes the ports from the benchmark's broker and Redis URLs; a URL without a port (or
// that does not parse) means the default port, 5672 or 6379.
func ServersOf(amqpURL, redisURL string) Servers {
	port := func(raw string, def int) int {
		u, err := url.Parse(raw)
		if err != nil {
			return def
		}
		p, err := strconv.Atoi(u.Port())
		if err != nil || p <= 0 || p > 65535 {
			return def
		}
		return p
	}
	return Servers{AMQPPort: port(amqpURL, 5672), RedisPort: port(redisURL, 6379)}
}
