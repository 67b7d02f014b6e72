package clustertest

import (
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
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

var nodes = []node{
	{"rmq1", "amqp://guest:guest@127.0.0.1:5681//", "http://127.0.0.1:15681"},
	{"rmq2", "amqp://guest:guest@127.0.0.1:5682//", "http://127.0.0.1:15682"},
	{"rmq3", "amqp://guest:guest@127.0.0.1:5683//", "http://127.0.0.1:15683"},
}

// failover is the broker_url list of the nodes starting with first, then the others in order.
func failover(first int) string {
	var urls []string
	for i := range nodes {
		urls = append(urls, nodes[(first+i)%len(nodes)].amqp)
	}
	return strings.Join(urls, ";")
}

// script runs scripts/rabbitmq-cluster.sh with args, failing the test with its output on error.
func script(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(testenv.RepoRoot(), "scripts", "rabbitmq-cluster.sh"), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/rabbitmq-cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("rabbitmq-cluster.sh %s:\n%s", strings.Join(args, " "), strings.TrimSpace(string(out)))
}

// startCluster starts the 3-node cluster and stops it when the test ends.
func startCluster(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		out, err := exec.Command(filepath.Join(testenv.RepoRoot(), "scripts", "rabbitmq-cluster.sh"), "stop").CombinedOutput()
		if err != nil {
			t.Errorf("stopping the cluster: %v\n%s", err, out)
		}
	})
	script(t, "start")
}

// leader is the node leading quorum queue q, from the management API of a live node.
func leader(t *testing.T, live node, q string) string {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	req, err := http.NewRequest("GET", live.mgmt+"/api/queues/%2F/"+url.PathEscape(q), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("guest", "guest")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("management API of %s: %v", live.name, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var info struct {
		Leader string `json:"leader"`
		Type   string `json:"type"`
	}
	if err := json.Unmarshal(data, &info); err != nil || info.Type != "quorum" || info.Leader == "" {
		t.Fatalf("queue %s on %s: %v: %s", q, live.name, err, data)
	}
	return strings.TrimSuffix(info.Leader, "@localhost")
}

// TestQuorumQueueSurvivesNodeKills: 5,000 acks_late tasks on a quorum queue, two Go workers
// connected to rmq1 and a Go client connected to rmq2, all with the three nodes as failover list.
// After 1,000 tasks ran, rmq1 (the workers' node) is killed with kill -9 while more tasks are
// published, and restarted; after 2,500, the queue's quorum leader is killed the same way while
// the last 2,000 are published, and restarted. Every
// task must end SUCCESS in Redis; how many ran more than once (acks lost with a node: at least
// once, never lost) is counted and reported, as are the longest stretches without progress.
func TestQuorumQueueSurvivesNodeKills(t *testing.T) {
	rc := testenv.Redis(t)
	startCluster(t)
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
		TaskQueues: []celery.QueueConfig{{Name: queue, Exchange: queue, ExchangeType: "topic", RoutingKey: queue,
			QueueArguments: map[string]any{broker.ArgQueueType: broker.QueueTypeQuorum}}}}
	backend := redisbackend.New(rc, redisbackend.Options{Expires: time.Hour, KeyPrefix: prefix})

	var ran atomic.Int64
	logs := &lockedLog{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var hosts []string
	for i := range 2 {
		h := fmt.Sprintf("cluster-w%d-%s@test", i, testenv.Suffix())
		hosts = append(hosts, h)
		startWorker(t, cfg, failover(0), h, backend, rc, prefix, &ran, log)
	}
	ccfg := cfg
	ccfg.BrokerURL = failover(1)
	cbr, err := amqpbroker.New(ccfg.BrokerURL, amqpbroker.Options{ConnectionName: "cluster-client", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer cbr.Close()
	client, err := celery.NewClient(celery.ClientOptions{Config: ccfg, Broker: cbr, Backend: backend})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	ids := make([]string, total)
	var sendErr atomic.Value
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
				}
			}()
		}
		return &wg
	}
	progress := watchProgress(&ran)
	defer progress.stop()

	// Tasks are published in three batches so that each kill happens while tasks flow: the
	// batch after a kill is published during the failover (the client fails over too).
	waitMore := func() { waitRan(t, ctx, &ran, min(ran.Load()+200, total)) } // progress again after a kill
	sent := send(0, 1500)
	waitRan(t, ctx, &ran, 1000)
	script(t, "kill", "rmq1")
	more := send(1500, 3000)
	waitMore()
	script(t, "restart", "rmq1")
	sent.Wait()
	more.Wait()
	waitRan(t, ctx, &ran, 2500)
	lead := leader(t, nodes[0], queue)
	t.Logf("quorum leader of %s: %s", queue, lead)
	script(t, "kill", lead)
	sent = send(3000, total)
	waitMore()
	live := nodes[0]
	if lead == "rmq1" {
		live = nodes[1]
	}
	t.Logf("quorum leader after the kill: %s", leader(t, live, queue))
	script(t, "restart", lead)
	sent.Wait()
	if err, _ := sendErr.Load().(error); err != nil {
		t.Fatalf("sending: %v", err)
	}

	for i, id := range ids {
		meta, err := backend.Wait(ctx, id)
		if err != nil || meta.Status != "SUCCESS" || string(meta.Result) != fmt.Sprint(i) {
			t.Fatalf("task %d (%s): %s %s, %v\n%s", i, id, meta.Status, meta.Result, err, logs.tail(40))
		}
	}
	dups := 0
	for _, id := range ids {
		if n, _ := rc.Get(ctx, prefix+"runs:"+id).Int(); n > 1 {
			dups += n - 1
		}
	}
	gaps := progress.stop()
	t.Logf("%d tasks, all SUCCESS; %d ran %d times in all: %d duplicate runs (acknowledgements lost with a killed node)",
		total, total, ran.Load(), dups)
	t.Logf("longest stretches without a task finishing: %v", gaps)
	// Remote control moved with the workers: Celery 5.2's own `celery inspect ping` reaches both.
	out, err := exec.CommandContext(ctx, "/usr/bin/python3", "-m", "celery", "-b", nodes[1].amqp, "inspect", "ping",
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

// waitRan waits until at least n task runs finished.
func waitRan(t *testing.T, ctx context.Context, ran *atomic.Int64, n int64) {
	t.Helper()
	for ran.Load() < n {
		select {
		case <-ctx.Done():
			t.Fatalf("only %d task runs of %d before the deadline", ran.Load(), n)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// progressWatch records the longest stretches without a finished task run.
type progressWatch struct {
	done chan struct{}
	once sync.Once
	mu   sync.Mutex
	gaps []time.Duration
	wg   sync.WaitGroup
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
				if gap := time.Since(since); gap > 500*time.Millisecond {
					p.mu.Lock()
					p.gaps = append(p.gaps, gap.Round(10*time.Millisecond))
					p.mu.Unlock()
				}
				last, since = n, time.Now()
			}
		}
	}()
	return p
}

func (p *progressWatch) stop() []time.Duration {
	p.once.Do(func() { close(p.done) })
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gaps
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
