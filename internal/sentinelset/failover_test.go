package sentinelset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend"
	"github.com/forumads/forumads/celery/beat"
	"github.com/forumads/forumads/celery/beat/redisbeat"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/redisbroker"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/testenv"
	"github.com/forumads/forumads/internal/wiring"
	"github.com/forumads/forumads/web/serving"
)

// kills is how many times TestFailover kills the master (SENTINEL_FAILOVER_KILLS; default 1, the
// CI run; bench/sentinel-failover.sh soaks with more).
func kills(t *testing.T) int {
	n := 1
	if v := os.Getenv("SENTINEL_FAILOVER_KILLS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("SENTINEL_FAILOVER_KILLS=%q: want a positive number", v)
		}
	}
	return n
}

type addArgs struct {
	X int `celery:"0"`
	Y int `celery:"1"`
}

// TestFailover kills the Redis master (SIGKILL) while a Go worker stores results through
// Sentinel, the serving API is under load and two beats run on the Sentinel store; afterwards
// every task is done and stored with its result, no beat slot was sent twice and beat kept
// sending after the switch, and the serving API never answered 5xx (degraded answers are allowed
// while the master is gone). It logs the measured disruption: kill to the Sentinels naming a new
// master, the longest run of failing result-backend writes, the window of degraded ad answers
// and the longest time the client's sends were held up. It runs twice: with the tasks and beat's
// messages on RabbitMQ (amqp), and on the Redis broker through the same Sentinels (redis:
// broker_url sentinel://…, database 6), where the killed master also held the queues. A task not
// stored is reported with what the backend holds for it and, on the Redis broker, where its
// message is. SENTINEL_FAILOVER_LOG=1 sends the worker's and the brokers' logs (Warn and above) to
// stderr also without -v.
func TestFailover(t *testing.T) {
	for _, fb := range []failoverBroker{amqpFailover(), redisFailover()} {
		t.Run(fb.name, func(t *testing.T) { testFailover(t, fb) })
	}
}

// failoverBroker is the broker TestFailover's tasks and beat's messages travel on.
type failoverBroker struct {
	name string
	// configure sets broker_url (and its options) in cfg.
	configure func(cfg *celery.Config)
	// cleanup removes the queues at the test's end.
	cleanup func(t *testing.T, queues ...string)
	// slots drains a queue and returns the beat_slot headers of its messages, sorted.
	slots func(t *testing.T, queue string) []string
	// held counts the messages of queue taken and not acknowledged (nil: the broker drops them
	// with the connection, nothing to check).
	held func(t *testing.T, queue string) int
	// locate says, for each task id, where its message is (nil: not looked for).
	locate func(t *testing.T, queue string, ids []string) map[string]string
}

func amqpFailover() failoverBroker {
	return failoverBroker{name: "amqp",
		configure: func(cfg *celery.Config) { cfg.BrokerURL = testenv.AMQPURL() },
		cleanup:   func(t *testing.T, queues ...string) { testenv.DeleteQueuesAtCleanup(t, queues...) },
		slots:     drainSlots,
	}
}

// redisBrokerDB is the Sentinel set's database TestFailover's redis run uses as the broker.
const redisBrokerDB = 6

func redisFailover() failoverBroker {
	return failoverBroker{name: "redis",
		configure: func(cfg *celery.Config) {
			cfg.BrokerURL, cfg.BrokerTransportOptions = set.URL(redisBrokerDB), set.TransportOptions()
		},
		cleanup: func(t *testing.T, queues ...string) { t.Cleanup(func() { deleteRedisQueues(t, queues...) }) },
		slots:   drainRedisSlots,
		held:    heldRedis,
		locate:  locateRedis,
	}
}

// brokerClient is a client on the Sentinel-named master's broker database.
func brokerClient(t *testing.T) *redis.Client {
	t.Helper()
	master, err := set.Master()
	if err != nil {
		t.Fatal(err)
	}
	return redis.NewClient(&redis.Options{Addr: master, Password: Password, DB: redisBrokerDB})
}

// deleteRedisQueues removes what the queues left on the Redis broker: their lists, bindings and
// unacked entries (none should be left: that is checked by the test).
func deleteRedisQueues(t *testing.T, queues ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc := brokerClient(t)
	defer rc.Close()
	for _, q := range queues {
		keys, _ := rc.Keys(ctx, q+"*").Result()
		if len(keys) > 0 {
			rc.Del(ctx, keys...)
		}
		sets, _ := rc.Keys(ctx, "_kombu.binding.*").Result()
		for _, s := range sets {
			members, _ := rc.SMembers(ctx, s).Result()
			for _, m := range members {
				if strings.HasSuffix(m, redisbroker.DefaultSep+q) {
					rc.SRem(ctx, s, m)
				}
			}
		}
	}
}

// heldRedis counts the messages of queue held unacknowledged on the Redis broker.
func heldRedis(t *testing.T, queue string) int {
	t.Helper()
	rc := brokerClient(t)
	defer rc.Close()
	n, err := testenv.UnackedFor(context.Background(), rc, queue)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// locateRedis says, for each task id, where its message is on the Redis broker: in the queue's
// lists, in the unacked hash (with the age of its unacked_index score: when it was taken, or last
// renewed by the worker holding it), in the dead-letter queue or its quarantine list, or nowhere
// (several places: all of them). A message is its task's when its headers name the id, or, for an
// entry the broker wrapped to park it, when its body holds it.
func locateRedis(t *testing.T, queue string, ids []string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc := brokerClient(t)
	defer rc.Close()
	found := map[string][]string{}
	var problems []string
	list := func(name string) {
		raws, err := rc.LRange(ctx, name, 0, -1).Result()
		if err != nil {
			problems = append(problems, fmt.Sprintf("reading %q: %v", name, err))
			return
		}
		for pos, raw := range raws {
			for _, id := range ids {
				if mentions(raw, id) {
					found[id] = append(found[id], fmt.Sprintf("in the list %q (%d of %d from its head)", name, len(raws)-pos, len(raws)))
				}
			}
		}
	}
	for _, step := range redisbroker.DefaultPrioritySteps {
		name := queue
		if step != 0 {
			name += redisbroker.DefaultSep + strconv.Itoa(step)
		}
		list(name)
	}
	list(redisbroker.DefaultDeadLetterQueue)
	list(redisbroker.DefaultDeadLetterQueue + ".unreadable")
	unacked, err := rc.HGetAll(ctx, "unacked").Result()
	if err != nil {
		problems = append(problems, fmt.Sprintf("reading the unacked hash: %v", err))
	}
	for tag, raw := range unacked {
		for _, id := range ids {
			if !mentions(raw, id) {
				continue
			}
			where := fmt.Sprintf("in the unacked hash (tag %s, no unacked_index score)", tag)
			if score, err := rc.ZScore(ctx, "unacked_index", tag).Result(); err == nil {
				at := time.UnixMicro(int64(score * 1e6))
				where = fmt.Sprintf("in the unacked hash (tag %s, unacked_index score %s ago)", tag, time.Since(at).Round(time.Millisecond))
			}
			found[id] = append(found[id], where)
		}
	}
	out := map[string]string{}
	for _, id := range ids {
		switch {
		case len(found[id]) > 0:
			out[id] = strings.Join(found[id], "; ")
		case len(problems) > 0:
			out[id] = "not found (" + strings.Join(problems, "; ") + ")"
		default:
			out[id] = "nowhere (not in its queue, the unacked hash or the dead-letter queue)"
		}
	}
	return out
}

// mentions reports whether the broker entry raw is task id's message: its headers (kombu's
// envelope keeps them as JSON) or, base64-encoded, its body (a parked entry) hold the id.
func mentions(raw, id string) bool {
	if strings.Contains(raw, id) {
		return true
	}
	m, err := redisbroker.DecodeMessage([]byte(raw))
	return err == nil && strings.Contains(string(m.Body), id)
}

// drainRedisSlots takes every message of queue's list on the Redis broker and returns their
// beat_slot headers.
func drainRedisSlots(t *testing.T, queue string) []string {
	t.Helper()
	rc := brokerClient(t)
	defer rc.Close()
	return collectSlots(t, queue, func() (map[string]any, bool) {
		raw, err := rc.RPop(context.Background(), queue).Bytes()
		if err == redis.Nil {
			return nil, false
		}
		if err != nil {
			t.Fatalf("reading %s: %v", queue, err)
		}
		m, err := redisbroker.DecodeMessage(raw)
		if err != nil {
			t.Fatalf("a message on %s: %v", queue, err)
		}
		return m.Headers, true
	})
}

// collectSlots returns the beat_slot headers of the messages next gives (their headers; false
// when queue is empty), sorted; a message without one is an error.
func collectSlots(t *testing.T, queue string, next func() (map[string]any, bool)) []string {
	t.Helper()
	var slots []string
	for {
		h, ok := next()
		if !ok {
			break
		}
		s, _ := h[beat.SlotHeader].(string)
		if s == "" {
			t.Errorf("a message on %s without %s: %v", queue, beat.SlotHeader, h)
		}
		slots = append(slots, s)
	}
	slices.Sort(slots)
	return slots
}

func testFailover(t *testing.T, fb failoverBroker) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	stderr := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if testing.Verbose() {
		log = stderr
	}
	// wlog is the worker's and the brokers' logger: also on stderr without -v when asked.
	wlog := log
	if os.Getenv("SENTINEL_FAILOVER_LOG") == "1" {
		wlog = stderr
	}
	queue, tickQueue := testenv.Name(t, "sentinel"), testenv.Name(t, "sentinel-beat")
	fb.cleanup(t, queue, tickQueue)
	one := 1
	cfg := celery.Config{TaskDefaultQueue: queue, WorkerConcurrency: 8, WorkerPrefetchMultiplier: &one,
		ResultBackend: set.URL(5), ResultBackendTransportOptions: set.TransportOptions(), TaskAcksLate: true}
	fb.configure(&cfg)

	// The worker, storing results through Sentinel as the worker program wires it.
	be, beClose, err := wiring.Backend(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer beClose.Close()
	reg := celery.NewRegistry()
	celery.Register(reg, "sentinel.add", func(_ context.Context, t *celery.Task[addArgs]) (int, error) { return t.Args.X + t.Args.Y, nil })
	wbr := openBroker(t, cfg, "sentinel-worker", wlog)
	w, err := celery.NewWorker(celery.WorkerOptions{Config: cfg, Registry: reg, Broker: wbr, Backend: be, Hostname: "celery@sentinel-test", Logger: wlog})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stopWorker := context.WithCancel(context.Background())
	workerDone := make(chan error, 1)
	go func() { workerDone <- w.Run(wctx) }()
	defer func() {
		stopWorker()
		if err := <-workerDone; err != nil {
			t.Errorf("worker.Run: %v", err)
		}
	}()
	client, err := celery.NewClient(celery.ClientOptions{Config: cfg, Broker: openBroker(t, cfg, "sentinel-client", wlog)})
	if err != nil {
		t.Fatal(err)
	}

	// Two beats (as two beat processes: a client each) on the Sentinel store.
	beatPrefix := "sentinelset:" + testenv.Suffix() + ":beat:"
	entry := &beat.Entry{Name: "tick", Task: "sentinel.tick", Every: time.Second, Options: beat.Options{Queue: tickQueue}}
	var beats sync.WaitGroup
	bctx, stopBeats := context.WithCancel(context.Background())
	defer func() { stopBeats(); beats.Wait() }()
	for i := range 2 {
		rc, err := wiring.AppRedis(cfg, set.URL(5), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		pub, err := beat.NewClientPublisher(cfg, openBroker(t, cfg, fmt.Sprintf("sentinel-beat-%d", i), wlog))
		if err != nil {
			t.Fatal(err)
		}
		s := beat.NewScheduler(beat.SchedulerOptions{Store: redisbeat.New(rc, beatPrefix, 10*time.Second), Publisher: pub, Logger: log})
		b, err := beat.New(beat.BeatOptions{Scheduler: s, Entries: []*beat.Entry{entry}, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		beats.Go(func() {
			if err := b.Run(bctx); err != nil {
				t.Errorf("beat %d: %v", i, err)
			}
		})
	}

	// The serving API on a failover client with serving's own budgets, under load.
	spec, err := wiring.RedisSpec(set.URL(5), cfg.ResultBackendTransportOptions, nil)
	if err != nil {
		t.Fatal(err)
	}
	serving.TuneRedis(spec.Options)
	src := spec.NewClient()
	defer src.Close()
	h, err := serving.New(serving.Options{Redis: src, Keys: rkeys.New("sentinelset:" + testenv.Suffix() + ":ads:"), Secret: []byte("sentinelset-serving-secret"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	load := &servingLoad{}
	lctx, stopLoad := context.WithCancel(context.Background())
	var loaders sync.WaitGroup
	for range 4 {
		loaders.Go(func() { load.run(lctx, srv.URL+"/v1/ads?forum=sentinel-test&placement=sidebar&count=2") })
	}
	defer func() { stopLoad(); loaders.Wait() }()

	// A probe writing through the result backend every 50 ms measures its blackout.
	probe := &writeProbe{}
	pctx, stopProbe := context.WithCancel(context.Background())
	probeDone := make(chan struct{})
	go func() { defer close(probeDone); probe.run(pctx, be) }()
	defer func() { stopProbe(); <-probeDone }()

	// Tasks flow (about 100 a second) from start to end.
	var sent []*celery.AsyncResult
	var sentMu sync.Mutex
	var sendGap gapMeter // between two sends that went through
	sctx, stopSending := context.WithCancel(ctx)
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
			}
			r, err := client.SendTask(sctx, "sentinel.add", []any{i, 1}, nil)
			if err != nil {
				if sctx.Err() == nil {
					t.Errorf("send %d: %v", i, err)
				}
				return
			}
			sendGap.success(time.Now())
			sentMu.Lock()
			sent = append(sent, r)
			sentMu.Unlock()
		}
	}()

	time.Sleep(3 * time.Second)
	var switches []time.Duration
	var killedAt []time.Time
	var lastSwitch time.Time
	for k := range kills(t) {
		old, err := set.Master()
		if err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		killedAt = append(killedAt, killed)
		if _, err := set.KillMaster(); err != nil {
			t.Fatal(err)
		}
		for {
			m, err := set.Master()
			if err == nil && m != old {
				break
			}
			if time.Since(killed) > 30*time.Second {
				t.Fatalf("kill %d: the Sentinels still name %s 30 s after it was killed", k+1, old)
			}
			time.Sleep(50 * time.Millisecond)
		}
		lastSwitch = time.Now()
		switches = append(switches, lastSwitch.Sub(killed))
		time.Sleep(5 * time.Second)
		if err := set.Revive(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second)
	stopSending()
	<-sendDone

	// Every task is done, and stored through Sentinel, with its result. The wait ends at ctx's
	// deadline; a task not done by then is read once more on a deadline of its own (not the
	// expired one), so that each report says what is stored for that task, not "not done" for
	// every task after the first one missing; and, where the broker can say, where its message is.
	sentMu.Lock()
	defer sentMu.Unlock()
	type miss struct {
		i      int
		id     string
		status string
		result []byte
		err    error
	}
	var misses []miss
	for i, r := range sent {
		var m protocol.ResultMeta
		var err error
		if ctx.Err() == nil {
			m, err = pollDone(ctx, be, r.ID)
		}
		if ctx.Err() != nil && (err != nil || !protocol.IsReady(m.Status)) {
			m, err = readState(be, r.ID)
		}
		var got int
		if err == nil {
			err = jsonInt(m.Result, &got)
		}
		if err != nil || m.Status != protocol.StateSuccess || got != i+1 {
			misses = append(misses, miss{i, r.ID, m.Status, m.Result, err})
		}
	}
	missing := len(misses)
	if missing > 0 {
		ids := make([]string, missing)
		for k, ms := range misses {
			ids[k] = ms.id
		}
		var where map[string]string
		if fb.locate != nil {
			where = fb.locate(t, queue, ids)
		}
		places := map[string]int{}
		for k, ms := range misses {
			w, ok := where[ms.id]
			if !ok {
				w = "not looked for on " + fb.name
			}
			if k < 20 {
				t.Errorf("sentinel-failover: broker=%s task %d (%s): %s %s, %v; want SUCCESS %d; its message: %s",
					fb.name, ms.i, ms.id, ms.status, ms.result, ms.err, ms.i+1, w)
			}
			if i := strings.Index(w, " ("); i >= 0 {
				w = w[:i] // the kind of place, without the details
			}
			places[w]++
		}
		t.Logf("sentinel-failover: broker=%s %d tasks not stored; where their messages are: %v", fb.name, missing, places)
	}
	if missing > 0 || len(sent) < 200 {
		t.Fatalf("%d of %d tasks not stored (want all, and at least 200 sent)", missing, len(sent))
	}
	if fb.held != nil {
		// acks_late: the last acknowledgements follow the last results by a moment.
		if err := testenv.Poll(10*time.Second, func() (bool, error) { return fb.held(t, queue) == 0, nil }); err != nil {
			t.Errorf("%d messages still unacknowledged 10 s after every task was stored (an ack lost in the failover): %v", fb.held(t, queue), err)
		}
	}

	stopBeats()
	beats.Wait()
	slots := fb.slots(t, tickQueue)
	seen := map[string]int{}
	after := 0
	for _, s := range slots {
		seen[s]++
		if ms, _ := strconv.ParseInt(s, 10, 64); time.UnixMilli(ms).After(lastSwitch) {
			after++
		}
	}
	for s, n := range seen {
		if n > 1 {
			t.Errorf("beat slot %s sent %d times", s, n)
		}
	}
	if after == 0 {
		t.Errorf("beat sent no slot after the last failover (%d slots in all)", len(slots))
	}

	stopLoad()
	loaders.Wait()
	stopProbe()
	<-probeDone
	if load.fivexx.Load() > 0 || load.ok.Load() == 0 {
		t.Errorf("serving API: %d 5xx answers, %d ok; want none and some", load.fivexx.Load(), load.ok.Load())
	}
	if load.other.Load() > 0 {
		t.Errorf("serving API: %d answers neither 200 nor 5xx (or failed requests)", load.other.Load())
	}
	t.Logf("sentinel-failover: broker=%s kills=%d tasks=%d beat_slots=%d (%d after the switch) serving_requests=%d degraded=%d",
		fb.name, len(switches), len(sent), len(slots), after, load.ok.Load()+load.degraded.Load(), load.degraded.Load())
	killedAt = append(killedAt, time.Now())
	for i, d := range switches {
		t.Logf("sentinel-failover: broker=%s kill %d: Sentinels named a new master after %.2fs; result backend: longest time between two successful writes %.2fs; serving: longest time without a normal (not degraded) answer %.2fs; client: longest time between two sends %.2fs",
			fb.name, i+1, d.Seconds(), probe.gap.longest(killedAt[i], killedAt[i+1]).Seconds(), load.gap.longest(killedAt[i], killedAt[i+1]).Seconds(),
			sendGap.longest(killedAt[i], killedAt[i+1]).Seconds())
	}
	t.Logf("sentinel-failover: broker=%s %d failed probe writes in all", fb.name, probe.failed.Load())
}

// openBroker is cfg's broker as the programs wire it, closed at the test's end.
func openBroker(t *testing.T, cfg celery.Config, name string, log *slog.Logger) broker.Broker {
	t.Helper()
	b, err := wiring.Broker(cfg, name, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// readState reads a task's stored state once, on a deadline of its own; a state not ready is an
// error saying the wait ended first.
func readState(be backend.Backend, id string) (protocol.ResultMeta, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	m, err := be.Get(ctx, id)
	if err == nil && !protocol.IsReady(m.Status) {
		err = errors.New("not done when the wait for every task ended")
	}
	return m, err
}

// pollDone waits for a task's stored state to be ready.
func pollDone(ctx context.Context, be backend.Backend, id string) (protocol.ResultMeta, error) {
	for {
		m, err := be.Get(ctx, id)
		if err == nil && protocol.IsReady(m.Status) {
			return m, nil
		}
		select {
		case <-ctx.Done():
			return m, fmt.Errorf("not done: %w (last read: %v)", ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func jsonInt(raw []byte, v *int) error {
	n, err := strconv.Atoi(string(raw))
	*v = n
	return err
}

// servingLoad requests ads in a loop and counts the answers.
type servingLoad struct {
	ok, degraded, fivexx, other atomic.Int64
	gap                         gapMeter // between normal (not degraded) answers
}

func (l *servingLoad) run(ctx context.Context, url string) {
	hc := &http.Client{Timeout: 2 * time.Second}
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				l.other.Add(1)
			}
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		switch {
		case resp.StatusCode >= 500:
			l.fivexx.Add(1)
		case resp.StatusCode == http.StatusOK && resp.Header.Get("X-Ads-Degraded") != "":
			l.degraded.Add(1)
		case resp.StatusCode == http.StatusOK:
			l.ok.Add(1)
			l.gap.success(time.Now())
		default:
			l.other.Add(1)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gapMeter records the times between successes.
type gapMeter struct {
	mu   sync.Mutex
	last time.Time
	gaps []gap
}

type gap struct{ from, to time.Time }

func (g *gapMeter) success(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.last.IsZero() && now.Sub(g.last) > 100*time.Millisecond {
		g.gaps = append(g.gaps, gap{g.last, now})
	}
	g.last = now
}

// longest is the longest time between two successes that ended in [from, to).
func (g *gapMeter) longest(from, to time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	var worst time.Duration
	for _, x := range g.gaps {
		if !x.to.Before(from) && x.to.Before(to) {
			worst = max(worst, x.to.Sub(x.from))
		}
	}
	return worst
}

// writeProbe stores a result (of a new id each time: a SUCCESS is never overwritten) every 50 ms
// and keeps the longest time between two successful writes.
type writeProbe struct {
	failed atomic.Int64
	gap    gapMeter
}

func (p *writeProbe) run(ctx context.Context, be backend.Backend) {
	prefix := "sentinelset-probe-" + testenv.Suffix() + "-"
	for i := 0; ctx.Err() == nil; i++ {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		err := be.Store(sctx, protocol.ResultMeta{TaskID: prefix + strconv.Itoa(i), Status: protocol.StateSuccess, Result: []byte("1")})
		cancel()
		switch {
		case err == nil:
			p.gap.success(time.Now())
		case ctx.Err() == nil:
			p.failed.Add(1)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// drainSlots reads every message of queue and returns their beat_slot headers.
func drainSlots(t *testing.T, queue string) []string {
	t.Helper()
	conn := testenv.AMQP(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	return collectSlots(t, queue, func() (map[string]any, bool) {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatalf("reading %s: %v", queue, err)
		}
		return d.Headers, ok
	})
}
