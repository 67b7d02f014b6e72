// This file holds the worker's inspect replies (stats, active, reserved, scheduled, registered,
// revoked, query_task, active_queues, clock, report) and the helpers that shape them as Celery does.

package workerctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/forumads/forumads/celery/control"
	"github.com/forumads/forumads/celery/events"
	"github.com/forumads/forumads/celery/internal/confrender"
	"github.com/forumads/forumads/celery/internal/engine"
	"github.com/forumads/forumads/celery/protocol"
)

// stats answers `celery inspect stats` with the keys of a Python worker's.
func (c *controller) stats(context.Context, json.RawMessage) (any, error) {
	w := c.e
	total := w.Totals()
	cfg, snap, pid := w.Settings(), w.Snapshot(), w.PID()
	soft, hard := cfg.SoftTimeLimit.Seconds(), cfg.TimeLimit.Seconds()
	uptime := int(time.Since(w.Began()).Round(time.Second).Seconds())
	return map[string]any{
		"total":  total,
		"pid":    pid,
		"clock":  strconv.FormatUint(c.mb.Clock().Value(), 10),
		"uptime": uptime,
		"pool": map[string]any{
			"implementation":           "go:goroutines",
			"max-concurrency":          w.Concurrency(),
			"processes":                []int{pid},
			"max-tasks-per-child":      "N/A",
			"put-guarded-by-semaphore": false,
			"timeouts":                 []float64{soft, hard},
			"running":                  snap.Active,
		},
		"broker":         brokerInfo(c.o.BrokerURL),
		"prefetch_count": snap.Prefetch,
		"rusage":         rusage(),
	}, nil
}

// brokerInfo is kombu's Connection.info() of a broker_url, without the password.
func brokerInfo(brokerURL string) map[string]any {
	var urls []*url.URL
	for _, raw := range strings.Split(brokerURL, ";") {
		if u, err := url.Parse(strings.TrimSpace(raw)); err == nil && u.Host != "" {
			urls = append(urls, u)
		}
	}
	info := map[string]any{"transport": transportName(brokerURL), "insist": false, "connect_timeout": 4,
		"transport_options": map[string]any{}, "login_method": "PLAIN", "uri_prefix": nil, "heartbeat": 10.0,
		"failover_strategy": "round-robin", "alternates": []string{}}
	if len(urls) == 0 {
		return info
	}
	u := urls[0]
	port := 5672
	if u.Scheme == "amqps" {
		port = 5671
	}
	if p, err := strconv.Atoi(u.Port()); err == nil {
		port = p
	}
	vhost := strings.TrimPrefix(u.Path, "/")
	if vhost == "" {
		vhost = "/"
	}
	user := "guest"
	if u.User != nil {
		user = u.User.Username()
	}
	alt := []string{}
	for _, a := range urls[1:] {
		alt = append(alt, a.Redacted())
	}
	info["hostname"], info["port"], info["userid"], info["virtual_host"] = u.Hostname(), port, user, vhost
	info["ssl"], info["alternates"] = u.Scheme == "amqps", alt
	return info
}

// transportName is kombu's transport name of a broker_url, as `celery inspect stats` and `report`
// show it: the first URL's scheme ("amqp" for amqp:// and amqps://, "pyamqp", "memory", ...).
func transportName(brokerURL string) string {
	first, _, _ := strings.Cut(strings.TrimSpace(brokerURL), ";")
	scheme, _, ok := strings.Cut(strings.TrimSpace(first), "://")
	switch scheme = strings.ToLower(scheme); {
	case !ok || scheme == "":
		return "amqp" // Celery's default transport
	case scheme == "amqps":
		return "amqp"
	}
	return scheme
}

// rusage is Python's resource.getrusage(RUSAGE_SELF) as Celery's stats reports it.
func rusage() any {
	var r syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &r); err != nil {
		return "N/A"
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return map[string]any{
		"utime": tv(r.Utime), "stime": tv(r.Stime), "maxrss": r.Maxrss, "ixrss": r.Ixrss, "idrss": r.Idrss,
		"isrss": r.Isrss, "minflt": r.Minflt, "majflt": r.Majflt, "nswap": r.Nswap, "inblock": r.Inblock,
		"oublock": r.Oublock, "msgsnd": r.Msgsnd, "msgrcv": r.Msgrcv, "nsignals": r.Nsignals,
		"nvcsw": r.Nvcsw, "nivcsw": r.Nivcsw,
	}
}

// requestInfo is Celery's Request.info() of a job.
func (c *controller) requestInfo(j engine.JobView, safe bool) control.RequestInfo {
	m := j.Msg
	info := control.RequestInfo{ID: m.ID, Name: m.Task, Type: m.Task, Hostname: c.e.Hostname(),
		Acknowledged: j.Acked,
		DeliveryInfo: control.DeliveryInfo{Exchange: j.Delivery.Exchange, RoutingKey: j.Delivery.RoutingKey, Redelivered: j.Delivery.Redelivered}}
	if m.Shadow != "" {
		info.Name = m.Shadow
	}
	if m.Priority != nil {
		p := int(*m.Priority)
		info.DeliveryInfo.Priority = &p
	}
	if safe {
		ti := engine.TaskInfo(m)
		info.Args, _ = json.Marshal(ti.ArgsRepr)
		info.Kwargs, _ = json.Marshal(ti.KwargsRepr)
	} else {
		info.Args, info.Kwargs = rawList(m.Args), rawObject(m.KwargsOrder, m.Kwargs)
	}
	if ns := j.StartedAt; ns != 0 {
		ts := float64(ns) / 1e9
		pid := c.e.PID()
		info.TimeStart, info.WorkerPID = &ts, &pid
	}
	return info
}

// rawList is the JSON list of raw values.
func rawList(items []json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			b.WriteString(", ")
		}
		b.Write(it)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// rawObject is the JSON object of raw values, in order (keys missing from it after, sorted).
func rawObject(order []string, kv map[string]json.RawMessage) json.RawMessage {
	keys := make([]string, 0, len(kv))
	seen := make(map[string]bool, len(kv))
	for _, k := range order {
		if _, ok := kv[k]; ok && !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	var rest []string
	for k := range kv {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	keys = append(keys, rest...)
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		kj, _ := json.Marshal(k)
		b.Write(kj)
		b.WriteString(": ")
		b.Write(kv[k])
	}
	b.WriteByte('}')
	return b.Bytes()
}

func (c *controller) active(_ context.Context, args json.RawMessage) (any, error) {
	a, err := control.DecodeActiveArgs(args)
	if err != nil {
		return nil, err
	}
	out := []control.RequestInfo{}
	for _, j := range c.e.ActiveJobs() {
		out = append(out, c.requestInfo(j, a.Safe))
	}
	return out, nil
}

func (c *controller) reserved(context.Context, json.RawMessage) (any, error) {
	out := []control.RequestInfo{}
	for _, j := range c.e.ReservedJobs(false) {
		out = append(out, c.requestInfo(j, false))
	}
	return out, nil
}

// scheduled lists the tasks held until their ETA; priority is the timer priority Celery gives
// them (6).
func (c *controller) scheduled(context.Context, json.RawMessage) (any, error) {
	out := []control.ScheduledInfo{}
	for _, j := range c.e.ReservedJobs(true) {
		s := control.ScheduledInfo{Priority: 6, Request: c.requestInfo(j, false)}
		if eta := j.Msg.ETA; eta != nil {
			t := protocol.FormatTime(*eta)
			s.ETA = &t
		}
		out = append(out, s)
	}
	return out, nil
}

// registered lists the task names with the attributes asked for that are set, as
// "name [rate_limit=10/m]".
func (c *controller) registered(_ context.Context, args json.RawMessage) (any, error) {
	a, err := decodeRegisteredArgs(args)
	if err != nil {
		return nil, err
	}
	items := a.TaskInfoItems
	if len(items) == 0 {
		items = []string{"exchange", "routing_key", "rate_limit"}
	}
	out := []string{}
	for _, name := range c.e.Tasks().Names() {
		var attrs []string
		for _, item := range items {
			if v, ok := taskAttr(c.e, name, item); ok {
				attrs = append(attrs, item+"="+v)
			}
		}
		if len(attrs) == 0 {
			out = append(out, name)
			continue
		}
		out = append(out, name+" ["+strings.Join(attrs, " ")+"]")
	}
	return out, nil
}

// taskAttr is str() of a Celery task attribute of a registered task, when it is set.
func taskAttr(w *engine.Engine, task, attr string) (string, bool) {
	def, ok := w.Tasks().Lookup(task)
	if !ok {
		return "", false
	}
	o := def.Options
	dur := func(d *time.Duration) (string, bool) {
		if d == nil {
			return "", false
		}
		return pyFloat(d.Seconds()), true
	}
	boolean := func(b *bool) (string, bool) {
		if b == nil {
			return "", false
		}
		if *b {
			return "True", true
		}
		return "False", true
	}
	switch attr {
	case "rate_limit":
		if v, ok := w.RateLimitOf(task); ok {
			return v, true
		}
	case "time_limit", "soft_time_limit":
		if hard, soft, ok := w.TimeLimitsOf(task); ok {
			if attr == "time_limit" {
				return dur(hard)
			}
			return dur(soft)
		}
		if attr == "time_limit" {
			return dur(o.TimeLimit)
		}
		return dur(o.SoftTimeLimit)
	case "acks_late":
		return boolean(o.AcksLate)
	case "ignore_result":
		return boolean(o.IgnoreResult)
	case "track_started":
		return boolean(o.TrackStarted)
	case "max_retries":
		if o.MaxRetries != nil {
			if *o.MaxRetries < 0 {
				return "None", true
			}
			return strconv.Itoa(*o.MaxRetries), true
		}
	case "default_retry_delay":
		return dur(o.DefaultRetryDelay)
	case "queue":
		if o.Queue != "" {
			return o.Queue, true
		}
	}
	return "", false
}

// pyFloat is Python's str() of a float: always with a decimal point or an exponent.
func pyFloat(f float64) string {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEn") {
		s += ".0"
	}
	return s
}

func (c *controller) revoked(ctx context.Context, _ json.RawMessage) (any, error) {
	ids, err := c.e.RevokedIDs(ctx)
	if err != nil {
		c.e.Logger().Warn("inspect revoked: the revoke store did not answer; listing the ids known in memory", "error", err)
	}
	if ids == nil {
		ids = []string{}
	}
	return ids, nil
}

// queryTask answers {id: [state, info]} for the tasks this worker holds: "active" running,
// "reserved" received and not started (ETA ones included).
func (c *controller) queryTask(_ context.Context, args json.RawMessage) (any, error) {
	ids, err := decodeQueryTaskArgs(args)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	out := map[string][2]any{}
	for _, j := range c.e.ActiveJobs() {
		if want[j.Msg.ID] {
			out[j.Msg.ID] = [2]any{"active", c.requestInfo(j, false)}
		}
	}
	for _, eta := range []bool{false, true} {
		for _, j := range c.e.ReservedJobs(eta) {
			if _, done := out[j.Msg.ID]; want[j.Msg.ID] && !done {
				out[j.Msg.ID] = [2]any{"reserved", c.requestInfo(j, false)}
			}
		}
	}
	return out, nil
}

// activeQueues is kombu's Queue.as_dict(recurse=True) of every queue consumed.
func (c *controller) activeQueues(context.Context, json.RawMessage) (any, error) {
	out := []map[string]any{}
	for _, q := range c.e.Queues() {
		var exchange any
		if q.Exchange != "" {
			typ := q.ExchangeType
			if typ == "" {
				typ = "direct"
			}
			exchange = map[string]any{"name": q.Exchange, "type": typ, "arguments": nil, "durable": true,
				"passive": false, "auto_delete": false, "delivery_mode": nil, "no_declare": false}
		} else {
			exchange = map[string]any{"name": "", "type": "direct", "arguments": nil, "durable": true,
				"passive": false, "auto_delete": false, "delivery_mode": nil, "no_declare": false}
		}
		var args any
		if len(q.QueueArguments) > 0 {
			args = q.QueueArguments
		}
		var maxPriority any
		if q.MaxPriority != nil {
			maxPriority = *q.MaxPriority
		} else if p, ok := q.QueueArguments["x-max-priority"]; ok {
			maxPriority = p
		}
		key := q.RoutingKey
		if key == "" && q.Exchange != "" {
			key = q.Name
		}
		out = append(out, map[string]any{
			"name": q.Name, "exchange": exchange, "routing_key": key, "queue_arguments": args,
			"binding_arguments": nil, "consumer_arguments": nil, "durable": true, "exclusive": false,
			"auto_delete": false, "no_ack": false, "alias": nil, "bindings": []any{}, "no_declare": nil,
			"expires": nil, "message_ttl": nil, "max_length": nil, "max_length_bytes": nil,
			"max_priority": maxPriority,
		})
	}
	return out, nil
}

func (c *controller) clock(context.Context, json.RawMessage) (any, error) {
	return map[string]any{"clock": c.mb.Clock().Value()}, nil
}

// report is the text of `celery report`, for this Go worker.
func (c *controller) report(context.Context, json.RawMessage) (any, error) {
	sw := events.DefaultSoftware()
	results := "disabled://"
	if c.o.ResultBackend != "" {
		results = confrender.MaskURL(c.o.ResultBackend)
	}
	text := fmt.Sprintf("\nsoftware -> %s:%s (Celery 5.2 protocol) %s\nplatform -> system:%s arch:%s/%s\n"+
		"loader -> celery.loaders.app.AppLoader (Go)\nsettings -> transport:%s results:%s\n\nbroker_url: %s\n",
		sw.Ident, sw.Version, runtime.Version(), sw.System, runtime.GOOS, runtime.GOARCH, transportName(c.o.BrokerURL), results, confrender.MaskURL(c.o.BrokerURL))
	return control.OK(text), nil
}
