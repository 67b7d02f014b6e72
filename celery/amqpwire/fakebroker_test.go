package amqpwire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// fakeBroker speaks just enough AMQP 0-9-1 over one end of a net.Pipe for
// amqp091-go to open a connection and a channel, start a consumer and
// receive deliveries whose content headers the test writes byte for byte.
// It lets the tests check what amqp091-go itself makes of the wrapper's
// output, without a real broker.
type fakeBroker struct {
	conn     net.Conn
	frameMax uint32
	mu       sync.Mutex // serializes writes to conn
	tags     chan string
	done     chan struct{}
	dtag     uint64
}

// dialFake returns an amqp091-go connection to a fresh fakeBroker, through
// the wrapper when wrap is true, and the broker.
func dialFake(t *testing.T, wrap bool, opts Options) (*amqp.Connection, *fakeBroker) {
	t.Helper()
	srv, cli := net.Pipe()
	b := &fakeBroker{conn: srv, frameMax: 131072, tags: make(chan string, 1), done: make(chan struct{})}
	go b.serve()
	t.Cleanup(func() {
		_ = srv.Close()
		<-b.done
	})
	dial := func(string, string) (net.Conn, error) { return cli, nil }
	if wrap {
		dial = Dialer(dial, opts)
	}
	conn, err := amqp.DialConfig("amqp://guest:guest@fake/?heartbeat=0", amqp.Config{Dial: dial})
	if err != nil {
		t.Fatalf("amqp091-go could not open a connection to the fake broker: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn, b
}

// consume opens a channel with an auto-ack consumer on the fake broker.
func (b *fakeBroker) consume(t *testing.T, conn *amqp.Connection) <-chan amqp.Delivery {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	deliveries, err := ch.Consume("q", "", true, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	return deliveries
}

func (b *fakeBroker) write(frames ...[]byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, f := range frames {
		if _, err := b.conn.Write(f); err != nil {
			return err
		}
	}
	return nil
}

func method(channel uint16, class, id uint16, args ...[]byte) []byte {
	return frame(frameMethod, channel, cat(u16(class), u16(id), cat(args...)))
}

// deliver sends basic.deliver on channel 1, a content header with the given
// payload (its body size set to 5) and a 5-byte body. It returns false when
// the client hung up.
func (b *fakeBroker) deliver(t *testing.T, payload []byte) bool {
	t.Helper()
	payload = bytes.Clone(payload)
	binary.BigEndian.PutUint64(payload[4:], 5)
	var tag string
	select {
	case tag = <-b.tags:
		b.tags <- tag
	case <-b.done:
		return false
	}
	b.dtag++
	return b.write(
		method(1, 60, 60, shortstr(tag), u64(b.dtag), []byte{0}, shortstr(""), shortstr("q")),
		frame(frameHeader, 1, payload),
		bodyFrame(),
	) == nil
}

func (b *fakeBroker) serve() {
	defer close(b.done)
	r := bufio.NewReader(b.conn)
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return
	}
	start := method(0, 10, 10, []byte{0, 9}, table(), longstr("PLAIN"), longstr("en_US"))
	if b.write(start) != nil {
		return
	}
	for {
		var head [frameHead]byte
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return
		}
		payload := make([]byte, binary.BigEndian.Uint32(head[3:])+1)
		if _, err := io.ReadFull(r, payload); err != nil {
			return
		}
		if head[0] != frameMethod {
			continue
		}
		ch := binary.BigEndian.Uint16(head[1:])
		var reply []byte
		var tag string
		switch id := binary.BigEndian.Uint32(payload); id {
		case 10<<16 | 11: // connection.start-ok
			reply = method(0, 10, 30, u16(0), u32(b.frameMax), u16(0))
		case 10<<16 | 40: // connection.open
			reply = method(0, 10, 41, shortstr(""))
		case 10<<16 | 50: // connection.close
			_ = b.write(method(0, 10, 51))
			return
		case 20<<16 | 10: // channel.open
			reply = method(ch, 20, 11, longstr(""))
		case 20<<16 | 40: // channel.close
			reply = method(ch, 20, 41)
		case 60<<16 | 10: // basic.qos
			reply = method(ch, 60, 11)
		case 60<<16 | 20: // basic.consume: reserved(2) queue(shortstr) tag(shortstr) ...
			q := payload[6:]
			tagAt := q[1+int(q[0]):]
			tag = string(tagAt[1 : 1+int(tagAt[0])])
			reply = method(ch, 60, 21, shortstr(tag))
		}
		if reply != nil && b.write(reply) != nil {
			return
		}
		if tag != "" {
			b.tags <- tag
		}
	}
}

// next waits for one delivery; a safety bound only, not a timing check.
func next(t *testing.T, deliveries <-chan amqp.Delivery) amqp.Delivery {
	t.Helper()
	select {
	case d, ok := <-deliveries:
		if !ok {
			t.Fatal("delivery channel closed: the connection died")
		}
		return d
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery within 30s")
	}
	return amqp.Delivery{}
}
