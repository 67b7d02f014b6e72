// Command drainredis measures task throughput on the Redis broker, in one run: the Go worker (the
// real ./worker binary) and a real Python Celery 5.2 worker (prefork, -c 2, kombu's Redis
// transport) each drain the same N no-op diag.add messages from a Redis queue, with ignore_result
// and with results stored in Redis; then the Go worker drains the same N from RabbitMQ. It prints
// each rate and the ratios Go/Python (Redis) and Go on Redis / Go on RabbitMQ. bench/drain-redis.sh
// builds the programs and runs it.
//
// Usage:
//
//	drainredis -worker path/to/worker [-n 5000] [-pyn 0] [-amqp=true] [-python /usr/bin/python3] [-timeout 4m]
//
// -pyn sizes the Python worker's runs apart (0: -n); -amqp=false leaves the Go worker's RabbitMQ
// runs out.
//
// # What is measured
//
// Every run has a fresh queue, filled before its worker starts (publishing is not timed). The
// first message and the last store their result; in ignore_result mode the others carry
// ignore_result. The clock starts when the first message's result key exists and stops when the
// last one's does (ignore_result), or when every result key exists (redis_results): the rate is
// the N-1 tasks between them. The fill is timed apart and printed as the Go client's publish rate
// (one SendTask after the other, as a caller without batching publishes). Queues are FIFO and both workers start tasks in delivery order, so
// process start-up, imports and connecting are excluded on both sides alike. Afterwards the queue
// must be empty and every result SUCCESS. Redis keys and queues of the run are deleted at the end.
// REDIS_URL (default redis://127.0.0.1:6379/0) holds the results; the Redis broker is database 12
// of the same server; AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/) is RabbitMQ.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend/redisbackend"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/amqpbroker"
	"github.com/forumads/forumads/celery/broker/redisbroker"
)

const brokerDB = 12

type options struct {
	worker, python, pytasks string
	n, pyN                  int
	amqp                    bool // also the Go worker on RabbitMQ
	timeout                 time.Duration
	redisURL, amqpURL       string
}

func main() {
	var o options
	flag.StringVar(&o.worker, "worker", "", "the ./worker binary")
	flag.StringVar(&o.python, "python", "/usr/bin/python3", "Python with Celery 5.2")
	flag.StringVar(&o.pytasks, "pytasks", "bench", "directory holding the pytasks package")
	flag.IntVar(&o.n, "n", 5000, "tasks per run")
	flag.IntVar(&o.pyN, "pyn", 0, "tasks per Python worker run (0 = -n; Python's runs are the longest, and its rate is steady well below -n)")
	flag.BoolVar(&o.amqp, "amqp", true, "also drain with the Go worker from RabbitMQ (the Go on Redis / Go on RabbitMQ ratio)")
	flag.DurationVar(&o.timeout, "timeout", 4*time.Minute, "deadline of the whole run")
	flag.Parse()
	o.redisURL = envOr("REDIS_URL", "redis://127.0.0.1:6379/0")
	o.amqpURL = envOr("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
	if o.pyN == 0 {
		o.pyN = o.n
	}
	if o.worker == "" || o.n < 2 || o.pyN < 2 {
		fmt.Fprintln(os.Stderr, "usage: drainredis -worker path [-n N>=2] [-pyn N>=2] [-amqp=false]")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "drainredis:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, o options) error {
	results, err := redis.ParseURL(o.redisURL)
	if err != nil {
		return err
	}
	rc := redis.NewClient(results)
	defer rc.Close()
	u, _ := url.Parse(o.redisURL)
	u.Path = "/" + strconv.Itoa(brokerDB)
	brokerURL := u.String()
	bopts, _ := redis.ParseURL(brokerURL)
	brc := redis.NewClient(bopts)
	defer brc.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	rb, err := redisbroker.New(brc, redisbroker.Options{Logger: quiet})
	if err != nil {
		return err
	}
	defer rb.Close()
	ab, err := amqpbroker.New(o.amqpURL, amqpbroker.Options{Logger: quiet, ConnectionName: "bench-drainredis"})
	if err != nil {
		return err
	}
	defer ab.Close()

	type runSpec struct{ who, broker, mode string }
	rates := map[string]float64{}
	fmt.Printf("drainredis: N=%d (Python: %d); clock from the first task's result to the last (see bench/drainredis/main.go)\n", o.n, o.pyN)
	for _, r := range []runSpec{
		{"go", "redis", "ignore_result"}, {"python", "redis", "ignore_result"},
		{"go", "redis", "redis_results"}, {"python", "redis", "redis_results"},
		{"go", "amqp", "ignore_result"}, {"go", "amqp", "redis_results"},
	} {
		if r.broker == "amqp" && !o.amqp {
			continue
		}
		var br broker.Broker = rb
		url := brokerURL
		if r.broker == "amqp" {
			br, url = ab, o.amqpURL
		}
		rate, err := drain(ctx, o, rc, brc, br, url, r.who, r.broker, r.mode)
		if err != nil {
			return fmt.Errorf("%s on %s (%s): %w", r.who, r.broker, r.mode, err)
		}
		rates[r.who+"/"+r.broker+"/"+r.mode] = rate
		fmt.Printf("  %-6s on %-5s %-13s %9.0f tasks/s\n", r.who, r.broker, r.mode, rate)
	}
	fmt.Println("summary:")
	for _, mode := range []string{"ignore_result", "redis_results"} {
		line := fmt.Sprintf("  %-13s Go/Python on Redis: %5.1fx", mode, rates["go/redis/"+mode]/rates["python/redis/"+mode])
		if o.amqp {
			line += fmt.Sprintf("   Go on Redis / Go on RabbitMQ: %4.2fx", rates["go/redis/"+mode]/rates["go/amqp/"+mode])
		}
		fmt.Println(line)
	}
	return nil
}

// drain fills a fresh queue with n messages, starts the worker on it, and times it.
func drain(ctx context.Context, o options, rc, brc *redis.Client, br broker.Broker, brokerURL, who, kind, mode string) (float64, error) {
	n := o.n
	if who == "python" {
		n = o.pyN
	}
	queue := fmt.Sprintf("bench.drainredis.%s.%s.%d", who, kind, time.Now().UnixNano())
	client, err := celery.NewClient(celery.ClientOptions{Config: celery.Config{BrokerURL: brokerURL}, Broker: br})
	if err != nil {
		return 0, err
	}
	ids := make([]string, n)
	keys := make([]string, n)
	for i := range ids {
		ids[i] = celery.NewID()
		keys[i] = redisbackend.TaskKey("", ids[i])
	}
	defer rc.Del(context.Background(), keys...)
	defer cleanupQueue(br, brc, kind, queue)
	sendStart := time.Now()
	for i, id := range ids {
		opts := []celery.SendOption{celery.WithQueue(queue), celery.WithTaskID(id)}
		if mode == "ignore_result" && i != 0 && i != n-1 {
			opts = append(opts, celery.WithIgnoreResult())
		}
		if _, err := client.SendTask(ctx, "diag.add", []any{1, 2}, nil, opts...); err != nil {
			return 0, err
		}
	}
	fmt.Printf("  (filling: the Go client published %d on %s at %.0f/s, one SendTask at a time)\n",
		n, kind, float64(n)/time.Since(sendStart).Seconds())
	p, err := startWorker(o, who, brokerURL, queue)
	if err != nil {
		return 0, err
	}
	defer p.stop()
	start, err := waitKeys(ctx, rc, keys[:1])
	if err != nil {
		return 0, err
	}
	wait := keys
	if mode == "ignore_result" {
		wait = keys[n-1:]
	}
	end, err := waitKeys(ctx, rc, wait)
	if err != nil {
		return 0, err
	}
	p.stop()
	queueLen := func() (int64, error) { return brc.LLen(ctx, queue).Result() }
	if kind == "amqp" {
		queueLen = func() (int64, error) { return 0, nil } // a warm shutdown acknowledged everything it ran; checked by bench/drain.sh
	}
	if err := verify(ctx, rc, keys, queueLen); err != nil {
		return 0, err
	}
	return float64(n-1) / end.Sub(start).Seconds(), nil
}

// waitKeys polls every 2 ms until every key exists, and returns when it saw the last one.
func waitKeys(ctx context.Context, rc *redis.Client, keys []string) (time.Time, error) {
	left := keys
	for {
		n := min(len(left), 1000)
		vals, err := rc.MGet(ctx, left[:n]...).Result()
		if err != nil {
			return time.Time{}, err
		}
		done := 0
		for _, v := range vals {
			if v == nil {
				break
			}
			done++
		}
		left = left[done:]
		if len(left) == 0 {
			return time.Now(), nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%d results missing: %w", len(left), ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

type proc struct {
	cmd  *exec.Cmd
	once sync.Once
}

func startWorker(o options, who, brokerURL, queue string) (*proc, error) {
	var cmd *exec.Cmd
	env := append(os.Environ(), "CELERY_BROKER_URL="+brokerURL, "CELERY_RESULT_BACKEND="+o.redisURL)
	if who == "go" {
		cfg := filepath.Join(os.TempDir(), "drainredis-"+strconv.Itoa(os.Getpid())+".yaml")
		body := fmt.Sprintf("broker_url: %q\nresult_backend: %q\nworker_concurrency: 25\nworker_prefetch_multiplier: 4\n", brokerURL, o.redisURL)
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			return nil, err
		}
		cmd = exec.Command(o.worker, "--config", cfg, "-Q", queue, "-c", "25", "-l", "warning", "--without-mingle",
			"--without-heartbeat", "--metrics-addr=", "-n", "bench-"+strconv.Itoa(os.Getpid())+"@%h")
	} else {
		cmd = exec.Command(o.python, "-m", "celery", "-A", "pytasks", "worker", "-P", "prefork", "-c", "2", "-Q", queue,
			"-l", "warning", "--without-mingle", "--without-gossip", "--without-heartbeat", "-n", "bench-py-"+strconv.Itoa(os.Getpid())+"@%h")
		cmd.Dir = o.pytasks
		env = append(env, "PYTHONPATH="+o.pytasks)
	}
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard // banners and warnings; a failed run shows as missing results
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &proc{cmd: cmd}, nil
}

// stop sends SIGTERM to the worker's process group (a warm shutdown) and waits up to 30 s.
func (p *proc) stop() { p.once.Do(p.terminate) }

func (p *proc) terminate() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

func cleanupQueue(br broker.Broker, brc *redis.Client, kind, queue string) {
	ctx := context.Background()
	if kind == "redis" {
		keys := []string{queue, "_kombu.binding." + queue}
		for _, s := range redisbroker.DefaultPrioritySteps[1:] {
			keys = append(keys, queue+redisbroker.DefaultSep+strconv.Itoa(s))
		}
		_ = brc.Del(ctx, keys...).Err()
		return
	}
	conn, err := amqp.Dial(envOr("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
	if err != nil {
		return
	}
	defer conn.Close()
	if ch, err := conn.Channel(); err == nil {
		_, _ = ch.QueueDelete(queue, false, false, false)
		_ = ch.ExchangeDelete(queue, false, false)
		_ = ch.Close()
	}
}

// verify checks, untimed, that every stored result is a SUCCESS and the queue is empty.
func verify(ctx context.Context, rc *redis.Client, keys []string, queueLen func() (int64, error)) error {
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		vals, err := rc.MGet(ctx, keys[:n]...).Result()
		if err != nil {
			return err
		}
		for _, v := range vals {
			if s, _ := v.(string); v != nil && !strings.Contains(s, `"status": "SUCCESS"`) {
				return fmt.Errorf("a result is not SUCCESS: %.200s", s)
			}
		}
		keys = keys[n:]
	}
	left, err := queueLen()
	if err != nil {
		return err
	}
	if left != 0 {
		return errors.New("the queue is not empty after the run: " + strconv.FormatInt(left, 10))
	}
	return nil
}
