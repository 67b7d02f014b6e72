// Package wiring builds the broker and result backend connections the programs of this repository
// share (worker, beat, web, the command-line client) from a loaded configuration.
package wiring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend"
	"github.com/forumads/forumads/celery/backend/memorybackend"
	"github.com/forumads/forumads/celery/backend/redisbackend"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/amqpbroker"
	"github.com/forumads/forumads/celery/broker/fanout"
	"github.com/forumads/forumads/celery/broker/fanout/memfanout"
	"github.com/forumads/forumads/celery/broker/memorybroker"
	"github.com/forumads/forumads/celery/broker/redisbroker"
	"github.com/forumads/forumads/celery/redisconn"
	"github.com/forumads/forumads/djangoapps/results"
)

// Broker returns the broker adapter cfg.broker_url names, picked by its scheme (the first URL's,
// for a ';'-separated failover list): amqp://, amqps:// and pyamqp:// open RabbitMQ (lazily: no
// connection is made until the first use), memory:// a connection to the process's
// memorybroker (memorybroker.Shared: a client and a worker of one process reach the same queues), redis://
// and rediss:// kombu's Redis transport (redisbroker, on a client of its own that Close closes, with
// broker_transport_options), a sentinel:// list the same transport on the master the Sentinels name
// (master_name in broker_transport_options); any other scheme is refused naming it. name is the connection name shown by RabbitMQ.
func Broker(cfg celery.Config, name string, log *slog.Logger) (broker.Broker, error) {
	raw, scheme, err := brokerScheme(cfg.BrokerURL)
	if err != nil {
		return nil, err
	}
	if scheme == "memory" {
		return memorybroker.Shared().Connect(), nil
	}
	if scheme == "redis" {
		b, err := redisBroker(cfg, log)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return b, nil
	}
	b, err := amqpbroker.New(raw, amqpOptions(cfg, name, log))
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return b, nil
}

// amqpOptions are the RabbitMQ adapter's options from Celery's settings: the failover strategy of
// a broker_url list, worker_detect_quorum_queues, broker_native_delayed_delivery_queue_type and
// the broker connection settings (broker_connection_timeout, broker_heartbeat,
// broker_connection_max_retries, broker_connection_retry_on_startup).
func amqpOptions(cfg celery.Config, name string, log *slog.Logger) amqpbroker.Options {
	bc := cfg.BrokerConnectionSettings()
	o := amqpbroker.Options{Logger: log, ConnectionName: name, FailoverStrategy: cfg.BrokerFailoverStrategy,
		NoQuorumDetection:        cfg.WorkerDetectQuorumQueues != nil && !*cfg.WorkerDetectQuorumQueues,
		DelayedDeliveryQueueType: cfg.BrokerNativeDelayedDeliveryQueueType,
		ConnectionTimeout:        bc.Timeout, Heartbeat: bc.Heartbeat, MaxRetries: bc.MaxRetries,
		NoRetryOnStartup: !bc.RetryOnStartup}
	if bc.Heartbeat == 0 {
		o.Heartbeat = -1 // amqpbroker's "none asked for"
	}
	if bc.MaxRetries == 0 {
		o.MaxRetries = -1 // amqpbroker's "forever"
	}
	return o
}

// sharedFanout is the process's in-memory broadcast transport of broker_url memory://, as
// memorybroker.Shared is its broker.
var sharedFanout = sync.OnceValue(memfanout.New)

// Fanout returns the transport of Celery's broadcast channels (remote control, events) on the
// broker cfg.broker_url names, chosen by the same schemes as [Broker], and what to close when done
// with it (nil for memory://, which the process shares). An AMQP transport is a connection of its
// own, named name; it connects lazily.
func Fanout(cfg celery.Config, name string, log *slog.Logger) (fanout.Transport, io.Closer, error) {
	raw, scheme, err := brokerScheme(cfg.BrokerURL)
	if err != nil {
		return nil, nil, err
	}
	if scheme == "memory" {
		return sharedFanout(), nil, nil
	}
	if scheme == "redis" {
		b, err := redisBroker(cfg, log)
		if err != nil {
			return nil, nil, err
		}
		return b.Fanout(), b, nil
	}
	f, err := amqpbroker.NewFanout(raw, amqpOptions(cfg, name, log))
	if err != nil {
		return nil, nil, err
	}
	return f, f, nil
}

// brokerScheme checks broker_url (the first URL's scheme, for a ';'-separated failover list) and
// returns it trimmed with its adapter's scheme: "amqp" (amqp://, amqps://, pyamqp://), "redis"
// (redis://, rediss://, a sentinel:// list) or "memory"; any other scheme is refused naming it.
func brokerScheme(url string) (raw, scheme string, err error) {
	raw = strings.TrimSpace(url)
	first, _, _ := strings.Cut(raw, ";")
	first = strings.TrimSpace(first)
	if first == "" {
		return "", "", errors.New("broker_url: empty (amqp://, amqps://, pyamqp:// or memory://)")
	}
	scheme, _, ok := strings.Cut(first, "://")
	if !ok || scheme == "" {
		return "", "", fmt.Errorf("broker_url %q: no scheme (amqp://, amqps://, pyamqp:// or memory://)", Redacted(first))
	}
	switch strings.ToLower(scheme) {
	case "amqp", "amqps", "pyamqp":
		return raw, "amqp", nil
	case "memory":
		if strings.Contains(raw, ";") {
			return "", "", errors.New("broker_url: memory:// cannot be part of a failover list")
		}
		return raw, "memory", nil
	case "redis", "rediss":
		if strings.Contains(raw, ";") {
			return "", "", errors.New("broker_url: redis:// cannot be part of a failover list (Redis fails over with sentinel://)")
		}
		return raw, "redis", nil
	case "sentinel":
		return raw, "redis", nil // the list is the Sentinels'; redisconn reads it with master_name
	default:
		return "", "", fmt.Errorf("broker_url: unknown scheme %q (amqp://, amqps://, pyamqp://, redis://, rediss://, sentinel:// or memory://)", scheme)
	}
}

// Redis returns a client for a Redis URL without transport options (a sentinel:// URL needs
// them: see [RedisWith]).
func Redis(url string) (*redis.Client, error) { return RedisWith(url, nil, nil) }

// RedisWith returns a client for a redis://, rediss://, unix:// URL or Celery's sentinel:// list,
// with the transport options of the setting it came from (master_name, sentinel_kwargs, …; see
// package redisconn) and redisconn's worker timeouts: short dials, so an outage is noticed and
// retried rather than hung on. A Sentinel URL is checked at once ([RedisSpec]).
func RedisWith(url string, transport map[string]any, log *slog.Logger) (*redis.Client, error) {
	spec, err := RedisSpec(url, transport, log)
	if err != nil {
		return nil, err
	}
	return spec.WithDefaults().NewClient(), nil
}

// AppRedis is [RedisWith] for this repository's own Redis settings (beat_state_url,
// worker_revoke_url, ads_redis_url / REDIS_URL): they take their Sentinel options from
// result_backend_transport_options.
func AppRedis(cfg celery.Config, url string, log *slog.Logger) (*redis.Client, error) {
	return RedisWith(url, cfg.ResultBackendTransportOptions, log)
}

// BrokerRedis is [RedisWith] for broker_url with broker_transport_options: the client of the
// Redis broker adapter.
func BrokerRedis(cfg celery.Config, log *slog.Logger) (*redis.Client, error) {
	c, err := RedisWith(cfg.BrokerURL, cfg.BrokerTransportOptions, log)
	if err != nil {
		return nil, fmt.Errorf("broker_url: %w", err)
	}
	return c, nil
}

// sentinelCheckTimeout bounds the start-up question to the Sentinels.
const sentinelCheckTimeout = 3 * time.Second

// RedisSpec parses a Redis URL with its transport options and, for Sentinel, asks the Sentinels
// for the master (up to 3 s): a Sentinel that names no master of master_name, or refuses the
// client (a wrong sentinel_kwargs password), is an error, so the program stops at start saying
// so; Sentinels that do not answer are logged as a warning (to log, when not nil) and the client
// keeps asking, as a client of a plain Redis that is down keeps redialing. Callers adjust the
// spec's options and build the client with NewClient.
func RedisSpec(url string, transport map[string]any, log *slog.Logger) (*redisconn.Spec, error) {
	spec, err := redisconn.Parse(url, transport)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	if !spec.IsSentinel() {
		return spec, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), sentinelCheckTimeout)
	defer cancel()
	master, err := redisconn.CheckMaster(ctx, spec)
	switch {
	case errors.Is(err, redisconn.ErrSentinelsUnreachable):
		if log != nil {
			log.Warn("redis: no Sentinel answered at start; the client keeps asking", "redis", spec.String(), "error", err)
		}
	case err != nil:
		return nil, fmt.Errorf("redis url %s: %w", redisconn.Redact(url), err)
	case log != nil:
		log.Info("redis: Sentinel names the master", "redis", spec.String(), "master", master)
	}
	return spec, nil
}

// Backend returns the result backend of cfg.result_backend, chosen by its scheme, and what to
// close when done with it (nil when there is nothing to close); nils when no backend is
// configured:
//
//	redis://, rediss://, unix://  redisbackend, on a client of its own (the closer)
//	sentinel://…;sentinel://…     the same through Redis Sentinel: master_name and the passwords
//	                              from result_backend_transport_options (see [RedisSpec])
//	memory://                     memorybackend: one process only, results are not shared with
//	                              other processes and are lost at exit; every memory:// backend of
//	                              the process with the same URL is the same one
//	django-db                     djangoapps/results on database_url (PostgreSQL with
//	                              django-celery-results' tables; the closer closes its pool); a
//	                              database that does not answer, or has no such tables, is an error
//	db+...                        an error: SQLAlchemy database backends are not supported
//
// Any other scheme is an error naming it.
func Backend(cfg celery.Config) (backend.Backend, io.Closer, error) {
	url := cfg.ResultBackend
	if url == "" {
		return nil, nil, nil
	}
	scheme, _, hasScheme := strings.Cut(url, "://")
	if !hasScheme {
		scheme, _, _ = strings.Cut(url, ":")
	}
	scheme = strings.ToLower(scheme)
	switch {
	case scheme == "redis", scheme == "rediss", scheme == "unix", scheme == "sentinel":
		rc, err := RedisWith(url, cfg.ResultBackendTransportOptions, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("result_backend: %w", err)
		}
		return redisbackend.New(rc, redisbackend.Options{Expires: cfg.ResultTTL()}), rc, nil
	case scheme == "memory":
		return memoryBackend(url, cfg.ResultTTL()), nil, nil
	case scheme == "django-db":
		return djangoBackend(cfg)
	case strings.HasPrefix(scheme, "db+"):
		return nil, nil, fmt.Errorf("result_backend: SQLAlchemy database result backends (%s) are not supported; use django-db or redis://", scheme)
	case scheme == "":
		return nil, nil, fmt.Errorf("result_backend: %q has no scheme; use redis://", url)
	}
	return nil, nil, fmt.Errorf("result_backend: %q backends are not supported; use redis://, sentinel:// (or memory:// within one process)", scheme)
}

// djangoBackend opens the django-db backend on database_url, checking its tables.
func djangoBackend(cfg celery.Config) (backend.Backend, io.Closer, error) {
	if strings.TrimSpace(cfg.DatabaseURL) == "" {
		return nil, nil, errors.New("result_backend django-db: database_url is not set (the Django project's PostgreSQL database, e.g. postgres://user:password@127.0.0.1:5432/name?sslmode=disable; CELERY_DATABASE_URL overrides it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	b, err := results.Open(ctx, cfg.DatabaseURL, results.Options{Expires: cfg.ResultTTL()})
	if err != nil {
		return nil, nil, fmt.Errorf("result_backend django-db (database_url %s): %w", Redacted(cfg.DatabaseURL), err)
	}
	return b, b, nil
}

var (
	memoryMu       sync.Mutex
	memoryBackends = map[string]*memorybackend.Backend{}
)

// memoryBackend is the process's memory backend of url, created on first use.
func memoryBackend(url string, expires time.Duration) *memorybackend.Backend {
	memoryMu.Lock()
	defer memoryMu.Unlock()
	b, ok := memoryBackends[url]
	if !ok {
		b = memorybackend.New(memorybackend.Options{Expires: expires})
		memoryBackends[url] = b
	}
	return b
}

// Redacted hides the passwords in a URL (or ';' list) for logs and banners.
func Redacted(url string) string { return redisconn.Redact(url) }

// Ping checks that Redis answers, for readiness.
func Ping(ctx context.Context, rc redis.UniversalClient) error {
	if rc == nil {
		return errors.New("no redis")
	}
	return rc.Ping(ctx).Err()
}

// RedisBroker is the Redis broker of broker_url redis:// with the client it owns: Close closes
// both. The adapter's optional interfaces (DeadLetterer, Parker, BatchPublisher) are promoted.
type RedisBroker struct {
	*redisbroker.Broker
	client *redis.Client
}

// Close closes the broker (its consumers give back what they hold), then its client.
func (b *RedisBroker) Close() error {
	err := b.Broker.Close()
	if cerr := b.client.Close(); err == nil && cerr != nil && !errors.Is(cerr, redis.ErrClosed) {
		err = cerr
	}
	return err
}

// redisBroker opens the Redis broker of cfg.broker_url (redis://, rediss:// or a sentinel:// list,
// on the client BrokerRedis gives) with cfg's broker_transport_options; unknown options are logged
// (Celery ignores them too), wrong ones are an error naming the option.
func redisBroker(cfg celery.Config, log *slog.Logger) (*RedisBroker, error) {
	if log == nil {
		log = slog.Default()
	}
	opts, unknown, err := redisbroker.ParseTransportOptions(cfg.BrokerTransportOptions)
	if err != nil {
		return nil, err
	}
	unknown = slices.DeleteFunc(unknown, redisconn.IsConnectionOption)
	if len(unknown) > 0 {
		log.Warn("broker_transport_options: options the Redis transport does not know are ignored", "options", unknown)
	}
	if _, set := cfg.BrokerTransportOptions["deadletter_queue"]; !set && cfg.WorkerDeadLetterQueue != "" {
		opts.DeadLetterQueue = cfg.WorkerDeadLetterQueue
	}
	opts.Logger = log
	rc, err := BrokerRedis(cfg, log)
	if err != nil {
		return nil, err
	}
	b, err := redisbroker.New(rc, opts)
	if err != nil {
		_ = rc.Close()
		return nil, err
	}
	return &RedisBroker{Broker: b, client: rc}, nil
}
