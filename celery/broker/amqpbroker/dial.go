package amqpbroker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/celery/amqpwire"
)

// Celery's defaults for the broker connection settings (celery/app/defaults.py).
const (
	// DefaultConnectionTimeout is broker_connection_timeout: how long one node of the failover
	// list may take to accept the TCP connection and finish the AMQP handshake.
	DefaultConnectionTimeout = 4 * time.Second
	// DefaultHeartbeat is broker_heartbeat.
	DefaultHeartbeat = 120 * time.Second
	// DefaultMaxRetries is broker_connection_max_retries.
	DefaultMaxRetries = 100
)

// ConnectError is the error of a first connect that gave up: every node of broker_url failed
// broker_connection_max_retries times, or once with broker_connection_retry_on_startup off. It
// is never retried.
type ConnectError struct {
	// Broker is the last node tried, without its password.
	Broker string
	// Attempts counts the connection attempts made (over every node of the list).
	Attempts int
	// Reason says which setting ended the retries.
	Reason string
	Err    error
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("cannot connect to broker %s: %v (gave up after %d attempts: %s)", e.Broker, e.Err, e.Attempts, e.Reason)
}

func (e *ConnectError) Unwrap() error { return e.Err }

// dialURL opens an AMQP connection to urls[i] without holding b.mu. The TCP connect and the
// handshake together are bounded by broker_connection_timeout (amqp091-go clears the deadline
// once the connection is open, when heartbeats take over); Close aborts a dial in progress.
func (b *Broker) dialURL(i int) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	if b.opts.ConnectionName != "" {
		props.SetClientConnectionName(b.opts.ConnectionName)
	}
	timeout := b.opts.ConnectionTimeout
	// Close aborts a dial in progress: the TCP connect through ctx, the handshake by closing the
	// socket amqp091-go is reading from.
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	var (
		rawMu sync.Mutex
		raw   net.Conn
	)
	go func() {
		select {
		case <-b.closing:
			cancel()
			rawMu.Lock()
			if raw != nil {
				_ = raw.Close()
			}
			rawMu.Unlock()
		case <-done:
		}
	}()
	base := func(network, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: timeout}
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
			_ = c.Close()
			return nil, err
		}
		rawMu.Lock()
		raw = c
		rawMu.Unlock()
		return c, nil
	}
	hb := b.opts.Heartbeat
	if hb < 0 {
		hb = 0 // amqp091-go then takes the server's interval: it has no way to ask for none
	}
	cfg := amqp.Config{
		Heartbeat:  hb,
		Locale:     "en_US",
		Properties: props,
		Dial:       amqpwire.Dialer(base, amqpwire.Options{OnEvent: b.opts.OnWireRewrite, PackHeaders: true}),
	}
	c, err := amqp.DialConfig(b.urls[i], cfg)
	if err != nil {
		var nerr net.Error
		if errors.As(err, &nerr) && nerr.Timeout() {
			return nil, fmt.Errorf("%w (broker_connection_timeout %v)", err, timeout)
		}
		return nil, err
	}
	return c, nil
}
