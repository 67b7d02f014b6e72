package interop

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/forumads/forumads/internal/testenv"
)

// workerBin is the Go worker built once by TestMain.
var workerBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	bins, cleanup, err := testenv.BuildPrograms(false, "./worker")
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		return 1
	}
	defer cleanup()
	workerBin = bins["./worker"]
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "interop: leaked goroutines:", err)
			return 1
		}
	}
	return code
}

// pythonPath is PYTHON, default /usr/bin/python3 (Debian's python3-celery 5.2).
func pythonPath() string {
	if p := os.Getenv("PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}

// testdataDir is the absolute path of testdata/.
func testdataDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// logBuffer collects a subprocess's output lines and lets a test wait for one.
type logBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	marks map[string]chan struct{}
}

func newLogBuffer(marks ...string) *logBuffer {
	l := &logBuffer{marks: map[string]chan struct{}{}}
	for _, m := range marks {
		l.marks[m] = make(chan struct{})
	}
	return l
}

// consume reads r line by line until EOF.
func (l *logBuffer) consume(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		l.mu.Lock()
		l.buf.WriteString(line)
		l.buf.WriteByte('\n')
		for m, ch := range l.marks {
			if strings.Contains(line, m) {
				close(ch)
				delete(l.marks, m)
			}
		}
		l.mu.Unlock()
	}
}

// String is everything logged so far.
func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitFor waits until a line containing mark (given to newLogBuffer) was seen, the process exited, or
// the deadline passed.
func (l *logBuffer) waitFor(mark string, exited <-chan struct{}, deadline time.Duration) error {
	l.mu.Lock()
	ch, ok := l.marks[mark]
	l.mu.Unlock()
	if !ok {
		return nil // already seen
	}
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	select {
	case <-ch:
		return nil
	case <-exited:
		return fmt.Errorf("the process exited before logging %q", mark)
	case <-timer.C:
		return fmt.Errorf("%q not logged within %s", mark, deadline)
	}
}

// process is a started subprocess whose combined output goes to a logBuffer.
type process struct {
	name   string
	cmd    *exec.Cmd
	log    *logBuffer
	exited chan struct{}
	err    error // Wait's result, valid once exited is closed
}

// startProcess starts cmd with its stdout and stderr collected; the output is logged when the test
// fails. The caller stops it.
func startProcess(t *testing.T, name string, cmd *exec.Cmd, marks ...string) *process {
	t.Helper()
	p := &process{name: name, cmd: cmd, log: newLogBuffer(marks...), exited: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		p.log.consume(pr)
	}()
	go func() {
		p.err = cmd.Wait()
		_ = pw.Close()
		<-readDone
		close(p.exited)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, p.log.String())
		}
	})
	return p
}

// stop sends SIGTERM (a warm shutdown for both workers) and waits for the exit, killing the process
// if it does not exit within the deadline. It returns the exit error (nil for status 0).
func (p *process) stop(deadline time.Duration) error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s had already exited: %v", p.name, p.err)
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("signalling %s: %w", p.name, err)
	}
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	select {
	case <-p.exited:
		return p.err
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s did not exit within %s of SIGTERM; killed", p.name, deadline)
	}
}

// outputError is a malformed line in a Python script's output.
type outputError struct {
	Line int
	Msg  string
}

func (e *outputError) Error() string { return fmt.Sprintf("python output line %d: %s", e.Line, e.Msg) }

// errNoReport is returned when the output ends without a report line.
var errNoReport = errors.New("python output: no report line")

// outputLine is one line of testdata/client.py's output.
type outputLine struct {
	Sent   *string         `json:"sent"`
	Report json.RawMessage `json:"report"`
}

// parseOutput decodes client.py's output: the ids of the tasks it sent, and its report. Blank lines
// are ignored; every other line must be a JSON object with exactly one of "sent" and "report", and
// nothing may follow the report. The ids are returned even with an error, for cleanup.
func parseOutput(out []byte) (sent []string, report json.RawMessage, err error) {
	for i, line := range bytes.Split(out, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		n := i + 1
		if report != nil {
			return sent, nil, &outputError{Line: n, Msg: "text after the report"}
		}
		var l outputLine
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return sent, nil, &outputError{Line: n, Msg: err.Error()}
		}
		if _, err := dec.Token(); err != io.EOF {
			return sent, nil, &outputError{Line: n, Msg: "more than one JSON value"}
		}
		switch {
		case l.Sent != nil && l.Report == nil:
			if *l.Sent == "" {
				return sent, nil, &outputError{Line: n, Msg: "empty task id"}
			}
			sent = append(sent, *l.Sent)
		case l.Sent == nil && l.Report != nil && !bytes.Equal(l.Report, []byte("null")):
			report = l.Report
		default:
			return sent, nil, &outputError{Line: n, Msg: `want exactly one of "sent" and "report"`}
		}
	}
	if report == nil {
		return sent, nil, errNoReport
	}
	return sent, report, nil
}

// decodeJSON decodes data into v keeping numbers exact (json.Number in interfaces).
func decodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(v)
}

// pythonEnv is the environment of a Python process: ours plus the given variables. Celery reads
// CELERY_BROKER_URL and CELERY_RESULT_BACKEND before its app's settings, so they are pinned to the
// test's services.
func pythonEnv(kv map[string]string) []string {
	env := append(os.Environ(), "CELERY_BROKER_URL="+testenv.AMQPURL(), "CELERY_RESULT_BACKEND="+testenv.RedisURL())
	for k, v := range kv {
		env = append(env, k+"="+v)
	}
	return env
}
