package redisconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Default connection settings of [Spec.WithDefaults]: short dials, so an outage (or a master that
// just died) is noticed and retried rather than hung on.
const (
	DefaultDialTimeout = 2 * time.Second
	DefaultIOTimeout   = 5 * time.Second
	DefaultMaxRetries  = 2
	DefaultPoolSize    = 64
)

// WithDefaults gives every connection setting the URL and the transport options left unset the
// package's defaults (DefaultDialTimeout, DefaultIOTimeout for reads and writes, DefaultMaxRetries,
// at least DefaultPoolSize connections), and returns s.
func (s *Spec) WithDefaults() *Spec {
	o := s.Options
	if o.DialTimeout == 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = DefaultIOTimeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultIOTimeout
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = DefaultMaxRetries
	}
	o.PoolSize = max(o.PoolSize, DefaultPoolSize)
	return s
}

// Open parses raw with its transport options, applies [Spec.WithDefaults] and returns a client.
// It does not connect: see [CheckMaster] for the start-up check of a Sentinel URL.
func Open(raw string, transport map[string]any) (*redis.Client, *Spec, error) {
	s, err := Parse(raw, transport)
	if err != nil {
		return nil, nil, err
	}
	return s.WithDefaults().NewClient(), s, nil
}

// NewClient returns a client for the spec: a plain go-redis client, or for Sentinel a failover
// client (go-redis's NewFailoverClient), which asks the Sentinels for the master, listens for
// their +switch-master announcements and moves its connections to the new master. Both are a
// *redis.Client, a redis.UniversalClient.
func (s *Spec) NewClient() *redis.Client {
	if !s.IsSentinel() {
		o := *s.Options
		return redis.NewClient(&o)
	}
	return redis.NewFailoverClient(s.FailoverOptions())
}

// FailoverOptions are the go-redis options of a Sentinel spec (nil for any other): the Sentinels,
// master_name, the Sentinels' credentials, and the master connection's settings from Options.
func (s *Spec) FailoverOptions() *redis.FailoverOptions {
	if !s.IsSentinel() {
		return nil
	}
	o := s.Options
	return &redis.FailoverOptions{
		MasterName:       s.MasterName,
		SentinelAddrs:    append([]string(nil), s.SentinelAddrs...),
		SentinelUsername: s.SentinelUsername,
		SentinelPassword: s.SentinelPassword,

		ClientName: o.ClientName,
		Protocol:   o.Protocol,
		Username:   o.Username,
		Password:   o.Password,
		DB:         o.DB,

		MaxRetries:      o.MaxRetries,
		MinRetryBackoff: o.MinRetryBackoff,
		MaxRetryBackoff: o.MaxRetryBackoff,

		DialTimeout:           o.DialTimeout,
		ReadTimeout:           o.ReadTimeout,
		WriteTimeout:          o.WriteTimeout,
		ContextTimeoutEnabled: o.ContextTimeoutEnabled,

		PoolFIFO:        o.PoolFIFO,
		PoolSize:        o.PoolSize,
		PoolTimeout:     o.PoolTimeout,
		MinIdleConns:    o.MinIdleConns,
		MaxIdleConns:    o.MaxIdleConns,
		MaxActiveConns:  o.MaxActiveConns,
		ConnMaxIdleTime: o.ConnMaxIdleTime,
		ConnMaxLifetime: o.ConnMaxLifetime,

		TLSConfig:       o.TLSConfig,
		DisableIdentity: o.DisableIdentity,
	}
}

// ErrSentinelsUnreachable is wrapped by [CheckMaster]'s error when no Sentinel answered at all: an
// outage, not a configuration mistake.
var ErrSentinelsUnreachable = errors.New("no Sentinel answered")

// NoMasterError is [CheckMaster]'s error when Sentinels answered that they monitor no master of
// the configured master_name.
type NoMasterError struct {
	MasterName string
	// Sentinels are the addresses that answered "no such master".
	Sentinels []string
}

// Error names the master and the Sentinels.
func (e *NoMasterError) Error() string {
	return fmt.Sprintf("Sentinel %s monitors no master named %q (check the master_name transport option)",
		strings.Join(e.Sentinels, ", "), e.MasterName)
}

// CheckMaster asks the spec's Sentinels, at once, for the address of the master, and returns it
// from the first that knows it. Sentinels that answer that they monitor no such master give a
// [*NoMasterError] (when none knows it); Sentinels that refuse the client (a wrong or missing
// sentinel_kwargs password) an error naming them; when none answers at all the error wraps
// [ErrSentinelsUnreachable]. For a spec that is not Sentinel it returns Options.Addr and nil.
// Each Sentinel gets the spec's dial timeout, and ctx bounds the whole check.
func CheckMaster(ctx context.Context, s *Spec) (string, error) {
	if !s.IsSentinel() {
		return s.Options.Addr, nil
	}
	type answer struct {
		sentinel, addr string
		err            error
	}
	answers := make([]answer, len(s.SentinelAddrs))
	var wg sync.WaitGroup
	for i, addr := range s.SentinelAddrs {
		wg.Go(func() {
			sc := redis.NewSentinelClient(&redis.Options{Addr: addr, Username: s.SentinelUsername, Password: s.SentinelPassword,
				DialTimeout: s.Options.DialTimeout, ReadTimeout: s.Options.ReadTimeout, WriteTimeout: s.Options.WriteTimeout,
				TLSConfig: s.Options.TLSConfig, MaxRetries: -1, DialerRetries: 1, PoolSize: 4})
			defer sc.Close() // PoolSize above 1: one failed dial must not start the pool's background redialer
			hp, err := sc.GetMasterAddrByName(ctx, s.MasterName).Result()
			answers[i] = answer{sentinel: addr, err: err}
			if err == nil && len(hp) == 2 {
				answers[i].addr = net.JoinHostPort(hp[0], hp[1])
			} else if err == nil {
				answers[i].err = fmt.Errorf("unexpected reply %q", hp)
			}
		})
	}
	wg.Wait()
	noMaster := &NoMasterError{MasterName: s.MasterName}
	var refused, errs []error
	for _, a := range answers {
		var re redis.Error
		switch {
		case a.err == nil:
			return a.addr, nil
		case errors.Is(a.err, redis.Nil):
			noMaster.Sentinels = append(noMaster.Sentinels, a.sentinel)
		case errors.As(a.err, &re):
			// The Sentinel answered with an error (WRONGPASS, NOAUTH, …): a configuration
			// problem, not an outage.
			refused = append(refused, fmt.Errorf("refused by Sentinel %s: %w (check sentinel_kwargs)", a.sentinel, a.err))
		default:
			errs = append(errs, fmt.Errorf("%s: %w", a.sentinel, a.err))
		}
	}
	if len(noMaster.Sentinels) > 0 {
		return "", noMaster
	}
	if len(refused) > 0 {
		return "", fmt.Errorf("master %q: %w", s.MasterName, errors.Join(refused...))
	}
	return "", fmt.Errorf("master %q: %w: %w", s.MasterName, ErrSentinelsUnreachable, errors.Join(errs...))
}
