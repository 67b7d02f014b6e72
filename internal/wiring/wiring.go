// Package wiring builds the broker and result backend connections the programs of this repository
// share (worker, beat, web, the command-line client) from a loaded configuration.
package wiring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	"github.com/forumads/forumads/djangoapps/results"
)

// Broker returns the broker adapter cfg.broker_url names, picked by its scheme (the first URL's,
// for a ';'-separated failover list): amqp://, amqps:// and pyamqp:// open RabbitMQ (lazily: no
// connection is made until the first use), memory:// a connection to the process's
// memorybroker (memorybroker.Shared: a client and a worker of one process reach the same queues), redis://
// and rediss:// kombu's Redis transport (redisbroker, on a client of its own that Close closes, with
// broker_transport_options); sentinel:// is refused until Sentinel support exists, and any other
// scheme is refused naming it. name is the connection name shown by RabbitMQ.
func Broker(cfg celery.Config, name string, log *slog.Logger) (broker.Broker, error) {
	raw, scheme, err := brokerScheme(cfg.BrokerURL)
	if err != nil {
		return nil, err
	}
	if scheme == "memory" {
		return memorybroker.Shared().Connect(), nil
	}
	if scheme == "redis" {
		b, err := redisBroker(cfg, raw, log)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return b, nil
	}
	b, err := amqpbroker.New(raw, amqpbroker.Options{Logger: log, ConnectionName: name})
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return b, nil
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
		b, err := redisBroker(cfg, raw, log)
		if err != nil {
			return nil, nil, err
		}
		return b.Fanout(), b, nil
	}
	f, err := amqpbroker.NewFanout(raw, amqpbroker.Options{Logger: log, ConnectionName: name})
	if err != nil {
		return nil, nil, err
	}
	return f, f, nil
}

// brokerScheme checks broker_url (the first URL's scheme, for a ';'-separated failover list) and
// returns it trimmed with its adapter's scheme: "amqp" (amqp://, amqps://, pyamqp://), "redis"
// (redis://, rediss://) or "memory". sentinel:// is refused until Sentinel support exists, and any
// other scheme is refused naming it.
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
		return "", "", fmt.Errorf("broker_url: the Redis Sentinel broker (%s://) is not available yet; use redis://, amqp:// (RabbitMQ) or memory://", scheme)
	default:
		return "", "", fmt.Errorf("broker_url: unknown scheme %q (amqp://, amqps://, pyamqp://, redis://, rediss:// or memory://)", scheme)
	}
}

// Redis returns a client for a redis:// (or rediss://, unix://) URL with timeouts suited to a
// worker: short dials, so an outage is noticed and retried rather than hung on.
func Redis(url string) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	opts.DialTimeout = 2 * time.Second
	opts.ReadTimeout = 5 * time.Second
	opts.WriteTimeout = 5 * time.Second
	opts.MaxRetries = 2
	opts.PoolSize = max(opts.PoolSize, 64)
	return redis.NewClient(opts), nil
}

// Backend returns the result backend of cfg.result_backend, chosen by its scheme, and what to
// close when done with it (nil when there is nothing to close); nils when no backend is
// configured:
//
//	redis://, rediss://, unix://  redisbackend, on a client of its own (the closer)
//	memory://                     memorybackend: one process only, results are not shared with
//	                              other processes and are lost at exit; every memory:// backend of
//	                              the process with the same URL is the same one
//	sentinel://                   an error: not available yet
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
	switch {
	case scheme == "redis", scheme == "rediss", scheme == "unix":
		rc, err := Redis(url)
		if err != nil {
			return nil, nil, fmt.Errorf("result_backend: %w", err)
		}
		return redisbackend.New(rc, redisbackend.Options{Expires: cfg.ResultTTL()}), rc, nil
	case scheme == "memory":
		return memoryBackend(url, cfg.ResultTTL()), nil, nil
	case scheme == "sentinel":
		return nil, nil, errors.New("result_backend: the Redis Sentinel backend (sentinel://) is not available yet; use redis://")
	case scheme == "django-db":
		return djangoBackend(cfg)
	case strings.HasPrefix(scheme, "db+"):
		return nil, nil, fmt.Errorf("result_backend: SQLAlchemy database result backends (%s) are not supported; use django-db or redis://", scheme)
	case scheme == "":
		return nil, nil, fmt.Errorf("result_backend: %q has no scheme; use redis://", url)
	}
	return nil, nil, fmt.Errorf("result_backend: %q backends are not supported; use redis:// (or memory:// within one process)", scheme)
}

// djangoBackend opens the django-db backend on database_url, checking its tables.
func djangoBackend(cfg celery.Config) (backend.Backend, io.Closer, error) {
	if strings.TrimSpace(cfg.DatabaseURL) == "" {
		return nil, nil, errors.New("result_backend django-db: database_url is not set (the Django project's PostgreSQL database, e.g. postgres://user:password@127.0.0.1:5432/name?sslmode=disable; CELERY_DATABASE_URL overrides it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	b, err := results.Open(ctx, cfg.DatabaseURL, results.Options{})
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

// Redacted hides the password in a URL for logs and banners.
func Redacted(url string) string {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return url
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return url
	}
	cred := rest[:at]
	if user, _, hasPass := strings.Cut(cred, ":"); hasPass {
		cred = user + ":**"
	}
	return scheme + "://" + cred + rest[at:]
}

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

// redisBroker opens the Redis broker of url with cfg's broker_transport_options; unknown options
// are logged (Celery ignores them too), wrong ones are an error naming the option.
func redisBroker(cfg celery.Config, url string, log *slog.Logger) (*RedisBroker, error) {
	if log == nil {
		log = slog.Default()
	}
	opts, unknown, err := redisbroker.ParseTransportOptions(cfg.BrokerTransportOptions)
	if err != nil {
		return nil, err
	}
	if len(unknown) > 0 {
		log.Warn("broker_transport_options: options the Redis transport does not know are ignored", "options", unknown)
	}
	if _, set := cfg.BrokerTransportOptions["deadletter_queue"]; !set && cfg.WorkerDeadLetterQueue != "" {
		opts.DeadLetterQueue = cfg.WorkerDeadLetterQueue
	}
	opts.Logger = log
	rc, err := Redis(url)
	if err != nil {
		return nil, fmt.Errorf("broker_url: %w", err)
	}
	b, err := redisbroker.New(rc, opts)
	if err != nil {
		_ = rc.Close()
		return nil, err
	}
	return &RedisBroker{Broker: b, client: rc}, nil
}
