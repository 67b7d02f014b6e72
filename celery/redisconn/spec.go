package redisconn

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// DefaultSentinelPort is the port of a sentinel:// URL that gives none (kombu's SentinelTransport).
const DefaultSentinelPort = "26379"

// Spec is a parsed Redis URL (or Sentinel list) with its transport options: what [Spec.NewClient]
// builds a client from. Programs adjust Options (timeouts, pool) before building the client; for
// Sentinel, Options holds the master connection's settings.
type Spec struct {
	// Scheme is "redis", "rediss", "unix" or "sentinel".
	Scheme string
	// Options are the connection's settings: for redis://, rediss:// and unix://, everything
	// go-redis reads from the URL; for sentinel://, the master's credentials, database and
	// timeouts (Addr is unused: the Sentinels say where the master is).
	Options *redis.Options
	// MasterName is the transport options' master_name (Sentinel only).
	MasterName string
	// SentinelAddrs are the Sentinels' host:port, in the URL's order (Sentinel only).
	SentinelAddrs []string
	// SentinelUsername and SentinelPassword authenticate to the Sentinels themselves
	// (sentinel_kwargs' username and password).
	SentinelUsername, SentinelPassword string
}

// IsSentinel reports whether the spec names Sentinels rather than one Redis.
func (s *Spec) IsSentinel() bool { return s.Scheme == "sentinel" }

// Schemes are the URL schemes [Parse] accepts.
var Schemes = []string{"redis", "rediss", "unix", "sentinel"}

// IsRedisURL reports whether raw (or the first URL of a ';' list) has one of [Schemes], so a
// setting can be recognised as Redis before it is parsed.
func IsRedisURL(raw string) bool {
	first, _, _ := strings.Cut(strings.TrimSpace(raw), ";")
	scheme, _, ok := strings.Cut(strings.TrimSpace(first), "://")
	if !ok {
		return false
	}
	for _, s := range Schemes {
		if strings.EqualFold(scheme, s) {
			return true
		}
	}
	return false
}

// Parse reads a Redis URL, or a ';'-separated list of sentinel:// URLs, with the transport options
// of the setting it came from (nil when there are none). Errors name what is wrong but never the
// password.
func Parse(raw string, transport map[string]any) (*Spec, error) {
	topts, err := ParseTransportOptions(transport)
	if err != nil {
		return nil, err
	}
	var parts []string
	for _, p := range strings.Split(raw, ";") {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return nil, errors.New("empty Redis URL (redis://, rediss://, unix:// or sentinel://)")
	}
	schemes := make([]string, len(parts))
	for i, p := range parts {
		scheme, _, ok := strings.Cut(p, "://")
		if !ok || scheme == "" {
			return nil, fmt.Errorf("%q: no scheme (redis://, rediss://, unix:// or sentinel://)", Redact(p))
		}
		schemes[i] = strings.ToLower(scheme)
		switch schemes[i] {
		case "redis", "rediss", "unix", "sentinel":
		default:
			return nil, fmt.Errorf("%q: unknown scheme %q (redis://, rediss://, unix:// or sentinel://)", Redact(p), scheme)
		}
		if i > 0 && schemes[i] != schemes[0] {
			return nil, fmt.Errorf("%q: a ';' list mixes %s:// and %s:// URLs (only sentinel:// URLs make a list)", Redact(raw), schemes[0], schemes[i])
		}
		// Normalize the scheme's case for url.Parse and go-redis.
		parts[i] = schemes[i] + p[len(scheme):]
	}
	var spec *Spec
	if schemes[0] == "sentinel" {
		spec, err = parseSentinel(parts, topts)
	} else {
		if len(parts) > 1 {
			return nil, fmt.Errorf("%q: several %s:// URLs: a client follows one Redis; use sentinel:// URLs for failover", Redact(raw), schemes[0])
		}
		spec, err = parseSingle(schemes[0], parts[0])
	}
	if err != nil {
		return nil, err
	}
	topts.apply(spec.Options)
	return spec, nil
}

// parseSingle reads one redis://, rediss:// or unix:// URL with go-redis's own parser, so that its
// query options (dial_timeout=, pool_size=, …) are honoured.
func parseSingle(scheme, raw string) (*Spec, error) {
	o, err := redis.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", Redact(raw), scrub(err, raw))
	}
	if o.Network == "tcp" {
		if err := checkPort(o.Addr); err != nil {
			return nil, fmt.Errorf("%q: %w", Redact(raw), err)
		}
	}
	return &Spec{Scheme: scheme, Options: o}, nil
}

// parseSentinel reads the sentinel:// URLs: every URL gives a Sentinel's address; the first one
// gives the master's credentials and database (as Celery and kombu take them), and a later one
// giving different ones is an error.
func parseSentinel(parts []string, topts TransportOptions) (*Spec, error) {
	if topts.MasterName == "" {
		return nil, errors.New("sentinel:// needs the master_name transport option " +
			"(broker_transport_options or result_backend_transport_options: {master_name: mymaster})")
	}
	spec := &Spec{Scheme: "sentinel", MasterName: topts.MasterName,
		SentinelUsername: topts.SentinelUsername, SentinelPassword: topts.SentinelPassword}
	seen := map[string]bool{}
	for i, p := range parts {
		u, err := url.Parse(p)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", Redact(p), scrub(err, p))
		}
		if u.Hostname() == "" {
			return nil, fmt.Errorf("%q: a Sentinel URL needs a host", Redact(p))
		}
		port := u.Port()
		if port == "" {
			port = DefaultSentinelPort
		}
		// go-redis parses the rest (credentials, /db, query options) as it does for redis://.
		ru := *u
		ru.Scheme = "redis"
		ru.Host = net.JoinHostPort(u.Hostname(), port)
		o, err := redis.ParseURL(ru.String())
		if err != nil {
			return nil, fmt.Errorf("%q: %w", Redact(p), scrub(err, p))
		}
		if err := checkPort(o.Addr); err != nil {
			return nil, fmt.Errorf("%q: %w", Redact(p), err)
		}
		if seen[o.Addr] {
			return nil, fmt.Errorf("%q: Sentinel %s is listed twice", Redact(p), o.Addr)
		}
		seen[o.Addr] = true
		spec.SentinelAddrs = append(spec.SentinelAddrs, o.Addr)
		if i == 0 {
			o.Addr = ""
			spec.Options = o
			continue
		}
		first := spec.Options
		switch {
		case o.Password != "" && o.Password != first.Password:
			return nil, fmt.Errorf("%q: its password differs from the first URL's, which is the master's (Celery uses the first URL's)", Redact(p))
		case o.Username != "" && o.Username != first.Username:
			return nil, fmt.Errorf("%q: its user differs from the first URL's, which is the master's (Celery uses the first URL's)", Redact(p))
		case u.Path != "" && u.Path != "/" && o.DB != first.DB:
			return nil, fmt.Errorf("%q: database %d differs from the first URL's %d (Celery uses the first URL's)", Redact(p), o.DB, first.DB)
		}
	}
	if topts.Password != "" {
		if spec.Options.Password != "" && spec.Options.Password != topts.Password {
			return nil, errors.New("the master's password is given twice, differently: in the first sentinel:// URL and in the password transport option")
		}
		spec.Options.Password = topts.Password
	}
	return spec, nil
}

// checkPort refuses a host:port whose port is not 1-65535 (go-redis's parser does not check).
func checkPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("invalid port %q", port)
	}
	return nil
}

// scrub removes the raw URL from a parser's error (url.Parse quotes it, password included).
func scrub(err error, raw string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	msg := err.Error()
	if strings.Contains(msg, raw) {
		return errors.New(strings.ReplaceAll(msg, raw, Redact(raw)))
	}
	return err
}

// Redact hides the passwords of a URL or ';' list, for errors and logs.
func Redact(raw string) string {
	parts := strings.Split(raw, ";")
	for i, p := range parts {
		scheme, rest, ok := strings.Cut(p, "://")
		if !ok {
			continue
		}
		// The last '@' ends the credentials even when an unescaped '/' or '@' is in the
		// password; an '@' later in the URL only hides more than needed.
		at := strings.LastIndex(rest, "@")
		if at < 0 {
			continue
		}
		cred := rest[:at]
		if user, _, hasPass := strings.Cut(cred, ":"); hasPass {
			cred = user + ":**"
		}
		parts[i] = scheme + "://" + cred + rest[at:]
	}
	return strings.Join(parts, ";")
}

// String describes the spec for banners and logs, without passwords: the URL's address, or the
// master name and the Sentinels.
func (s *Spec) String() string {
	if s.IsSentinel() {
		return fmt.Sprintf("sentinel master %q via %s (db %d)", s.MasterName, strings.Join(s.SentinelAddrs, ","), s.Options.DB)
	}
	return fmt.Sprintf("%s://%s (db %d)", s.Scheme, s.Options.Addr, s.Options.DB)
}
