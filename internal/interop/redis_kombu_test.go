package interop

import (
	"context"
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/redisbroker"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/testenv"
)

// TestKombuRestoresWhatGoTook: a message a Go consumer took (recorded in the unacked hash and
// index by its Lua step) and then stopped renewing, as a killed worker does, is given back by
// kombu 5.2's own QoS.restore_visible and read by kombu, marked redelivered: Python workers can
// recover what a dead Go worker held.
func TestKombuRestoresWhatGoTook(t *testing.T) {
	t.Parallel()
	queue := testenv.Name(t, "kombu.restore")
	deleteRedisQueuesAtCleanup(t, queue)
	rc := redisBrokerClient(t)
	b, err := redisbroker.New(rc, redisbroker.Options{}) // visibility timeout 1 h: renewed every 15 min, so not during this test
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.Publish(ctx, broker.Publishing{RoutingKey: queue, Declare: &broker.Queue{Name: queue},
		Envelope: protocol.Envelope{Body: []byte("held by go"), ContentType: "text/plain", DeliveryMode: 2}}); err != nil {
		t.Fatal(err)
	}
	ch, err := b.Consume(ctx, []broker.Queue{{Name: queue}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	d := <-ch
	time.Sleep(1500 * time.Millisecond) // older than kombu's visibility timeout of 1 s in the script
	cmd := exec.CommandContext(ctx, pythonPath(), "kombu_restore.py")
	cmd.Dir = testdataDir(t)
	cmd.Env = pythonEnv(map[string]string{"BROKER_URL": redisBrokerURL(t), "QUEUE": queue})
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kombu_restore.py: %v\n%s", err, out)
	}
	var got struct {
		Body        *string `json:"restored_body"`
		Redelivered bool    `json:"redelivered"`
	}
	if err := json.Unmarshal(out, &got); err != nil || got.Body == nil || *got.Body != "held by go" || !got.Redelivered {
		t.Fatalf("kombu read %s (%v); want the Go-held message, redelivered", out, err)
	}
	if err := d.Ack(); err == nil {
		t.Error("the Go consumer's late ack succeeded although kombu restored the message")
	}
	_ = b.Close()
}
