package amqpbroker

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/broker/fanout"
	"github.com/forumads/forumads/celery/broker/fanout/fanouttest"
	"github.com/forumads/forumads/internal/tcpproxy"
	"github.com/forumads/forumads/internal/testenv"
)

// newTestFanout is a transport on a connection of its own to url, closed at cleanup.
func newTestFanout(t *testing.T, url string) *Fanout {
	t.Helper()
	f, err := NewFanout(url, Options{Logger: slog.New(slog.DiscardHandler), ConnectionName: "fanouttest " + t.Name(),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// TestFanoutConformance runs the fanout.Transport suite against RabbitMQ.
func TestFanoutConformance(t *testing.T) {
	t.Parallel()
	fanouttest.Run(t, fanouttest.Harness{
		New: func(t *testing.T) fanout.Transport { return newTestFanout(t, testenv.AMQPURL()) },
		NewCuttable: func(t *testing.T) (fanout.Transport, func()) {
			p, url := tcpproxy.StartURL(t, testenv.AMQPURL(), "5672")
			return newTestFanout(t, url), func() {
				if n := p.Cut(); n != 1 {
					t.Errorf("cut %d connections, want the transport's one", n)
				}
			}
		},
	})
}

// TestNewFanoutAndSharedBroker: a bad URL is refused at once, and the Fanout of a Broker leaves
// the Broker open when closed.
func TestNewFanoutAndSharedBroker(t *testing.T) {
	t.Parallel()
	if _, err := NewFanout("redis://h", Options{}); err == nil || !strings.Contains(err.Error(), "unsupported scheme") {
		t.Errorf("NewFanout(redis://h) = %v, want an unsupported scheme", err)
	}
	b, err := New("amqp://127.0.0.1:1/", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	f := b.Fanout()
	if f.Broker() != b {
		t.Error("Fanout().Broker() is another broker")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		t.Error("closing a Broker's Fanout closed the Broker")
	}
	if got := f.Capabilities(); !got.QueueTTL || !got.ConsumerCount {
		t.Errorf("Capabilities %+v", got)
	}
}

// TestFanoutQueueArguments: the queue arguments are kombu's, integers in milliseconds, 'I' when
// they fit.
func TestFanoutQueueArguments(t *testing.T) {
	t.Parallel()
	got := fanoutArgs(fanout.Queue{MessageTTL: 300 * time.Second, Expires: 10 * time.Second})
	if len(got) != 2 || got["x-message-ttl"] != int32(300000) || got["x-expires"] != int32(10000) {
		t.Errorf("arguments %#v", got)
	}
	if got := fanoutArgs(fanout.Queue{}); got != nil {
		t.Errorf("arguments without TTL or expiry %#v, want none", got)
	}
	if got := fanoutArgs(fanout.Queue{Expires: 30 * 24 * time.Hour}); got["x-expires"] != int64(30*24*3600*1000) {
		t.Errorf("30 days: %#v, want a 64-bit integer", got)
	}
}
