package workerops

import (
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/internal/wiring"
)

// Banner writes the worker program's start banner to out, as `celery worker` prints its own: the
// node name, the configuration file cfgPath, transport and results (passwords redacted),
// concurrency, task events, revokes and metrics of o, the queues w consumes and the tasks of reg.
func Banner(out io.Writer, w *celery.Worker, reg *celery.Registry, cfgPath string, o *Ops) error {
	cfg := w.Config()
	results := "disabled://"
	if cfg.ResultBackend != "" {
		results = wiring.Redacted(cfg.ResultBackend)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n -------------- %s (forumads Go worker, Celery 5.2 protocol)\n", w.Hostname())
	fmt.Fprintf(&b, "--- ***** ----- %s %s/%s %s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, "")
	fmt.Fprintf(&b, "[config]\n.> config:      %s\n.> transport:   %s\n.> results:     %s\n", cfgPath, wiring.Redacted(cfg.BrokerURL), results)
	fmt.Fprintf(&b, ".> concurrency: %d (goroutines), prefetch %d\n.> acks_late:   %v\n.> dead letters: %s\n",
		cfg.WorkerConcurrency, cfg.Prefetch(), cfg.TaskAcksLate, cfg.WorkerDeadLetterQueue)
	taskEvents := "OFF (enable -E to monitor tasks in this worker)"
	if o.events.TaskEventsEnabled() {
		taskEvents = "ON"
	}
	revokes := "memory only"
	if o.revokes != nil {
		revokes = o.revokes.String()
	}
	metricsAddr := "off"
	if o.opts.MetricsAddr != "" {
		metricsAddr = "http://" + o.opts.MetricsAddr + "/metrics"
	}
	fmt.Fprintf(&b, ".> task events: %s\n.> revokes:     %s\n.> metrics:     %s\n", taskEvents, revokes, metricsAddr)
	b.WriteString("\n[queues]\n")
	for _, q := range w.Queues() {
		typ := q.ExchangeType
		if typ == "" {
			typ = "direct"
		}
		fmt.Fprintf(&b, ".> %-16s exchange=%s(%s) key=%s\n", q.Name, q.Exchange, typ, q.RoutingKey)
	}
	b.WriteString("\n[tasks]\n")
	for _, n := range reg.Names() {
		fmt.Fprintf(&b, "  . %s\n", n)
	}
	b.WriteString("\n")
	_, err := io.WriteString(out, b.String())
	return err
}
