package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/forumads/forumads/celery/protocol"
)

func FuzzDecodeRequest(f *testing.F) {
	for _, body := range []string{
		`{"method": "ping", "arguments": {}, "destination": null, "pattern": null, "matcher": null, "ticket": "fcb210e7-d3e1-47fc-bb25-4898f1d25d67", "reply_to": {"exchange": "reply.celery.pidbox", "routing_key": "b8405888-d381-386f-ac05-bfff32bfd2f5"}}`,
		`{"method": "revoke", "arguments": {"task_id": ["50bfcad9-ff03-4cc6-8165-a00e7d5182eb"]}, "destination": ["celery@a"], "pattern": null, "matcher": null}`,
		`{"method": "hello", "arguments": {"from_node": "celery@vm", "revoked": {}}, "destination": null, "pattern": null, "matcher": null, "ticket": "t", "reply_to": {"exchange": "reply.celery.pidbox", "routing_key": "k"}}`,
		`{"method": "ping", "pattern": "celery@[!a-c]*", "matcher": "glob"}`,
		`{"method": "ping", "pattern": "celery@(h1|h2)$", "matcher": "pcre", "arguments": {"a": 1E5, "b": "\ud800"}}`,
		`{"method": "ping", "destination": "celery@a"}`,
		`{"method": 1}`, `[]`, `null`, `{"method": "x", "reply_to": {"exchange": null}}`,
	} {
		f.Add([]byte(body), int64(1), 1795630327.2285445, "application/json")
	}
	f.Add([]byte(`{"method":"ping"}`), int64(-1), -1.0, "application/x-python-serialize")
	f.Fuzz(func(t *testing.T, body []byte, clock int64, expires float64, contentType string) {
		env := protocol.Envelope{Body: body, ContentType: contentType, ContentEncoding: "utf-8",
			Headers: map[string]any{"clock": clock, "expires": expires}}
		r, err := DecodeRequest(env)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if r.Method == "" || !json.Valid(r.Arguments) || r.Arguments[0] != '{' || r.Expires < 0 || r.Expires > math.MaxFloat64 {
			t.Fatalf("decoded an invalid request: %+v", r)
		}
		r.For("celery@fuzz") // must not panic
		// Encoding and decoding again gives the same request.
		env2, err := EncodeRequest(r)
		if err != nil {
			t.Fatalf("EncodeRequest(%+v): %v", r, err)
		}
		r2, err := DecodeRequest(env2)
		if err != nil {
			t.Fatalf("decoding the re-encoded %s: %v", env2.Body, err)
		}
		a1, e1 := protocol.PyJSON(r.Arguments)
		a2, e2 := protocol.PyJSON(r2.Arguments)
		if e1 != nil || e2 != nil || !bytes.Equal(a1, a2) {
			t.Fatalf("arguments %s became %s (%v, %v)", r.Arguments, r2.Arguments, e1, e2)
		}
		r.Arguments, r2.Arguments, r.match, r2.match = nil, nil, nil, nil
		if r.ReplyTo == nil {
			r.Ticket = "" // a cast carries no ticket
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip\n got %+v\nwant %+v", r2, r)
		}
	})
}

func FuzzDecodeCommandArgs(f *testing.F) {
	for _, s := range []string{
		`{"task_id": ["a", "b"], "terminate": true, "signal": "SIGKILL"}`, `{"task_id": "a"}`, `{"task_id": [1]}`,
		`{"task_name": "x", "rate_limit": "10/m"}`, `{"task_name": "x", "rate_limit": 1.5}`, `{"safe": true}`, `[]`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, args []byte) {
		if a, err := DecodeRevokeArgs(args); err == nil {
			// Re-encoding the decoded arguments as the CLI would gives them back.
			raw, _ := json.Marshal(map[string]any{"task_id": a.TaskIDs, "terminate": a.Terminate, "signal": a.Signal})
			b, err := DecodeRevokeArgs(raw)
			if err != nil || !reflect.DeepEqual(a, b) {
				t.Fatalf("revoke %s -> %+v -> %s -> %+v, %v", args, a, raw, b, err)
			}
			for _, id := range a.TaskIDs {
				if id == "" {
					t.Fatalf("empty id decoded from %s", args)
				}
			}
			_ = RevokeReply(a, a.TaskIDs)
		}
		if a, err := DecodeRateLimitArgs(args); err == nil {
			if a.TaskName == "" {
				t.Fatalf("rate_limit without task name decoded from %s", args)
			}
			raw, _ := json.Marshal(map[string]any{"task_name": a.TaskName, "rate_limit": a.RateLimit})
			b, err := DecodeRateLimitArgs(raw)
			if err != nil || a != b {
				t.Fatalf("rate_limit %s -> %+v -> %s -> %+v, %v", args, a, raw, b, err)
			}
		}
		if _, err := DecodeActiveArgs(args); err == nil && len(bytes.TrimSpace(args)) > 0 && !json.Valid(args) {
			t.Fatalf("active decoded invalid JSON %q", args)
		}
	})
}
