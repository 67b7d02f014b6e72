package importer

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/forumads/forumads/ads/feed"
)

// source is where a feed comes from.
type source struct {
	display string // for logs, errors and import_runs.source: URLs without their password
	path    string // a local file
	url     *url.URL
	name    string // for format detection: the file name or the URL's path
}

func parseSource(s string) (source, error) {
	if strings.TrimSpace(s) == "" {
		return source{display: s}, errors.New("the source is empty: give a file path, a file:// URL or an http(s):// URL")
	}
	if !strings.Contains(s, "://") {
		return source{display: s, path: s, name: s}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return source{display: s}, fmt.Errorf("source %q is not a valid URL: %w", s, err)
	}
	display := u.Redacted()
	switch strings.ToLower(u.Scheme) {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return source{display: display}, fmt.Errorf("source %s: a file:// URL must name a local file (no host)", display)
		}
		if u.Path == "" {
			return source{display: display}, fmt.Errorf("source %s: the file:// URL has no path", display)
		}
		return source{display: display, path: u.Path, name: u.Path}, nil
	case "http", "https":
		if u.Host == "" {
			return source{display: display}, fmt.Errorf("source %s: the URL has no host", display)
		}
		return source{display: display, url: u, name: u.Path}, nil
	}
	return source{display: display}, fmt.Errorf("source %s: unsupported scheme %q (use a path, file://, http:// or https://)", display, u.Scheme)
}

// fetched is a source made ready to parse: an uncompressed local file.
type fetched struct {
	path  string // the plain feed
	gzip  bool   // the source was gzip-compressed
	bytes int64  // the source's size as read
	temp  bool   // path is a temporary file to remove
}

// defaultHTTPClient is used when Options.HTTPClient is nil: 30 s for a whole download.
func defaultHTTPClient() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 20 * time.Second,
			ExpectContinueTimeout: time.Second,
			IdleConnTimeout:       30 * time.Second,
			MaxIdleConns:          2,
			ForceAttemptHTTP2:     true,
		},
	}
}

// fetch reads the whole source before anything is applied: a download goes to a temporary
// file, a gzip stream is decompressed to its end; every failure is an error naming the source.
func (im *importer) fetch(ctx context.Context, src source) (fetched, error) {
	if src.url != nil {
		return im.download(ctx, src)
	}
	f, err := os.Open(src.path)
	if err != nil {
		return fetched{}, fmt.Errorf("open %s: %w", src.display, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fetched{}, fmt.Errorf("stat %s: %w", src.display, err)
	}
	if st.IsDir() {
		return fetched{}, fmt.Errorf("%s is a directory, not a feed file", src.display)
	}
	if st.Size() > im.o.MaxBytes {
		return fetched{}, fmt.Errorf("%s is %d bytes, more than the limit of %d (Options.MaxBytes)", src.display, st.Size(), im.o.MaxBytes)
	}
	br := bufio.NewReaderSize(f, 64<<10)
	if p, _ := br.Peek(2); !feed.IsGzip(p) {
		return fetched{path: src.path, bytes: st.Size()}, nil
	}
	out, err := im.spool(ctx, br, src.display)
	if err != nil {
		return fetched{}, err
	}
	out.bytes = st.Size()
	return out, nil
}

func (im *importer) download(ctx context.Context, src source) (fetched, error) {
	client := im.o.HTTPClient
	if client == nil {
		client = defaultHTTPClient()
		defer client.CloseIdleConnections()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.url.String(), nil)
	if err != nil {
		return fetched{}, fmt.Errorf("download %s: %w", src.display, err)
	}
	req.Header.Set("User-Agent", "forumads-importer/1")
	resp, err := client.Do(req)
	if err != nil {
		return fetched{}, fmt.Errorf("download %s: %w", src.display, httpCause(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		msg := fmt.Sprintf("download %s: HTTP %s", src.display, resp.Status)
		if s := strings.TrimSpace(feed.SafeText(string(snippet), 200)); s != "" && utf8.ValidString(s) {
			msg += ": " + strings.Join(strings.Fields(s), " ")
		}
		return fetched{}, errors.New(msg)
	}
	if resp.ContentLength > im.o.MaxBytes {
		return fetched{}, fmt.Errorf("download %s: Content-Length %d is more than the limit of %d bytes (Options.MaxBytes)", src.display, resp.ContentLength, im.o.MaxBytes)
	}
	cr := &countingReader{r: io.LimitReader(resp.Body, im.o.MaxBytes+1)}
	br := bufio.NewReaderSize(cr, 64<<10)
	p, err := br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return fetched{}, fmt.Errorf("download %s: reading the body: %w", src.display, httpCause(err))
	}
	var out fetched
	if feed.IsGzip(p) {
		out, err = im.spool(ctx, br, src.display)
	} else {
		out, err = im.copyToTemp(ctx, br, src.display, false)
	}
	if cr.n > im.o.MaxBytes {
		im.remove(out)
		return fetched{}, fmt.Errorf("download %s: the body is more than the limit of %d bytes (Options.MaxBytes)", src.display, im.o.MaxBytes)
	}
	if err != nil {
		return fetched{}, err
	}
	if resp.ContentLength >= 0 && cr.n != resp.ContentLength {
		im.remove(out)
		return fetched{}, fmt.Errorf("download %s: the body ended after %d of %d bytes (Content-Length)", src.display, cr.n, resp.ContentLength)
	}
	out.bytes = cr.n
	return out, nil
}

// httpCause makes a client error short: the URL is named by the caller.
func httpCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Errorf("timed out: %w", ue.Err)
		}
		return ue.Err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("the connection closed before the whole body arrived (unexpected EOF)")
	}
	return err
}

// spool decompresses a gzip stream into a temporary file, to its end (a truncated or corrupt
// stream is an error), refusing more than MaxBytes of output.
func (im *importer) spool(ctx context.Context, r io.Reader, display string) (fetched, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fetched{}, fmt.Errorf("%s: gzip: %w", display, httpCause(err))
	}
	out, err := im.copyToTemp(ctx, zr, display, true)
	if err != nil {
		return fetched{}, err
	}
	out.gzip = true
	return out, nil
}

func (im *importer) copyToTemp(ctx context.Context, r io.Reader, display string, gz bool) (fetched, error) {
	f, err := os.CreateTemp(im.tmpDir, "source-*")
	if err != nil {
		return fetched{}, fmt.Errorf("%s: temporary file: %w", display, err)
	}
	out := fetched{path: f.Name(), temp: true}
	n, err := io.Copy(f, &ctxReader{ctx: ctx, r: io.LimitReader(r, im.o.MaxBytes+1)})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil && ctx.Err() != nil:
		err = ctx.Err()
	case err != nil && gz:
		err = fmt.Errorf("%s: gzip: %w", display, httpCause(err))
	case err != nil:
		err = fmt.Errorf("download %s: reading the body: %w", display, httpCause(err))
	case n > im.o.MaxBytes:
		err = fmt.Errorf("%s: the feed is more than the limit of %d bytes (Options.MaxBytes)", display, im.o.MaxBytes)
	}
	if err != nil {
		im.remove(out)
		return fetched{}, err
	}
	return out, nil
}

func (im *importer) remove(f fetched) {
	if f.temp {
		_ = os.Remove(f.path)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
