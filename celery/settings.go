package celery

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/internal/routing"
)

// Defaults for Celery settings, as Celery 5.2 defines them (celery/app/defaults.py).
const (
	DefaultQueue              = "celery"
	DefaultExchangeType       = "direct"
	DefaultPrefetchMultiplier = 4
	DefaultResultExpires      = 24 * time.Hour
	DefaultMaxRetries         = 3
	DefaultRetryCountdown     = 180 * time.Second
	// DefaultDeadLetterQueue is where the worker puts messages it cannot run (bad encoding, pickle,
	// unknown task, undecodable headers), with the reason in the x-dead-letter-reason header.
	DefaultDeadLetterQueue = "celery.deadletter"
	// DefaultETAParkAfter is how far in the future an ETA may be for the worker to hold the message
	// unacknowledged. Later ETAs are parked in a TTL queue so RabbitMQ's consumer_timeout (30 min by
	// default) never fires on a held message.
	DefaultETAParkAfter = 10 * time.Minute
)

// Config holds the settings the worker, the client and beat read, under Celery's own setting
// names (the YAML tags). A zero value means Celery's default; use [Config.WithDefaults] to fill them.
// Durations are given in seconds, as in Celery.
type Config struct {
	// BrokerURL is one URL, or a failover list: URLs separated by ';' (in YAML also a list, which
	// the config loader joins), tried in the order broker_failover_strategy gives.
	BrokerURL string `yaml:"broker_url"`
	// BrokerFailoverStrategy is kombu's failover_strategy: "round-robin" (the default) or
	// "shuffle" (the list in a random order, then round-robin).
	BrokerFailoverStrategy string `yaml:"broker_failover_strategy"`
	// BrokerNativeDelayedDeliveryQueueType is the x-queue-type of the celery_delayed_0…27 queues
	// of native delayed delivery (Celery 5.5): "quorum" (the default) or "classic".
	BrokerNativeDelayedDeliveryQueueType string `yaml:"broker_native_delayed_delivery_queue_type"`
	// BrokerConnectionTimeout is broker_connection_timeout in seconds (default 4): the bound on
	// each node's TCP connect and AMQP handshake, so a hung node of the list is skipped quickly.
	BrokerConnectionTimeout *float64 `yaml:"broker_connection_timeout"`
	// BrokerConnectionRetryOnStartup is broker_connection_retry_on_startup (default true): retry
	// the first connect with backoff; false makes a failed first connect an error at once.
	BrokerConnectionRetryOnStartup *bool `yaml:"broker_connection_retry_on_startup"`
	// BrokerConnectionMaxRetries is broker_connection_max_retries (default 100; 0 or null: retry
	// forever), the connection attempts a first connect makes before the program gives up.
	BrokerConnectionMaxRetries *int `yaml:"broker_connection_max_retries"`
	// BrokerHeartbeat is broker_heartbeat in seconds (default 120; 0 asks for no heartbeats).
	BrokerHeartbeat *float64 `yaml:"broker_heartbeat"`

	ResultBackend string `yaml:"result_backend"`
	// DatabaseURL is Celery's database_url, the database result backends' connection: with
	// result_backend django-db, the PostgreSQL database (postgres://…, search_path to pick a schema)
	// holding django-celery-results' tables. The library itself never connects to it.
	DatabaseURL   string   `yaml:"database_url"`
	AcceptContent []string `yaml:"accept_content"`
	// BrokerTransportOptions and ResultBackendTransportOptions are Celery's
	// broker_transport_options and result_backend_transport_options, read by the adapter of
	// broker_url and result_backend (for Redis and Sentinel: master_name, sentinel_kwargs,
	// password, socket timeouts, see package redisconn; for the Redis broker also kombu's options
	// such as visibility_timeout, see redisbroker.ParseTransportOptions). The repository's other Redis settings
	// (beat_state_url, worker_revoke_url, ads_redis_url) read result_backend_transport_options.
	BrokerTransportOptions        map[string]any `yaml:"broker_transport_options"`
	ResultBackendTransportOptions map[string]any `yaml:"result_backend_transport_options"`
	// TaskSerializer is json (default), msgpack or yaml. Pickle is refused.
	TaskSerializer    string   `yaml:"task_serializer"`
	TaskCompression   string   `yaml:"task_compression"`
	ResultExpires     *float64 `yaml:"result_expires"`
	ResultExtended    bool     `yaml:"result_extended"`
	TaskTrackStarted  bool     `yaml:"task_track_started"`
	TaskIgnoreResult  bool     `yaml:"task_ignore_result"`
	TaskAcksLate      bool     `yaml:"task_acks_late"`
	TaskAcksOnFailure *bool    `yaml:"task_acks_on_failure_or_timeout"`
	TaskRejectOnLost  bool     `yaml:"task_reject_on_worker_lost"`
	TaskTimeLimit     *float64 `yaml:"task_time_limit"`
	TaskSoftTimeLimit *float64 `yaml:"task_soft_time_limit"`

	TaskDefaultQueue string `yaml:"task_default_queue"`
	// TaskDefaultQueueType is Celery 5.5's task_default_queue_type: "classic" (the default) or
	// "quorum", which declares the default queue (when task_queues is empty) with x-queue-type
	// quorum. Other queues are made quorum with queue_arguments in task_queues.
	TaskDefaultQueueType string `yaml:"task_default_queue_type"`
	// TaskCreateMissingQueueType and TaskCreateMissingQueueExchangeType (Celery 5.5) are the queue
	// type ("classic" or "quorum") and exchange type of queues created for a route to a queue
	// task_queues does not list.
	TaskCreateMissingQueueType         string        `yaml:"task_create_missing_queue_type"`
	TaskCreateMissingQueueExchangeType string        `yaml:"task_create_missing_queue_exchange_type"`
	TaskDefaultExchange                string        `yaml:"task_default_exchange"`
	TaskDefaultExchangeType            string        `yaml:"task_default_exchange_type"`
	TaskDefaultRoutingKey              string        `yaml:"task_default_routing_key"`
	TaskDefaultDeliveryMode            any           `yaml:"task_default_delivery_mode"`
	TaskDefaultPriority                *int          `yaml:"task_default_priority"`
	TaskDefaultRateLimit               string        `yaml:"task_default_rate_limit"`
	TaskQueueMaxPriority               *int          `yaml:"task_queue_max_priority"`
	TaskCreateMissingQueues            *bool         `yaml:"task_create_missing_queues"`
	TaskQueues                         []QueueConfig `yaml:"task_queues"`
	// TaskRoutes maps a task name, glob or re: pattern to a queue, matched as Celery does (see Routes.Match).
	// It is read by the config loader (YAML mappings keep their order there), hence no yaml tag.
	TaskRoutes Routes `yaml:"-"`

	WorkerConcurrency         int      `yaml:"worker_concurrency"`
	WorkerPrefetchMultiplier  *int     `yaml:"worker_prefetch_multiplier"`
	WorkerDisableRateLimits   bool     `yaml:"worker_disable_rate_limits"`
	WorkerSendTaskEvents      bool     `yaml:"worker_send_task_events"`
	WorkerDeduplicateSuccess  bool     `yaml:"worker_deduplicate_successful_tasks"`
	WorkerSoftShutdownTimeout *float64 `yaml:"worker_soft_shutdown_timeout"`

	// WorkerSoftShutdownTimeout (above) is how many seconds a cold shutdown gives running tasks
	// before it cancels them (Celery 5.5's soft shutdown; nil or 0: none);
	// WorkerEnableSoftShutdownOnIdle starts that period even when no task runs. See Worker.Shutdown.
	WorkerEnableSoftShutdownOnIdle bool `yaml:"worker_enable_soft_shutdown_on_idle"`

	// WorkerDetectQuorumQueues (Celery 5.5, default true): when a consumed queue is a quorum
	// queue, the worker sets its prefetch per consumer (quorum queues refuse global QoS) and
	// declares native delayed delivery.
	WorkerDetectQuorumQueues *bool `yaml:"worker_detect_quorum_queues"`

	// WorkerDeadLetterQueue and WorkerETAParkAfter are this implementation's own settings.
	WorkerDeadLetterQueue string   `yaml:"worker_dead_letter_queue"`
	WorkerETAParkAfter    *float64 `yaml:"worker_eta_park_after"`

	Timezone  string `yaml:"timezone"`
	EnableUTC *bool  `yaml:"enable_utc"`

	// Events and remote control, under Celery's names. Task events are sent with
	// worker_send_task_events (or -E); task_send_sent_event makes clients and beat send task-sent.
	TaskSendSentEvent         bool     `yaml:"task_send_sent_event"`
	EventExchange             string   `yaml:"event_exchange"`
	WorkerEnableRemoteControl *bool    `yaml:"worker_enable_remote_control"`
	ControlExchange           string   `yaml:"control_exchange"`
	ControlQueueTTL           *float64 `yaml:"control_queue_ttl"`
	ControlQueueExpires       *float64 `yaml:"control_queue_expires"`

	// Persistent revokes (this implementation's own settings; see package revoke):
	// WorkerRevokeURL is the Redis holding revoked ids ("" = result_backend when it is Redis, else
	// the REDIS_URL environment variable), under WorkerRevokeKeyPrefix ("" = "celery:revoked:"),
	// each for WorkerRevokeExpires seconds (default 10800, Celery's), at most WorkerRevokeMax ids
	// (0 = 50000).
	WorkerRevokeURL       string   `yaml:"worker_revoke_url"`
	WorkerRevokeKeyPrefix string   `yaml:"worker_revoke_key_prefix"`
	WorkerRevokeExpires   *float64 `yaml:"worker_revoke_expires"`
	WorkerRevokeMax       int      `yaml:"worker_revoke_max"`
}

// QueueConfig is one entry of task_queues, shaped like kombu's Queue.
type QueueConfig = broker.Queue

// Route is where a task is published: the target queue and optional overrides.
type Route struct {
	Pattern string `yaml:"-"`
	// Group is the index of the task_routes mapping the route came from (task_routes may be a list
	// of mappings; Celery makes each one a router of its own, tried in order).
	Group      int    `yaml:"-"`
	Queue      string `yaml:"queue"`
	Exchange   string `yaml:"exchange"`
	RoutingKey string `yaml:"routing_key"`
	Priority   *int   `yaml:"priority"`
}

// Routes is an ordered task_routes table.
type Routes []Route

// Match returns the route of a task name as Celery 5.2's routers do: the mappings (groups) in
// order; within one, an exact task name first, then the first pattern that matches, in file order:
// a pattern containing '*' is a shell glob (Python's fnmatch: '*', '?', '[seq]', '[!seq]';
// case-sensitive, the whole name), one starting with "re:" a regular expression matched at the
// start of the name (Python's re.match; Go's RE2 syntax). Patterns that compile alike ("*" and
// "**") are one entry, at the first one's place, with the last one's route. A table with a
// regular expression that does not compile (which [Config.Validate] reports) routes nothing.
//
// Match compiles the table on every call; a [Router] compiles it once.
func (rs Routes) Match(task string) (Route, bool) {
	t, err := routing.Compile(rs.internal())
	if err != nil {
		return Route{}, false
	}
	r, ok := t.Match(task)
	return Route(r), ok
}

// internal converts the table to the router's own type (the same fields).
func (rs Routes) internal() routing.Routes {
	out := make(routing.Routes, len(rs))
	for i, r := range rs {
		out[i] = routing.Route(r)
	}
	return out
}

// Celery's defaults for the broker connection (celery/app/defaults.py).
const (
	DefaultBrokerConnectionTimeout    = 4 * time.Second
	DefaultBrokerHeartbeat            = 120 * time.Second
	DefaultBrokerConnectionMaxRetries = 100
)

// BrokerConnection is the broker connection settings with Celery's defaults filled in.
type BrokerConnection struct {
	// Timeout is broker_connection_timeout; Heartbeat broker_heartbeat (0: none asked for).
	Timeout, Heartbeat time.Duration
	// MaxRetries is broker_connection_max_retries (0: forever).
	MaxRetries int
	// RetryOnStartup is broker_connection_retry_on_startup.
	RetryOnStartup bool
}

// BrokerConnectionSettings returns broker_connection_timeout, broker_heartbeat,
// broker_connection_max_retries and broker_connection_retry_on_startup, defaults filled in.
func (c Config) BrokerConnectionSettings() BrokerConnection {
	bc := BrokerConnection{Timeout: seconds(c.BrokerConnectionTimeout, DefaultBrokerConnectionTimeout),
		Heartbeat: seconds(c.BrokerHeartbeat, DefaultBrokerHeartbeat), MaxRetries: DefaultBrokerConnectionMaxRetries,
		RetryOnStartup: c.BrokerConnectionRetryOnStartup == nil || *c.BrokerConnectionRetryOnStartup}
	if c.BrokerConnectionMaxRetries != nil {
		bc.MaxRetries = *c.BrokerConnectionMaxRetries
	}
	return bc
}

func seconds(f *float64, def time.Duration) time.Duration {
	if f == nil {
		return def
	}
	return time.Duration(*f * float64(time.Second))
}

// WithDefaults returns a copy with every unset field given Celery's default.
func (c Config) WithDefaults() Config {
	if c.BrokerURL == "" {
		c.BrokerURL = "amqp://guest:guest@127.0.0.1:5672//"
	}
	if len(c.AcceptContent) == 0 {
		c.AcceptContent = []string{"json"}
	}
	if c.TaskSerializer == "" {
		c.TaskSerializer = "json"
	}
	if c.TaskDefaultQueue == "" {
		c.TaskDefaultQueue = DefaultQueue
	}
	if c.TaskDefaultExchange == "" {
		c.TaskDefaultExchange = c.TaskDefaultQueue
	}
	if c.TaskDefaultExchangeType == "" {
		c.TaskDefaultExchangeType = DefaultExchangeType
	}
	if c.TaskDefaultRoutingKey == "" {
		c.TaskDefaultRoutingKey = c.TaskDefaultQueue
	}
	if c.TaskCreateMissingQueues == nil {
		t := true
		c.TaskCreateMissingQueues = &t
	}
	if c.TaskAcksOnFailure == nil {
		t := true
		c.TaskAcksOnFailure = &t
	}
	if c.WorkerConcurrency <= 0 {
		c.WorkerConcurrency = runtime.NumCPU()
	}
	if c.WorkerPrefetchMultiplier == nil {
		m := DefaultPrefetchMultiplier
		c.WorkerPrefetchMultiplier = &m
	}
	if c.WorkerDeadLetterQueue == "" {
		c.WorkerDeadLetterQueue = DefaultDeadLetterQueue
	}
	if c.Timezone == "" {
		c.Timezone = "UTC"
	}
	if c.EnableUTC == nil {
		t := true
		c.EnableUTC = &t
	}
	return c
}

// Validate reports the first setting that cannot work, naming it.
func (c Config) Validate() error {
	switch c.TaskSerializer {
	case "", "json", "msgpack", "yaml":
	case "pickle":
		return fmt.Errorf("task_serializer: pickle is never used: it runs code chosen by whoever can publish")
	default:
		return fmt.Errorf("task_serializer: unknown serializer %q (json, msgpack or yaml)", c.TaskSerializer)
	}
	for _, a := range c.AcceptContent {
		if a == "pickle" || a == "application/x-python-serialize" {
			return fmt.Errorf("accept_content: pickle is never accepted: it runs code chosen by whoever can publish")
		}
	}
	if c.WorkerPrefetchMultiplier != nil && *c.WorkerPrefetchMultiplier < 0 {
		return fmt.Errorf("worker_prefetch_multiplier: must be >= 0, got %d", *c.WorkerPrefetchMultiplier)
	}
	if c.WorkerConcurrency < 0 {
		return fmt.Errorf("worker_concurrency: must be >= 0, got %d", c.WorkerConcurrency)
	}
	if err := c.validateQuorum(); err != nil {
		return err
	}
	for i, q := range c.TaskQueues {
		if q.Name == "" {
			return fmt.Errorf("task_queues[%d].name: a queue needs a name", i)
		}
		if err := broker.CheckQueueArguments(q); err != nil {
			return fmt.Errorf("task_queues[%d] (%s): %w", i, q.Name, err)
		}
		switch q.ExchangeType {
		case "", "direct", "topic", "fanout", "headers":
		default:
			return fmt.Errorf("task_queues[%d].exchange_type: unknown exchange type %q", i, q.ExchangeType)
		}
	}
	for _, r := range c.TaskRoutes {
		if r.Queue == "" && r.Exchange == "" && r.RoutingKey == "" {
			return fmt.Errorf("task_routes[%q]: a route needs a queue", r.Pattern)
		}
		if r.Pattern == "" {
			return errors.New("task_routes: an empty task name or pattern")
		}
	}
	if _, err := routing.Compile(c.TaskRoutes.internal()); err != nil {
		return err
	}
	if r := c.TaskDefaultRateLimit; r != "" {
		if _, err := ParseRateLimit(r); err != nil {
			return fmt.Errorf("task_default_rate_limit: %w", err)
		}
	}
	if c.ResultExpires != nil && *c.ResultExpires < 0 {
		return fmt.Errorf("result_expires: must be >= 0 seconds")
	}
	for _, f := range []struct {
		name string
		v    *float64
	}{{"control_queue_ttl", c.ControlQueueTTL}, {"control_queue_expires", c.ControlQueueExpires},
		{"worker_revoke_expires", c.WorkerRevokeExpires}, {"worker_soft_shutdown_timeout", c.WorkerSoftShutdownTimeout}} {
		if f.v != nil && !(*f.v >= 0) {
			return fmt.Errorf("%s: must be >= 0 seconds, got %v", f.name, *f.v)
		}
	}
	if t := c.BrokerConnectionTimeout; t != nil && !(*t > 0) {
		return fmt.Errorf("broker_connection_timeout: must be > 0 seconds, got %v", *t)
	}
	if h := c.BrokerHeartbeat; h != nil && !(*h >= 0 && *h <= 65535) {
		return fmt.Errorf("broker_heartbeat: must be 0 (none) to 65535 seconds, got %v", *h)
	}
	if m := c.BrokerConnectionMaxRetries; m != nil && *m < 0 {
		return fmt.Errorf("broker_connection_max_retries: must be >= 0 (0: retry forever), got %d", *m)
	}
	if c.WorkerRevokeMax < 0 {
		return fmt.Errorf("worker_revoke_max: must be >= 0, got %d", c.WorkerRevokeMax)
	}
	if _, err := time.LoadLocation(c.Timezone); c.Timezone != "" && err != nil {
		return fmt.Errorf("timezone: %w", err)
	}
	return nil
}

// validateQuorum checks the settings of quorum queues, native delayed delivery and failover.
func (c Config) validateQuorum() error {
	for _, f := range []struct{ name, v string }{
		{"task_default_queue_type", c.TaskDefaultQueueType},
		{"task_create_missing_queue_type", c.TaskCreateMissingQueueType},
		{"broker_native_delayed_delivery_queue_type", c.BrokerNativeDelayedDeliveryQueueType},
	} {
		switch f.v {
		case "", "classic", "quorum":
		default:
			return fmt.Errorf("%s: unknown queue type %q (classic or quorum)", f.name, f.v)
		}
	}
	switch c.TaskCreateMissingQueueExchangeType {
	case "", "direct", "topic", "fanout", "headers":
	default:
		return fmt.Errorf("task_create_missing_queue_exchange_type: unknown exchange type %q", c.TaskCreateMissingQueueExchangeType)
	}
	switch c.BrokerFailoverStrategy {
	case "", "round-robin", "shuffle":
	default:
		return fmt.Errorf("broker_failover_strategy: unknown strategy %q (round-robin or shuffle)", c.BrokerFailoverStrategy)
	}
	if c.TaskQueueMaxPriority != nil && (c.TaskDefaultQueueType == "quorum" || c.TaskCreateMissingQueueType == "quorum") {
		return errors.New("task_queue_max_priority: quorum queues have no priorities (x-max-priority); leave it unset with task_default_queue_type or task_create_missing_queue_type quorum")
	}
	return nil
}

// QuorumQueues reports whether any queue of the configuration is a quorum queue, as Celery 5.5's
// detect_quorum_queues: a task_queues entry with x-queue-type quorum, or the default queue when
// task_default_queue_type is quorum and task_queues is empty. It is false when
// worker_detect_quorum_queues is off.
func (c Config) QuorumQueues() bool {
	if c.WorkerDetectQuorumQueues != nil && !*c.WorkerDetectQuorumQueues {
		return false
	}
	if len(c.TaskQueues) == 0 {
		return c.TaskDefaultQueueType == "quorum"
	}
	for _, q := range c.TaskQueues {
		if broker.IsQuorum(q) {
			return true
		}
	}
	return false
}

// ResultTTL is result_expires as a duration (0 = results never expire).
func (c Config) ResultTTL() time.Duration { return seconds(c.ResultExpires, DefaultResultExpires) }

// Prefetch is the channel prefetch count: concurrency × worker_prefetch_multiplier, 0 meaning unlimited
// (as Celery: multiplier 0, or a product above 65535).
func (c Config) Prefetch() int {
	m := DefaultPrefetchMultiplier
	if c.WorkerPrefetchMultiplier != nil {
		m = *c.WorkerPrefetchMultiplier
	}
	n := c.WorkerConcurrency * m
	if n > 65535 {
		return 0
	}
	return n
}

// QueueByName returns the declaration of a queue as Celery would make it: from task_queues when listed
// there, else the default queue's (exchange task_default_exchange), else a missing queue X becomes
// exchange X (direct) with routing key X. The worker declares its -Q queues and the [Router] the
// queues it publishes to with it.
func (c Config) QueueByName(name string) (QueueConfig, bool) {
	return c.queues().Lookup(name)
}

// DefaultQueues is what a worker consumes when no -Q is given: every task_queues entry, or the default queue.
func (c Config) DefaultQueues() []string {
	if len(c.TaskQueues) == 0 {
		return []string{c.TaskDefaultQueue}
	}
	names := make([]string, len(c.TaskQueues))
	for i, q := range c.TaskQueues {
		names[i] = q.Name
	}
	return names
}
