// Package amqpwire translates AMQP 0-9-1 header field types between
// amqp091-go and py-amqp (the client under Python Celery) by wrapping the
// net.Conn that amqp091-go talks through.
//
// # The problem
//
// The two libraries disagree on three field-table type codes:
//
//	code  py-amqp reads/writes          amqp091-go v1.16.0 reads/writes
//	'L'   signed 64-bit (ints > int32)   unknown: ErrSyntax
//	'U'   signed 16-bit (reads only)     unknown: ErrSyntax
//	'l'   unsigned 64-bit                signed 64-bit (Go int64)
//	's'   short string                   signed 16-bit (Go int16)
//
// RabbitMQ hands content headers to consumers as they were published. When
// amqp091-go meets 'L' it fails the frame and closes the whole connection;
// the unacked message is requeued and takes down every consumer in turn.
// The other way, Python reads a negative Go int64 header as a huge unsigned
// number, and a Go int16 header as a broken string.
//
// # The fix
//
// [Dialer] (for amqp.Config.Dial) and [WrapConn] return a net.Conn that
// parses the frames going both ways and touches only content-header frames,
// whose headers table it walks, nested tables and arrays included:
//
//   - Inbound (Read): 'L' becomes 'l' and 'U' becomes 's', in place; the
//     widths match and both sides mean signed numbers, so values keep
//     their meaning. A table that cannot be walked (an unknown type code,
//     a length running past its container, more nesting or elements than
//     amqp091-go accepts) is replaced by a table holding
//     [UndecodableHeader] and [RawHeadersHeader], so the message is still
//     delivered and can be dead-lettered with the reason.
//   - Outbound (Write): 'l' becomes 'L' in place, so py-amqp reads Go int64
//     headers as signed. Go int16 values ('s') are widened to int32 ('I'),
//     rebuilding the table: py-amqp's own 'U' would be the same width, but
//     RabbitMQ 3.10 cannot parse 'U' and closes the publishing connection
//     (541 INTERNAL_ERROR). A Go consumer therefore gets an int16 header
//     back as int32.
//
// Method, body and heartbeat frames pass through untouched, body bytes are
// copied at most once, and the common path allocates nothing.
//
// RabbitMQ 3.10 decodes the headers of every published message and refuses
// tables it cannot parse (unknown codes, 'U', NaN or infinite floats), so
// the inbound replacement is a safety net for what a broker lets through,
// not a path RabbitMQ 3.10 itself exercises.
//
// # Usage
//
//	cfg := amqp.Config{Dial: amqpwire.Dialer(nil, amqpwire.Options{})}
//	conn, err := amqp.DialConfig(url, cfg)
//
// Every Go consumer of queues that Python Celery publishes to must dial
// through the wrapper. Go's plain int is sent by amqp091-go as a 32-bit 'I'
// and truncated: put int64 in headers for values beyond int32.
package amqpwire
