package redisbroker_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
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
	u, err := url.Parse(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = fmt.Sprintf("/%d", testDB)
	cmd.Env = append(os.Environ(), "BROKER_URL="+u.String(), "PREFIX="+p, "QUEUE="+q)
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
