package canvas

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/backend/redisbackend"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/testenv"
)

// seqIDs numbers ids id0, id1, ... in the order they are made.
func seqIDs() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("id%d", n-1) }
}

func argsOf(o Outgoing) string { return protocol.ReprArgs(o.Msg.Args) }

func TestApplyRules(t *testing.T) {
	t.Parallel()
	add := func(a ...any) Signature { return S("add", a...) }
	cases := []struct {
		name  string
		sig   Signature
		in    Incoming
		check func(t *testing.T, outs []Outgoing, res Result)
	}{
		{"partial args prepended", add(2), Incoming{Args: []json.RawMessage{json.RawMessage("1")}},
			func(t *testing.T, outs []Outgoing, res Result) {
				if argsOf(outs[0]) != "(1, 2)" {
					t.Errorf("args %s", argsOf(outs[0]))
				}
			}},
		{"immutable ignores parent result", SI("add", 2, 3), Incoming{Args: []json.RawMessage{json.RawMessage("1")}},
			func(t *testing.T, outs []Outgoing, res Result) {
				if argsOf(outs[0]) != "(2, 3)" {
					t.Errorf("args %s", argsOf(outs[0]))
				}
			}},
		{"options become headers and route", add(1).Queue("q").Priority(7).Countdown(10).Shadow("sh").
			TimeLimit(30, 20).IgnoreResult(true).Expires(60),
			Incoming{}, func(t *testing.T, outs []Outgoing, res Result) {
				o := outs[0]
				if o.Route.Queue != "q" || o.Route.Priority == nil || *o.Route.Priority != 7 || o.Countdown == nil ||
					*o.Countdown != 10 || o.Msg.Shadow != "sh" || *o.Msg.TimeLimit.Hard != 30 || *o.Msg.TimeLimit.Soft != 20 ||
					!o.Msg.IgnoreResult || o.ExpiresIn == nil || *o.ExpiresIn != 60 {
					t.Errorf("%+v %+v", o, o.Msg)
				}
				s := testSender(&Applier{})
				pub, err := s.Envelope(o, time.Unix(1000, 0).UTC())
				if err != nil || pub.RoutingKey != "q" || pub.Priority != 7 || pub.Headers["eta"] == nil || pub.Expiration != "60000" {
					t.Errorf("envelope %+v, %v", pub, err)
				}
			}},
		{"chain: first published, rest reversed", Chain(add(1, 2), add(3), add(4)), Incoming{},
			func(t *testing.T, outs []Outgoing, res Result) {
				if len(outs) != 1 || outs[0].Msg.ID != "id0" || len(outs[0].Msg.Embed.Chain) != 2 ||
					outs[0].Msg.Embed.Chain[0].Task != "add" || string(outs[0].Msg.Embed.Chain[0].Args[0]) != "4" {
					t.Fatalf("%+v", outs[0].Msg.Embed.Chain)
				}
				if res.ID != "id2" || res.Parent.ID != "id1" || res.Parent.Parent.ID != "id0" {
					t.Errorf("result chain %+v", res)
				}
			}},
		{"nested chains flattened", Chain(Chain(add(1, 2), add(3)), add(4)), Incoming{},
			func(t *testing.T, outs []Outgoing, res Result) {
				if len(outs[0].Msg.Embed.Chain) != 2 {
					t.Errorf("chain %v", outs[0].Msg.Embed.Chain)
				}
			}},
		{"chain options reach every step", Chain(add(1, 2), add(3).Queue("own")).Queue("q"), Incoming{},
			func(t *testing.T, outs []Outgoing, res Result) {
				step := FromProtocol(outs[0].Msg.Embed.Chain[0])
				if outs[0].Route.Queue != "q" || string(step.Options["queue"]) != `"own"` {
					t.Errorf("first %q, second %s", outs[0].Route.Queue, step.Options["queue"])
				}
			}},
		{"group then task in a chain is a chord", Chain(Group(add(1, 1), add(2, 2)), S("xsum")), Incoming{},
			func(t *testing.T, outs []Outgoing, res Result) {
				if len(outs) != 2 || outs[0].Msg.Embed.Chord == nil || outs[0].Msg.Embed.Chord.Task != "xsum" ||
					*outs[1].Msg.GroupIndex != 1 || outs[1].ChordSize == nil || outs[1].ChordSize.Size != 2 {
					t.Errorf("%+v", outs)
				}
				if res.ID != FromProtocol(*outs[0].Msg.Embed.Chord).ID() {
					t.Errorf("result %s is not the chord body", res.ID)
				}
			}},
		{"chord then task in a chain: the rest follows the body", Chain(Chord(Group(add(1, 1)), S("xsum")), add(5)), Incoming{},
			func(t *testing.T, outs []Outgoing, res Result) {
				body := FromProtocol(*outs[0].Msg.Embed.Chord)
				if body.SubtaskType != TypeChain {
					t.Fatalf("body %s", mustJSON(body))
				}
				steps, _ := body.Tasks()
				if len(steps) != 2 || steps[0].Task != "xsum" || steps[1].Task != "add" || res.ID != steps[1].ID() {
					t.Errorf("body steps %s, result %s", mustJSON(body), res.ID)
				}
			}},
		{"group members share the group id, no index", Group(add(1, 1), add(2, 2)), Incoming{},
			func(t *testing.T, outs []Outgoing, res Result) {
				for i, o := range outs {
					if o.Msg.GroupID != res.ID || o.Msg.GroupIndex != nil || o.Msg.RootID != o.Msg.ID || res.Group.Results[i] != o.Msg.ID {
						t.Errorf("member %d: %+v", i, o.Msg)
					}
				}
			}},
		{"group partial args go to every member", Group(add(1), add(2)), Incoming{Args: []json.RawMessage{json.RawMessage("10")}},
			func(t *testing.T, outs []Outgoing, res Result) {
				if argsOf(outs[0]) != "(10, 1)" || argsOf(outs[1]) != "(10, 2)" {
					t.Errorf("%s %s", argsOf(outs[0]), argsOf(outs[1]))
				}
			}},
		{"empty chord publishes the body with []", Chord(Group(), S("xsum")), Incoming{},
			func(t *testing.T, outs []Outgoing, res Result) {
				if len(outs) != 1 || outs[0].Msg.Task != "xsum" || argsOf(outs[0]) != "([],)" {
					t.Errorf("%+v", outs)
				}
			}},
		{"chord link goes to the body", Chord(Group(add(1, 1)), S("xsum")).Link(S("cb")), Incoming{},
			func(t *testing.T, outs []Outgoing, res Result) {
				if string(outs[0].Msg.Embed.Chord.Options["link"]) == "" {
					t.Errorf("body %s", mustJSON(FromProtocol(*outs[0].Msg.Embed.Chord)))
				}
			}},
		{"chain link_error on every step, link on the last", Chain(add(1, 2), add(3)).Link(S("cb")).LinkError(S("eb")), Incoming{},
			func(t *testing.T, outs []Outgoing, res Result) {
				last := FromProtocol(outs[0].Msg.Embed.Chain[0])
				if len(outs[0].Msg.Embed.Callbacks) != 0 || len(outs[0].Msg.Embed.Errbacks) != 1 ||
					last.Options["link"] == nil || last.Options["link_error"] == nil {
					t.Errorf("first %+v, last %s", outs[0].Msg.Embed, mustJSON(last))
				}
			}},
		{"chain in a chord header: group and chord on its last step", Chord(Group(Chain(add(1, 1), add(1)), add(2, 2)), S("xsum")), Incoming{},
			func(t *testing.T, outs []Outgoing, res Result) {
				if len(outs) != 2 || outs[0].Msg.GroupID != "" || outs[0].Msg.Embed.Chord != nil || len(outs[0].Msg.Embed.Chain) != 1 {
					t.Fatalf("first member %+v", outs[0].Msg)
				}
				last := FromProtocol(outs[0].Msg.Embed.Chain[0])
				if string(last.Options["group_id"]) != `"`+outs[1].Msg.GroupID+`"` || string(last.Options["group_index"]) != "0" ||
					last.Options["chord"] == nil || *outs[1].Msg.GroupIndex != 1 || outs[1].ChordSize.Size != 2 {
					t.Errorf("last step %s, second member %+v", mustJSON(last), outs[1].Msg)
				}
				// The worker applying that step publishes it as a header member.
				a := &Applier{NewID: seqIDs()}
				next, err := a.NextChainStep(outs[0].Msg, json.RawMessage("2"))
				if err != nil || next[0].Msg.GroupID != outs[1].Msg.GroupID || *next[0].Msg.GroupIndex != 0 || next[0].Msg.Embed.Chord == nil {
					t.Errorf("applied last step %+v, %v", next, err)
				}
			}},
		{"group link: first member, immutable; link_error: every member", Group(add(1), add(2)).Link(S("cb", 1)).LinkError(S("eb")), Incoming{},
			func(t *testing.T, outs []Outgoing, res Result) {
				cb := outs[0].Msg.Embed.Callbacks
				if len(cb) != 1 || !cb[0].Immutable || len(outs[1].Msg.Embed.Callbacks) != 0 ||
					len(outs[0].Msg.Embed.Errbacks) != 1 || len(outs[1].Msg.Embed.Errbacks) != 1 {
					t.Errorf("%+v / %+v", outs[0].Msg.Embed, outs[1].Msg.Embed)
				}
			}},
		{"workflow ids from the incoming context", add(1), Incoming{ParentID: "p", RootID: "r"},
			func(t *testing.T, outs []Outgoing, res Result) {
				if outs[0].Msg.ParentID != "p" || outs[0].Msg.RootID != "r" {
					t.Errorf("%+v", outs[0].Msg)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := &Applier{Origin: "o", ReplyTo: "r", NewID: seqIDs()}
			outs, res, err := a.Apply(tc.sig, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, outs, res)
		})
	}
}

func TestApplyErrors(t *testing.T) {
	t.Parallel()
	cases := map[string]Signature{
		"empty chain":        Chain(),
		"bad queue option":   S("a").Set("queue", 5),
		"bad link option":    S("a").Set("link", "x"),
		"bad eta":            S("a").Set("eta", "tomorrow"),
		"unknown type":       FromProtocol(protocol.Signature{Task: "x", SubtaskType: "xmap"}),
		"group without list": FromProtocol(protocol.Signature{Task: "celery.group", SubtaskType: "group"}),
	}
	for name, sig := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, _, err := (&Applier{}).Apply(sig, Incoming{}); err == nil || !strings.Contains(err.Error(), "canvas") {
				t.Errorf("Apply = %v, want a canvas error", err)
			}
		})
	}
}

func TestWorkerHelpers(t *testing.T) {
	t.Parallel()
	a := &Applier{Origin: "w", ReplyTo: "r", NewID: seqIDs()}
	grp := Group(S("g1"), S("g2"))
	msg := &protocol.TaskMessage{ID: "t", RootID: "root", Embed: protocol.Embed{
		Callbacks: []protocol.Signature{S("c1").Signature, S("c2", 9).Signature, grp.Signature},
		Errbacks:  []protocol.Signature{S("e1").Signature},
	}}
	outs, err := a.Callbacks(msg, json.RawMessage("5"))
	if err != nil {
		t.Fatal(err)
	}
	// The group callback alone, then c1 and c2 as one new group.
	if len(outs) != 4 || outs[0].Msg.Task != "g1" || outs[2].Msg.Task != "c1" || argsOf(outs[3]) != "(5, 9)" ||
		outs[2].Msg.GroupID == "" || outs[2].Msg.GroupID != outs[3].Msg.GroupID || outs[0].Msg.GroupID == outs[2].Msg.GroupID {
		t.Errorf("callbacks %+v", outs)
	}
	for _, o := range outs {
		if o.Msg.ParentID != "t" || o.Msg.RootID != "root" {
			t.Errorf("callback %s ids %s/%s", o.Msg.Task, o.Msg.ParentID, o.Msg.RootID)
		}
	}
	if none, err := a.NextChainStep(msg, json.RawMessage("1")); err != nil || none != nil {
		t.Errorf("no chain: %v, %v", none, err)
	}
	// Errbacks are not published for a chord header member unless allowed.
	member := *msg
	body := S("body").Signature
	member.Embed.Chord = &body
	if outs, err := a.Errbacks(&member, "t", false); err != nil || len(outs) != 0 {
		t.Errorf("chord header errbacks: %v, %v", outs, err)
	}
	if outs, err := a.Errbacks(&member, "t", true); err != nil || len(outs) != 1 || argsOf(outs[0]) != "('t',)" {
		t.Errorf("allowed chord header errbacks: %v, %v", outs, err)
	}

	// A popped step that is a group is expanded, with the rest of the chain after it.
	chained := &protocol.TaskMessage{ID: "t", Embed: protocol.Embed{Chain: []protocol.Signature{
		S("last").Signature, grp.Signature}}}
	outs, err = a.NextChainStep(chained, json.RawMessage("2"))
	if err != nil || len(outs) != 2 || outs[0].Msg.Embed.Chord == nil || outs[0].Msg.Embed.Chord.Task != "last" {
		t.Errorf("group step: %+v, %v", outs, err)
	}

	gi := 3
	failed := &protocol.TaskMessage{ID: "t", Embed: protocol.Embed{Chain: []protocol.Signature{
		S("c").TaskID("c-id").Set("chord", S("body")).Set("group_id", "g").Set("group_index", gi).Signature,
		S("no-id").Signature,
		S("b").TaskID("b-id").Signature,
	}}}
	fs, err := ChainFailures(failed)
	if err != nil || len(fs) != 2 || fs[0].TaskID != "c-id" || fs[0].Chord == nil || fs[0].GroupID != "g" ||
		*fs[0].GroupIndex != 3 || fs[1].TaskID != "b-id" || fs[1].Chord != nil {
		t.Errorf("chain failures %+v, %v", fs, err)
	}
	bad := &protocol.TaskMessage{Embed: protocol.Embed{Chain: []protocol.Signature{S("x").Set("task_id", 1).Signature}}}
	if _, err := ChainFailures(bad); err == nil {
		t.Error("ChainFailures accepted a numeric task_id")
	}
}

func TestGroupResultRedis(t *testing.T) {
	t.Parallel()
	rc := testenv.Redis(t)
	prefix := "t:" + testenv.Suffix() + ":"
	ctx := context.Background()
	g := GroupResult{ID: "g-1", Results: []string{"a", "b"}}
	testenv.DeleteKeysAtCleanup(t, rc, GroupKey(prefix, g.ID))
	store := redisbackend.New(rc, redisbackend.Options{KeyPrefix: prefix, Expires: time.Hour})
	if err := SaveGroup(ctx, store, g); err != nil {
		t.Fatal(err)
	}
	raw, err := rc.Get(ctx, GroupKey(prefix, g.ID)).Result()
	if want := `{"result": [["g-1", null], [[["a", null], null], [["b", null], null]]]}`; err != nil || raw != want {
		t.Errorf("stored %s (%v), want %s", raw, err, want)
	}
	if ttl := rc.TTL(ctx, GroupKey(prefix, g.ID)).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("ttl %v", ttl)
	}
	if raw != string(g.MarshalGroupMeta()) {
		t.Errorf("stored %s, but MarshalGroupMeta is %s", raw, g.MarshalGroupMeta())
	}
	back, err := RestoreGroup(ctx, store, g.ID)
	if err != nil || back.ID != g.ID || len(back.Results) != 2 || back.Results[1] != "b" {
		t.Errorf("restored %+v, %v", back, err)
	}
	if _, err := RestoreGroup(ctx, store, "missing"); !errors.Is(err, ErrGroupNotFound) {
		t.Errorf("restoring a missing group: %v, want ErrGroupNotFound", err)
	}
	if err := SaveGroup(ctx, store, GroupResult{}); err == nil {
		t.Error("saved a group without id")
	}
	if got := string(Children(Result{ID: "x"}, Result{ID: "g-1", Group: &g})); got !=
		`[[["x", null], null], [["g-1", null], [[["a", null], null], [["b", null], null]]]]` {
		t.Errorf("children %s", got)
	}
	if got := string(Children()); got != "[]" {
		t.Errorf("no children %s", got)
	}
}

func FuzzParseGroupMeta(f *testing.F) {
	f.Add([]byte(`{"result": [["g", null], [[["a", null], null], [["b", null], null]]]}`))
	f.Add([]byte(`{"result": [["g", null], []]}`))
	f.Add([]byte(`{"result": [["g", null], [[["g2", null], [[["a", null], null]]]]]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := ParseGroupMeta(data)
		if err != nil {
			return
		}
		// What parses re-encodes in Celery's shape and parses back the same.
		again, err := ParseGroupMeta(g.MarshalGroupMeta())
		if err != nil || again.ID != g.ID || len(again.Results) != len(g.Results) {
			t.Fatalf("round trip of %s: %+v, %v", data, again, err)
		}
		for i := range g.Results {
			if again.Results[i] != g.Results[i] {
				t.Fatalf("member %d: %q != %q", i, again.Results[i], g.Results[i])
			}
		}
	})
}
