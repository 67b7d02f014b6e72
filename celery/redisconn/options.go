package redisconn

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// TransportOptions are the connection options of Celery's broker_transport_options /
// result_backend_transport_options that this package reads (see the package doc).
type TransportOptions struct {
	// MasterName is master_name: the Sentinel-monitored master.
	MasterName string
	// SentinelUsername and SentinelPassword are sentinel_kwargs' username and password.
	SentinelUsername, SentinelPassword string
	// Password is the master's password (the password option), for a URL without one.
	Password string
	// SocketTimeout and SocketConnectTimeout are socket_timeout and socket_connect_timeout
	// (0: not given).
	SocketTimeout, SocketConnectTimeout time.Duration
	// MaxConnections is max_connections (0: not given).
	MaxConnections int
}

// connectionOptions are the transport option keys ParseTransportOptions reads.
var connectionOptions = map[string]bool{
	"master_name": true, "password": true, "min_other_sentinels": true, "sentinel_kwargs": true,
	"socket_timeout": true, "socket_connect_timeout": true, "max_connections": true,
}

// IsConnectionOption reports whether key is a transport option this package reads (master_name,
// password, sentinel_kwargs, socket timeouts, …), so that a transport reading the same mapping
// (the Redis broker's visibility_timeout, …) does not report it as unknown.
func IsConnectionOption(key string) bool { return connectionOptions[key] }

// ParseTransportOptions reads the connection options of a transport options mapping; other keys
// are left to their users. A value of the wrong type is an error naming the option.
func ParseTransportOptions(m map[string]any) (TransportOptions, error) {
	var t TransportOptions
	var err error
	if t.MasterName, err = optString(m, "master_name"); err != nil {
		return t, err
	}
	if t.Password, err = optString(m, "password"); err != nil {
		return t, err
	}
	if n, ok := m["min_other_sentinels"]; ok && n != nil {
		v, err := number("min_other_sentinels", n)
		if err != nil {
			return t, err
		}
		if v != 0 {
			return t, fmt.Errorf("transport option min_other_sentinels: %v is not supported (only 0: the client trusts the Sentinel it asks)", n)
		}
	}
	if t.SocketTimeout, err = optSeconds(m, "socket_timeout"); err != nil {
		return t, err
	}
	if t.SocketConnectTimeout, err = optSeconds(m, "socket_connect_timeout"); err != nil {
		return t, err
	}
	if n, ok := m["max_connections"]; ok && n != nil {
		v, err := number("max_connections", n)
		if err != nil {
			return t, err
		}
		if v < 1 || v > math.MaxInt32 || v != math.Trunc(v) {
			return t, fmt.Errorf("transport option max_connections: want a positive whole number, got %v", n)
		}
		t.MaxConnections = int(v)
	}
	if err := t.sentinelKwargs(m["sentinel_kwargs"]); err != nil {
		return t, err
	}
	return t, nil
}

// sentinelKwargs reads sentinel_kwargs: the keyword arguments redis-py's Sentinel gives its
// connections to the Sentinels. username and password are used; socket_* options are accepted (the
// client's own timeouts apply to the Sentinels); anything else (ssl, …) would be silently lost, so
// it is an error.
func (t *TransportOptions) sentinelKwargs(v any) error {
	if v == nil {
		return nil
	}
	kw, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("transport option sentinel_kwargs: want a mapping such as {password: secret}, got %T", v)
	}
	keys := make([]string, 0, len(kw))
	for k := range kw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var err error
		switch {
		case k == "password":
			t.SentinelPassword, err = optString(kw, k)
		case k == "username":
			t.SentinelUsername, err = optString(kw, k)
		case strings.HasPrefix(k, "socket_"):
		default:
			err = fmt.Errorf("sentinel_kwargs.%s is not supported (password, username, socket_*)", k)
		}
		if err != nil {
			return fmt.Errorf("transport option %w", err)
		}
	}
	return nil
}

// apply sets the options that the URL left at their zero value.
func (t TransportOptions) apply(o *redis.Options) {
	if t.SocketTimeout > 0 {
		if o.ReadTimeout == 0 {
			o.ReadTimeout = t.SocketTimeout
		}
		if o.WriteTimeout == 0 {
			o.WriteTimeout = t.SocketTimeout
		}
	}
	if t.SocketConnectTimeout > 0 && o.DialTimeout == 0 {
		o.DialTimeout = t.SocketConnectTimeout
	}
	if t.MaxConnections > 0 && o.PoolSize == 0 {
		o.PoolSize = t.MaxConnections
	}
}

// optString reads a string option (nil or absent: ""); a number is taken as its text, as Python
// would format it for a password.
func optString(m map[string]any, name string) (string, error) {
	switch v := m[name].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case int:
		return strconv.Itoa(v), nil
	default:
		return "", fmt.Errorf("transport option %s: want a string, got %T", name, v)
	}
}

// optSeconds reads a duration in seconds (a number; nil or absent: 0).
func optSeconds(m map[string]any, name string) (time.Duration, error) {
	v, ok := m[name]
	if !ok || v == nil {
		return 0, nil
	}
	f, err := number(name, v)
	if err != nil {
		return 0, err
	}
	if !(f > 0) || f > 86400 {
		return 0, fmt.Errorf("transport option %s: want seconds between 0 and 86400, got %v", name, v)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// number reads a YAML number (int or float).
func number(name string, v any) (float64, error) {
	switch n := v.(type) {
	case int:
		return float64(n), nil
	case int64:
		return float64(n), nil
	case uint64:
		return float64(n), nil
	case float64:
		if math.IsNaN(n) || math.IsInf(n, 0) {
			return 0, fmt.Errorf("transport option %s: want a number, got %v", name, n)
		}
		return n, nil
	}
	return 0, fmt.Errorf("transport option %s: want a number, got %T", name, v)
}
