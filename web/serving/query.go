package serving

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/web/httpx"
)

// Limits of an ad request.
const (
	// DefaultMaxCount is the most ads one request may get when the serving.max_count switch is
	// missing, off or unusable.
	DefaultMaxCount = 10
	// MaxURLLen is the longest url parameter accepted.
	MaxURLLen = 2048
)

// adQuery is a validated GET /v1/ads request.
type adQuery struct {
	Forum     string
	Placement string
	URL       string // the page showing the ads; optional
	Count     int    // 1..rkeys.MaxCandidates here; checked against serving.max_count later
	// Country is the viewer's ISO 3166-1 alpha-2 country in upper case, "" when unknown.
	Country string
}

// validSlug reports whether s is a forum slug: ^[a-z0-9][a-z0-9_-]{0,63}$.
func validSlug(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

func paramError(field, format string, args ...any) *httpx.Error {
	e := httpx.Errorf(http.StatusBadRequest, "invalid_parameter", field+": "+format, args...)
	e.Field = field
	return e
}

// parseAdQuery validates the query string and the country headers of an ad request. Every
// problem is a 400 naming the parameter or header at fault.
func parseAdQuery(rawQuery string, h http.Header) (adQuery, *httpx.Error) {
	q := adQuery{Placement: "sidebar", Count: 1}
	vals, err := url.ParseQuery(rawQuery)
	if err != nil {
		return q, httpx.Errorf(http.StatusBadRequest, "malformed_query", "malformed query string: %v", err)
	}
	for name, vs := range vals {
		switch name {
		case "forum", "url", "placement", "count":
		default:
			return q, unknownParam(name, "forum, placement, count, url")
		}
		if len(vs) > 1 {
			return q, paramError(name, "given %d times; give it once", len(vs))
		}
	}
	forum, ok := vals["forum"]
	if !ok || forum[0] == "" {
		return q, paramError("forum", "required")
	}
	if !validSlug(forum[0]) {
		return q, paramError("forum", "must be a forum slug (a-z, 0-9, _ and -, 1 to 64 characters, starting with a letter or digit), got %q", truncate(forum[0], 80))
	}
	q.Forum = forum[0]
	if p, ok := vals["placement"]; ok {
		if placementIndex(p[0]) < 0 {
			return q, paramError("placement", "must be one of %s, got %q", strings.Join(rkeys.Placements, ", "), truncate(p[0], 80))
		}
		q.Placement = p[0]
	}
	if c, ok := vals["count"]; ok {
		n, ok := parseCount(c[0])
		if !ok {
			return q, paramError("count", "must be a whole number from 1 to %d, got %q", rkeys.MaxCandidates, truncate(c[0], 80))
		}
		q.Count = n
	}
	if u, ok := vals["url"]; ok && u[0] != "" {
		if err := checkPageURL(u[0]); err != "" {
			return q, paramError("url", "%s", err)
		}
		q.URL = u[0]
	}
	country, herr := parseCountry(h)
	if herr != nil {
		return q, herr
	}
	q.Country = country
	return q, nil
}

// parseCount reads a count of 1..rkeys.MaxCandidates written in plain decimal digits.
func parseCount(s string) (int, bool) {
	if len(s) == 0 || len(s) > 4 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > rkeys.MaxCandidates {
		return 0, false
	}
	return n, true
}

// checkPageURL returns why u is not an absolute http(s) URL of at most MaxURLLen bytes, or "".
func checkPageURL(u string) string {
	if len(u) > MaxURLLen {
		return "must be at most " + strconv.Itoa(MaxURLLen) + " bytes, got " + strconv.Itoa(len(u))
	}
	p, err := url.Parse(u)
	if err != nil {
		return "must be an absolute http(s) URL: " + err.Error()
	}
	if (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return "must be an absolute http(s) URL, got " + strconv.Quote(truncate(u, 80))
	}
	return ""
}

// parseCountry reads the viewer's country from X-Country, else CF-IPCountry. Absent, empty, "XX"
// (unknown) and "T1" (Tor) are unknown (""); anything else but two ASCII letters is an error.
func parseCountry(h http.Header) (string, *httpx.Error) {
	for _, name := range [...]string{"X-Country", "CF-IPCountry"} {
		vs := h.Values(name)
		if len(vs) == 0 {
			continue
		}
		if len(vs) > 1 {
			return "", headerError(name, "given %d times; give it once", len(vs))
		}
		v := strings.TrimSpace(vs[0])
		if v == "" {
			continue
		}
		if len(v) != 2 || !isLetter(v[0]) || !isLetter(v[1]) {
			if v == "T1" {
				return "", nil
			}
			return "", headerError(name, "must be an ISO 3166-1 alpha-2 country code, got %q", truncate(v, 40))
		}
		v = strings.ToUpper(v)
		if v == "XX" {
			return "", nil
		}
		return v, nil
	}
	return "", nil
}

// unknownParam is a 400 naming a query parameter the endpoint does not take.
func unknownParam(name, expected string) *httpx.Error {
	field := strings.ToValidUTF8(truncate(name, 64), "\uFFFD")
	e := httpx.Errorf(http.StatusBadRequest, "unknown_parameter", "%q: unknown parameter (expected %s)", field, expected)
	e.Field = field
	return e
}

func headerError(name, format string, args ...any) *httpx.Error {
	e := httpx.Errorf(http.StatusBadRequest, "invalid_header", name+": "+format, args...)
	e.Field = name
	return e
}

func isLetter(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }

// truncate shortens s to at most n bytes (on a rune boundary) for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
