package workerctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// The decoders of the control commands' arguments that package control has no decoder for. Each
// takes the request's "arguments" (a JSON object; empty or null means {}), ignores members it does
// not know (Python's **kwargs), and returns an error naming the command and the member that is wrong.

// argsObject decodes a command's arguments object.
func argsObject(method string, args json.RawMessage) (map[string]json.RawMessage, error) {
	args = trimJSONSpace(args)
	if len(args) == 0 || string(args) == "null" {
		return map[string]json.RawMessage{}, nil
	}
	var m map[string]json.RawMessage
	if args[0] != '{' || json.Unmarshal(args, &m) != nil {
		return nil, fmt.Errorf("%s: arguments must be a JSON object, got %s", method, excerpt(args))
	}
	for k, v := range m {
		m[k] = trimJSONSpace(v)
	}
	return m, nil
}

// present returns m[key] unless it is absent or null.
func present(m map[string]json.RawMessage, key string) (json.RawMessage, bool) {
	v, ok := m[key]
	if !ok || len(v) == 0 || string(v) == "null" {
		return nil, false
	}
	return v, true
}

// argString reads an optional string member ("" when absent or null).
func argString(method string, m map[string]json.RawMessage, key string) (string, error) {
	raw, ok := present(m, key)
	if !ok {
		return "", nil
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", fmt.Errorf("%s: %s must be a string, got %s", method, key, excerpt(raw))
	}
	return s, nil
}

// argSeconds reads an optional number of seconds (nil when absent or null).
func argSeconds(method string, m map[string]json.RawMessage, key string) (*time.Duration, error) {
	raw, ok := present(m, key)
	if !ok {
		return nil, nil
	}
	var f float64
	if (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) || json.Unmarshal(raw, &f) != nil {
		return nil, fmt.Errorf("%s: %s must be a number of seconds, got %s", method, key, excerpt(raw))
	}
	if f < 0 || f > 1e9 || math.IsNaN(f) {
		return nil, fmt.Errorf("%s: %s must be from 0 to 1e9 seconds, got %s", method, key, excerpt(raw))
	}
	d := time.Duration(f * float64(time.Second))
	return &d, nil
}

// stringList reads a member that is one string or a list of strings (Celery's maybe_list); nil
// when absent or null. Empty strings are refused.
func stringList(method string, m map[string]json.RawMessage, key string) ([]string, error) {
	raw, ok := present(m, key)
	if !ok {
		return nil, nil
	}
	var out []string
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", method, key, err)
		}
		out = []string{s}
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, fmt.Errorf("%s: %s must be a list of strings, got %s", method, key, excerpt(raw))
		}
		for _, it := range items {
			var s string
			if len(it) == 0 || it[0] != '"' || json.Unmarshal(it, &s) != nil {
				return nil, fmt.Errorf("%s: %s must hold strings, got %s", method, key, excerpt(it))
			}
			out = append(out, s)
		}
	default:
		return nil, fmt.Errorf("%s: %s must be a string or a list of strings, got %s", method, key, excerpt(raw))
	}
	for _, s := range out {
		if s == "" {
			return nil, fmt.Errorf("%s: %s holds an empty string", method, key)
		}
	}
	return out, nil
}

// timeLimitArgs are the arguments of time_limit: {"task_name", "soft", "hard"} in seconds.
type timeLimitArgs struct {
	TaskName   string
	Soft, Hard *time.Duration // nil: the configured default
}

// decodeTimeLimitArgs decodes time_limit's arguments: task_name a non-empty string, soft and hard
// numbers of seconds (0 to 1e9) or null.
func decodeTimeLimitArgs(args json.RawMessage) (timeLimitArgs, error) {
	m, err := argsObject("time_limit", args)
	if err != nil {
		return timeLimitArgs{}, err
	}
	var a timeLimitArgs
	if a.TaskName, err = argString("time_limit", m, "task_name"); err != nil {
		return timeLimitArgs{}, err
	}
	if a.TaskName == "" {
		return timeLimitArgs{}, fmt.Errorf("time_limit: task_name is required")
	}
	if a.Soft, err = argSeconds("time_limit", m, "soft"); err != nil {
		return timeLimitArgs{}, err
	}
	if a.Hard, err = argSeconds("time_limit", m, "hard"); err != nil {
		return timeLimitArgs{}, err
	}
	return a, nil
}

// queueArgs are the arguments of add_consumer and cancel_consumer: {"queue", "exchange",
// "exchange_type", "routing_key"} (cancel_consumer sends the queue only).
type queueArgs struct {
	Queue, Exchange, ExchangeType, RoutingKey string
}

// decodeQueueArgs decodes add_consumer's or cancel_consumer's arguments (method names the
// command in errors): queue a non-empty string; exchange, exchange_type (direct, topic, fanout or
// headers) and routing_key strings or null.
func decodeQueueArgs(method string, args json.RawMessage) (queueArgs, error) {
	m, err := argsObject(method, args)
	if err != nil {
		return queueArgs{}, err
	}
	var a queueArgs
	for _, f := range []struct {
		key string
		dst *string
	}{{"queue", &a.Queue}, {"exchange", &a.Exchange}, {"exchange_type", &a.ExchangeType}, {"routing_key", &a.RoutingKey}} {
		if *f.dst, err = argString(method, m, f.key); err != nil {
			return queueArgs{}, err
		}
	}
	if a.Queue == "" {
		return queueArgs{}, fmt.Errorf("%s: queue is required", method)
	}
	if len(a.Queue) > 255 || len(a.Exchange) > 255 || len(a.RoutingKey) > 255 {
		return queueArgs{}, fmt.Errorf("%s: queue, exchange and routing_key are at most 255 bytes", method)
	}
	switch a.ExchangeType {
	case "", "direct", "topic", "fanout", "headers":
	default:
		return queueArgs{}, fmt.Errorf("%s: unknown exchange_type %q (direct, topic, fanout or headers)", method, a.ExchangeType)
	}
	return a, nil
}

// decodePoolArgs decodes pool_grow's or pool_shrink's arguments: {"n": count}, an integer from 1
// to 10000; absent or null means 1.
func decodePoolArgs(method string, args json.RawMessage) (int, error) {
	m, err := argsObject(method, args)
	if err != nil {
		return 0, err
	}
	raw, ok := present(m, "n")
	if !ok {
		return 1, nil
	}
	var n int
	if err := json.Unmarshal(raw, &n); err != nil || n < 1 || n > 10000 {
		return 0, fmt.Errorf("%s: n must be an integer from 1 to 10000, got %s", method, excerpt(raw))
	}
	return n, nil
}

// decodeQueryTaskArgs decodes query_task's arguments: {"ids": id or [ids]}.
func decodeQueryTaskArgs(args json.RawMessage) ([]string, error) {
	m, err := argsObject("query_task", args)
	if err != nil {
		return nil, err
	}
	return stringList("query_task", m, "ids")
}

// helloArgs are the arguments of hello, which a Python worker broadcasts when it starts (mingle):
// {"from_node": node, "revoked": {id: inserted, ...}} where inserted is a float or a [float, id] pair.
type helloArgs struct {
	FromNode string
	Revoked  []string // the ids, sorted
}

// decodeHelloArgs decodes hello's arguments: from_node a non-empty string, revoked null or an
// object whose values are numbers or lists starting with a number, as Celery's LimitedSet.update
// accepts them.
func decodeHelloArgs(args json.RawMessage) (helloArgs, error) {
	m, err := argsObject("hello", args)
	if err != nil {
		return helloArgs{}, err
	}
	var a helloArgs
	if a.FromNode, err = argString("hello", m, "from_node"); err != nil {
		return helloArgs{}, err
	}
	if a.FromNode == "" {
		return helloArgs{}, fmt.Errorf("hello: from_node is required")
	}
	raw, ok := present(m, "revoked")
	if !ok {
		return a, nil
	}
	var revoked map[string]json.RawMessage
	if raw[0] != '{' || json.Unmarshal(raw, &revoked) != nil {
		return helloArgs{}, fmt.Errorf("hello: revoked must be an object of task ids, got %s", excerpt(raw))
	}
	for id, v := range revoked {
		if id == "" {
			return helloArgs{}, fmt.Errorf("hello: revoked holds an empty task id")
		}
		v = trimJSONSpace(v)
		if len(v) > 0 && v[0] == '[' {
			var pair []json.RawMessage
			if json.Unmarshal(v, &pair) != nil || len(pair) == 0 {
				return helloArgs{}, fmt.Errorf("hello: revoked[%q] must be a time or a [time, id] pair, got %s", id, excerpt(v))
			}
			v = trimJSONSpace(pair[0])
		}
		var f float64
		if len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) || json.Unmarshal(v, &f) != nil {
			return helloArgs{}, fmt.Errorf("hello: revoked[%q] must be a time or a [time, id] pair, got %s", id, excerpt(v))
		}
		a.Revoked = append(a.Revoked, id)
	}
	sort.Strings(a.Revoked)
	return a, nil
}

// registeredArgs are the arguments of registered: {"taskinfoitems": [attr, ...], "builtins": bool}.
type registeredArgs struct {
	// TaskInfoItems are the task attributes to show; empty means exchange, routing_key and
	// rate_limit (Celery's default).
	TaskInfoItems []string
}

// decodeRegisteredArgs decodes registered's arguments.
func decodeRegisteredArgs(args json.RawMessage) (registeredArgs, error) {
	m, err := argsObject("registered", args)
	if err != nil {
		return registeredArgs{}, err
	}
	items, err := stringList("registered", m, "taskinfoitems")
	if err != nil {
		return registeredArgs{}, err
	}
	return registeredArgs{TaskInfoItems: items}, nil
}

// decodeConfArgs decodes conf's arguments: {"with_defaults": bool}, where a string is read as
// Celery's strtobool reads it (yes/no, true/false, on/off, 1/0).
func decodeConfArgs(args json.RawMessage) (withDefaults bool, err error) {
	m, err := argsObject("conf", args)
	if err != nil {
		return false, err
	}
	raw, ok := present(m, "with_defaults")
	if !ok {
		return false, nil
	}
	switch raw[0] {
	case 't', 'f':
		if err := json.Unmarshal(raw, &withDefaults); err != nil {
			return false, fmt.Errorf("conf: with_defaults must be a boolean, got %s", excerpt(raw))
		}
		return withDefaults, nil
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			switch strings.ToLower(s) {
			case "y", "yes", "t", "true", "on", "1":
				return true, nil
			case "n", "no", "f", "false", "off", "0":
				return false, nil
			}
		}
	}
	return false, fmt.Errorf("conf: with_defaults must be a boolean, got %s", excerpt(raw))
}

// decodeShutdownArgs decodes shutdown's arguments: {"msg": text}, default "Got shutdown from remote".
func decodeShutdownArgs(args json.RawMessage) (string, error) {
	m, err := argsObject("shutdown", args)
	if err != nil {
		return "", err
	}
	msg, err := argString("shutdown", m, "msg")
	if err != nil {
		return "", err
	}
	if msg == "" {
		msg = "Got shutdown from remote"
	}
	return msg, nil
}

// excerpt is raw for an error message, cut to 120 bytes.
func excerpt(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	if len(raw) > 120 {
		return fmt.Sprintf("%q...", raw[:120])
	}
	return fmt.Sprintf("%q", raw)
}

// helloReply is a node's answer to hello: {"revoked": {id: time, ...}, "clock": n}.
type helloReply struct {
	Revoked []string // sorted
	Clock   uint64
}

// decodeHelloReply decodes one node's reply to hello. null (a node's answer to its own hello)
// gives a zero reply; an {"error": ...} reply (a node without mingle) is an error; revoked follows
// the rules of decodeHelloArgs, and clock must be a non-negative integer when present.
func decodeHelloReply(raw json.RawMessage) (helloReply, error) {
	raw = trimJSONSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return helloReply{}, nil
	}
	m, err := argsObject("hello reply", raw)
	if err != nil {
		return helloReply{}, err
	}
	if e, ok := present(m, "error"); ok {
		return helloReply{}, fmt.Errorf("hello reply: the node answered an error: %s", excerpt(e))
	}
	var r helloReply
	if c, ok := present(m, "clock"); ok {
		if err := json.Unmarshal(c, &r.Clock); err != nil {
			return helloReply{}, fmt.Errorf("hello reply: clock must be a non-negative integer, got %s", excerpt(c))
		}
	}
	if rv, ok := present(m, "revoked"); ok {
		a, err := decodeHelloArgs(json.RawMessage(`{"from_node": "?", "revoked": ` + string(rv) + `}`))
		if err != nil {
			return helloReply{}, fmt.Errorf("hello reply: %w", err)
		}
		r.Revoked = a.Revoked
	}
	return r, nil
}

// trimJSONSpace trims JSON's whitespace (space, tab, CR, LF) and nothing else, as package control
// does: bytes.TrimSpace would also trim a form feed and let "{}\f" pass for a JSON object.
func trimJSONSpace(b []byte) []byte { return bytes.Trim(b, " \t\r\n") }
