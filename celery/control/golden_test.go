package control

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/testenv"
)

// fixture is a capture from ../shared/fixtures (see its README).
type fixture struct {
	CLIStdout string `json:"cli_stdout"`
	Messages  []struct {
		Exchange   string `json:"exchange"`
		RoutingKey string `json:"routing_key"`
		Role       string `json:"role"`
		Properties struct {
			ContentType     string         `json:"content_type"`
			ContentEncoding string         `json:"content_encoding"`
			DeliveryMode    uint8          `json:"delivery_mode"`
			Headers         map[string]any `json:"headers"`
		} `json:"properties"`
		HeaderTypes map[string]string `json:"header_amqp_types"`
		Body        string            `json:"body"`
	} `json:"messages"`
}

func loadFixture(t *testing.T, name string) *fixture {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.FixturesDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return &f
}

// envelope rebuilds message i as amqp091-go delivers it: header values typed as py-amqp wrote them.
func (f *fixture) envelope(t *testing.T, i int) protocol.Envelope {
	t.Helper()
	m := f.Messages[i]
	h := map[string]any{}
	for k, v := range m.Properties.Headers {
		switch m.HeaderTypes[k] {
		case "I":
			h[k] = int32(v.(float64))
		case "d":
			h[k] = v.(float64)
		case "S":
			h[k] = v.(string)
		default:
			t.Fatalf("header %s: type %s not handled", k, m.HeaderTypes[k])
		}
	}
	return protocol.Envelope{Body: []byte(m.Body), ContentType: m.Properties.ContentType,
		ContentEncoding: m.Properties.ContentEncoding, DeliveryMode: m.Properties.DeliveryMode, Headers: h}
}

func TestGoldenPidbox(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file      string
		method    string
		arguments string
		result    func(args json.RawMessage) any
	}{
		{"pidbox_inspect_ping.json", "ping", `{}`, func(json.RawMessage) any { return OK("pong") }},
		{"pidbox_control_revoke.json", "revoke", `{"task_id":["50bfcad9-ff03-4cc6-8165-a00e7d5182eb"]}`, func(args json.RawMessage) any {
			a, err := DecodeRevokeArgs(args)
			if err != nil {
				return Error(err.Error())
			}
			return RevokeReply(a, nil)
		}},
	} {
		t.Run(tc.method, func(t *testing.T) {
			t.Parallel()
			f := loadFixture(t, tc.file)
			reqMsg, replyMsg := f.Messages[0], f.Messages[1]
			if reqMsg.Role != "broadcast" || replyMsg.Role != "reply" {
				t.Fatalf("fixture roles %q, %q", reqMsg.Role, replyMsg.Role)
			}
			env := f.envelope(t, 0)
			req, err := DecodeRequest(env)
			if err != nil {
				t.Fatal(err)
			}
			ticket := reqMsg.Properties.Headers["ticket"]
			if ticket == nil {
				ticket = replyMsg.Properties.Headers["ticket"]
			}
			if req.Method != tc.method || string(req.Arguments) != tc.arguments || req.Ticket != ticket ||
				req.Destination != nil || req.Clock != 1 || req.Expires != env.Headers["expires"] ||
				req.ReplyTo == nil || req.ReplyTo.Exchange != replyMsg.Exchange || req.ReplyTo.RoutingKey != replyMsg.RoutingKey {
				t.Fatalf("decoded %+v", req)
			}

			// Encoding the decoded request gives back Python's bytes and headers.
			again, err := EncodeRequest(req)
			if err != nil {
				t.Fatal(err)
			}
			if string(again.Body) != reqMsg.Body || !reflect.DeepEqual(again.Headers, env.Headers) ||
				again.DeliveryMode != reqMsg.Properties.DeliveryMode || again.ContentType != reqMsg.Properties.ContentType {
				t.Fatalf("re-encoded\n got %s %v\nwant %s %v", again.Body, again.Headers, reqMsg.Body, env.Headers)
			}

			// A mailbox named like the captured worker answers with the captured reply.
			before, _ := req.ExpiresAt()
			mb := newTestMailbox(t, "celery@vm", func() time.Time { return before.Add(-time.Second) })
			mb.Handle(tc.method, func(_ context.Context, args json.RawMessage) (any, error) { return tc.result(args), nil })
			out, err := mb.process(context.Background(), env)
			if err != nil || out == nil {
				t.Fatalf("process: %v, %v", out, err)
			}
			if out.exchange != replyMsg.Exchange || out.routingKey != replyMsg.RoutingKey {
				t.Errorf("reply to %s/%s, want %s/%s", out.exchange, out.routingKey, replyMsg.Exchange, replyMsg.RoutingKey)
			}
			if string(out.env.Body) != replyMsg.Body {
				t.Errorf("reply body\n got %s\nwant %s", out.env.Body, replyMsg.Body)
			}
			if out.env.Headers["ticket"] != replyMsg.Properties.Headers["ticket"] {
				t.Errorf("reply ticket %v, want %v", out.env.Headers["ticket"], replyMsg.Properties.Headers["ticket"])
			}
			if _, ok := out.env.Headers["clock"].(int32); !ok || len(out.env.Headers) != 2 {
				t.Errorf("reply headers %#v, want ticket and an int32 clock like %v", out.env.Headers, replyMsg.HeaderTypes)
			}
			if out.env.ContentType != replyMsg.Properties.ContentType || out.env.ContentEncoding != replyMsg.Properties.ContentEncoding ||
				out.env.DeliveryMode != replyMsg.Properties.DeliveryMode {
				t.Errorf("reply properties %+v", out.env)
			}
			// The clock moved for the request (tick, then past its clock 1) and for the reply.
			if got := mb.Clock().Value(); got != 3 {
				t.Errorf("clock %d after one request, want 3", got)
			}
		})
	}
}

func TestGoldenWorkerHello(t *testing.T) {
	t.Parallel()
	f := loadFixture(t, "pidbox_worker_startup_hello.json")
	env := f.envelope(t, 0)
	req, err := DecodeRequest(env)
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != "hello" || string(req.Arguments) != `{"from_node":"celery@vm","revoked":{}}` || req.ReplyTo == nil || req.Ticket == "" {
		t.Fatalf("decoded %+v", req)
	}
	again, err := EncodeRequest(req)
	if err != nil || string(again.Body) != f.Messages[0].Body {
		t.Fatalf("re-encoded %s, %v", again.Body, err)
	}
	// A Go node without a hello handler answers as Python does to an unknown command.
	before, _ := req.ExpiresAt()
	mb := newTestMailbox(t, "celery@go", func() time.Time { return before.Add(-time.Second) })
	out, err := mb.process(context.Background(), env)
	if err != nil || out == nil || string(out.env.Body) != `{"celery@go": {"error": "KeyError('hello')"}}` {
		t.Fatalf("process: %+v, %v", out, err)
	}
}

// newTestMailbox is a mailbox for process tests: never connected.
func newTestMailbox(t testing.TB, node string, now func() time.Time) *Mailbox {
	t.Helper()
	mb, err := NewMailbox(node, newTransport(t, "amqp://127.0.0.1:1/", nil), Options{Now: now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return mb
}
