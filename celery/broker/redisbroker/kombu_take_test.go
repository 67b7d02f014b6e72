package redisbroker_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/redisbroker"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/testenv"
)

// python is Debian's Python with Celery 5.2 / kombu 5.2 (PYTHON overrides it).
func python() string {
	if p := os.Getenv("PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}

// TestGoRestoresWhatKombuTook: a message real kombu 5.2 took (basic_get without ack, recorded by
// kombu's own QoS.append) and never acknowledged, its process gone, is given back by a Go
// Broker's RestoreVisible once the visibility timeout has passed, exactly once, and a Go consumer
// reads it marked redelivered; nothing is left in kombu's unacked hash and index.
func TestGoRestoresWhatKombuTook(t *testing.T) {
	t.Parallel()
	b := open(t, redisbroker.Options{VisibilityTimeout: time.Second})
	rc, p := b.Client(), b.Options().KeyPrefix
	const q = "kombutook"
	if err := b.Publish(ctx(t), broker.Publishing{RoutingKey: q, Declare: &broker.Queue{Name: q},
		Envelope: protocol.Envelope{Body: []byte("held by kombu"), ContentType: "text/plain", DeliveryMode: 2}}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx(t), python(), "testdata/kombu_take.py")
	cmd.Env = append(os.Environ(), "BROKER_URL="+brokerURL(t), "PREFIX="+p, "QUEUE="+q)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kombu_take.py: %v\n%s", err, out)
	}
	var took struct{ Tag, Body *string }
	if err := json.Unmarshal(out, &took); err != nil || took.Tag == nil || took.Body == nil || *took.Body != "held by kombu" {
		t.Fatalf("kombu took %s (%v); want the message", out, err)
	}
	if ok, err := rc.HExists(ctx(t), p+"unacked", *took.Tag).Result(); err != nil || !ok {
		t.Fatalf("kombu did not record %s in its unacked hash (%v)", *took.Tag, err)
	}

	// kombu scores the entry with its time of taking: wait until it is older than the timeout.
	testenv.Eventually(t, 10*time.Second, func() bool {
		n, err := b.RestoreVisible(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		return n == 1
	}, "RestoreVisible giving back the message kombu held")
	if n, err := b.RestoreVisible(ctx(t)); err != nil || n != 0 {
		t.Fatalf("a second RestoreVisible = %d, %v; want 0 (restored once)", n, err)
	}
	d := recv(t, mustConsume(t, b, q, 1))
	if string(d.Body) != "held by kombu" || !d.Redelivered {
		t.Fatalf("the Go consumer read %q redelivered=%v; want kombu's message, redelivered", d.Body, d.Redelivered)
	}
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
	if n, err := rc.LLen(ctx(t), p+q).Result(); err != nil || n != 0 {
		t.Errorf("the queue holds %d more (%v); want none", n, err)
	}
	if ok, _ := rc.HExists(ctx(t), p+"unacked", *took.Tag).Result(); ok {
		t.Error("kombu's entry is still in the unacked hash")
	}
	if _, err := rc.ZScore(ctx(t), p+"unacked_index", *took.Tag).Result(); err == nil {
		t.Error("kombu's tag is still in unacked_index")
	}
}

// TestGoAndKombuRestoringTogether: while kombu 5.2 gives back every unacknowledged message with
// its own restore_by_tag (a shutting-down kombu worker's restore), a Go Broker's RestoreVisible
// runs over the same messages at the same time; afterwards each message is in its queue exactly
// once and nothing is left unacknowledged: neither side lost or doubled one. The test's keys are
// set by the unacked_* options and the queue's name, not by global_keyprefix: kombu 5.2.4 does not
// prefix the key its restore WATCHes, so with a global_keyprefix its restore races every other
// restorer, kombu's own included (see README, "Redis broker").
func TestGoAndKombuRestoringTogether(t *testing.T) {
	t.Parallel()
	const n = 1000
	p := prefix(t) // every key below starts with it, deleted at cleanup
	b, err := redisbroker.New(client(t), redisbroker.Options{VisibilityTimeout: time.Second,
		UnackedKey: p + "unacked", UnackedIndexKey: p + "unacked_index", UnackedMutexKey: p + "unacked_mutex"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	rc := b.Client()
	q := p + "bothrestore"
	old := float64(time.Now().Add(-time.Minute).Unix())
	pipe := rc.Pipeline()
	for i := range n {
		tag := fmt.Sprintf("tag-%d", i)
		raw, err := redisbroker.EncodeMessage(redisbroker.Message{Envelope: protocol.Envelope{Body: []byte(strconv.Itoa(i))}, DeliveryTag: tag, RoutingKey: q})
		if err != nil {
			t.Fatal(err)
		}
		e, _ := json.Marshal([]any{json.RawMessage(raw), "", q})
		pipe.HSet(ctx(t), p+"unacked", tag, e)
		pipe.ZAdd(ctx(t), p+"unacked_index", redisZ(tag, old))
	}
	if _, err := pipe.Exec(ctx(t)); err != nil {
		t.Fatal(err)
	}

	cmd := exec.CommandContext(ctx(t), python(), "testdata/kombu_restore_all.py")
	cmd.Env = append(os.Environ(), "BROKER_URL="+brokerURL(t), "UNACKED_PREFIX="+p)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "ready" {
		_ = cmd.Wait()
		t.Fatalf("kombu_restore_all.py did not get ready: %q\n%s", lines.Text(), stderr.String())
	}
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	restoredByGo := 0
	for pass := 0; ; pass++ {
		m, err := b.RestoreVisible(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		restoredByGo += m
		if m == 0 && pass > 0 {
			break
		}
	}
	var rest []string
	for lines.Scan() {
		rest = append(rest, lines.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("kombu_restore_all.py: %v\n%s", err, stderr.String())
	}
	if len(rest) != 1 || rest[0] != strconv.Itoa(n) {
		t.Fatalf("kombu_restore_all.py printed %q; want %d tags gone through", rest, n)
	}

	raws, err := rc.LRange(ctx(t), q, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, raw := range raws {
		m, err := redisbroker.DecodeMessage([]byte(raw))
		if err != nil {
			t.Fatalf("a restored entry: %v", err)
		}
		seen[string(m.Body)]++
	}
	for i := range n {
		if c := seen[strconv.Itoa(i)]; c != 1 {
			t.Errorf("message %d is in the queue %d times; want once", i, c)
		}
	}
	if len(raws) != n {
		t.Errorf("the queue holds %d entries; want %d", len(raws), n)
	}
	if h, _ := rc.HLen(ctx(t), p+"unacked").Result(); h != 0 {
		t.Errorf("%d entries left in the unacked hash", h)
	}
	if z, _ := rc.ZCard(ctx(t), p+"unacked_index").Result(); z != 0 {
		t.Errorf("%d tags left in unacked_index", z)
	}
	t.Logf("Go restored %d of the %d messages, kombu the others", restoredByGo, n)
}

// brokerURL is the URL of the tests' Redis database, for kombu.
func brokerURL(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = fmt.Sprintf("/%d", testDB)
	return u.String()
}
