package redisbroker_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery/broker/redisbroker"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/testenv"
)

// replyCutter is a loopback TCP relay to the tests' Redis that forwards every command and, for the
// first command match accepts whose reply is a non-empty array (the script ran and returned
// something, not NOSCRIPT or another error), cuts the connection instead of forwarding that
// reply: a master that ran a script and was killed, or lost its connection, before its answer
// reached the client.
type replyCutter struct {
	t      *testing.T
	addr   string
	target string
	match  func(args []string) bool
	cuts   atomic.Int32 // replies cut (at most one)

	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
	wg    sync.WaitGroup
}

func newReplyCutter(t *testing.T, match func(args []string) bool) *replyCutter {
	t.Helper()
	opts, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rc := &replyCutter{t: t, addr: ln.Addr().String(), target: opts.Addr, match: match, ln: ln}
	rc.wg.Add(1)
	go rc.accept()
	t.Cleanup(rc.close)
	return rc
}

func (rc *replyCutter) accept() {
	defer rc.wg.Done()
	for {
		c, err := rc.ln.Accept()
		if err != nil {
			return
		}
		r, err := net.Dial("tcp", rc.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		rc.mu.Lock()
		rc.conns = append(rc.conns, c, r)
		rc.mu.Unlock()
		var armed atomic.Bool // the next reply on this connection is the matched command's
		rc.wg.Add(2)
		go func() { defer rc.wg.Done(); defer r.Close(); rc.commands(c, r, &armed) }()
		go func() { defer rc.wg.Done(); defer c.Close(); rc.replies(r, c, &armed) }()
	}
}

// commands forwards the client's commands to Redis one at a time, arming the cut before it
// forwards a matching one (go-redis sends a command on a connection only after reading the
// previous reply, so what Redis answers next is that command's reply).
func (rc *replyCutter) commands(c, r net.Conn, armed *atomic.Bool) {
	br := bufio.NewReader(c)
	for {
		raw, args, err := readCommand(br)
		if err != nil {
			return
		}
		if rc.cuts.Load() == 0 && rc.match(args) {
			armed.Store(true)
		}
		if _, err := r.Write(raw); err != nil {
			return
		}
	}
}

// replies forwards Redis's replies to the client, but cuts both connections instead of forwarding
// the first non-empty array that answers an armed command.
func (rc *replyCutter) replies(r, c net.Conn, armed *atomic.Bool) {
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 && armed.Swap(false) {
			if buf[0] == '*' && !bytes.HasPrefix(buf[:n], []byte("*0\r\n")) && rc.cuts.Add(1) == 1 {
				_ = c.Close()
				_ = r.Close()
				return
			}
		}
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (rc *replyCutter) close() {
	_ = rc.ln.Close()
	rc.mu.Lock()
	for _, c := range rc.conns {
		_ = c.Close()
	}
	rc.mu.Unlock()
	rc.wg.Wait()
}

// readCommand reads one RESP command (an array of bulk strings, as go-redis sends) and returns its
// bytes and its arguments; anything else is returned as the line it is, with no arguments.
func readCommand(br *bufio.Reader) (raw []byte, args []string, err error) {
	line, err := br.ReadBytes('\n')
	if err != nil {
		return nil, nil, err
	}
	raw = line
	if len(line) < 3 || line[0] != '*' {
		return raw, nil, nil
	}
	n, err := strconv.Atoi(string(bytes.TrimRight(line[1:], "\r\n")))
	if err != nil {
		return raw, nil, nil
	}
	for range n {
		hdr, err := br.ReadBytes('\n')
		if err != nil {
			return nil, nil, err
		}
		raw = append(raw, hdr...)
		size, err := strconv.Atoi(string(bytes.TrimRight(hdr[1:], "\r\n")))
		if err != nil || hdr[0] != '$' || size < 0 {
			return raw, args, nil
		}
		data := make([]byte, size+2)
		if _, err := io.ReadFull(br, data); err != nil {
			return nil, nil, err
		}
		raw = append(raw, data...)
		args = append(args, string(data[:size]))
	}
	return raw, args, nil
}

// isTake matches the take script's EVALSHA or EVAL on the keys of prefix p: it alone names the
// quarantine list.
func isTake(p string) func(args []string) bool {
	return func(args []string) bool {
		if len(args) == 0 || (!strings.EqualFold(args[0], "evalsha") && !strings.EqualFold(args[0], "eval")) {
			return false
		}
		for _, a := range args {
			if a == p+redisbroker.DefaultDeadLetterQueue+".unreadable" {
				return true
			}
		}
		return false
	}
}

// TestTakeWithLostReply: Redis runs a take (messages moved to the unacked hash) and its reply
// never reaches the consumer; whether go-redis sends the take again on the new connection or,
// without go-redis's retries, the consumer does after the error, the messages of the lost reply
// are delivered (the retry replays the take from its receipt instead of taking others and
// stranding these until the visibility timeout, an hour), each exactly once, and once everything
// is acknowledged nothing is left in the unacked hash; the receipt is gone when the Broker closes.
func TestTakeWithLostReply(t *testing.T) {
	t.Parallel()
	for _, retries := range []struct {
		name       string
		maxRetries int
	}{{"go-redis-retries", 0}, {"consumer-retries", -1}} {
		t.Run(retries.name, func(t *testing.T) {
			t.Parallel()
			const n, prefetch = 20, 5
			p := prefix(t)
			cut := newReplyCutter(t, isTake(p))
			direct := client(t)
			b, l := brokerBehind(t, cut, p, retries.maxRetries)
			q := "lostreply"
			for i := range n {
				if err := b.Publish(ctx(t), plain(q, strconv.Itoa(i))); err != nil {
					t.Fatal(err)
				}
			}
			deliveries := mustConsume(t, b, q, prefetch)
			seen := map[string]int{}
			deadline := time.After(10 * time.Second)
			for len(seen) < n {
				select {
				case d, ok := <-deliveries:
					if !ok {
						t.Fatal("the delivery channel closed")
					}
					seen[string(d.Body)]++
					if err := d.Ack(); err != nil {
						t.Fatalf("ack of %q: %v", d.Body, err)
					}
				case <-deadline:
					t.Fatalf("%d of %d messages delivered within 10 s (the reply of %d take(s) was cut); unacked hash: %d entries",
						len(seen), n, cut.cuts.Load(), direct.HLen(ctx(t), p+"unacked").Val())
				}
			}
			if c := cut.cuts.Load(); c != 1 {
				t.Fatalf("%d take replies cut, want 1 (the test did not lose a reply)", c)
			}
			for body, k := range seen {
				if k != 1 {
					t.Errorf("message %s delivered %d times, want once", body, k)
				}
			}
			if h, err := direct.HLen(ctx(t), p+"unacked").Result(); err != nil || h != 0 {
				t.Errorf("%d entries left in the unacked hash after every message was acknowledged (%v): stranded by the lost reply", h, err)
			}
			if z, err := direct.ZCard(ctx(t), p+"unacked_index").Result(); err != nil || z != 0 {
				t.Errorf("%d entries left in unacked_index (%v)", z, err)
			}
			// The take was sent again by whom the subtest says.
			warned := len(l.records(t, "WARN", "redisbroker: cannot take messages, retrying")) > 0
			if want := retries.maxRetries < 0; warned != want {
				t.Errorf("the consumer logged a failed take: %v, want %v", warned, want)
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			if keys, err := direct.Keys(ctx(t), p+"_forumads.take.*").Result(); err != nil || len(keys) != 0 {
				t.Errorf("take receipts left after Close: %q (%v)", keys, err)
			}
		})
	}
}

// TestTakeWithLostReplyThenClose: a take's reply is lost and the Broker closes before the consumer
// retries (go-redis does not retry here); the messages that take moved to the unacked hash go back
// to their queue at Close (its consumer replays the take from the receipt and restores what it
// took) instead of waiting for the visibility timeout; the receipt is deleted.
func TestTakeWithLostReplyThenClose(t *testing.T) {
	t.Parallel()
	const n = 10
	p := prefix(t)
	cut := newReplyCutter(t, isTake(p))
	direct := client(t)
	b, _ := brokerBehind(t, cut, p, -1)
	q := "lostreplyclose"
	for i := range n {
		if err := b.Publish(ctx(t), plain(q, strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	mustConsume(t, b, q, 0)
	testenv.Eventually(t, 10*time.Second, func() bool { return cut.cuts.Load() == 1 }, "a take's reply cut")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if l, err := direct.LLen(ctx(t), p+q).Result(); err != nil || l != n {
		t.Errorf("%d messages back in the queue after Close (%v), want all %d", l, err, n)
	}
	if h, err := direct.HLen(ctx(t), p+"unacked").Result(); err != nil || h != 0 {
		t.Errorf("%d entries left in the unacked hash after Close (%v): stranded by the lost reply", h, err)
	}
	if keys, err := direct.Keys(ctx(t), p+"_forumads.take.*").Result(); err != nil || len(keys) != 0 {
		t.Errorf("take receipts left after Close: %q (%v)", keys, err)
	}
}

// TestTakeReplaysByToken runs the take script itself: a take with the token of the previous one
// pops nothing and returns that take's messages, byte for byte (an exchange and routing key JSON
// must escape included), except those no longer unacknowledged and the entry it quarantined; a
// new token takes on; an empty take leaves the receipt alone; the receipt expires with the
// visibility timeout.
func TestTakeReplaysByToken(t *testing.T) {
	t.Parallel()
	b := open(t, redisbroker.Options{VisibilityTimeout: time.Minute})
	rc, p := b.Client(), b.Options().KeyPrefix
	const q, receipt = "replay", "_forumads.take.test"
	if err := rc.LPush(ctx(t), p+q, "not a kombu envelope").Err(); err != nil {
		t.Fatal(err)
	}
	var published []string
	for i := range 5 {
		raw, err := redisbroker.EncodeMessage(redisbroker.Message{DeliveryTag: fmt.Sprintf("tag-%d", i), Exchange: `ex"é\`,
			RoutingKey: "rk/\x06ü", Envelope: protocol.Envelope{Body: []byte(strconv.Itoa(i)), ContentType: "text/plain"}})
		if err != nil {
			t.Fatal(err)
		}
		published = append(published, string(raw))
		if err := rc.LPush(ctx(t), p+q, raw).Err(); err != nil {
			t.Fatal(err)
		}
	}
	take := func(n int, token string) []string {
		t.Helper()
		res, err := b.RunTakeScript(ctx(t), q, n, receipt, token)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	list := p + q
	first := take(3, "7")
	want := []string{list, "not a kombu envelope", "0", list, published[0], "1", list, published[1], "1", list, published[2], "1"}
	if fmt.Sprint(first) != fmt.Sprint(want) {
		t.Fatalf("the first take: %q\nwant %q", first, want)
	}
	if ttl := rc.PTTL(ctx(t), p+receipt).Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("the receipt's time to live is %v, want at most the visibility timeout (1m)", ttl)
	}
	// Acknowledged meanwhile (or restored: a restore removes the tag too).
	rc.HDel(ctx(t), p+"unacked", "tag-1")
	rc.ZRem(ctx(t), p+"unacked_index", "tag-1")
	again := take(3, "7")
	want = []string{list, published[0], "1", list, published[2], "1"}
	if fmt.Sprint(again) != fmt.Sprint(want) {
		t.Fatalf("the take sent again with its token: %q\nwant %q", again, want)
	}
	if l := rc.LLen(ctx(t), p+q).Val(); l != 2 {
		t.Fatalf("the replay popped: %d entries left in the list, want 2", l)
	}
	if l := rc.LLen(ctx(t), p+redisbroker.DefaultDeadLetterQueue+".unreadable").Val(); l != 1 {
		t.Fatalf("%d entries in the quarantine list, want the one quarantined once", l)
	}
	if only := take(0, "7"); fmt.Sprint(only) != fmt.Sprint(want) {
		t.Fatalf("a replay of nothing new (n = 0): %q\nwant %q", only, want)
	}
	next := take(5, "8")
	want = []string{list, published[3], "1", list, published[4], "1"}
	if fmt.Sprint(next) != fmt.Sprint(want) {
		t.Fatalf("the next token's take: %q\nwant %q", next, want)
	}
	if empty := take(5, "9"); len(empty) != 0 {
		t.Fatalf("a take of an empty queue: %q", empty)
	}
	if replay := take(5, "8"); fmt.Sprint(replay) != fmt.Sprint(next) {
		t.Fatalf("the empty take overwrote the receipt: token 8 replays %q, want %q", replay, next)
	}
}

// brokerBehind is a Broker with key prefix p whose Redis client goes through cut, retrying a
// failed command maxRetries times (go-redis's MaxRetries: -1 = never), closed at the test's end;
// l collects its logs.
func brokerBehind(t *testing.T, cut *replyCutter, p string, maxRetries int) (*redisbroker.Broker, *logs) {
	t.Helper()
	opts, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	opts.Addr, opts.DB, opts.MaxRetries = cut.addr, testDB, maxRetries
	rc := redis.NewClient(opts)
	t.Cleanup(func() { _ = rc.Close() })
	l := &logs{}
	b, err := redisbroker.New(rc, redisbroker.Options{KeyPrefix: p, Logger: l.logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, l
}
