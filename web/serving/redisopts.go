package serving

import (
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Settings of the serving API's Redis client ([RedisOptions]).
const (
	// RedisPoolSize is the connection pool size: enough for the requests in flight on a busy
	// process without every request opening a connection.
	RedisPoolSize = 64
	// RedisMinIdleConns are kept open so a burst after a quiet spell does not pay for dials.
	RedisMinIdleConns = 8
	// RedisDialTimeout bounds opening a connection (a request's budget bounds its own wait).
	RedisDialTimeout = time.Second
	// RedisIOTimeout is the socket read and write timeout of a call made without a context
	// deadline; requests' calls use their budget ([Options].RedisTimeout) instead.
	RedisIOTimeout = 500 * time.Millisecond
)

// RedisOptions returns the options of the serving API's Redis client for url (redis:// or
// rediss://; what ads/adsconfig reads from REDIS_URL). main.go builds the client with them:
//
//	opts, err := serving.RedisOptions(cfg.RedisURL)
//	rc := redis.NewClient(opts)
//
// They set:
//   - ContextTimeoutEnabled: a request's Redis calls run inline with the request's budget as
//     their socket deadline (without it the handler runs each call on a goroutine of its own).
//   - MaxRetries -1: a call is never retried. A retried MULTI/EXEC whose first EXEC did reach
//     Redis would count a click or impression twice; a read retried within a 50 ms budget would
//     mostly time out anyway, and the answer degrades instead.
//   - PoolSize RedisPoolSize, MinIdleConns RedisMinIdleConns, PoolTimeout the budget's order
//     (a request waiting for a connection longer than its budget degrades anyway).
//   - DialTimeout RedisDialTimeout, ReadTimeout and WriteTimeout RedisIOTimeout.
//
// Settings given in url's query (pool_size=, read_timeout=, max_retries=, …) are kept.
func RedisOptions(url string) (*redis.Options, error) {
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("serving: redis url: %w", err)
	}
	TuneRedis(o)
	return o, nil
}

// TuneRedis applies the settings [RedisOptions] lists to o, keeping those already set: for a
// client built from any Redis URL, a Sentinel one included (redisconn.Spec.Options, before
// NewClient), so that a failover client follows the same budgets.
func TuneRedis(o *redis.Options) {
	o.ContextTimeoutEnabled = true
	if o.MaxRetries == 0 {
		o.MaxRetries = -1
	}
	if o.PoolSize == 0 {
		o.PoolSize = RedisPoolSize
	}
	if o.MinIdleConns == 0 {
		o.MinIdleConns = RedisMinIdleConns
	}
	if o.PoolTimeout == 0 {
		o.PoolTimeout = 100 * time.Millisecond
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = RedisDialTimeout
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = RedisIOTimeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = RedisIOTimeout
	}
}
