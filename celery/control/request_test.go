package control

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/protocol"
)

func jsonEnv(body string, headers map[string]any) protocol.Envelope {
	return protocol.Envelope{Body: []byte(body), ContentType: "application/json", ContentEncoding: "utf-8", Headers: headers}
}

func TestDecodeRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  protocol.Envelope
		want Request
	}{
		{
			name: "celery inspect ping",
			env: jsonEnv(`{"method": "ping", "arguments": {}, "destination": null, "pattern": null, "matcher": null, "ticket": "t1", "reply_to": {"exchange": "reply.celery.pidbox", "routing_key": "oid"}}`,
				map[string]any{"clock": int32(3), "expires": 1795630327.5}),
			want: Request{Method: "ping", Arguments: json.RawMessage(`{}`), Ticket: "t1",
				ReplyTo: &ReplyTo{Exchange: "reply.celery.pidbox", RoutingKey: "oid"}, Clock: 3, Expires: 1795630327.5},
		},
		{
			name: "cast with destination and arguments, no headers",
			env:  jsonEnv(`{"method": "revoke", "arguments": {"task_id": ["a", "b"]}, "destination": ["celery@a", "celery@b"]}`, nil),
			want: Request{Method: "revoke", Arguments: json.RawMessage(`{"task_id":["a","b"]}`), Destination: []string{"celery@a", "celery@b"}},
		},
		{
			name: "falsy members count as absent; unknown members are ignored",
			env: jsonEnv(`{"method": "stats", "arguments": null, "destination": [], "pattern": "", "matcher": 0, "ticket": null, "reply_to": {}, "extra": 1}`,
				map[string]any{"clock": nil, "expires": int32(0)}),
			want: Request{Method: "stats", Arguments: json.RawMessage(`{}`)},
		},
		{
			name: "pattern without matcher does not filter",
			env:  jsonEnv(`{"method": "ping", "pattern": "celery@*"}`, map[string]any{"clock": int64(1) << 40, "expires": float32(2)}),
			want: Request{Method: "ping", Arguments: json.RawMessage(`{}`), Pattern: "celery@*", Clock: 1 << 40, Expires: 2},
		},
		{
			name: "glob pattern; a negative clock counts as 0; a float clock is truncated",
			env:  jsonEnv(`{"method": "ping", "pattern": "celery@*", "matcher": "glob"}`, map[string]any{"clock": -5.0}),
			want: Request{Method: "ping", Arguments: json.RawMessage(`{}`), Pattern: "celery@*", Matcher: "glob"},
		},
		{
			name: "content type and encoding are case-insensitive",
			env:  protocol.Envelope{Body: []byte(`{"method":"ping"}`), ContentType: "Application/JSON", ContentEncoding: "UTF8"},
			want: Request{Method: "ping", Arguments: json.RawMessage(`{}`)},
		},
	} {
		got, err := DecodeRequest(tc.env)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		got.match = nil
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, *got, tc.want)
		}
	}
}

func TestDecodeRequestMalformed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		env     protocol.Envelope
		wantErr string
	}{
		{"pickle", protocol.Envelope{Body: []byte("x"), ContentType: "application/x-python-serialize"}, "content type"},
		{"no content type", protocol.Envelope{Body: []byte(`{"method":"ping"}`)}, "content type"},
		{"binary encoding", protocol.Envelope{Body: []byte(`{"method":"ping"}`), ContentType: "application/json", ContentEncoding: "binary"}, "content encoding"},
		{"compressed", protocol.Envelope{Body: []byte(`{"method":"ping"}`), ContentType: "application/json", Headers: map[string]any{"compression": "application/x-gzip"}}, "compressed"},
		{"invalid UTF-8", jsonEnv("{\"method\":\"\xff\"}", nil), "UTF-8"},
		{"not JSON", jsonEnv(`{"method":`, nil), "not a JSON object"},
		{"a list", jsonEnv(`["ping"]`, nil), "not a JSON object"},
		{"null", jsonEnv(`null`, nil), "not a JSON object"},
		{"no method", jsonEnv(`{"arguments":{}}`, nil), "no method"},
		{"empty method", jsonEnv(`{"method":""}`, nil), "method must be"},
		{"numeric method", jsonEnv(`{"method":5}`, nil), "method must be"},
		{"arguments a list", jsonEnv(`{"method":"ping","arguments":[1]}`, nil), "arguments must be an object"},
		{"destination a string", jsonEnv(`{"method":"ping","destination":"celery@a"}`, nil), "destination must be a list"},
		{"destination with a number", jsonEnv(`{"method":"ping","destination":["celery@a",1]}`, nil), "node names"},
		{"destination with null", jsonEnv(`{"method":"ping","destination":[null]}`, nil), "node names"},
		{"pattern a number", jsonEnv(`{"method":"ping","pattern":1,"matcher":"glob"}`, nil), "pattern must be a string"},
		{"unknown matcher", jsonEnv(`{"method":"ping","pattern":"x","matcher":"regex"}`, nil), "no matcher installed"},
		{"bad pcre", jsonEnv(`{"method":"ping","pattern":"(","matcher":"pcre"}`, nil), "pcre pattern"},
		{"ticket a number", jsonEnv(`{"method":"ping","ticket":7}`, nil), "ticket must be a string"},
		{"reply_to a string", jsonEnv(`{"method":"ping","reply_to":"q"}`, nil), "reply_to must be an object"},
		{"reply_to without routing_key", jsonEnv(`{"method":"ping","reply_to":{"exchange":"x"}}`, nil), "reply_to.routing_key"},
		{"reply_to null exchange", jsonEnv(`{"method":"ping","reply_to":{"exchange":null,"routing_key":"k"}}`, nil), "reply_to.exchange"},
		{"clock a string", jsonEnv(`{"method":"ping"}`, map[string]any{"clock": "1"}), "header clock"},
		{"expires a string", jsonEnv(`{"method":"ping"}`, map[string]any{"expires": "soon"}), "header expires"},
		{"expires negative", jsonEnv(`{"method":"ping"}`, map[string]any{"expires": -1.0}), "header expires"},
	} {
		_, err := DecodeRequest(tc.env)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: got %v, want ErrMalformed mentioning %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestRequestFor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body string
		node string
		want bool
	}{
		{`{"method":"ping"}`, "celery@a", true},
		{`{"method":"ping","destination":["celery@a"]}`, "celery@a", true},
		{`{"method":"ping","destination":["celery@a"]}`, "celery@b", false},
		{`{"method":"ping","destination":["celery@a"],"pattern":"*","matcher":"glob"}`, "celery@b", false}, // destination wins
		{`{"method":"ping","pattern":"celery@w*","matcher":"glob"}`, "celery@web1", true},
		{`{"method":"ping","pattern":"celery@w*","matcher":"glob"}`, "celery@db1", false},
		{`{"method":"ping","pattern":"celery@(web|db)\\d","matcher":"pcre"}`, "celery@db1", true},
		{`{"method":"ping","pattern":"web","matcher":"pcre"}`, "celery@web1", false},
		{`{"method":"ping","pattern":"celery@db*"}`, "celery@web1", true}, // no matcher: no filter
	} {
		r, err := DecodeRequest(jsonEnv(tc.body, nil))
		if err != nil {
			t.Fatal(err)
		}
		if got := r.For(tc.node); got != tc.want {
			t.Errorf("%s For(%s) = %v, want %v", tc.body, tc.node, got, tc.want)
		}
		// A request built by hand, without the compiled matcher, decides the same.
		hand := *r
		hand.match = nil
		if got := hand.For(tc.node); got != tc.want {
			t.Errorf("hand-built %s For(%s) = %v, want %v", tc.body, tc.node, got, tc.want)
		}
	}
}

func TestRequestExpiry(t *testing.T) {
	t.Parallel()
	now := time.Unix(1795630000, 0)
	for _, tc := range []struct {
		expires float64
		want    bool
	}{{0, false}, {1795630000.5, false}, {1795629999.5, true}, {1, true}} {
		r := &Request{Method: "ping", Expires: tc.expires}
		if got := r.Expired(now); got != tc.want {
			t.Errorf("Expires %v: Expired = %v, want %v", tc.expires, got, tc.want)
		}
		at, ok := r.ExpiresAt()
		if ok != (tc.expires > 0) || (ok && at.Sub(time.Unix(0, int64(tc.expires*1e9))).Abs() > time.Microsecond) {
			t.Errorf("Expires %v: ExpiresAt = %v, %v", tc.expires, at, ok)
		}
	}
}

func TestEncodeRequest(t *testing.T) {
	t.Parallel()
	env, err := EncodeRequest(&Request{Method: "rate_limit", Arguments: json.RawMessage(`{"task_name":"a<b","rate_limit":"10/m"}`),
		Destination: []string{"celery@é"}, Ticket: "t", ReplyTo: &ReplyTo{Exchange: "reply.celery.pidbox", RoutingKey: "k"},
		Clock: 1 << 33, Expires: 12.5})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"method": "rate_limit", "arguments": {"task_name": "a<b", "rate_limit": "10/m"}, "destination": ["celery@\u00e9"], "pattern": null, "matcher": null, "ticket": "t", "reply_to": {"exchange": "reply.celery.pidbox", "routing_key": "k"}}`
	if string(env.Body) != want {
		t.Errorf("body\n got %s\nwant %s", env.Body, want)
	}
	if env.Headers["clock"] != int64(1<<33) || env.Headers["expires"] != 12.5 || env.ContentType != "application/json" || env.DeliveryMode != 2 {
		t.Errorf("envelope %+v", env)
	}
	cast, err := EncodeRequest(&Request{Method: "shutdown"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"method": "shutdown", "arguments": {}, "destination": null, "pattern": null, "matcher": null}`; string(cast.Body) != want {
		t.Errorf("cast body %s", cast.Body)
	}
	if cast.Headers["clock"] != int32(0) || cast.Headers["expires"] != int32(0) {
		t.Errorf("cast headers %v", cast.Headers)
	}
	for _, bad := range []*Request{{}, {Method: "x", Arguments: json.RawMessage(`[1]`)}, {Method: "x", Arguments: json.RawMessage(`{`)}} {
		if _, err := EncodeRequest(bad); err == nil {
			t.Errorf("EncodeRequest(%+v) succeeded", bad)
		}
	}
}
