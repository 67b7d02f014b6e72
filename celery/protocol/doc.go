// Package protocol encodes and decodes Celery task messages (protocol 1 and 2)
// the way Celery 5.2 (kombu 5.2, py-amqp 5.1) writes and reads them. It is
// broker-agnostic and does no I/O: a broker adapter converts its deliveries to
// and from an [Envelope].
//
// # Decoding
//
// [Decode] takes an Envelope and an [Accept] list (Celery's accept_content;
// the zero value accepts JSON only) and returns a [TaskMessage]. It tells the
// protocol versions apart as a 5.x worker does, honours the `compression`
// header, converts msgpack and YAML bodies to JSON, and never deserializes
// pickle. Arguments stay raw JSON ([encoding/json.RawMessage]), so integers
// beyond 2^53 and key order survive. Failures are [*MessageError] values whose
// [ErrorKind] says what a Python worker would do with the message:
//
//	m, err := protocol.Decode(env, accept)
//	switch {
//	case errors.Is(err, protocol.ErrContentDisallowed), errors.Is(err, protocol.ErrInvalidTask),
//		errors.Is(err, protocol.ErrUnknownMessage):
//		// reject without requeue
//	case errors.Is(err, protocol.ErrUndecodable):
//		// ack and drop
//	}
//
// # Encoding
//
// [EncodeV2] produces what a Celery 5.2 client publishes: the 16 headers (with
// lang "go"; Python ignores it), the properties, and the body
// [args, kwargs, embed] written byte for byte as Python's json.dumps writes it
// ([PyJSON]). Decoding a Python client's JSON message and encoding it again
// yields the same body bytes and the same headers apart from lang.
//
// # Time and repr
//
// [FormatTime] writes eta/expires as Python's isoformat() does, in the form
// both the Celery 5.2 parser and later ones read correctly; [ParseTime] reads
// what 5.2 and 5.3+ clients send. [ReprArgs] and [ReprKwargs] compute the
// argsrepr/kwargsrepr headers exactly like celery.utils.saferepr (including its
// 1024-character truncation, see [ReprArgs]); [Repr] is Python's plain repr().
//
// # Known differences from Python
//
//   - JSON NaN and Infinity (which Python's json module accepts) are refused as
//     ErrUndecodable: raw arguments must stay valid JSON for Go consumers.
//   - YAML bodies follow yaml.v3's YAML 1.2 resolution where it differs from
//     PyYAML's 1.1 (e.g. yes/no are strings); timestamps stay strings.
//   - Repr's notion of printable characters follows Go's Unicode tables, which
//     may be newer than the Python that reads the header.
package protocol
