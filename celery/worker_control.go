package celery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/forumads/forumads/celery/control"
	"github.com/forumads/forumads/celery/events"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/celery/revoke"
)

// RegisterControl registers on mb the remote-control commands of a Celery 5.2 worker, so that
// `celery inspect` and `celery control` (and Flower) work with this worker:
//
//	inspect: ping stats active reserved scheduled registered revoked query_task conf
//	         active_queues clock report hello (mingle), and the dump_* aliases
//	control: revoke terminate rate_limit time_limit add_consumer cancel_consumer pool_grow
//	         pool_shrink enable_events disable_events heartbeat shutdown
//
// pool_restart and autoscale answer as a Python worker without them does. Replies have Celery's
// shapes and texts. mb must answer for the worker's node name.
func (w *Worker) RegisterControl(mb *control.Mailbox) {
	c := &controller{w: w, mb: mb}
	handlers := map[string]control.Handler{
		"ping":            func(context.Context, json.RawMessage) (any, error) { return control.OK("pong"), nil },
		"stats":           c.stats,
		"active":          c.active,
		"reserved":        c.reserved,
		"scheduled":       c.scheduled,
		"registered":      c.registered,
		"revoked":         c.revoked,
		"query_task":      c.queryTask,
		"conf":            c.conf,
		"active_queues":   c.activeQueues,
		"clock":           c.clock,
		"report":          c.report,
		"hello":           c.hello,
		"revoke":          c.revoke,
		"terminate":       c.terminate,
		"rate_limit":      c.rateLimit,
		"time_limit":      c.timeLimit,
		"add_consumer":    c.addConsumer,
		"cancel_consumer": c.cancelConsumer,
		"pool_grow":       c.poolGrow,
		"pool_shrink":     c.poolShrink,
		"pool_restart":    refuse("Pool restarts not enabled"),
		"autoscale":       refuse("Autoscale not enabled"),
		"enable_events":   c.enableEvents,
		"disable_events":  c.disableEvents,
		"heartbeat":       c.heartbeat,
		"shutdown":        c.shutdown,
	}
	// Celery's aliases, for older clients.
	for alias, name := range map[string]string{"dump_conf": "conf", "dump_schedule": "scheduled",
		"dump_reserved": "reserved", "dump_active": "active", "dump_revoked": "revoked", "dump_tasks": "registered"} {
		handlers[alias] = handlers[name]
	}
	for name, h := range handlers {
		mb.Handle(name, h)
	}
}

// controller holds the command handlers of one worker's mailbox.
type controller struct {
	w  *Worker
	mb *control.Mailbox
}

// valueError is a refusal Python reports as ValueError.
type valueError struct{ msg string }

func (e *valueError) Error() string   { return e.msg }
func (e *valueError) ExcType() string { return "ValueError" }

func refuse(msg string) control.Handler {
	return func(context.Context, json.RawMessage) (any, error) { return nil, &valueError{msg} }
}

// stats answers `celery inspect stats` with the keys of a Python worker's.
func (c *controller) stats(context.Context, json.RawMessage) (any, error) {
	w := c.w
	total := map[string]int64{}
	w.totals.Range(func(k, v any) bool {
		total[k.(string)] = v.(interface{ Load() int64 }).Load()
		return true
	})
	soft, hard := seconds(w.cfg.TaskSoftTimeLimit, 0).Seconds(), seconds(w.cfg.TaskTimeLimit, 0).Seconds()
	uptime := int(time.Since(w.began).Round(time.Second).Seconds())
	return map[string]any{
		"total":  total,
		"pid":    w.pid,
		"clock":  strconv.FormatUint(c.mb.Clock().Value(), 10),
		"uptime": uptime,
		"pool": map[string]any{
			"implementation":           "go:goroutines",
			"max-concurrency":          w.Concurrency(),
			"processes":                []int{w.pid},
			"max-tasks-per-child":      "N/A",
			"put-guarded-by-semaphore": false,
			"timeouts":                 []float64{soft, hard},
			"running":                  w.activeCount(),
		},
		"broker":         brokerInfo(w.cfg.BrokerURL),
		"prefetch_count": int(w.curPrefetch.Load()),
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
	info := map[string]any{"transport": "amqp", "insist": false, "connect_timeout": 4,
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
func (w *Worker) requestInfo(j *job, safe bool) control.RequestInfo {
	m := j.msg
	info := control.RequestInfo{ID: m.ID, Name: m.Task, Type: m.Task, Hostname: w.hostname,
		Acknowledged: j.acked.Load(),
		DeliveryInfo: control.DeliveryInfo{Exchange: j.d.Exchange, RoutingKey: j.d.RoutingKey, Redelivered: j.d.Redelivered}}
	if m.Shadow != "" {
		info.Name = m.Shadow
	}
	if m.Priority != nil {
		p := int(*m.Priority)
		info.DeliveryInfo.Priority = &p
	}
	if safe {
		ti := taskInfo(m)
		info.Args, _ = json.Marshal(ti.ArgsRepr)
		info.Kwargs, _ = json.Marshal(ti.KwargsRepr)
	} else {
		info.Args, info.Kwargs = rawList(m.Args), rawObject(m.KwargsOrder, m.Kwargs)
	}
	if ns := j.startedAt.Load(); ns != 0 {
		ts := float64(ns) / 1e9
		pid := w.pid
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

// activeJobs are the running jobs, oldest first.
func (w *Worker) activeJobs() []*job {
	var out []*job
	w.active.Range(func(_, v any) bool {
		out = append(out, v.(*job))
		return true
	})
	sort.Slice(out, func(a, b int) bool { return out[a].startedAt.Load() < out[b].startedAt.Load() })
	return out
}

// reservedJobs are the jobs received and not started: waiting for their ETA (eta) or not.
func (w *Worker) reservedJobs(eta bool) []*job {
	var out []*job
	w.reserved.Range(func(k, _ any) bool {
		if j := k.(*job); j.eta.Load() == eta {
			out = append(out, j)
		}
		return true
	})
	sort.Slice(out, func(a, b int) bool { return out[a].received.Before(out[b].received) })
	return out
}

func (c *controller) active(_ context.Context, args json.RawMessage) (any, error) {
	a, err := control.DecodeActiveArgs(args)
	if err != nil {
		return nil, err
	}
	out := []control.RequestInfo{}
	for _, j := range c.w.activeJobs() {
		out = append(out, c.w.requestInfo(j, a.Safe))
	}
	return out, nil
}

func (c *controller) reserved(context.Context, json.RawMessage) (any, error) {
	out := []control.RequestInfo{}
	for _, j := range c.w.reservedJobs(false) {
		out = append(out, c.w.requestInfo(j, false))
	}
	return out, nil
}

// scheduled lists the tasks held until their ETA; priority is the timer priority Celery gives
// them (6).
func (c *controller) scheduled(context.Context, json.RawMessage) (any, error) {
	out := []control.ScheduledInfo{}
	for _, j := range c.w.reservedJobs(true) {
		s := control.ScheduledInfo{Priority: 6, Request: c.w.requestInfo(j, false)}
		if eta := j.msg.ETA; eta != nil {
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
	for _, name := range c.w.reg.Names() {
		var attrs []string
		for _, item := range items {
			if v, ok := c.w.taskAttr(name, item); ok {
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
func (w *Worker) taskAttr(task, attr string) (string, bool) {
	def, ok := w.reg.lookup(task)
	if !ok {
		return "", false
	}
	o := def.opts
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
		if v, ok := w.rates.Load(task); ok {
			return v.(string), true
		}
	case "time_limit", "soft_time_limit":
		if v, ok := w.limits.Load(task); ok {
			l := v.(timeLimits)
			if attr == "time_limit" {
				return dur(l.hard)
			}
			return dur(l.soft)
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
	ids, err := c.w.RevokedIDs(ctx)
	if err != nil {
		c.w.log.Warn("inspect revoked: the revoke store did not answer; listing the ids known in memory", "error", err)
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
	for _, j := range c.w.activeJobs() {
		if want[j.msg.ID] {
			out[j.msg.ID] = [2]any{"active", c.w.requestInfo(j, false)}
		}
	}
	for _, eta := range []bool{false, true} {
		for _, j := range c.w.reservedJobs(eta) {
			if _, done := out[j.msg.ID]; want[j.msg.ID] && !done {
				out[j.msg.ID] = [2]any{"reserved", c.w.requestInfo(j, false)}
			}
		}
	}
	return out, nil
}

func (c *controller) conf(_ context.Context, args json.RawMessage) (any, error) {
	withDefaults, err := decodeConfArgs(args)
	if err != nil {
		return nil, err
	}
	return ConfTable(c.w.cfg, withDefaults), nil
}

// hiddenSetting matches setting names whose values are secrets (Celery's HIDDEN_SETTINGS, without
// KEY, which would hide every routing key).
var hiddenSetting = regexp.MustCompile(`(?i)API|TOKEN|SECRET|PASS|SIGNATURE|DATABASE`)

// ConfTable is the reply to `celery inspect conf`: the settings by their Celery names, only
// those that differ from the defaults unless withDefaults. Passwords in URLs are replaced with
// "**" (as Celery's maskurl does) and settings named like secrets (password, token, secret...)
// with "********".
func ConfTable(cfg Config, withDefaults bool) map[string]any {
	defaults := reflect.ValueOf(Config{}.WithDefaults())
	v := reflect.ValueOf(cfg)
	t := v.Type()
	out := map[string]any{}
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		f := v.Field(i)
		if name == "-" {
			if t.Field(i).Name != "TaskRoutes" {
				continue
			}
			name = "task_routes"
		}
		if name == "" {
			continue
		}
		if !withDefaults && reflect.DeepEqual(f.Interface(), defaults.Field(i).Interface()) {
			continue
		}
		val := plain(f)
		switch {
		case strings.HasSuffix(name, "_url") || name == "result_backend":
			if s, ok := val.(string); ok {
				val = maskURL(s)
			}
		case hiddenSetting.MatchString(name) && val != nil:
			val = "********"
		}
		out[name] = val
	}
	return out
}

// plain turns a setting into JSON-ready values named by their yaml tags.
func plain(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return plain(v.Elem())
	case reflect.Struct:
		m := map[string]any{}
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			m[name] = plain(v.Field(i))
		}
		return m
	case reflect.Slice:
		if v.IsNil() {
			return nil
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = plain(v.Index(i))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		m := map[string]any{}
		it := v.MapRange()
		for it.Next() {
			m[fmt.Sprint(it.Key().Interface())] = plain(it.Value())
		}
		return m
	}
	return v.Interface()
}

// maskURL hides the passwords of a URL (or a ';'-separated list): amqp://guest:**@host//.
func maskURL(s string) string {
	parts := strings.Split(s, ";")
	for i, p := range parts {
		scheme, rest, ok := strings.Cut(p, "://")
		if !ok {
			continue
		}
		at := strings.LastIndex(rest, "@")
		if at < 0 {
			continue
		}
		if user, _, hasPass := strings.Cut(rest[:at], ":"); hasPass {
			parts[i] = scheme + "://" + user + ":**" + rest[at:]
		}
	}
	return strings.Join(parts, ";")
}

// activeQueues is kombu's Queue.as_dict(recurse=True) of every queue consumed.
func (c *controller) activeQueues(context.Context, json.RawMessage) (any, error) {
	out := []map[string]any{}
	for _, q := range c.w.Queues() {
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
	w := c.w
	sw := events.DefaultSoftware()
	results := "disabled://"
	if w.cfg.ResultBackend != "" {
		results = maskURL(w.cfg.ResultBackend)
	}
	text := fmt.Sprintf("\nsoftware -> %s:%s (Celery 5.2 protocol) %s\nplatform -> system:%s arch:%s/%s\n"+
		"loader -> celery.loaders.app.AppLoader (Go)\nsettings -> transport:amqp results:%s\n\nbroker_url: %s\n",
		sw.Ident, sw.Version, runtime.Version(), sw.System, runtime.GOOS, runtime.GOARCH, results, maskURL(w.cfg.BrokerURL))
	return control.OK(text), nil
}

// hello answers a Python worker's mingle: its revoked ids join the store, and the reply carries
// ours ({id: time}) and the clock. A node's own hello gets null, as in Celery.
func (c *controller) hello(ctx context.Context, args json.RawMessage) (any, error) {
	a, err := decodeHelloArgs(args)
	if err != nil {
		return nil, err
	}
	if a.FromNode == c.mb.Node() {
		return nil, nil
	}
	w := c.w
	w.log.Info("sync with "+a.FromNode, "revoked", len(a.Revoked))
	if len(a.Revoked) > 0 {
		exp := w.now().Add(w.revokeTTL())
		for _, id := range a.Revoked {
			w.revoked.add(id, exp)
		}
		if w.revokes != nil {
			if err := w.revokes.Revoke(ctx, a.Revoked, false, ""); err != nil {
				w.log.Warn("the revoked ids of "+a.FromNode+" are kept in memory only", "error", err)
			}
		}
	}
	ids, err := w.RevokedIDs(ctx)
	if err != nil {
		w.log.Warn("hello: the revoke store did not answer; sending the ids known in memory", "error", err)
	}
	// Celery's LimitedSet wants a float: the time the id was added, on the monotonic clock
	// (seconds since boot on Linux). Every id is sent as added now: it stays revoked there for
	// Celery's 3 hours from now.
	ts := json.RawMessage(strconv.FormatFloat(monotonicSeconds(), 'f', 6, 64))
	revoked := make(map[string]json.RawMessage, len(ids))
	for _, id := range ids {
		revoked[id] = ts
	}
	return map[string]any{"revoked": revoked, "clock": c.mb.Clock().Tick()}, nil
}

// monotonicSeconds approximates Python's time.monotonic() on Linux: the seconds since boot
// (/proc/uptime), or 0 where that cannot be read.
func monotonicSeconds() float64 {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	f, _, _ := strings.Cut(string(b), " ")
	v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
	if err != nil || v < 0 {
		return 0
	}
	return v
}

func (c *controller) revoke(ctx context.Context, args json.RawMessage) (any, error) {
	a, err := control.DecodeRevokeArgs(args)
	if err != nil {
		return nil, err
	}
	return c.doRevoke(ctx, a)
}

// terminate is revoke with terminate set: {"signal", "task_id"}.
func (c *controller) terminate(ctx context.Context, args json.RawMessage) (any, error) {
	a, err := control.DecodeRevokeArgs(args)
	if err != nil {
		return nil, err
	}
	a.Terminate = true
	return c.doRevoke(ctx, a)
}

func (c *controller) doRevoke(ctx context.Context, a control.RevokeArgs) (any, error) {
	if a.Terminate {
		if _, err := revoke.ParseSignal(a.Signal); err != nil {
			return nil, err
		}
	}
	terminated, err := c.w.Revoke(ctx, a.TaskIDs, a.Terminate, a.Signal)
	if err != nil {
		// The ids are revoked here; only the store failed.
		c.w.log.Warn("revoke: "+err.Error(), "task_ids", a.TaskIDs)
	}
	return control.RevokeReply(a, terminated), nil
}

func (c *controller) rateLimit(_ context.Context, args json.RawMessage) (any, error) {
	a, err := control.DecodeRateLimitArgs(args)
	if err != nil {
		return nil, err
	}
	if err := c.w.SetRateLimit(a.TaskName, a.RateLimit); err != nil {
		var nr *NotRegisteredError
		if errors.As(err, &nr) {
			c.w.log.Error("Rate limit attempt for unknown task " + a.TaskName)
			return control.Error(control.UnknownTask), nil
		}
		return control.Error("Invalid rate limit string: " + control.ErrorRepr(&valueError{err.Error()})), nil
	}
	if a.RateLimit == "" || a.RateLimit == "0" {
		c.w.log.Info("Rate limits disabled for tasks of type " + a.TaskName)
		return control.OK(control.RateLimitDisabled), nil
	}
	c.w.log.Info(fmt.Sprintf("New rate limit for tasks of type %s: %s.", a.TaskName, a.RateLimit))
	return control.OK(control.RateLimitSet), nil
}

func (c *controller) timeLimit(_ context.Context, args json.RawMessage) (any, error) {
	a, err := decodeTimeLimitArgs(args)
	if err != nil {
		return nil, err
	}
	if err := c.w.SetTimeLimit(a.TaskName, a.Soft, a.Hard); err != nil {
		var nr *NotRegisteredError
		if errors.As(err, &nr) {
			c.w.log.Error("Change time limit attempt for unknown task " + a.TaskName)
			return control.Error(control.UnknownTask), nil
		}
		return nil, err
	}
	return control.OK("time limits set successfully"), nil
}

func (c *controller) addConsumer(ctx context.Context, args json.RawMessage) (any, error) {
	a, err := decodeQueueArgs("add_consumer", args)
	if err != nil {
		return nil, err
	}
	var q QueueConfig
	if a.Exchange != "" {
		q = QueueConfig{Name: a.Queue, Exchange: a.Exchange, ExchangeType: a.ExchangeType, RoutingKey: a.RoutingKey}
		if q.ExchangeType == "" {
			q.ExchangeType = "direct"
		}
		if q.RoutingKey == "" {
			q.RoutingKey = a.Queue
		}
		q = c.w.cfg.withMaxPriority(q)
	} else {
		var ok bool
		if q, ok = c.w.cfg.QueueByName(a.Queue); !ok {
			return nil, fmt.Errorf("add_consumer: queue %q is not in task_queues and task_create_missing_queues is off", a.Queue)
		}
	}
	if err := c.w.AddConsumer(ctx, q); err != nil {
		return nil, err
	}
	return control.OK("add consumer " + a.Queue), nil
}

func (c *controller) cancelConsumer(ctx context.Context, args json.RawMessage) (any, error) {
	a, err := decodeQueueArgs("cancel_consumer", args)
	if err != nil {
		return nil, err
	}
	if _, err := c.w.CancelConsumer(ctx, a.Queue); err != nil {
		return nil, err
	}
	return control.OK("no longer consuming from " + a.Queue), nil
}

func (c *controller) poolGrow(_ context.Context, args json.RawMessage) (any, error) {
	n, err := decodePoolArgs("pool_grow", args)
	if err != nil {
		return nil, err
	}
	if err := c.w.Grow(n); err != nil {
		return nil, err
	}
	return control.OK("pool will grow"), nil
}

func (c *controller) poolShrink(_ context.Context, args json.RawMessage) (any, error) {
	n, err := decodePoolArgs("pool_shrink", args)
	if err != nil {
		return nil, err
	}
	if err := c.w.Shrink(n); err != nil {
		return nil, err
	}
	return control.OK("pool will shrink"), nil
}

func (c *controller) enableEvents(context.Context, json.RawMessage) (any, error) {
	if c.w.events == nil {
		return control.Error("events are not set up on this worker"), nil
	}
	if c.w.events.EnableTaskEvents() {
		c.w.log.Info("Events of group {task} enabled by remote.")
		return control.OK("task events enabled"), nil
	}
	return control.OK("task events already enabled"), nil
}

func (c *controller) disableEvents(context.Context, json.RawMessage) (any, error) {
	if c.w.events == nil {
		return control.OK("task events already disabled"), nil
	}
	if c.w.events.DisableTaskEvents() {
		c.w.log.Info("Events of group {task} disabled by remote.")
		return control.OK("task events disabled"), nil
	}
	return control.OK("task events already disabled"), nil
}

// heartbeat sends a worker-heartbeat now (freq 5, as Celery's command does); it replies null.
func (c *controller) heartbeat(context.Context, json.RawMessage) (any, error) {
	if c.w.events == nil {
		return nil, nil
	}
	active, processed := c.w.HeartbeatStatus()
	la, _ := events.ReadLoadAvg()
	c.w.events.Send(events.NewWorkerHeartbeat(events.WorkerState{Freq: 5 * time.Second, Active: active,
		Processed: processed, LoadAvg: la, Software: events.DefaultSoftware()}))
	return nil, nil
}

// shutdown starts a warm shutdown. Python raises before replying; this worker replies first.
func (c *controller) shutdown(_ context.Context, args json.RawMessage) (any, error) {
	msg, err := decodeShutdownArgs(args)
	if err != nil {
		return nil, err
	}
	c.w.log.Warn(msg)
	c.w.beginShutdown()
	return control.OK(msg), nil
}

// Mingle does what a Python worker does when it starts (mingle): it broadcasts hello with the
// revoked ids it knows, through cl, and waits a second for the other workers' answers; the ids
// they answer with are revoked here (and in the store), and their clocks move mb's. Workers
// that do not answer hello (without mingle) are skipped. It returns how many nodes answered.
func (w *Worker) Mingle(ctx context.Context, cl *control.Client, mb *control.Mailbox) (int, error) {
	w.log.Info("mingle: searching for neighbors")
	ids, err := w.RevokedIDs(ctx)
	if err != nil {
		w.log.Warn("mingle: the revoke store did not answer; sending the ids known in memory", "error", err)
	}
	ts := json.RawMessage(strconv.FormatFloat(monotonicSeconds(), 'f', 6, 64))
	ours := make(map[string]json.RawMessage, len(ids))
	for _, id := range ids {
		ours[id] = ts
	}
	replies, err := cl.Broadcast(ctx, "hello", map[string]any{"from_node": mb.Node(), "revoked": ours}, nil, time.Second)
	if err != nil {
		return 0, fmt.Errorf("mingle: %w", err)
	}
	synced := 0
	var learned []string
	for node, raw := range replies {
		if node == mb.Node() {
			continue
		}
		r, err := decodeHelloReply(raw)
		if err != nil {
			w.log.Debug("mingle: no sync with "+node, "error", err)
			continue
		}
		synced++
		if r.Clock > 0 {
			mb.Clock().Forward(r.Clock)
		} else {
			mb.Clock().Tick()
		}
		learned = append(learned, r.Revoked...)
	}
	if synced == 0 {
		w.log.Info("mingle: all alone")
		return 0, nil
	}
	w.log.Info(fmt.Sprintf("mingle: sync with %d nodes", synced), "revoked", len(learned))
	if len(learned) > 0 {
		exp := w.now().Add(w.revokeTTL())
		for _, id := range learned {
			w.revoked.add(id, exp)
		}
		if w.revokes != nil {
			if err := w.revokes.Revoke(ctx, learned, false, ""); err != nil {
				w.log.Warn("mingle: the revoked ids learned are kept in memory only", "error", err)
			}
		}
	}
	w.log.Info("mingle: sync complete")
	return synced, nil
}
