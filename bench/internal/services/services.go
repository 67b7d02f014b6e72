// Package services is how the bench programs drain, chord and scale reach the RabbitMQ and Redis
// they measure against: the URLs (AMQP_URL, REDIS_URL, else what scripts/services.sh starts), a
// connection to each that fails at once with what to run when the server is not there, the Celery
// results the tasks store in Redis (results.go), and the deletion of the result keys and queues a
// bench leaves behind.
package services

import (
	"context"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/bench/internal/procstat"
)

// The servers scripts/services.sh starts.
const (
	DefaultAMQPURL  = "amqp://guest:guest@127.0.0.1:5672/"
	DefaultRedisURL = "redis://127.0.0.1:6379/0"
)

// pingTimeout bounds Redis's first answer.
const pingTimeout = 5 * time.Second

// URLs returns AMQP_URL and REDIS_URL, each DefaultAMQPURL or DefaultRedisURL when unset or empty.
func URLs() (amqpURL, redisURL string) {
	return procstat.EnvOr("AMQP_URL", DefaultAMQPURL), procstat.EnvOr("REDIS_URL", DefaultRedisURL)
}

// DialRabbitMQ connects to the RabbitMQ at url; its error says to start the services.
func DialRabbitMQ(url string) (*amqp.Connection, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, fmt.Errorf("RabbitMQ is required at %s (run scripts/services.sh): %w", url, err)
	}
	return conn, nil
}

// Redis returns a client of the Redis at url once it has answered a PING (within 5 s, and within
// ctx); its error says to start the services. The caller closes the client.
func Redis(ctx context.Context, url string) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	rc := redis.NewClient(opts)
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if err := rc.Ping(pctx).Err(); err != nil {
		_ = rc.Close()
		return nil, fmt.Errorf("redis is required at %s (run scripts/services.sh): %w", url, err)
	}
	return rc, nil
}

// DeleteQueuesAt is procstat.DeleteQueues on a connection of its own to url, for a cleanup that
// must not depend on the bench's connection still being open.
func DeleteQueuesAt(url string, names []string) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return fmt.Errorf("deleting queues: %w", err)
	}
	defer conn.Close()
	return procstat.DeleteQueues(conn, names)
}
