package redisconn

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/internal/testenv"
)

var sentinelOpts = map[string]any{"master_name": "mymaster"}

// TestParse: every URL shape Celery and kombu accept becomes the spec go-redis needs, with the
// master's credentials and database from the first sentinel:// URL.
func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		url       string
		transport map[string]any
		scheme    string
		addr      string   // Options.Addr (plain schemes)
		sentinels []string // SentinelAddrs
		user, pw  string   // the master's
		db        int
		sentinelU string
		sentinelP string
	}{
		{name: "redis", url: "redis://127.0.0.1:6379/3", scheme: "redis", addr: "127.0.0.1:6379", db: 3},
		{name: "redis with password", url: "redis://:s3cret@r.local:6380/0", scheme: "redis", addr: "r.local:6380", pw: "s3cret"},
		{name: "redis with user", url: "redis://app:pw@127.0.0.1/1", scheme: "redis", addr: "127.0.0.1:6379", user: "app", pw: "pw", db: 1},
		{name: "upper-case scheme", url: "REDIS://127.0.0.1:6379/2", scheme: "redis", addr: "127.0.0.1:6379", db: 2},
		{name: "rediss", url: "rediss://127.0.0.1:6380/0", scheme: "rediss", addr: "127.0.0.1:6380"},
		{name: "unix", url: "unix:///run/redis.sock?db=4", scheme: "unix", addr: "/run/redis.sock", db: 4},
		{name: "one sentinel", url: "sentinel://127.0.0.1:26390", transport: sentinelOpts,
			scheme: "sentinel", sentinels: []string{"127.0.0.1:26390"}},
		{name: "default sentinel port", url: "sentinel://10.0.0.5", transport: sentinelOpts,
			scheme: "sentinel", sentinels: []string{"10.0.0.5:26379"}},
		{name: "three sentinels, db and password from the first", url: "sentinel://:pw@127.0.0.1:26390/3;sentinel://127.0.0.1:26391;sentinel://127.0.0.1:26392/3",
			transport: sentinelOpts, scheme: "sentinel", sentinels: []string{"127.0.0.1:26390", "127.0.0.1:26391", "127.0.0.1:26392"}, pw: "pw", db: 3},
		{name: "every URL with the password", url: "sentinel://:pw@a:1/0;sentinel://:pw@b:2/0", transport: sentinelOpts,
			scheme: "sentinel", sentinels: []string{"a:1", "b:2"}, pw: "pw"},
		{name: "spaces and a trailing separator", url: " sentinel://a:1 ; sentinel://b:2 ;", transport: sentinelOpts,
			scheme: "sentinel", sentinels: []string{"a:1", "b:2"}},
		{name: "ipv6 sentinel", url: "sentinel://[::1]:26390", transport: sentinelOpts, scheme: "sentinel", sentinels: []string{"[::1]:26390"}},
		{name: "sentinel_kwargs and the password option", url: "sentinel://127.0.0.1:26390/1",
			transport: map[string]any{"master_name": "m", "password": "master-pw", "sentinel_kwargs": map[string]any{"password": "sent-pw", "username": "su", "socket_timeout": 0.5}},
			scheme:    "sentinel", sentinels: []string{"127.0.0.1:26390"}, pw: "master-pw", db: 1, sentinelU: "su", sentinelP: "sent-pw"},
		{name: "the password option equal to the URL's", url: "sentinel://:same@h:1", transport: map[string]any{"master_name": "m", "password": "same"},
			scheme: "sentinel", sentinels: []string{"h:1"}, pw: "same"},
		{name: "redis ignores Sentinel options", url: "redis://127.0.0.1:6379/0", transport: map[string]any{"master_name": "m", "visibility_timeout": 3600},
			scheme: "redis", addr: "127.0.0.1:6379"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := Parse(tc.url, tc.transport)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.url, err)
			}
			o := s.Options
			if s.Scheme != tc.scheme || o.Username != tc.user || o.Password != tc.pw || o.DB != tc.db {
				t.Errorf("scheme %q user %q password %q db %d; want %q %q %q %d", s.Scheme, o.Username, o.Password, o.DB, tc.scheme, tc.user, tc.pw, tc.db)
			}
			if tc.scheme != "sentinel" {
				if o.Addr != tc.addr || s.IsSentinel() || s.FailoverOptions() != nil {
					t.Errorf("addr %q (sentinel %v); want %q", o.Addr, s.IsSentinel(), tc.addr)
				}
				return
			}
			if !slices.Equal(s.SentinelAddrs, tc.sentinels) || s.MasterName != tc.transport["master_name"] ||
				s.SentinelUsername != tc.sentinelU || s.SentinelPassword != tc.sentinelP {
				t.Errorf("sentinels %q master %q sentinel user %q password %q; want %q %v %q %q",
					s.SentinelAddrs, s.MasterName, s.SentinelUsername, s.SentinelPassword, tc.sentinels, tc.transport["master_name"], tc.sentinelU, tc.sentinelP)
			}
			f := s.FailoverOptions()
			if f.MasterName != s.MasterName || !slices.Equal(f.SentinelAddrs, s.SentinelAddrs) || f.Password != tc.pw || f.DB != tc.db ||
				f.SentinelPassword != tc.sentinelP || f.SentinelUsername != tc.sentinelU {
				t.Errorf("failover options %+v do not carry the spec", f)
			}
			if strings.Contains(s.String(), tc.pw) && tc.pw != "" {
				t.Errorf("String() %q shows the password", s.String())
			}
		})
	}
}

// TestParseErrors: each configuration mistake is an error that says what is wrong, and no error
// shows a password.
func TestParseErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url       string
		transport map[string]any
		want      string
	}{
		{url: "", want: "empty"},
		{url: " ; ", want: "empty"},
		{url: "127.0.0.1:6379", want: "no scheme"},
		{url: "amqp://guest:topsecret@h//", want: `unknown scheme "amqp"`},
		{url: "redis-sentinel://h:26379", want: "unknown scheme"},
		{url: "sentinel://h:26379", want: "master_name"},
		{url: "sentinel://h:26379", transport: map[string]any{"master_name": ""}, want: "master_name"},
		{url: "sentinel://h:26379", transport: map[string]any{"master_name": []any{"x"}}, want: "master_name: want a string"},
		{url: "sentinel://:topsecret@h:26379;redis://h:6379", transport: sentinelOpts, want: "mixes sentinel:// and redis://"},
		{url: "redis://a:6379;redis://b:6379", want: "several redis:// URLs"},
		{url: "sentinel://:topsecret@h:notaport", transport: sentinelOpts, want: "invalid port"},
		{url: "sentinel://:topsecret@/0", transport: sentinelOpts, want: "needs a host"},
		{url: "sentinel://h:1/notadb", transport: sentinelOpts, want: "invalid database number"},
		{url: "sentinel://h:1?bogus=1", transport: sentinelOpts, want: "unexpected option"},
		{url: "sentinel://:topsecret@h:1;sentinel://:other@h2:1", transport: sentinelOpts, want: "password differs"},
		{url: "sentinel://u:topsecret@h:1;sentinel://v:topsecret@h2:1", transport: sentinelOpts, want: "user differs"},
		{url: "sentinel://h:1/2;sentinel://h2:1/3", transport: sentinelOpts, want: "database 3 differs"},
		{url: "sentinel://h:1;sentinel://h:1", transport: sentinelOpts, want: "listed twice"},
		{url: "sentinel://:topsecret@h:1", transport: map[string]any{"master_name": "m", "password": "other"}, want: "password is given twice"},
		{url: "sentinel://h:1", transport: map[string]any{"master_name": "m", "sentinel_kwargs": "topsecret"}, want: "sentinel_kwargs: want a mapping"},
		{url: "sentinel://h:1", transport: map[string]any{"master_name": "m", "sentinel_kwargs": map[string]any{"ssl": true}}, want: "sentinel_kwargs.ssl is not supported"},
		{url: "sentinel://h:1", transport: map[string]any{"master_name": "m", "sentinel_kwargs": map[string]any{"password": 1.5}}, want: "password: want a string"},
		{url: "sentinel://h:1", transport: map[string]any{"master_name": "m", "min_other_sentinels": 1}, want: "min_other_sentinels"},
		{url: "redis://h:1", transport: map[string]any{"socket_timeout": "fast"}, want: "socket_timeout: want a number"},
		{url: "redis://h:1", transport: map[string]any{"socket_connect_timeout": -1}, want: "socket_connect_timeout: want seconds"},
		{url: "redis://h:1", transport: map[string]any{"max_connections": 2.5}, want: "max_connections"},
		{url: "redis://:topsecret@h:1/0/1", want: "invalid URL path"},
		{url: "redis://:topsecret@h:99999999999/0", want: "invalid port"},
		{url: "unix://", want: "empty unix socket path"},
	} {
		s, err := Parse(tc.url, tc.transport)
		if err == nil || s != nil {
			t.Errorf("Parse(%q, %v) = %v, nil; want an error saying %q", tc.url, tc.transport, s, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q, %v): %q does not say %q", tc.url, tc.transport, err, tc.want)
		}
		if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("Parse(%q): error %q shows the password", tc.url, err)
		}
	}
}

// TestTransportTimeouts: socket_timeout, socket_connect_timeout and max_connections set what the
// URL leaves unset; a URL query option wins; WithDefaults fills the rest.
func TestTransportTimeouts(t *testing.T) {
	t.Parallel()
	tr := map[string]any{"socket_timeout": 1.5, "socket_connect_timeout": 1, "max_connections": 100}
	s, err := Parse("redis://127.0.0.1:6379/0?read_timeout=3s", tr)
	if err != nil {
		t.Fatal(err)
	}
	o := s.WithDefaults().Options
	if o.ReadTimeout != 3*time.Second || o.WriteTimeout != 1500*time.Millisecond || o.DialTimeout != time.Second || o.PoolSize != 100 {
		t.Errorf("read %v write %v dial %v pool %d; want 3s (query) 1.5s 1s 100", o.ReadTimeout, o.WriteTimeout, o.DialTimeout, o.PoolSize)
	}
	s, err = Parse("sentinel://127.0.0.1:26390", sentinelOpts)
	if err != nil {
		t.Fatal(err)
	}
	f := s.WithDefaults().FailoverOptions()
	if f.DialTimeout != DefaultDialTimeout || f.ReadTimeout != DefaultIOTimeout || f.MaxRetries != DefaultMaxRetries || f.PoolSize != DefaultPoolSize {
		t.Errorf("failover defaults: %+v", f)
	}
}

// TestRedact hides every password of a list, and nothing else.
func TestRedact(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"redis://:pw@r:6379/0":                        "redis://:**@r:6379/0",
		"redis://127.0.0.1:6379/0":                    "redis://127.0.0.1:6379/0",
		"sentinel://:a@h:1/0;sentinel://u:b@h2:2":     "sentinel://:**@h:1/0;sentinel://u:**@h2:2",
		"sentinel://h:1/x@y":                          "sentinel://h:**@y", // more hidden than needed, never less
		"amqp://u:pa/ss@h//":                          "amqp://u:**@h//",
		"redis://user@h/0":                            "redis://user@h/0",
		"redis://:p@ss@h:1":                           "redis://:**@h:1",
		"not a url":                                   "not a url",
		"unix://:pw@/run/redis.sock?db=1":             "unix://:**@/run/redis.sock?db=1",
		"sentinel://:pw@[::1]:26390;sentinel://[::1]": "sentinel://:**@[::1]:26390;sentinel://[::1]",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIsRedisURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]bool{
		"redis://h": true, "REDISS://h": true, "unix:///s": true, "sentinel://a;sentinel://b": true,
		"amqp://h//": false, "memory://": false, "": false, "django-db": false, " sentinel://h": true,
	} {
		if got := IsRedisURL(in); got != want {
			t.Errorf("IsRedisURL(%q) = %v, want %v", in, got, want)
		}
	}
}

// TestCheckMasterNotSentinels: CheckMaster tells an outage (nothing listens) from a configuration
// mistake (the address is a Redis that is not a Sentinel: it refuses the SENTINEL command).
func TestCheckMasterNotSentinels(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	_ = ln.Close()
	s, err := Parse("sentinel://"+closed, sentinelOpts)
	if err != nil {
		t.Fatal(err)
	}
	s.Options.DialTimeout = 500 * time.Millisecond
	if _, err := CheckMaster(ctx, s); !errors.Is(err, ErrSentinelsUnreachable) {
		t.Errorf("nothing listening: %v, want ErrSentinelsUnreachable", err)
	}
	rc := testenv.Redis(t) // the system Redis: not a Sentinel
	s, err = Parse("sentinel://"+rc.Options().Addr, sentinelOpts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = CheckMaster(ctx, s.WithDefaults())
	var nm *NoMasterError
	if err == nil || errors.Is(err, ErrSentinelsUnreachable) || errors.As(err, &nm) || !strings.Contains(err.Error(), rc.Options().Addr) {
		t.Errorf("a Redis that is not a Sentinel: %v, want a refusal naming it", err)
	}
	plain, _ := Parse("redis://127.0.0.1:6379/0", nil)
	if addr, err := CheckMaster(ctx, plain); err != nil || addr != "127.0.0.1:6379" {
		t.Errorf("plain URL: %q, %v", addr, err)
	}
}
