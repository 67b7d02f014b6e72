package amqpwire

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// These tests run the real amqp091-go client against fakeBroker, so what
// the wrapper emits is judged by the library that has to read it.

// goTypes is the Go type amqp091-go gives each field type after the
// wrapper (so 'L' and 'U' read as int64 and int16).
var goTypes = map[byte]string{
	't': "bool", 'b': "int8", 'B': "uint8", 's': "int16", 'u': "uint16", 'U': "int16",
	'I': "int32", 'i': "uint32", 'l': "int64", 'L': "int64", 'f': "float32", 'd': "float64",
	'D': "amqp091.Decimal", 'S': "string", 'x': "[]uint8", 'T': "time.Time", 'V': "<nil>",
	'F': "amqp091.Table", 'A': "[]interface {}",
}

func TestAmqp091ReadsWrapperOutput(t *testing.T) {
	t.Parallel()
	var events []Event
	conn, broker := dialFake(t, true, Options{OnEvent: func(e Event) { events = append(events, e) }})
	deliveries := broker.consume(t, conn)
	send := func(payload []byte) amqp.Table {
		t.Helper()
		if !broker.deliver(t, payload) {
			t.Fatal("client hung up")
		}
		d := next(t, deliveries)
		if string(d.Body) != "hello" {
			t.Fatalf("body %q", d.Body)
		}
		return d.Headers
	}

	for _, tc := range fieldCases {
		h := send(props([]uint16{flagHeaders}, typeTable(tc.code, tc.body)))
		if got := fmt.Sprintf("%T", h["k"]); got != goTypes[tc.code] || len(h) != 3 {
			t.Errorf("type %q: amqp091-go decoded %s (%d headers), want %s", tc.code, got, len(h), goTypes[tc.code])
		}
	}
	h := send(props([]uint16{flagHeaders}, nestedTable('L', 'U')))
	inner := h["inner"].(amqp.Table)
	if h["big"] != int64(-1<<40) || inner["small"] != int16(-7) {
		t.Errorf("signed values changed: big=%v small=%v", h["big"], inner["small"])
	}
	if list := inner["list"].([]any); list[0] != int64(-1<<40) || list[1] != int16(-7) {
		t.Errorf("array values: %v", list)
	}

	for _, tc := range badTables {
		h := send(props([]uint16{flagContentType | flagHeaders | 0x0400}, shortstr("application/json"), tc.table, shortstr("corr")))
		raw, err := base64.StdEncoding.DecodeString(fmt.Sprint(h[RawHeadersHeader]))
		if h[UndecodableHeader] != tc.reason || err != nil || !bytes.Equal(raw, tc.table) || len(h) != 2 {
			t.Errorf("%s: headers %v", tc.name, h[UndecodableHeader])
		}
	}
	for _, tc := range goodTables {
		if h := send(props([]uint16{flagHeaders}, tc.table)); h[UndecodableHeader] != nil {
			t.Errorf("%s: replaced: %v", tc.name, h[UndecodableHeader])
		}
	}
	for name, payload := range fixtureHeaders(t) {
		h := send(payload)
		l, _ := locate(payload)
		if want := decodeTable(t, payload[l.table:]); h[UndecodableHeader] != nil || len(h) != len(want) {
			t.Errorf("%s: headers %v, want %v", name, h, want)
		}
		if v, ok := h["x-big"]; ok && v != int64(1<<40) {
			t.Errorf("%s: x-big = %#v", name, v)
		}
	}
	if h := send(props([]uint16{flagHeaders}, table(entry("ok", val('t', []byte{1}))))); h["ok"] != true {
		t.Errorf("last message headers %v", h)
	}
	if conn.IsClosed() {
		t.Error("connection closed")
	}
	if len(events) == 0 {
		t.Error("no events reported")
	}
}

// TestAmqp091Limits shows that the wrapper's idea of a bad table is exactly
// amqp091-go's: each bad table kills an unwrapped connection, each good one
// (in Go form) does not.
func TestAmqp091Limits(t *testing.T) {
	t.Parallel()
	deaths := append([]struct {
		name   string
		table  []byte
		reason string
	}{
		{"py-amqp L", typeTable('L', u64(1)), ""},
		{"py-amqp U", typeTable('U', u16(1)), ""},
	}, badTables...)
	for _, tc := range deaths {
		t.Run("dies/"+tc.name, func(t *testing.T) {
			t.Parallel()
			conn, broker := dialFake(t, false, Options{})
			closed := conn.NotifyClose(make(chan *amqp.Error, 1))
			broker.consume(t, conn)
			broker.deliver(t, props([]uint16{flagHeaders}, tc.table))
			select {
			case err := <-closed:
				if err == nil || err.Code != amqp.FrameError {
					t.Errorf("connection closed with %v, want a frame error", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("amqp091-go accepted a table the wrapper calls bad")
			}
		})
	}
	for _, tc := range goodTables {
		t.Run("lives/"+tc.name, func(t *testing.T) {
			t.Parallel()
			conn, broker := dialFake(t, false, Options{})
			deliveries := broker.consume(t, conn)
			goForm := bytes.Clone(tc.table)
			var w walker = newWalker([2][2]byte{{'L', 'l'}, {'U', 's'}})
			if _, err := w.walk(goForm, 0); err != nil {
				t.Fatal(err)
			}
			w.apply(goForm)
			broker.deliver(t, props([]uint16{flagHeaders}, goForm))
			next(t, deliveries)
		})
	}
}
