package clustertest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend/redisbackend"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/amqpbroker"
	"github.com/forumads/forumads/celery/control"
	"github.com/forumads/forumads/internal/testenv"
)

// node is one cluster node: its name for the script, AMQP URL and management API.
type node struct {
	name, amqp, mgmt string
}

// nodes are the three nodes of scripts/rabbitmq-cluster.sh, from the same settings and defaults
// as the script (RMQ_CLUSTER_NAME, RMQ_CLUSTER_PORT_BASE), so the test follows a cluster started
// on other ports. A bad value gives nonsense here and a clear refusal from the script.
var nodes = clusterNodes()

func clusterNodes() []node {
	name := cmp.Or(os.Getenv("RMQ_CLUSTER_NAME"), "rmq")
	base, _ := strconv.Atoi(cmp.Or(os.Getenv("RMQ_CLUSTER_PORT_BASE"), "5680"))
	var ns []node
	for n := 1; n <= 3; n++ {
		ns = append(ns, node{fmt.Sprintf("%s%d", name, n),
			fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d//", base+n), fmt.Sprintf("http://127.0.0.1:%d", 10000+base+n)})
	}
	return ns
}

// byName is the node called name.
func byName(t *testing.T, name string) node {
	t.Helper()
	for _, n := range nodes {
		if n.name == name {
			return n
		}
	}
	t.Fatalf("no cluster node %q", name)
	return node{}
}

// other is a node that is none of the named ones (a live node to ask while they are down).
func other(t *testing.T, not ...string) node {
	t.Helper()
	for _, n := range nodes {
		if !slices.Contains(not, n.name) {
			return n
		}
	}
	t.Fatalf("every node is one of %v", not)
	return node{}
}

// failover is the broker_url list of the nodes starting with first, then the others in order.
func failover(first int) string {
	var urls []string
	for i := range nodes {
		urls = append(urls, nodes[(first+i)%len(nodes)].amqp)
	}
	return strings.Join(urls, ";")
}

// runScript runs scripts/rabbitmq-cluster.sh with args and returns its output.
func runScript(args ...string) (string, error) {
	out, err := exec.Command(filepath.Join(testenv.RepoRoot(), "scripts", "rabbitmq-cluster.sh"), args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// script runs scripts/rabbitmq-cluster.sh with args, failing the test with its output on error.
func script(t *testing.T, args ...string) {
	t.Helper()
	out, err := runScript(args...)
	if err != nil {
		t.Fatalf("scripts/rabbitmq-cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("rabbitmq-cluster.sh %s:\n%s", strings.Join(args, " "), out)
}

// startCluster reuses a running cluster (`rabbitmq-cluster.sh running`), or starts the 3-node
// cluster and stops it when the test ends.
func startCluster(t *testing.T) {
	t.Helper()
	if out, err := runScript("running"); err == nil {
		t.Logf("reusing the running cluster: %s", out)
		return
	}
	t.Cleanup(func() {
		if out, err := runScript("stop"); err != nil {
			t.Errorf("stopping the cluster: %v\n%s", err, out)
		}
	})
	script(t, "stop") // a half-running cluster (a node left killed) cannot start
	script(t, "start")
}

// mgmt sends one request to the management API of n and returns the body; a status other than
// 2xx fails the test unless it is one of allow.
func mgmt(t *testing.T, n node, method, path string, allow ...int) []byte {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	req, err := http.NewRequest(method, n.mgmt+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("guest", "guest")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("management API of %s: %v", n.name, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 && !slices.Contains(allow, resp.StatusCode) {
		t.Fatalf("management API of %s: %s %s: %s: %s", n.name, method, path, resp.Status, data)
	}
	return data
}

// names lists the names of the queues or exchanges (kind) of vhost / through n.
func names(t *testing.T, n node, kind string) []string {
	t.Helper()
	var items []struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(mgmt(t, n, "GET", "/api/"+kind+"/%2F?columns=name"), &items); err != nil {
		t.Fatalf("management API of %s: %s: %v", n.name, kind, err)
	}
	var out []string
	for _, it := range items {
		if it.Name != "" && !strings.HasPrefix(it.Name, "amq.") {
			out = append(out, it.Name)
		}
	}
	return out
}

// leaveNothingBehind deletes, when the test ends, every queue and exchange that was not there
// when it started (the task queue, its dead-letter queue, the delayed-delivery levels the worker
// declares, the remote-control queues), so a reused cluster is left as it was found. Registered
// after startCluster and before the workers, it runs after the workers stopped and before the
// cluster is stopped.
func leaveNothingBehind(t *testing.T) {
	t.Helper()
	before := map[string][]string{}
	for _, kind := range []string{"queues", "exchanges"} {
		before[kind] = names(t, nodes[0], kind)
	}
	t.Cleanup(func() {
		for _, kind := range []string{"queues", "exchanges"} {
			for _, name := range names(t, nodes[0], kind) {
				if !slices.Contains(before[kind], name) {
					mgmt(t, nodes[0], "DELETE", "/api/"+kind+"/%2F/"+url.PathEscape(name), http.StatusNotFound)
				}
			}
		}
		if left := names(t, nodes[0], "queues"); len(left) != len(before["queues"]) {
			t.Errorf("queues left behind: %v, before the test %v", left, before["queues"])
		}
	})
}

// restartKilledNodes restarts, when the test ends, the nodes a failed test left killed, so that
// leaveNothingBehind can delete the quorum queues (slow with a member down) and the cluster can
// be reused.
func restartKilledNodes(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		if _, err := runScript("running"); err == nil {
			return
		}
		for _, n := range nodes {
			if out, err := runScript("restart", n.name); err == nil {
				t.Logf("restarted %s, left killed by the test: %s", n.name, out)
			}
		}
	})
}

// leader is the node leading quorum queue q, from the management API of a live node.
func leader(t *testing.T, live node, q string) string {
	t.Helper()
	data := mgmt(t, live, "GET", "/api/queues/%2F/"+url.PathEscape(q))
	var info struct {
		Leader string `json:"leader"`
		Type   string `json:"type"`
	}
	if err := json.Unmarshal(data, &info); err != nil || info.Type != "quorum" || info.Leader == "" {
		t.Fatalf("queue %s on %s: %v: %s", q, live.name, err, data)
	}
	return strings.TrimSuffix(info.Leader, "@localhost")
}

// connectedTo is the node every connection named one of conns is on, as the management API of
// live shows them; it waits until each name has exactly one connection and they share a node.
func connectedTo(t *testing.T, live node, conns []string) string {
	t.Helper()
	var on string
	testenv.Eventually(t, 30*time.Second, func() bool {
		var list []struct {
			Node  string `json:"node"`
			Props struct {
				Name string `json:"connection_name"`
			} `json:"client_properties"`
		}
		if err := json.Unmarshal(mgmt(t, live, "GET", "/api/connections"), &list); err != nil {
			t.Fatalf("connections on %s: %v", live.name, err)
		}
		found := map[string][]string{}
		for _, c := range list {
			if slices.Contains(conns, c.Props.Name) {
				found[c.Props.Name] = append(found[c.Props.Name], strings.TrimSuffix(c.Node, "@localhost"))
			}
		}
		on = ""
		for _, name := range conns {
			if len(found[name]) != 1 || (on != "" && found[name][0] != on) {
				return false
			}
			on = found[name][0]
		}
		return true
	}, "connections %v are not each on one node, the same", conns)
	return on
}

// pingAll asks the workers hosts for a pong through the Go remote-control client (what `celery
// inspect ping` sends) and fails the test unless every one of them answers.
func pingAll(t *testing.T, ctx context.Context, cc *control.Client, hosts []string) {
	t.Helper()
	replies, err := cc.Broadcast(ctx, "ping", nil, hosts, 10*time.Second, control.WithLimit(len(hosts)))
	if err != nil {
		t.Fatalf("inspect ping: %v", err)
	}
	for _, h := range hosts {
		var pong struct {
			OK string `json:"ok"`
		}
		if err := json.Unmarshal(replies[h], &pong); err != nil || pong.OK != "pong" {
			t.Errorf("inspect ping: %s answered %q (%v), want {\"ok\": \"pong\"}", h, replies[h], err)
		}
	}
	t.Logf("inspect ping: %d of %d workers answered pong", len(replies), len(hosts))
}

// TestQuorumQueueSurvivesNodeKills: 5,000 acks_late tasks on a quorum queue, two Go workers
// connected to the first node and a Go client to the last one, each with the three nodes as
// failover list. The client declares the queue, so its quorum leader is on the client's node,
// away from the workers. Each half of the tasks is drained across one kill -9 and restart:
// (a) the node the workers are connected to (not the leader), (b) the quorum leader, while the
// workers are on another, live node (the client fails over). The second part of each half is
// published during the failover. After each, every task of the half must end SUCCESS in Redis,
// the duplicate runs (acks lost with a node: at least once, never lost) and the stretches without
// progress after the kill (the failover's cost) are reported,
// and both workers must answer an inspect ping; at the end Celery 5.2's own `celery inspect
// ping` must reach them too. A running cluster is reused, and the queues the test made are
// deleted at the end.
func TestQuorumQueueSurvivesNodeKills(t *testing.T) {
	rc := testenv.Redis(t)
	startCluster(t)
	leaveNothingBehind(t)
	restartKilledNodes(t)
	const total = 5000
	queue := testenv.Name(t, "cluster.quorum")
	prefix := "clustertest:" + testenv.Suffix() + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		if keys, _ := rc.Keys(ctx, prefix+"*").Result(); len(keys) > 0 {
			for start := 0; start < len(keys); start += 1000 {
				rc.Del(ctx, keys[start:min(start+1000, len(keys))]...)
			}
		}
	})
	one := 2
	cfg := celery.Config{WorkerConcurrency: 8, WorkerPrefetchMultiplier: &one, TaskAcksLate: true,
		WorkerDeadLetterQueue: queue + ".dlq",
		TaskQueues: []celery.QueueConfig{{Name: queue, Exchange: queue, ExchangeType: "topic", RoutingKey: queue,
			QueueArguments: map[string]any{broker.ArgQueueType: broker.QueueTypeQuorum}}}}
	backend := redisbackend.New(rc, redisbackend.Options{Expires: time.Hour, KeyPrefix: prefix})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	var ran atomic.Int64
	logs := &lockedLog{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ccfg := cfg
	ccfg.BrokerURL = failover(2)
	cbr, err := amqpbroker.New(ccfg.BrokerURL, amqpbroker.Options{ConnectionName: "cluster-client", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer cbr.Close()
	if err := cbr.Declare(ctx, cfg.TaskQueues[0]); err != nil {
		t.Fatal(err)
	}
	client, err := celery.NewClient(celery.ClientOptions{Config: ccfg, Broker: cbr, Backend: backend})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := control.NewClient(cbr.Fanout(), control.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	var hosts []string
	for i := range 2 {
		h := fmt.Sprintf("cluster-w%d-%s@test", i, testenv.Suffix())
		hosts = append(hosts, h)
		startWorker(t, cfg, failover(0), h, backend, rc, prefix, &ran, log)
	}

	ids := make([]string, total)
	var sendErr atomic.Value
	var confirmed atomic.Int64
	send := func(from, to int) *sync.WaitGroup {
		var wg sync.WaitGroup
		const senders = 8
		for s := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := from + s; i < to; i += senders {
					r, err := client.SendRaw(ctx, "cluster.work", []json.RawMessage{json.RawMessage(fmt.Sprint(i))}, nil,
						celery.WithQueue(queue))
					if err != nil {
						sendErr.Store(err)
						return
					}
					ids[i] = r.ID
					confirmed.Add(1)
				}
			}()
		}
		return &wg
	}

	// diagnose is what a stalled run shows: how many tasks the client got confirmed, the task
	// queue as a live node sees it, and the end of the log.
	diagnose := func() string {
		var q string
		for _, n := range nodes {
			client := &http.Client{Timeout: 5 * time.Second}
			req, _ := http.NewRequest("GET", n.mgmt+"/api/queues/%2F/"+url.PathEscape(queue)+
				"?columns=leader,online,messages_ready,messages_unacknowledged,consumers", nil)
			req.SetBasicAuth("guest", "guest")
			if resp, err := client.Do(req); err == nil {
				data, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				q = fmt.Sprintf("%s sees %s", n.name, data)
				break
			}
		}
		return fmt.Sprintf("%d of %d tasks sent and confirmed; queue %s: %s\nthe client's channels as RabbitMQ sees them: %s\n%s\nlog:\n%s",
			confirmed.Load(), total, queue, q, clientChannels("cluster-client"), probePublish(queue), logs.tail(40))
	}

	// drainAcross publishes tasks from..to and kills victim with kill -9 once a third of them
	// ran, publishes the rest during the failover, restarts victim once the workers made progress
	// again, and checks that every task of the batch ended SUCCESS, and the pong of each worker.
	drainAcross := func(what string, from, to int, victim string) {
		t.Helper()
		runsBefore := ran.Load()
		mid := from + (to-from)*3/5
		sent := send(from, mid)
		waitRan(t, ctx, &ran, runsBefore+int64(to-from)/3, diagnose)
		progress := watchProgress(&ran)
		defer progress.stop() // when the test fails before the stop below
		script(t, "kill", victim)
		more := send(mid, to)
		waitRan(t, ctx, &ran, ran.Load()+200, diagnose) // progress again after the kill
		t.Logf("%s: longest stretch without a task finishing, from the kill until 200 more ran: %v (the failover's cost)",
			what, progress.stop())
		live := other(t, victim)
		t.Logf("%s: after the kill the workers are on %s, the quorum leader is %s", what,
			connectedTo(t, live, hosts), leader(t, live, queue))
		script(t, "restart", victim)
		sent.Wait()
		more.Wait()
		if err, _ := sendErr.Load().(error); err != nil {
			t.Fatalf("%s: sending: %v", what, err)
		}
		dups := 0
		for i := from; i < to; i++ {
			meta, err := backend.Wait(ctx, ids[i])
			if err != nil || meta.Status != "SUCCESS" || string(meta.Result) != fmt.Sprint(i) {
				t.Fatalf("%s: task %d (%s): %s %s, %v\n%s", what, i, ids[i], meta.Status, meta.Result, err, logs.tail(40))
			}
			if n, _ := rc.Get(ctx, prefix+"runs:"+ids[i]).Int(); n > 1 {
				dups += n - 1
			}
		}
		t.Logf("%s: tasks %d..%d all SUCCESS; %d duplicate runs (acknowledgements lost with the killed node)",
			what, from, to-1, dups)
		pingAll(t, ctx, cc, hosts)
	}

	// (a) The node the workers are on, which is not the leader.
	workersOn, lead := connectedTo(t, nodes[0], hosts), leader(t, nodes[0], queue)
	t.Logf("workers on %s, client on %s, quorum leader of %s: %s", workersOn, connectedTo(t, nodes[0], []string{"cluster-client"}), queue, lead)
	if workersOn == lead {
		t.Fatalf("the workers are on the quorum leader %s: the leader should be on the declaring client's node", lead)
	}
	drainAcross("(a) kill -9 of the workers' node "+workersOn, 0, total/2, workersOn)

	// (b) The quorum leader, while the workers are on another node that stays up.
	live := byName(t, workersOn) // back up; ask whichever node is sure to run
	workersOn, lead = connectedTo(t, live, hosts), leader(t, live, queue)
	t.Logf("workers on %s, quorum leader %s", workersOn, lead)
	if workersOn == lead {
		t.Fatalf("the workers moved to the quorum leader %s: cannot kill the leader alone", lead)
	}
	drainAcross("(b) kill -9 of the quorum leader "+lead, total/2, total, lead)
	if on := connectedTo(t, byName(t, workersOn), hosts); on != workersOn {
		t.Errorf("the workers moved from %s to %s when the leader died, want them to stay", workersOn, on)
	}

	t.Logf("%d tasks, all SUCCESS, %d runs in all", total, ran.Load())
	// Remote control moved with the workers: Celery 5.2's own `celery inspect ping` reaches both.
	out, err := exec.CommandContext(ctx, "/usr/bin/python3", "-m", "celery", "-b", byName(t, workersOn).amqp, "inspect", "ping",
		"-t", "10", "-d", strings.Join(hosts, ",")).CombinedOutput()
	if err != nil {
		t.Errorf("celery inspect ping after the failovers: %v\n%s", err, out)
	}
	for _, h := range hosts {
		if !strings.Contains(string(out), h+": OK") {
			t.Errorf("celery inspect ping: no pong from %s:\n%s", h, out)
		}
	}
	t.Logf("celery inspect ping:\n%s", strings.TrimSpace(string(out)))
	if n := strings.Count(logs.String(), "connected to broker again"); n == 0 {
		t.Errorf("no reconnect was logged:\n%s", logs.tail(40))
	}
}

// startWorker runs an in-process Go worker on brokerURL whose task cluster.work counts its runs
// per task id in Redis and returns its argument.
func startWorker(t *testing.T, cfg celery.Config, brokerURL, hostname string, backend *redisbackend.Backend,
	rc *redis.Client, prefix string, ran *atomic.Int64, log *slog.Logger) {
	t.Helper()
	cfg.BrokerURL = brokerURL
	br, err := amqpbroker.New(brokerURL, amqpbroker.Options{ConnectionName: hostname, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = br.Close() })
	reg := celery.NewRegistry()
	celery.Register(reg, "cluster.work", func(ctx context.Context, task *celery.Task[struct {
		N int `celery:"n"`
	}]) (int, error) {
		if err := rc.Incr(ctx, prefix+"runs:"+task.ID).Err(); err != nil {
			return 0, err
		}
		time.Sleep(5 * time.Millisecond)
		ran.Add(1)
		return task.Args.N, nil
	})
	w, err := celery.NewWorker(celery.WorkerOptions{Config: cfg, Registry: reg, Broker: br, Backend: backend, Hostname: hostname, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	cbr, err := amqpbroker.New(brokerURL, amqpbroker.Options{ConnectionName: "celery-control", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cbr.Close() })
	mb, err := control.NewMailbox(hostname, cbr.Fanout(), control.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	w.RegisterControl(mb)
	ctx, cancel := context.WithCancel(context.Background())
	mbDone := make(chan error, 1)
	go func() { mbDone <- mb.Run(ctx) }()
	select {
	case <-mb.Ready():
	case err := <-mbDone:
		cancel()
		t.Fatalf("mailbox: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("mailbox not ready within 30s")
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-mbDone; err != nil {
			t.Errorf("mailbox %s: %v", hostname, err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("worker %s: %v", hostname, err)
			}
		case <-time.After(time.Minute):
			t.Errorf("worker %s did not stop", hostname)
		}
	})
}

// clientChannels is what the management API of the first live node shows of the channels of the
// connection named conn: its node, confirm mode, and the publishes and confirms RabbitMQ counted.
func clientChannels(conn string) string {
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(n node, path string, v any) error {
		req, _ := http.NewRequest("GET", n.mgmt+path, nil)
		req.SetBasicAuth("guest", "guest")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(v)
	}
	for _, n := range nodes {
		var chans []struct {
			Node        string `json:"node"`
			Confirm     bool   `json:"confirm"`
			Unconfirmed int    `json:"messages_unconfirmed"`
			Stats       struct {
				Publish int `json:"publish"`
				Confirm int `json:"confirm"`
			} `json:"message_stats"`
			Conn struct {
				Name string `json:"name"`
			} `json:"connection_details"`
		}
		if err := get(n, "/api/channels", &chans); err != nil {
			continue
		}
		var conns []struct {
			Name  string `json:"name"`
			Props struct {
				Name string `json:"connection_name"`
			} `json:"client_properties"`
		}
		if err := get(n, "/api/connections", &conns); err != nil {
			continue
		}
		var out []string
		for _, c := range conns {
			if c.Props.Name != conn {
				continue
			}
			for _, ch := range chans {
				if ch.Conn.Name == c.Name {
					out = append(out, fmt.Sprintf("[%s confirm=%v published=%d confirmed=%d unconfirmed=%d]",
						ch.Node, ch.Confirm, ch.Stats.Publish, ch.Stats.Confirm, ch.Unconfirmed))
				}
			}
		}
		return strings.Join(out, " ")
	}
	return "no live node answered"
}

// probePublish publishes one message (not a task: the workers dead-letter it) to queue's exchange
// through a fresh connection to each node, with publisher confirms, and says what each node
// answered: when the client's publishes stall, this tells a broker that refuses the queue from a
// client stuck on an old channel.
func probePublish(queue string) string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.name+": "+probeOne(n, queue))
	}
	return "fresh-connection publish probe: " + strings.Join(out, "; ")
}

func probeOne(n node, queue string) string {
	conn, err := amqp.DialConfig(n.amqp, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return "down"
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err.Error()
	}
	if err := ch.Confirm(false); err != nil {
		return err.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, queue, queue, false, false, amqp.Publishing{Body: []byte("probe")})
	if err != nil {
		return err.Error()
	}
	ok, err := conf.WaitContext(ctx)
	switch {
	case err != nil:
		return "no confirm within 10s"
	case ok:
		return "confirmed"
	default:
		return "nacked"
	}
}

// stallLimit is how long waitRan waits without a single task run finishing before it gives up:
// a guard against a hang (a publish whose confirm never comes), not a measure of speed.
const stallLimit = 90 * time.Second

// waitRan waits until at least n task runs finished; when none finishes for stallLimit, it fails
// with what stalled, from diagnose.
func waitRan(t *testing.T, ctx context.Context, ran *atomic.Int64, n int64, diagnose func() string) {
	t.Helper()
	last, since := ran.Load(), time.Now()
	for ran.Load() < n {
		select {
		case <-ctx.Done():
			t.Fatalf("only %d task runs of %d before the deadline\n%s", ran.Load(), n, diagnose())
		case <-time.After(20 * time.Millisecond):
		}
		if now := ran.Load(); now != last {
			last, since = now, time.Now()
		} else if time.Since(since) > stallLimit {
			t.Fatalf("no task run finished for %v, %d of %d\n%s", stallLimit, now, n, diagnose())
		}
	}
}

// progressWatch records the longest stretch without a finished task run, from its start (20 ms
// resolution).
type progressWatch struct {
	done    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	longest time.Duration
	wg      sync.WaitGroup
}

func watchProgress(ran *atomic.Int64) *progressWatch {
	p := &progressWatch{done: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		last, since := ran.Load(), time.Now()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-tick.C:
			}
			if n := ran.Load(); n != last {
				p.mu.Lock()
				p.longest = max(p.longest, time.Since(since).Round(10*time.Millisecond))
				p.mu.Unlock()
				last, since = n, time.Now()
			}
		}
	}()
	return p
}

func (p *progressWatch) stop() time.Duration {
	p.once.Do(func() { close(p.done) })
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.longest
}

// lockedLog collects the workers' and client's logs.
type lockedLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if os.Getenv("CLUSTERTEST_VERBOSE") != "" {
		_, _ = os.Stderr.Write(p)
	}
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *lockedLog) tail(n int) string {
	lines := strings.Split(strings.TrimSpace(l.String()), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}
