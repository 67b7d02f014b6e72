package control

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Reply texts of Celery 5.2's rate_limit command.
const (
	// RateLimitSet is the ok text after a new rate limit was applied.
	RateLimitSet = "new rate limit set successfully"
	// RateLimitDisabled is the ok text after an empty rate limit turned limiting off.
	RateLimitDisabled = "rate limit disabled successfully"
	// UnknownTask is the error text for a task name the worker does not know.
	UnknownTask = "unknown task"
)

// RevokeArgs are the arguments of the revoke command (and of terminate, which is revoke with
// Terminate set): {"task_id": "id" | ["id", ...], "terminate": bool, "signal": "SIGTERM" | null}.
type RevokeArgs struct {
	// TaskIDs are the ids, without duplicates, in the order sent.
	TaskIDs []string
	// Terminate asks to stop the tasks if they are running.
	Terminate bool
	// Signal is the signal name sent with terminate ("" = Celery's default, SIGTERM).
	Signal string
}

// DecodeRevokeArgs decodes revoke's arguments. task_id may be one id or a list of ids (Celery's
// maybe_list); null or absent means none. terminate must be a boolean (or null) and signal a
// string (or null). Other members are ignored, as the Python command's **kwargs ignores them.
func DecodeRevokeArgs(args json.RawMessage) (RevokeArgs, error) {
	m, err := argsObject("revoke", args)
	if err != nil {
		return RevokeArgs{}, err
	}
	var a RevokeArgs
	if raw, ok := m["task_id"]; ok && !isNull(raw) {
		var ids []string
		switch raw[0] {
		case '"':
			var id string
			if err := json.Unmarshal(raw, &id); err != nil {
				return RevokeArgs{}, fmt.Errorf("control: revoke: task_id: %w", err)
			}
			ids = []string{id}
		case '[':
			var items []json.RawMessage
			if err := json.Unmarshal(raw, &items); err != nil {
				return RevokeArgs{}, fmt.Errorf("control: revoke: task_id: %w", err)
			}
			for _, it := range items {
				var id string
				if it[0] != '"' || json.Unmarshal(it, &id) != nil {
					return RevokeArgs{}, fmt.Errorf("control: revoke: task_id must hold strings, got %s", excerpt(it))
				}
				ids = append(ids, id)
			}
		default:
			return RevokeArgs{}, fmt.Errorf("control: revoke: task_id must be a string or a list of strings, got %s", excerpt(raw))
		}
		seen := make(map[string]bool, len(ids))
		for _, id := range ids {
			if id == "" {
				return RevokeArgs{}, fmt.Errorf("control: revoke: empty task id")
			}
			if !seen[id] {
				seen[id] = true
				a.TaskIDs = append(a.TaskIDs, id)
			}
		}
	}
	if raw, ok := m["terminate"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &a.Terminate); err != nil {
			return RevokeArgs{}, fmt.Errorf("control: revoke: terminate must be a boolean, got %s", excerpt(raw))
		}
	}
	if raw, ok := m["signal"]; ok && !isNull(raw) {
		if raw[0] != '"' || json.Unmarshal(raw, &a.Signal) != nil {
			return RevokeArgs{}, fmt.Errorf("control: revoke: signal must be a string, got %s", excerpt(raw))
		}
	}
	return a, nil
}

// RevokeReply is Celery 5.2's reply to revoke: {"ok": "tasks a, b flagged as revoked"}; with
// terminate, {"ok": "terminate: a, b"} naming the tasks that were running and were stopped, or
// {"ok": "terminate: tasks unknown"} when none was.
func RevokeReply(a RevokeArgs, terminated []string) map[string]any {
	if a.Terminate {
		if len(terminated) == 0 {
			return OK("terminate: tasks unknown")
		}
		return OK("terminate: " + strings.Join(terminated, ", "))
	}
	return OK("tasks " + strings.Join(a.TaskIDs, ", ") + " flagged as revoked")
}

// RateLimitArgs are the arguments of the rate_limit command: {"task_name": "proj.add",
// "rate_limit": "10/m"}.
type RateLimitArgs struct {
	TaskName string
	// RateLimit is the new limit ("10/s", "100/m", "5/h" or a number per second); "" disables it.
	RateLimit string
}

// DecodeRateLimitArgs decodes rate_limit's arguments. task_name must be a non-empty string;
// rate_limit a string, a number (the API may send 10) or null (no limit).
func DecodeRateLimitArgs(args json.RawMessage) (RateLimitArgs, error) {
	m, err := argsObject("rate_limit", args)
	if err != nil {
		return RateLimitArgs{}, err
	}
	var a RateLimitArgs
	raw, ok := m["task_name"]
	if !ok || len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &a.TaskName) != nil || a.TaskName == "" {
		return RateLimitArgs{}, fmt.Errorf("control: rate_limit: task_name must be a non-empty string, got %s", excerpt(raw))
	}
	raw, ok = m["rate_limit"]
	if !ok {
		return RateLimitArgs{}, fmt.Errorf("control: rate_limit: missing rate_limit")
	}
	switch {
	case isNull(raw):
	case raw[0] == '"':
		if err := json.Unmarshal(raw, &a.RateLimit); err != nil {
			return RateLimitArgs{}, fmt.Errorf("control: rate_limit: rate_limit: %w", err)
		}
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		a.RateLimit = string(raw)
	default:
		return RateLimitArgs{}, fmt.Errorf("control: rate_limit: rate_limit must be a string or a number, got %s", excerpt(raw))
	}
	return a, nil
}

// ActiveArgs are the arguments of active (and reserved): {"safe": bool}, where safe asks for
// the repr strings of args and kwargs instead of their JSON.
type ActiveArgs struct {
	Safe bool
}

// DecodeActiveArgs decodes active's arguments; safe must be a boolean or null when present.
func DecodeActiveArgs(args json.RawMessage) (ActiveArgs, error) {
	m, err := argsObject("active", args)
	if err != nil {
		return ActiveArgs{}, err
	}
	var a ActiveArgs
	if raw, ok := m["safe"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &a.Safe); err != nil {
			return ActiveArgs{}, fmt.Errorf("control: active: safe must be a boolean, got %s", excerpt(raw))
		}
	}
	return a, nil
}

// RegisteredEntry is one item of Celery's reply to registered: the task name, followed by the
// attributes that are set, as "name [rate_limit=10/m]".
func RegisteredEntry(name, rateLimit string) string {
	if rateLimit == "" {
		return name
	}
	return name + " [rate_limit=" + rateLimit + "]"
}

// argsObject decodes a command's arguments object; empty means {}.
func argsObject(method string, args json.RawMessage) (map[string]json.RawMessage, error) {
	args = trimJSONSpace(args)
	if len(args) == 0 || isNull(args) {
		return map[string]json.RawMessage{}, nil
	}
	var m map[string]json.RawMessage
	if args[0] != '{' || json.Unmarshal(args, &m) != nil {
		return nil, fmt.Errorf("control: %s: arguments must be a JSON object, got %s", method, excerpt(args))
	}
	for k, v := range m {
		m[k] = trimJSONSpace(v)
	}
	return m, nil
}

func isNull(raw []byte) bool { return string(raw) == "null" }

// trimJSONSpace trims JSON's whitespace (space, tab, CR, LF) and nothing else: bytes.TrimSpace also
// trims a form feed or a non-breaking space, which would let "{}\f" pass for a JSON object.
func trimJSONSpace(b []byte) []byte { return bytes.Trim(b, " \t\r\n") }
