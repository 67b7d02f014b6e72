package amqpwire

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// unpack is UnpackHeaders as the AMQP adapter calls it.
func unpack(h amqp.Table) (amqp.Table, error) {
	return UnpackHeaders(h, func(scale uint8, value int32) amqp.Decimal { return amqp.Decimal{Scale: scale, Value: value} })
}

// packedCases are headers tables (Celery's captured ones, one of every
// field type, nesting, the good edge cases) that a consumer must see the
// same whether amqp091-go decoded them or UnpackHeaders did.
func packedCases(t testing.TB) map[string][]byte {
	cases := map[string][]byte{}
	for name, payload := range fixtureHeaders(t) {
		cases[name] = payload
	}
	for _, tc := range fieldCases {
		cases[fmt.Sprintf("type %c", tc.code)] = props([]uint16{flagHeaders}, typeTable(tc.code, tc.body))
	}
	cases["nested L U"] = props([]uint16{flagHeaders}, nestedTable('L', 'U'))
	cases["empty table"] = props([]uint16{flagHeaders}, table())
	cases["empty array and bytes"] = props([]uint16{flagHeaders}, table(entry("a", val('A', array())), entry("x", val('x', u32(0)))))
	cases["duplicate key"] = props([]uint16{flagHeaders}, table(entry("k", val('I', u32(1))), entry("k", val('I', u32(2)))))
	for _, tc := range goodTables {
		cases["good "+tc.name] = props([]uint16{flagHeaders}, tc.table)
	}
	cases["content type, headers, correlation id"] = props([]uint16{flagContentType | flagHeaders | 0x0400},
		shortstr("application/json"), table(entry("id", val('S', longstr("abc")))), shortstr("corr"))
	return cases
}

// TestPackedHeadersDecodeAsAmqp091Does delivers every case to a real
// amqp091-go client twice, unpacked and packed: UnpackHeaders must give
// exactly what amqp091-go decoded itself (same keys, same Go types, same
// values), and the other properties must not move.
func TestPackedHeadersDecodeAsAmqp091Does(t *testing.T) {
	t.Parallel()
	plainConn, plain := dialFake(t, true, Options{})
	packedConn, packed := dialFake(t, true, Options{PackHeaders: true})
	plainD, packedD := plain.consume(t, plainConn), packed.consume(t, packedConn)
	for name, payload := range packedCases(t) {
		if !plain.deliver(t, payload) || !packed.deliver(t, payload) {
			t.Fatal("client hung up")
		}
		want, got := next(t, plainD), next(t, packedD)
		if _, ok := got.Headers[PackedHeadersHeader]; !ok && len(want.Headers) > 0 {
			t.Errorf("%s: not packed: %v", name, got.Headers)
		}
		h, err := unpack(got.Headers)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !reflect.DeepEqual(h, want.Headers) {
			t.Errorf("%s:\nunpacked %#v\namqp091  %#v", name, h, want.Headers)
		}
		if got.ContentType != want.ContentType || got.CorrelationId != want.CorrelationId || string(got.Body) != string(want.Body) {
			t.Errorf("%s: properties moved: %q %q, want %q %q", name, got.ContentType, got.CorrelationId, want.ContentType, want.CorrelationId)
		}
	}
	for _, tc := range badTables {
		// A table that does not walk is still replaced by the marker, not packed.
		if !packed.deliver(t, props([]uint16{flagHeaders}, tc.table)) {
			t.Fatal("client hung up")
		}
		h := next(t, packedD).Headers
		if h[UndecodableHeader] != tc.reason {
			t.Errorf("%s: headers %v, want the marker", tc.name, h)
		}
		if u, err := unpack(h); err != nil || !reflect.DeepEqual(u, h) {
			t.Errorf("%s: UnpackHeaders changed a table that is not packed: %v %v", tc.name, u, err)
		}
	}
}

// TestUnpackHeadersRefusesMalformedBytes: packed bytes that are not a table
// (truncated, a length past the end, an unknown or un-retyped code) are an
// error, never a panic or a partial table.
func TestUnpackHeadersRefusesMalformedBytes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"empty", nil},
		{"length past the end", cat(u32(9), entry("k", val('t', []byte{1})))},
		{"truncated int", table(entry("k", val('I', u16(1))))},
		{"string past the end", table(entry("k", cat([]byte{'S'}, u32(50), []byte("ab"))))},
		{"unknown code", table(entry("k", val('Z', u32(1))))},
		{"py-amqp L not retyped", table(entry("k", val('L', u64(1))))},
		{"key past the end", cat(u32(3), []byte{9, 'a', 'b'})},
	} {
		if h, err := unpack(amqp.Table{PackedHeadersHeader: tc.raw}); err == nil {
			t.Errorf("%s: decoded %v, want an error", tc.name, h)
		}
	}
}

func FuzzUnpackHeaders(f *testing.F) {
	for _, payload := range packedCases(f) {
		if l, ok := locate(payload); ok {
			f.Add(payload[l.table:])
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, err := unpack(amqp.Table{PackedHeadersHeader: bytes.Clone(raw)})
		w := newWalker([2][2]byte{{'L', 'l'}, {'U', 's'}})
		end, werr := w.walk(raw, 0)
		walks := werr == nil && end == len(raw) && len(w.pos) == 0
		if walks != (err == nil) {
			t.Fatalf("walker says %v (end %d of %d, %d to retype), UnpackHeaders says %v", werr, end, len(raw), len(w.pos), err)
		}
		if err == nil && h == nil {
			t.Fatal("nil table without an error")
		}
	})
}

func BenchmarkUnpackHeaders(b *testing.B) {
	payload := fixtureHeaders(b)["v2_custom_headers.json#0"]
	l, _ := locate(payload)
	end, _ := tableEnd(payload, l)
	raw := bytes.Clone(payload[l.table:end])
	w := newWalker([2][2]byte{{'L', 'l'}, {'U', 's'}})
	if _, err := w.walk(raw, 0); err != nil {
		b.Fatal(err)
	}
	w.apply(raw) // as the wrapper delivers it: 'L' read as 'l'
	h := amqp.Table{PackedHeadersHeader: raw}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := unpack(h); err != nil {
			b.Fatal(err)
		}
	}
}
