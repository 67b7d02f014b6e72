package amqpwire

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/internal/testenv"
)

// These tests need the real RabbitMQ at AMQP_URL and, for the interop
// test, Debian's python3-amqp under /usr/bin/python3.

func amqpURL() string { return testenv.AMQPURL() }

// dialRabbit opens a connection to RabbitMQ, through the wrapper when wrap
// is set, closed when the test ends.
func dialRabbit(t *testing.T, wrap bool, opts Options) *amqp.Connection {
	t.Helper()
	var cfg amqp.Config
	if wrap {
		cfg.Dial = Dialer(nil, opts)
	}
	conn, err := amqp.DialConfig(amqpURL(), cfg)
	if err != nil {
		t.Fatalf("RabbitMQ is required at %s (set AMQP_URL): %v", amqpURL(), err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// tempQueue declares a queue with a unique name. It is not auto-delete,
// because a consumer connection that dies would take it and its message
// with it; it expires when unused for a minute and is deleted at cleanup.
func tempQueue(t *testing.T) string {
	t.Helper()
	name := testenv.Name(t, "amqpwire")
	ch, err := dialRabbit(t, true, Options{}).Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(name, false, false, false, false, amqp.Table{"x-expires": int32(60000)}); err != nil {
		t.Fatalf("declare %s: %v", name, err)
	}
	testenv.DeleteQueuesAtCleanup(t, name)
	return name
}

// publish sends one message to queue and waits for the broker's confirm.
func publish(t *testing.T, conn *amqp.Connection, queue string, headers amqp.Table, body string) {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, amqp.Publishing{Headers: headers, Body: []byte(body)})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if ok, err := conf.WaitContext(ctx); !ok || err != nil {
		t.Fatalf("publish not confirmed: %v %v", ok, err)
	}
}

// consumeOne starts a consumer on a new channel and returns its first
// delivery, acked.
func consumeOne(t *testing.T, conn *amqp.Connection, queue string) amqp.Delivery {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := next(t, deliveries)
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	return d
}

type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) add(e Event) { l.mu.Lock(); l.events = append(l.events, e); l.mu.Unlock() }

func (l *eventLog) has(dir, kind string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if e.Direction == dir && e.Kind == kind {
			return true
		}
	}
	return false
}

func TestRabbitGoInt64Headers(t *testing.T) {
	t.Parallel()
	q := tempQueue(t)
	var log eventLog
	// Published through the wrapper, the int64s reach the broker as 'L'.
	pub := dialRabbit(t, true, Options{OnEvent: log.add})
	headers := amqp.Table{"x-big": int64(1 << 40), "x-neg": int64(-1 << 40), "x-i16": int16(-7), "x-str": "s"}
	publish(t, pub, q, headers, "first")
	headers["x-i16"] = int32(-7) // widened on the way out
	if !log.has(Outbound, KindRetype) {
		t.Error("no outbound retype event")
	}

	// The trap: plain amqp091-go cannot read the message and drops the
	// whole connection; the broker requeues the message.
	plain := dialRabbit(t, false, Options{})
	closed := plain.NotifyClose(make(chan *amqp.Error, 1))
	ch, err := plain.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Consume(q, "", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-closed:
		if err == nil || err.Code != amqp.FrameError {
			t.Fatalf("plain connection closed with %v, want a frame error", err)
		}
		t.Logf("plain amqp091-go died as expected: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("plain amqp091-go read an 'L' header: the trap this package exists for is gone")
	}

	// Through the wrapper the same message arrives with its values, and the
	// connection stays usable.
	sub := dialRabbit(t, true, Options{OnEvent: log.add})
	d := consumeOne(t, sub, q)
	if !d.Redelivered || string(d.Body) != "first" {
		t.Errorf("got body %q redelivered=%v, want the requeued first message", d.Body, d.Redelivered)
	}
	for k, want := range headers {
		if got := d.Headers[k]; got != want {
			t.Errorf("header %s = %#v, want %#v", k, got, want)
		}
	}
	if !log.has(Inbound, KindRetype) {
		t.Error("no inbound retype event")
	}
	publish(t, sub, q, amqp.Table{"x-n": int64(-5)}, "second")
	if d := consumeOne(t, sub, q); string(d.Body) != "second" || d.Headers["x-n"] != int64(-5) {
		t.Errorf("second message: %q %v", d.Body, d.Headers)
	}
	if sub.IsClosed() {
		t.Error("wrapped connection closed")
	}
}

// pyAMQP runs a py-amqp snippet against the broker: "publish" sends the
// Python message, "get" prints the headers of one basic_get as JSON.
const pyAMQP = `
import json, os, sys, amqp
c = amqp.Connection(host=os.environ["AW_HOST"], userid=os.environ["AW_USER"],
                    password=os.environ["AW_PASS"], virtual_host=os.environ["AW_VHOST"])
c.connect()
ch = c.channel()
q = sys.argv[2]
if sys.argv[1] == "publish":
    ch.confirm_select()
    ch.basic_publish(amqp.Message(body="py", application_headers={"x-big": 2**40, "x-neg": -2**40}),
                     exchange="", routing_key=q)
else:
    m = ch.basic_get(q, no_ack=True)
    print(json.dumps(None if m is None else m.properties.get("application_headers")))
c.close()
`

func runPython(t *testing.T, mode, queue string) []byte {
	t.Helper()
	uri, err := amqp.ParseURI(amqpURL())
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/bin/python3", "-c", pyAMQP, mode, queue)
	cmd.Env = append(os.Environ(),
		"AW_HOST="+net.JoinHostPort(uri.Host, strconv.Itoa(uri.Port)),
		"AW_USER="+uri.Username, "AW_PASS="+uri.Password, "AW_VHOST="+uri.Vhost)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("python3 %s (py-amqp from python3-amqp is required): %v\n%s", mode, err, stderr)
	}
	return out
}

// pyHeaders publishes from Go and returns the headers Python reads.
func pyHeaders(t *testing.T, conn *amqp.Connection, q string, headers amqp.Table) map[string]json.Number {
	t.Helper()
	publish(t, conn, q, headers, "go")
	var got map[string]json.Number
	dec := json.NewDecoder(bytes.NewReader(runPython(t, "get", q)))
	dec.UseNumber()
	if err := dec.Decode(&got); err != nil || got == nil {
		t.Fatalf("python read no message or bad JSON: %v", err)
	}
	return got
}

func TestRabbitPythonInterop(t *testing.T) {
	t.Parallel()
	q := tempQueue(t)
	wrapped := dialRabbit(t, true, Options{})

	// Python's 2**40 and -2**40 (written as 'L') read as Go int64.
	runPython(t, "publish", q)
	d := consumeOne(t, wrapped, q)
	if d.Headers["x-big"] != int64(1<<40) || d.Headers["x-neg"] != int64(-1<<40) {
		t.Errorf("Go read Python headers %#v", d.Headers)
	}

	// Go int64 and int16 through the wrapper: Python sees signed values.
	got := pyHeaders(t, wrapped, q, amqp.Table{"x-neg": int64(-1 << 40), "x-i16": int16(-7)})
	if got["x-neg"] != "-1099511627776" || got["x-i16"] != "-7" {
		t.Errorf("Python read %v, want x-neg=-1099511627776 x-i16=-7", got)
	}

	// Without the wrapper Python reads the int64 'l' as unsigned.
	got = pyHeaders(t, dialRabbit(t, false, Options{}), q, amqp.Table{"x-neg": int64(-1 << 40)})
	if got["x-neg"] != "18446742974197923840" {
		t.Errorf("Python read %v from plain amqp091-go; the unsigned trap changed", got)
	}
}
