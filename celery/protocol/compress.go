package protocol

import (
	"bytes"
	"compress/bzip2"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
)

// Compression header values as kombu writes them.
const (
	// CompressionZlib is kombu's "gzip"/"zlib" compression. Despite the name
	// the body is a zlib stream, not a gzip file.
	CompressionZlib = "application/x-gzip"
	// CompressionBzip2 is kombu's "bzip2" compression (decode only).
	CompressionBzip2 = "application/x-bz2"
)

// MaxDecompressedSize bounds a decompressed body, so a small compressed
// message cannot exhaust memory.
const MaxDecompressedSize = 64 << 20

// decompress undoes the compression named by a `compression` header.
func decompress(method string, body []byte) ([]byte, error) {
	var r io.Reader
	switch method {
	case CompressionZlib, "gzip", "zlib":
		zr, err := zlib.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("zlib: %w", err)
		}
		defer zr.Close()
		r = zr
	case CompressionBzip2, "bzip2":
		r = bzip2.NewReader(bytes.NewReader(body))
	default:
		return nil, fmt.Errorf("unsupported compression %q", method)
	}
	out, err := io.ReadAll(io.LimitReader(r, MaxDecompressedSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	if len(out) > MaxDecompressedSize {
		return nil, errors.New("decompressed body exceeds MaxDecompressedSize")
	}
	return out, nil
}

// compress compresses body for EncodeOptions.Compression and returns the
// header value to send.
func compress(method string, body []byte) (string, []byte, error) {
	switch method {
	case "gzip", "zlib", CompressionZlib:
		var buf bytes.Buffer
		buf.Grow(len(body)/2 + 64)
		w := zlib.NewWriter(&buf)
		if _, err := w.Write(body); err != nil {
			return "", nil, err
		}
		if err := w.Close(); err != nil {
			return "", nil, err
		}
		return CompressionZlib, buf.Bytes(), nil
	default:
		return "", nil, fmt.Errorf("protocol: unsupported compression %q (only gzip/zlib can be written)", method)
	}
}
