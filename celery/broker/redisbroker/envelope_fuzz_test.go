package redisbroker

import (
	"bytes"
	"testing"
)

// FuzzDecodeMessage: any list entry either is refused with an error or decodes; what decodes can
// be marked redelivered (and then reads as redelivered, with a new delivery tag), and Go's encoding of it is stable: it
// decodes, and encoding that again gives the same bytes.
func FuzzDecodeMessage(f *testing.F) {
	for _, c := range loadCaptured(f) {
		f.Add([]byte(c.Raw))
	}
	for _, s := range []string{``, `null`, `[]`, `{}`, `{"properties": {}}`, `{"properties": {"delivery_tag": 7}}`,
		`{"body": "!!", "properties": {"delivery_tag": "t", "body_encoding": "base64"}}`,
		`{"body": "aGk=", "headers": [], "properties": {"delivery_tag": "t", "body_encoding": "base64"}}`,
		`{"body": "hi", "headers": {"n": 1.0, "big": 123456789012345678901234567890}, "properties": {"delivery_tag": "t", "body_encoding": null, "priority": 300}}`,
		`{"properties": {"delivery_tag": "t", "delivery_info": {"exchange": 1, "routing_key": null}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := DecodeMessage(raw)
		if err != nil {
			return
		}
		re, err := markRedelivered(raw)
		if err != nil {
			t.Fatalf("a message that decodes cannot be marked redelivered: %v", err)
		}
		if rm, err := DecodeMessage(re); err != nil || !rm.Redelivered || rm.DeliveryTag == m.DeliveryTag || rm.DeliveryTag == "" || !bytes.Equal(rm.Body, m.Body) {
			t.Fatalf("marked redelivered it reads as %+v, %v", rm, err)
		}
		enc, err := EncodeMessage(m)
		if err != nil {
			return // a header JSON cannot carry as Go decoded it is refused, not mangled
		}
		m2, err := DecodeMessage(enc)
		if err != nil {
			t.Fatalf("Go's encoding %s does not decode: %v", enc, err)
		}
		enc2, err := EncodeMessage(m2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%s\n%s (%v)", enc, enc2, err)
		}
		if !bytes.Equal(m2.Body, m.Body) || m2.DeliveryTag != m.DeliveryTag || m2.Priority != m.Priority ||
			m2.Exchange != m.Exchange || m2.RoutingKey != m.RoutingKey || m2.ContentType != m.ContentType {
			t.Fatalf("re-encoding changed the message: %+v -> %+v", m, m2)
		}
	})
}
