package browsertest

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// maxFrame bounds one incoming WebSocket frame (a full-page screenshot is a few MB).
const maxFrame = 64 << 20

// wsConn is the client side of a WebSocket connection (RFC 6455: masked frames out, fragmented
// and control frames in; no TLS, no extensions).
type wsConn struct {
	c   net.Conn
	r   *bufio.Reader
	wmu sync.Mutex // one frame at a time: the read loop answers pings while commands are sent
}

// dialWS opens a ws:// URL.
func dialWS(raw string) (*wsConn, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "ws" {
		return nil, fmt.Errorf("websocket url %q: want ws://", raw)
	}
	c, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("websocket dial %s: %w", u.Host, err)
	}
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, fmt.Errorf("websocket handshake: %w", err)
	}
	br := bufio.NewReaderSize(c, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("websocket handshake: %w", err)
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		c.Close()
		return nil, fmt.Errorf("websocket handshake refused: %s", resp.Status)
	}
	return &wsConn{c: c, r: br}, nil
}

// appendFrame appends one masked frame with FIN set to dst.
func appendFrame(dst []byte, op byte, payload []byte) []byte {
	dst = append(dst, 0x80|op)
	switch n := len(payload); {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 0x80|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	dst = append(dst, mask[:]...)
	for i, c := range payload {
		dst = append(dst, c^mask[i%4])
	}
	return dst
}

func (w *wsConn) writeFrame(op byte, payload []byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	_, err := w.c.Write(appendFrame(nil, op, payload))
	return err
}

func (w *wsConn) writeText(p []byte) error { return w.writeFrame(0x1, p) }

// read returns the next data message, answering pings and joining fragments.
func (w *wsConn) read() ([]byte, error) {
	return readMessage(w.r, func(p []byte) error { return w.writeFrame(0xA, p) })
}

// readMessage reads frames from r until a whole data message is in, passing ping payloads to
// pong. A close frame is io.EOF; a frame over maxFrame, or a message over it, is an error.
func readMessage(r io.Reader, pong func([]byte) error) ([]byte, error) {
	var msg []byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return nil, err
		}
		fin, op, n := h[0]&0x80 != 0, h[0]&0x0F, uint64(h[1]&0x7F)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(r, b[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(r, b[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		if n > maxFrame || uint64(len(msg))+n > maxFrame {
			return nil, fmt.Errorf("websocket message over %d bytes (frame of %d)", maxFrame, n)
		}
		var mask []byte
		if h[1]&0x80 != 0 {
			mask = make([]byte, 4)
			if _, err := io.ReadFull(r, mask); err != nil {
				return nil, err
			}
		}
		p, err := io.ReadAll(io.LimitReader(r, int64(n))) // grows with what arrives, not with what a header claims
		if err != nil {
			return nil, err
		}
		if uint64(len(p)) != n {
			return nil, io.ErrUnexpectedEOF
		}
		if mask != nil {
			for i := range p {
				p[i] ^= mask[i%4]
			}
		}
		switch op {
		case 0x8: // close
			return nil, io.EOF
		case 0x9: // ping
			if err := pong(p); err != nil {
				return nil, err
			}
			continue
		case 0xA: // pong
			continue
		}
		msg = append(msg, p...)
		if fin {
			return msg, nil
		}
	}
}

func (w *wsConn) close() error {
	_ = w.writeFrame(0x8, nil)
	return w.c.Close()
}
