package redisbroker

import (
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
	"time"
)

// kombu 5.2's defaults (kombu/transport/redis.py, Channel).
const (
	// DefaultVisibilityTimeout is kombu's visibility_timeout: an unacknowledged message whose
	// unacked_index entry is older than this is given back to its queue by any worker.
	DefaultVisibilityTimeout = time.Hour
	// DefaultSep is kombu's sep, between a queue and its priority and between the fields of a
	// binding.
	DefaultSep = "\x06\x16"
	// DefaultUnackedMutexExpire is kombu's unacked_mutex_expire.
	DefaultUnackedMutexExpire = 5 * time.Minute
	// DefaultFanoutPrefix is kombu's keyprefix_fanout, "{db}" standing for the database number.
	DefaultFanoutPrefix = "/{db}."
	// DefaultDeadLetterQueue is where entries that cannot be read are parked (the worker's
	// worker_dead_letter_queue default).
	DefaultDeadLetterQueue = "celery.deadletter"
	// DefaultEventExchange is Celery's event_exchange. Celery makes it a fanout exchange on Redis
	// (celery/events/event.py, get_exchange), whatever type it is declared with.
	DefaultEventExchange = "celeryev"
)

// DefaultPrioritySteps is kombu's PRIORITY_STEPS: priorities 0-2 go to the queue's own list, 3-5
// to "<queue><sep>3", 6-8 to "<queue><sep>6", 9 to "<queue><sep>9"; lists are read in this order,
// so on Redis a lower number is served first (Celery's documented inversion).
var DefaultPrioritySteps = []int{0, 3, 6, 9}

// Options configure a Broker and a Fanout; zero values mean kombu's defaults. Most come from
// Celery's broker_transport_options through [ParseTransportOptions].
type Options struct {
	Logger *slog.Logger
	// KeyPrefix is kombu's global_keyprefix, put before every key and channel name.
	KeyPrefix string
	// VisibilityTimeout is kombu's visibility_timeout (default one hour).
	VisibilityTimeout time.Duration
	// PrioritySteps is kombu's priority_steps (default 0, 3, 6, 9); sorted, within 0..9.
	PrioritySteps []int
	// Sep is kombu's sep (default "\x06\x16").
	Sep string
	// UnackedKey, UnackedIndexKey and UnackedMutexKey are kombu's unacked_key ("unacked"),
	// unacked_index_key ("unacked_index") and unacked_mutex_key ("unacked_mutex").
	UnackedKey, UnackedIndexKey, UnackedMutexKey string
	// UnackedMutexExpire is kombu's unacked_mutex_expire (default 5 minutes).
	UnackedMutexExpire time.Duration
	// UnackedRestoreLimit is kombu's unacked_restore_limit: at most this many messages are
	// restored per pass (0: all that are due).
	UnackedRestoreLimit int
	// FanoutPrefix is kombu's fanout_prefix as the prefix itself: nil means "/{db}." (kombu's
	// True), a pointer to "" no prefix (kombu's False, Kombu 3.x).
	FanoutPrefix *string
	// FanoutPatterns is kombu's fanout_patterns (nil: true): the routing key is part of the
	// channel name ("<prefix><exchange>/<routing key>") and bindings subscribe to patterns.
	FanoutPatterns *bool
	// DB is the database number in the fanout prefix; New reads it from a *redis.Client itself.
	DB int
	// DeadLetterQueue is the list where entries that are not kombu envelopes, or cannot be
	// decoded, are parked, wrapped in an envelope saying why (default "celery.deadletter").
	DeadLetterQueue string
	// EventExchange is the exchange that is fanout on Redis whatever its declared type
	// (default "celeryev", Celery's event_exchange).
	EventExchange string
	// PollInterval is the longest an idle consumer waits before looking at its lists again
	// (default 50 ms; it starts at 1 ms after a message and doubles).
	PollInterval time.Duration
	// RestoreInterval is how often a consuming Broker gives back messages whose visibility timeout
	// has passed (default 1 s, at most VisibilityTimeout/4), where kombu does it 10 s after start
	// and then every ~100 s.
	RestoreInterval time.Duration
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.VisibilityTimeout <= 0 {
		o.VisibilityTimeout = DefaultVisibilityTimeout
	}
	if len(o.PrioritySteps) == 0 {
		o.PrioritySteps = DefaultPrioritySteps
	}
	o.PrioritySteps = slices.Clone(o.PrioritySteps)
	sort.Ints(o.PrioritySteps)
	if o.Sep == "" {
		o.Sep = DefaultSep
	}
	if o.UnackedKey == "" {
		o.UnackedKey = "unacked"
	}
	if o.UnackedIndexKey == "" {
		o.UnackedIndexKey = "unacked_index"
	}
	if o.UnackedMutexKey == "" {
		o.UnackedMutexKey = "unacked_mutex"
	}
	if o.UnackedMutexExpire <= 0 {
		o.UnackedMutexExpire = DefaultUnackedMutexExpire
	}
	if o.DeadLetterQueue == "" {
		o.DeadLetterQueue = DefaultDeadLetterQueue
	}
	if o.EventExchange == "" {
		o.EventExchange = DefaultEventExchange
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 50 * time.Millisecond
	}
	if o.RestoreInterval <= 0 {
		o.RestoreInterval = time.Second
	}
	o.RestoreInterval = max(min(o.RestoreInterval, o.VisibilityTimeout/4), 10*time.Millisecond)
	return o
}

func (o Options) validate() error {
	if o.PrioritySteps[0] != 0 {
		return fmt.Errorf("redisbroker: priority_steps %v: the first step must be 0 (the queue's own list)", o.PrioritySteps)
	}
	for i, s := range o.PrioritySteps {
		if s < 0 || s > 9 || (i > 0 && s == o.PrioritySteps[i-1]) {
			return fmt.Errorf("redisbroker: priority_steps %v: steps must be distinct, within 0..9", o.PrioritySteps)
		}
	}
	return nil
}

// fanoutPrefix is the channel prefix with the database number filled in.
func (o Options) fanoutPrefix() string {
	p := DefaultFanoutPrefix
	if o.FanoutPrefix != nil {
		p = *o.FanoutPrefix
	}
	return replaceDB(p, o.DB)
}

func replaceDB(p string, db int) string {
	out := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		if i+4 <= len(p) && p[i:i+4] == "{db}" {
			out = fmt.Appendf(out, "%d", db)
			i += 3
			continue
		}
		out = append(out, p[i])
	}
	return string(out)
}

func (o Options) fanoutPatterns() bool { return o.FanoutPatterns == nil || *o.FanoutPatterns }

// connectionOptions are kombu Redis transport options that configure the connection, not the
// layout: ParseTransportOptions accepts them and leaves them to the caller (Sentinel's master_name
// and friends, socket settings).
var connectionOptions = []string{"master_name", "min_other_sentinels", "sentinel_kwargs", "socket_timeout",
	"socket_connect_timeout", "socket_keepalive", "socket_keepalive_options", "max_connections",
	"health_check_interval", "retry_on_timeout", "password", "username", "db"}

// ParseTransportOptions reads Celery's broker_transport_options with kombu 5.2's Redis option
// names: visibility_timeout, priority_steps, sep, fanout_prefix (true, false or the prefix),
// fanout_patterns, global_keyprefix, unacked_key, unacked_index_key, unacked_mutex_key,
// unacked_mutex_expire, unacked_restore_limit, deadletter_queue, and ack_emulation and
// queue_order_strategy at the values this adapter implements (true, round_robin). Connection
// options (master_name, socket_timeout, …) are accepted and not read here. A wrong type or value
// is an error naming the option; an option kombu does not know is returned in unknown.
func ParseTransportOptions(m map[string]any) (o Options, unknown []string, err error) {
	bad := func(k string, v any, want string) error {
		return fmt.Errorf("broker_transport_options: %s = %v (%T): want %s", k, v, v, want)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := m[k]
		switch k {
		case "visibility_timeout", "unacked_mutex_expire":
			f, ok := number(v)
			if !ok || f <= 0 || f > 1e9 {
				return o, nil, bad(k, v, "a positive number of seconds")
			}
			d := time.Duration(f * float64(time.Second))
			if k == "visibility_timeout" {
				o.VisibilityTimeout = d
			} else {
				o.UnackedMutexExpire = d
			}
		case "unacked_restore_limit":
			if v == nil {
				continue
			}
			f, ok := number(v)
			if !ok || f < 0 || f != math.Trunc(f) || f > math.MaxInt32 {
				return o, nil, bad(k, v, "a whole number (or null)")
			}
			o.UnackedRestoreLimit = int(f)
		case "priority_steps":
			list, ok := v.([]any)
			if !ok || len(list) == 0 {
				return o, nil, bad(k, v, "a list of priorities such as [0, 3, 6, 9]")
			}
			o.PrioritySteps = nil
			for _, e := range list {
				f, ok := number(e)
				if !ok || f != math.Trunc(f) {
					return o, nil, bad(k, v, "a list of whole numbers within 0..9")
				}
				o.PrioritySteps = append(o.PrioritySteps, int(f))
			}
		case "sep", "global_keyprefix", "unacked_key", "unacked_index_key", "unacked_mutex_key", "deadletter_queue":
			s, ok := v.(string)
			if !ok || (s == "" && k != "global_keyprefix") {
				return o, nil, bad(k, v, "a non-empty string")
			}
			switch k {
			case "sep":
				o.Sep = s
			case "global_keyprefix":
				o.KeyPrefix = s
			case "unacked_key":
				o.UnackedKey = s
			case "unacked_index_key":
				o.UnackedIndexKey = s
			case "unacked_mutex_key":
				o.UnackedMutexKey = s
			case "deadletter_queue":
				o.DeadLetterQueue = s
			}
		case "fanout_prefix":
			switch x := v.(type) {
			case bool:
				p := ""
				if x {
					p = DefaultFanoutPrefix
				}
				o.FanoutPrefix = &p
			case string:
				o.FanoutPrefix = &x
			default:
				return o, nil, bad(k, v, "true, false or a prefix such as \"/{db}.\"")
			}
		case "fanout_patterns":
			b, ok := v.(bool)
			if !ok {
				return o, nil, bad(k, v, "true or false")
			}
			o.FanoutPatterns = &b
		case "ack_emulation":
			if b, ok := v.(bool); !ok || !b {
				return o, nil, bad(k, v, "true (acknowledgements through the unacked hash are what make the Redis broker lose nothing)")
			}
		case "queue_order_strategy":
			if s, ok := v.(string); !ok || s != "round_robin" {
				return o, nil, bad(k, v, `"round_robin" (the only order this adapter implements)`)
			}
		case "body_encoding":
			if s, ok := v.(string); !ok || s != "base64" {
				return o, nil, bad(k, v, `"base64"`)
			}
		default:
			if !slices.Contains(connectionOptions, k) {
				unknown = append(unknown, k)
			}
		}
	}
	return o, unknown, nil
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float64:
		return x, !math.IsNaN(x) && !math.IsInf(x, 0)
	}
	return 0, false
}
