package canvas

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/testenv"
)

type fixture struct {
	Case     string `json:"case"`
	Messages []struct {
		Exchange   string `json:"exchange"`
		RoutingKey string `json:"routing_key"`
		Properties struct {
			CorrelationID string         `json:"correlation_id"`
			ReplyTo       string         `json:"reply_to"`
			Headers       map[string]any `json:"headers"`
		} `json:"properties"`
		Body string `json:"body"`
	} `json:"messages"`
}

func loadFixture(t *testing.T, name string) fixture {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.FixturesDir(t), name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(f.Messages) == 0 {
		t.Fatalf("%s: no messages", name)
	}
	return f
}

// ids returns a NewID that hands out the given ids in order and fails the
// test when asked for more.
func ids(t *testing.T, list ...string) func() string {
	return func() string {
		if len(list) == 0 {
			t.Fatal("NewID called more often than the fixture has ids")
			return ""
		}
		id := list[0]
		list = list[1:]
		return id
	}
}

// testSender encodes with the default configuration (no broker needed).
func testSender(a *Applier) *Sender {
	cfg := celery.Config{}.WithDefaults()
	router, err := celery.NewRouter(cfg)
	if err != nil {
		panic(err)
	}
	return &Sender{cfg: cfg, router: router, applier: a}
}

// checkGolden compares the built messages with the fixture's: routing key,
// correlation id, reply_to, every header but lang, and the body bytes.
func checkGolden(t *testing.T, f fixture, a *Applier, outs []Outgoing) {
	t.Helper()
	if len(outs) != len(f.Messages) {
		t.Fatalf("%s: %d messages, fixture has %d", f.Case, len(outs), len(f.Messages))
	}
	s := testSender(a)
	for i, o := range outs {
		want := f.Messages[i]
		pub, err := s.Envelope(o, time.Now())
		if err != nil {
			t.Fatalf("%s[%d]: %v", f.Case, i, err)
		}
		if pub.RoutingKey != want.RoutingKey || pub.Exchange != want.Exchange {
			t.Errorf("%s[%d]: published to %q/%q, want %q/%q", f.Case, i, pub.Exchange, pub.RoutingKey, want.Exchange, want.RoutingKey)
		}
		if string(pub.Body) != want.Body {
			t.Errorf("%s[%d]: body\n got %s\nwant %s", f.Case, i, pub.Body, want.Body)
		}
		if pub.CorrelationID != want.Properties.CorrelationID || pub.ReplyTo != want.Properties.ReplyTo {
			t.Errorf("%s[%d]: correlation_id/reply_to %q/%q, want %q/%q", f.Case, i, pub.CorrelationID, pub.ReplyTo,
				want.Properties.CorrelationID, want.Properties.ReplyTo)
		}
		got := map[string]any{}
		for k, v := range pub.Headers {
			got[k] = v
		}
		wantH := map[string]any{}
		for k, v := range want.Properties.Headers {
			wantH[k] = v
		}
		delete(got, "lang")
		delete(wantH, "lang")
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(wantH)
		if string(gj) != string(wj) {
			t.Errorf("%s[%d]: headers\n got %s\nwant %s", f.Case, i, gj, wj)
		}
	}
}

func hdr(f fixture, i int, key string) string {
	s, _ := f.Messages[i].Properties.Headers[key].(string)
	return s
}

// sigsInBody returns the embed signatures of a fixture message body.
func embedOf(t *testing.T, body string) protocol.Embed {
	t.Helper()
	var b []json.RawMessage
	if err := json.Unmarshal([]byte(body), &b); err != nil || len(b) != 3 {
		t.Fatalf("bad fixture body %s", body)
	}
	var e struct {
		Callbacks, Errbacks, Chain []protocol.Signature
		Chord                      *protocol.Signature
	}
	if err := json.Unmarshal(b[2], &e); err != nil {
		t.Fatal(err)
	}
	return protocol.Embed{Callbacks: e.Callbacks, Errbacks: e.Errbacks, Chain: e.Chain, Chord: e.Chord}
}

func TestGoldenClientCanvases(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		build func(f fixture) (Signature, func() string)
		check func(t *testing.T, f fixture, outs []Outgoing, res Result)
	}{
		{
			name: "v2_chain",
			build: func(f fixture) (Signature, func() string) {
				e := embedOf(t, f.Messages[0].Body)
				return Chain(S("tasks.add", 2, 2).TaskID(hdr(f, 0, "id")),
					S("tasks.add", 4).TaskID(FromProtocol(e.Chain[1]).ID()),
					S("tasks.mul", 8).TaskID(FromProtocol(e.Chain[0]).ID())), nil
			},
			check: func(t *testing.T, f fixture, outs []Outgoing, res Result) {
				e := embedOf(t, f.Messages[0].Body)
				if res.ID != FromProtocol(e.Chain[0]).ID() || res.Parent == nil || res.Parent.Parent == nil {
					t.Errorf("chain result %+v: want the last step with two parents", res)
				}
			},
		},
		{
			name: "v2_group",
			build: func(f fixture) (Signature, func() string) {
				var m []Signature
				for i := range 3 {
					m = append(m, S("tasks.add", i, i).TaskID(hdr(f, i, "id")))
				}
				return Group(m...).TaskID(hdr(f, 0, "group")), nil
			},
			check: func(t *testing.T, f fixture, outs []Outgoing, res Result) {
				if res.Group == nil || res.Group.ID != hdr(f, 0, "group") || len(res.Group.Results) != 3 ||
					res.Group.Results[2] != hdr(f, 2, "id") {
					t.Errorf("group result %+v", res.Group)
				}
			},
		},
		{
			name: "v2_chord",
			build: func(f fixture) (Signature, func() string) {
				e := embedOf(t, f.Messages[0].Body)
				h := Group(S("tasks.add", 1, 1).TaskID(hdr(f, 0, "id")), S("tasks.add", 2, 2).TaskID(hdr(f, 1, "id"))).
					TaskID(hdr(f, 0, "group"))
				return Chord(h, S("tasks.xsum").TaskID(FromProtocol(*e.Chord).ID())), nil
			},
			check: func(t *testing.T, f fixture, outs []Outgoing, res Result) {
				e := embedOf(t, f.Messages[0].Body)
				if outs[0].ChordSize != nil || outs[1].ChordSize == nil ||
					*outs[1].ChordSize != (ChordSize{GroupID: hdr(f, 0, "group"), Size: 2}) {
					t.Errorf("chord size: %+v %+v", outs[0].ChordSize, outs[1].ChordSize)
				}
				if res.ID != FromProtocol(*e.Chord).ID() {
					t.Errorf("chord result %q, want the body's id", res.ID)
				}
			},
		},
		{
			name: "v2_link_link_error",
			build: func(f fixture) (Signature, func() string) {
				return S("tasks.add", 1, 2).TaskID(hdr(f, 0, "id")).Link(S("tasks.mul", 10)).LinkError(S("tasks.on_error")), nil
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := loadFixture(t, tc.name)
			sig, newID := tc.build(f)
			if newID == nil {
				newID = ids(t)
			}
			a := &Applier{Origin: hdr(f, 0, "origin"), ReplyTo: f.Messages[0].Properties.ReplyTo, NewID: newID}
			outs, res, err := a.Apply(sig, Incoming{})
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, f, a, outs)
			if tc.check != nil {
				tc.check(t, f, outs, res)
			}
		})
	}
}

func TestGoldenWorkerSteps(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		run  func(t *testing.T, f fixture, a *Applier) []Outgoing
		// replyTo is the worker's own reply_to (the fixture's, when a
		// signature without reply_to is frozen by the worker).
		newIDs func(f fixture) []string
	}{
		{
			name: "v2_worker_chain_next_step",
			run: func(t *testing.T, f fixture, a *Applier) []Outgoing {
				rest := embedOf(t, f.Messages[0].Body).Chain
				next := S("tasks.add", 4).Queue("fx.next").TaskID(hdr(f, 0, "id")).Set("reply_to", f.Messages[0].Properties.ReplyTo)
				msg := &protocol.TaskMessage{ID: hdr(f, 0, "parent_id"), RootID: hdr(f, 0, "root_id"),
					Embed: protocol.Embed{Chain: append(rest, next.Signature)}}
				outs, err := a.NextChainStep(msg, json.RawMessage("4"))
				if err != nil {
					t.Fatal(err)
				}
				return outs
			},
		},
		{
			name: "v2_worker_link_callback",
			run: func(t *testing.T, f fixture, a *Applier) []Outgoing {
				msg := &protocol.TaskMessage{ID: hdr(f, 0, "parent_id"),
					Embed: protocol.Embed{Callbacks: []protocol.Signature{S("tasks.mul", 10).Queue("fx.next").Signature}}}
				outs, err := a.Callbacks(msg, json.RawMessage("3"))
				if err != nil {
					t.Fatal(err)
				}
				return outs
			},
			newIDs: func(f fixture) []string { return []string{hdr(f, 0, "id")} },
		},
		{
			name: "v2_worker_link_error",
			run: func(t *testing.T, f fixture, a *Applier) []Outgoing {
				failed := hdr(f, 0, "parent_id")
				msg := &protocol.TaskMessage{ID: failed,
					Embed: protocol.Embed{Errbacks: []protocol.Signature{S("other.errback").Queue("fx.next").Signature}}}
				outs, err := a.Errbacks(msg, failed, false)
				if err != nil {
					t.Fatal(err)
				}
				return outs
			},
			newIDs: func(f fixture) []string { return []string{hdr(f, 0, "id"), hdr(f, 0, "group")} },
		},
		{
			name: "v2_worker_chord_body",
			run: func(t *testing.T, f fixture, a *Applier) []Outgoing {
				body := S("tasks.xsum").Queue("fx.next").TaskID(hdr(f, 0, "id")).Set("reply_to", f.Messages[0].Properties.ReplyTo)
				member := &protocol.TaskMessage{ID: hdr(f, 0, "parent_id"), RootID: hdr(f, 0, "root_id")}
				outs, err := a.ChordBody(body.Signature, []json.RawMessage{json.RawMessage("10"), json.RawMessage("12")}, member)
				if err != nil {
					t.Fatal(err)
				}
				return outs
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := loadFixture(t, tc.name)
			var list []string
			if tc.newIDs != nil {
				list = tc.newIDs(f)
			}
			a := &Applier{Origin: hdr(f, 0, "origin"), ReplyTo: f.Messages[0].Properties.ReplyTo, NewID: ids(t, list...)}
			checkGolden(t, f, a, tc.run(t, f, a))
		})
	}
}

// TestGoldenV1Link: a protocol 1 message's link callback, decoded, is
// applied like a v2 one.
func TestGoldenV1Link(t *testing.T) {
	t.Parallel()
	f := loadFixture(t, "v1_chain_link")
	m := f.Messages[0]
	msg, err := protocol.Decode(protocol.Envelope{Body: []byte(m.Body), ContentType: "application/json",
		ContentEncoding: "utf-8", CorrelationID: m.Properties.CorrelationID}, protocol.Accept{})
	if err != nil {
		t.Fatal(err)
	}
	a := &Applier{Origin: "gen1@host", ReplyTo: "r", NewID: ids(t, "cb-id")}
	outs, err := a.Callbacks(msg, json.RawMessage("3"))
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 1 {
		t.Fatalf("%d messages, want 1", len(outs))
	}
	got := outs[0].Msg
	if got.Task != "tasks.mul" || got.ID != "cb-id" || protocol.ReprArgs(got.Args) != "(3, 10)" ||
		got.ParentID != msg.ID || got.RootID != msg.ID {
		t.Errorf("callback %s[%s] args %s parent %s root %s", got.Task, got.ID, protocol.ReprArgs(got.Args), got.ParentID, got.RootID)
	}
}
