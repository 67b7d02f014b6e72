package redisbroker

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/forumads/forumads/celery/broker/fanout"
	"github.com/forumads/forumads/celery/protocol"
)

// captured is one thing Python Celery 5.2 / kombu 5.2.4 wrote to Redis (testdata/capture.py).
type captured struct {
	Name  string  `json:"name"`
	Kind  string  `json:"kind"`
	Key   string  `json:"key"`
	Field string  `json:"field"`
	Raw   string  `json:"raw"`
	Score float64 `json:"score"`
}

func loadCaptured(t testing.TB) []captured {
	t.Helper()
	data, err := os.ReadFile("testdata/kombu_redis.json")
	if err != nil {
		t.Fatal(err)
	}
	var cs []captured
	if err := json.Unmarshal(data, &cs); err != nil {
		t.Fatal(err)
	}
	if len(cs) < 10 {
		t.Fatalf("testdata/kombu_redis.json holds %d entries; run testdata/capture.py", len(cs))
	}
	return cs
}

// goldenBroker is a Broker with kombu's defaults on database 13 (where capture.py wrote), never
// connected: the golden tests only name keys.
func goldenBroker(t *testing.T) *Broker {
	o := Options{DB: 13}.withDefaults()
	return &Broker{opts: o, log: o.Logger}
}

// TestGoldenKombuMessages decodes every message kombu pushed to a list, checks it is the task
// Celery sent and that Go would have pushed it to the same list, and that Go's encoding of it
// decodes to the same message.
func TestGoldenKombuMessages(t *testing.T) {
	t.Parallel()
	b := goldenBroker(t)
	want := map[string]struct {
		id, task string
		proto    int
		priority uint8
	}{
		"v2_plain":                     {"id-plain", "diag.add", 2, 0},
		"v2_priority_5":                {"id-prio", "diag.add", 2, 5},
		"v2_priority_9":                {"id-prio9", "diag.add", 2, 9},
		"v2_unicode_countdown_expires": {"id-unicode", "diag.add", 2, 0},
		"v1_eta":                       {"id-v1", "diag.add", 1, 0},
		"v2_topic_queue":               {"id-topic", "diag.add", 2, 0},
		"v2_rejected_requeued":         {"id-held", "diag.add", 2, 0},
	}
	seen := 0
	for _, c := range loadCaptured(t) {
		w, ok := want[c.Name]
		if !ok || c.Kind != "list" {
			continue
		}
		seen++
		t.Run(c.Name, func(t *testing.T) {
			m, err := DecodeMessage([]byte(c.Raw))
			if err != nil {
				t.Fatal(err)
			}
			accept, _ := protocol.NewAccept([]string{"json"})
			tm, err := protocol.Decode(m.Envelope, accept)
			if err != nil {
				t.Fatalf("protocol.Decode: %v", err)
			}
			if tm.ID != w.id || tm.Task != w.task || tm.Protocol != w.proto || m.Priority != w.priority {
				t.Errorf("decoded %s %s protocol %d priority %d, want %+v", tm.ID, tm.Task, tm.Protocol, m.Priority, w)
			}
			queue := b.queueOfList(c.Key)
			if got := b.list(queue, int(m.Priority)); got != c.Key {
				t.Errorf("Go would push priority %d of %s to %q, kombu pushed to %q", m.Priority, queue, got, c.Key)
			}
			if m.DeliveryTag == "" || m.ContentType != "application/json" || m.ContentEncoding != "utf-8" || m.DeliveryMode != 2 {
				t.Errorf("properties: %+v", m)
			}
			if m.RoutingKey != queue && c.Name != "v2_topic_queue" {
				t.Errorf("delivery_info routing_key %q, want %q", m.RoutingKey, queue)
			}
			if c.Name == "v2_rejected_requeued" && (!m.Redelivered || m.Headers["redelivered"] != true) {
				t.Errorf("a message kombu restored is not marked redelivered: %v %v", m.Redelivered, m.Headers["redelivered"])
			}
			raw, err := EncodeMessage(m)
			if err != nil {
				t.Fatal(err)
			}
			again, err := DecodeMessage(raw)
			if err != nil {
				t.Fatal(err)
			}
			again.Redelivered = m.Redelivered // EncodeMessage writes a fresh message
			if !reflect.DeepEqual(again, m) {
				t.Errorf("re-encoded message differs:\n%+v\n%+v", again, m)
			}
			var kombu, ours map[string]any
			_ = json.Unmarshal([]byte(c.Raw), &kombu)
			_ = json.Unmarshal(raw, &ours)
			for _, k := range []string{"body", "content-type", "content-encoding", "headers", "properties"} {
				if _, ok := ours[k]; !ok {
					t.Errorf("Go's envelope has no %q", k)
				}
			}
			kp, op := kombu["properties"].(map[string]any), ours["properties"].(map[string]any)
			for _, k := range []string{"correlation_id", "reply_to", "delivery_mode", "delivery_info", "priority", "body_encoding", "delivery_tag"} {
				if _, ok := kp[k]; ok {
					if _, ok := op[k]; !ok {
						t.Errorf("Go's properties have no %q", k)
					}
				}
			}
		})
	}
	if seen != len(want) {
		t.Errorf("found %d of the %d captured messages", seen, len(want))
	}
}

// TestGoldenKombuUnacked reads the unacked hash entry and index member kombu wrote while holding a
// message, and checks takeScript's entry for the same message has the same shape.
func TestGoldenKombuUnacked(t *testing.T) {
	t.Parallel()
	var entry, index *captured
	cs := loadCaptured(t)
	for i := range cs {
		switch cs[i].Name {
		case "unacked_entry":
			entry = &cs[i]
		case "unacked_index":
			index = &cs[i]
		}
	}
	if entry == nil || index == nil {
		t.Fatal("no unacked entry captured")
	}
	payload, ex, rk, err := unackedEntry([]byte(entry.Raw))
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeMessage(payload)
	if err != nil {
		t.Fatal(err)
	}
	if m.DeliveryTag != entry.Field || index.Raw != entry.Field || ex != "" || rk != "celery" || index.Score < 1e9 {
		t.Errorf("unacked entry tag %s (field %s, index %s score %f), exchange %q key %q", m.DeliveryTag, entry.Field, index.Raw, index.Score, ex, rk)
	}
	// kombu's json.dumps([payload, EX, RK]) separates with ", " as takeScript does.
	if !strings.HasSuffix(entry.Raw, `, "", "celery"]`) {
		t.Errorf("kombu's entry ends %q", entry.Raw[len(entry.Raw)-20:])
	}
}

// TestGoldenKombuBroadcasts: pidbox requests and events kombu PUBLISHed decode, and their channels
// are the ones Go publishes to and subscribes to.
func TestGoldenKombuBroadcasts(t *testing.T) {
	t.Parallel()
	b := goldenBroker(t)
	f := b.Fanout()
	n := 0
	for _, c := range loadCaptured(t) {
		if c.Kind != "publish" {
			continue
		}
		n++
		m, err := DecodeMessage([]byte(c.Raw))
		if err != nil {
			t.Fatalf("%s: %v", c.Key, err)
		}
		if got := b.topic(m.Exchange, m.RoutingKey); got != c.Key {
			t.Errorf("Go publishes %s/%s on %q, kombu on %q", m.Exchange, m.RoutingKey, got, c.Key)
		}
		if m.Exchange == "celeryev" {
			pats := f.patterns(fanout.Queue{Name: "q", Exchange: "celeryev", RoutingKey: "#"})
			if len(pats) != 1 || pats[0] != "/13.celeryev/*" {
				t.Errorf("an event receiver subscribes to %v, kombu to /13.celeryev/*", pats)
			}
			var ev map[string]any
			if err := json.Unmarshal(m.Body, &ev); err != nil || ev["type"] != "worker-heartbeat" {
				t.Errorf("event body %s: %v", m.Body, err)
			}
		} else if m.Exchange != "celery.pidbox" || m.Headers["clock"] == nil {
			t.Errorf("pidbox request from %q headers %v", m.Exchange, m.Headers)
		}
	}
	if n < 3 {
		t.Errorf("%d broadcasts captured, want the ping, the revoke and an event", n)
	}
}

// TestGoldenKombuBinding: kombu's binding members split into routing key, pattern and queue and
// are written back the same; the topic pattern is kombu's.
func TestGoldenKombuBinding(t *testing.T) {
	t.Parallel()
	b := goldenBroker(t)
	for _, c := range loadCaptured(t) {
		if c.Kind != "set" {
			continue
		}
		key, pattern, queue, ok := b.parseMember(c.Raw)
		if !ok || b.member(key, pattern, queue) != c.Raw {
			t.Errorf("binding %q read as %q %q %q (%v)", c.Raw, key, pattern, queue, ok)
		}
		if queue == "celery" && (key != "celery" || pattern != "") {
			t.Errorf("the celery binding is %q %q", key, pattern)
		}
	}
	if got := kombuTopicPattern("a.*.c"); got != `^a\..*?[^\.]\.c$` {
		t.Errorf("kombu's pattern of a.*.c is %s", got)
	}
}
