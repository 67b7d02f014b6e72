package amqpwire

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
)

// AMQP 0-9-1 framing: type(1) channel(2) size(4) payload(size) frame-end(1).
const (
	frameMethod   = 1
	frameHeader   = 2
	frameEnd      = 0xCE
	frameHead     = 7 // type, channel, size
	frameOverhead = frameHead + 1

	// maxBuffered caps the content-header (and tune-ok) frames the wrapper
	// holds in memory when no frame-max was negotiated; larger frames pass
	// through untouched.
	maxBuffered = 16 << 20
)

// Property flags of the basic class that come before or are the headers.
const (
	flagContentType     = 0x8000
	flagContentEncoding = 0x4000
	flagHeaders         = 0x2000
	flagMore            = 0x0001 // another 16-bit flags word follows

	contentFixed = 12 // class-id(2) weight(2) body-size(8)
)

// layout locates the headers table in a content-header payload.
type layout struct {
	first    uint16 // the first property-flags word
	flagsEnd int    // offset just past the last property-flags word
	table    int    // offset of the headers table's 4-byte length
}

// locate finds the headers table in a content-header payload. ok is false
// when the payload carries no headers property, or is too short to say
// where the table would start; such frames are not touched. A table that
// starts but does not fit is reported with ok true: that is a bad table.
func locate(p []byte) (l layout, ok bool) {
	off := contentFixed
	for i := 0; ; i++ {
		if len(p)-off < 2 {
			return l, false
		}
		w := binary.BigEndian.Uint16(p[off:])
		off += 2
		if i == 0 {
			l.first = w
		}
		if w&flagMore == 0 {
			break
		}
	}
	l.flagsEnd = off
	if l.first&flagHeaders == 0 {
		return l, false
	}
	for _, f := range [...]uint16{flagContentType, flagContentEncoding} {
		if l.first&f != 0 {
			if off >= len(p) {
				return l, false
			}
			off += 1 + int(p[off])
		}
	}
	if off > len(p) {
		return l, false
	}
	l.table = off
	return l, true
}

// tableEnd returns where the table at p[l.table:] ends according to its
// declared length, and false when that length does not fit in p.
func tableEnd(p []byte, l layout) (int, bool) {
	if len(p)-l.table < 4 {
		return 0, false
	}
	n := binary.BigEndian.Uint32(p[l.table:])
	if uint64(n) > uint64(len(p)-l.table-4) {
		return 0, false
	}
	return l.table + 4 + int(n), true
}

// appendMarkerFrame appends to dst a copy of the content-header frame
// whose headers table (located by l) could not be walked, with that table
// replaced by one holding [UndecodableHeader] (the cause) and
// [RawHeadersHeader] (base64 of the original table bytes, from its length
// word on). When the original table's length runs past the frame, the
// properties after it cannot be found and are dropped. frameMax, when not
// zero, bounds the new frame: the raw copy is cut to fit, and said so. (Only
// a frame already within ~300 bytes of frame-max whose bad table is tinier
// than the markers could still end up too long.)
func appendMarkerFrame(dst, frame []byte, l layout, cause error, frameMax uint32) []byte {
	payload := frame[frameHead : len(frame)-1]
	raw := payload[l.table:]
	var suffix []byte
	end, fits := tableEnd(payload, l)
	if fits {
		raw = payload[l.table:end]
		suffix = payload[end:]
	}
	reason := cause.Error()
	if !fits && l.first&^(flagContentType|flagContentEncoding|flagHeaders) != 0 {
		reason += "; the properties after the headers were dropped"
	}

	prefixLen := l.table
	if !fits {
		prefixLen = contentFixed + 2 + (l.table - l.flagsEnd)
	}
	entry := func(key string, n int) int { return 1 + len(key) + 1 + 4 + n }
	keep := len(raw)
	if frameMax > 0 {
		room := int(frameMax) - frameOverhead - prefixLen - len(suffix) - 4 -
			entry(UndecodableHeader, len(reason)) - entry(RawHeadersHeader, 0)
		if base64.StdEncoding.EncodedLen(len(raw)) > room {
			// Reserve room for the note; its numbers are at most len(raw).
			note := fmt.Sprintf("; raw headers cut to the first %d of %d bytes", len(raw), len(raw))
			keep = max(0, (room-len(note))/4*3)
			reason += fmt.Sprintf("; raw headers cut to the first %d of %d bytes", keep, len(raw))
		}
	}

	start := len(dst)
	dst = append(dst, frame[:frameHead]...)
	if fits {
		dst = append(dst, payload[:l.table]...)
	} else {
		dst = append(dst, payload[:contentFixed]...)
		dst = binary.BigEndian.AppendUint16(dst, l.first&(flagContentType|flagContentEncoding|flagHeaders))
		dst = append(dst, payload[l.flagsEnd:l.table]...)
	}
	tableAt := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = appendLongstrField(dst, UndecodableHeader, reason)
	dst = append(dst, byte(len(RawHeadersHeader)))
	dst = append(dst, RawHeadersHeader...)
	dst = append(dst, 'S')
	dst = binary.BigEndian.AppendUint32(dst, uint32(base64.StdEncoding.EncodedLen(keep)))
	dst = base64.StdEncoding.AppendEncode(dst, raw[:keep])
	binary.BigEndian.PutUint32(dst[tableAt:], uint32(len(dst)-tableAt-4))
	dst = append(dst, suffix...)
	dst = append(dst, frameEnd)
	binary.BigEndian.PutUint32(dst[start+3:], uint32(len(dst)-start-frameOverhead))
	return dst
}

// appendLongstrField appends one table entry: name, 'S', long string.
func appendLongstrField(dst []byte, key, val string) []byte {
	dst = append(dst, byte(len(key)))
	dst = append(dst, key...)
	dst = append(dst, 'S')
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(val)))
	return append(dst, val...)
}
