package canvas

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/memorybroker"
	"github.com/forumads/forumads/celery/protocol"
)

// replaced applies Replacement(req, sig) as Replace publishes it and returns the messages.
func replaced(t *testing.T, req *celery.Request, sig Signature) []Outgoing {
	t.Helper()
	s := testSender(&Applier{NewID: seqIDs()})
	full, err := s.Replacement(req, sig)
	if err != nil {
		t.Fatal(err)
	}
	outs, _, err := s.applier.Apply(full, childOf(req))
	if err != nil {
		t.Fatal(err)
	}
	return outs
}

func names(sigs []protocol.Signature) string {
	var out []string
	for _, s := range sigs {
		out = append(out, s.Task)
	}
	return strings.Join(out, ",")
}

// TestReplacement checks Replace's rules against Celery 5.2's Task.replace.
func TestReplacement(t *testing.T) {
	t.Parallel()
	gi := 1
	chordBody := S("body").TaskID("body-id").Signature
	for _, tc := range []struct {
		name  string
		req   celery.Request
		sig   Signature
		check func(t *testing.T, outs []Outgoing)
	}{
		{"a task takes the id, root and parent", celery.Request{ID: "r", RootID: "root"}, S("add", 1, 2),
			func(t *testing.T, outs []Outgoing) {
				m := outs[0].Msg
				if len(outs) != 1 || m.ID != "r" || m.RootID != "root" || m.ParentID != "r" || m.Task != "add" {
					t.Errorf("%+v", m)
				}
				if m.ExtraHeaders["replaced_task_nesting"] != float64(1) {
					t.Errorf("replaced_task_nesting %v", m.ExtraHeaders)
				}
			}},
		{"nesting counts up", celery.Request{ID: "r", ReplacedTaskNesting: 2}, S("add"),
			func(t *testing.T, outs []Outgoing) {
				if outs[0].Msg.ExtraHeaders["replaced_task_nesting"] != float64(3) || outs[0].Msg.RootID != "r" {
					t.Errorf("%+v", outs[0].Msg)
				}
			}},
		{"callbacks and errbacks carried over", celery.Request{ID: "r", Embed: protocol.Embed{
			Callbacks: []protocol.Signature{S("cb").Signature}, Errbacks: []protocol.Signature{S("eb").Signature}}},
			Chain(S("a"), S("b")),
			func(t *testing.T, outs []Outgoing) {
				m := outs[0].Msg
				if m.Task != "a" || names(m.Embed.Errbacks) != "eb" || len(m.Embed.Callbacks) != 0 || len(m.Embed.Chain) != 1 {
					t.Fatalf("first step %+v", m)
				}
				last := FromProtocol(m.Embed.Chain[0])
				if last.Task != "b" || last.ID() != "r" {
					t.Errorf("last step %s id %s, want b with the replaced id", last.Task, last.ID())
				}
				cbs, _ := last.signatureList("link")
				ebs, _ := last.signatureList("link_error")
				if names(cbs) != "cb" || names(ebs) != "eb" {
					t.Errorf("last step links %s errbacks %s", names(cbs), names(ebs))
				}
			}},
		{"a group becomes a chord with celery.accumulate", celery.Request{ID: "r"}, Group(S("a"), S("b")),
			func(t *testing.T, outs []Outgoing) {
				if len(outs) != 2 || outs[0].Msg.Embed.Chord == nil || outs[1].ChordSize == nil || outs[1].ChordSize.Size != 2 {
					t.Fatalf("%+v", outs)
				}
				body := FromProtocol(*outs[0].Msg.Embed.Chord)
				if body.Task != TaskAccumulate || body.ID() != "r" || string(body.Kwargs["index"]) != "0" {
					t.Errorf("body %s id %s kwargs %s", body.Task, body.ID(), body.Kwargs)
				}
			}},
		{"the rest of the chain runs after", celery.Request{ID: "r", Embed: protocol.Embed{
			Chain: []protocol.Signature{S("last").Signature, S("next").Signature}}}, S("new"),
			func(t *testing.T, outs []Outgoing) {
				m := outs[0].Msg
				if m.Task != "new" || m.ID != "r" || names(m.Embed.Chain) != "last,next" {
					t.Errorf("%s[%s] chain %s", m.Task, m.ID, names(m.Embed.Chain))
				}
			}},
		{"a chord header member still counts", celery.Request{ID: "r", GroupID: "g", GroupIndex: &gi,
			Embed: protocol.Embed{Chord: &chordBody}}, Chain(S("a"), S("b")),
			func(t *testing.T, outs []Outgoing) {
				m := outs[0].Msg
				if m.GroupID != "" || m.Embed.Chord != nil {
					t.Errorf("first step is in the chord: %+v", m)
				}
				last := FromProtocol(m.Embed.Chain[0])
				var gid string
				var idx int
				_, _ = last.option("group_id", &gid)
				_, _ = last.option("group_index", &idx)
				body, err := Decode(last.Options["chord"])
				if gid != "g" || idx != 1 || err != nil || body.Task != "body" || last.ID() != "r" {
					t.Errorf("last step %s: group %s index %d chord %s %v", last.ID(), gid, idx, body.Task, err)
				}
			}},
		{"a chord's body takes the id", celery.Request{ID: "r"}, Chord(Group(S("a")), S("b")),
			func(t *testing.T, outs []Outgoing) {
				if body := FromProtocol(*outs[0].Msg.Embed.Chord); body.ID() != "r" {
					t.Errorf("body id %s", body.ID())
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := tc.req
			tc.check(t, replaced(t, &req, tc.sig))
		})
	}
}

func TestReplaceRefuses(t *testing.T) {
	t.Parallel()
	s := testSender(&Applier{})
	for _, tc := range []struct {
		name string
		sig  Signature
		want string
	}{
		{"an empty chain", Chain(), "Cannot replace with an empty chain"},
		{"a chord member", S("a").Set("chord", S("b")), "A signature replacing a task must not be part of a chord"},
	} {
		err := s.Replace(context.Background(), &celery.Request{ID: "r"}, tc.sig)
		var ic *ImproperlyConfiguredError
		if !errors.As(err, &ic) || ic.Error() != tc.want || ic.ExcType() != "ImproperlyConfigured" || ic.ExcModule() != "celery.exceptions" {
			t.Errorf("%s: %v", tc.name, err)
		}
		if errors.Is(err, celery.ErrIgnore) {
			t.Errorf("%s: a refused replacement must fail the task, not be ignored", tc.name)
		}
	}
}

// TestReplacePublishes: Replace publishes the replacement and returns ErrReplaced (an Ignore).
func TestReplacePublishes(t *testing.T) {
	t.Parallel()
	br := memorybroker.New()
	t.Cleanup(func() { _ = br.Close() })
	s, err := NewSender(celery.Config{BrokerURL: "memory://"}, br, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Replace(context.Background(), &celery.Request{ID: "r", Task: "t"}, S("add", 1))
	if !errors.Is(err, ErrReplaced) || !errors.Is(err, celery.ErrIgnore) {
		t.Fatalf("Replace: %v, want ErrReplaced", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ch, err := br.Consume(ctx, []broker.Queue{{Name: "celery", Exchange: "celery", RoutingKey: "celery"}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-ch:
		accept, _ := protocol.NewAccept([]string{"json"})
		m, err := protocol.Decode(d.Envelope, accept)
		if err != nil || m.ID != "r" || m.Task != "add" || m.ParentID != "r" {
			t.Errorf("published %+v, %v", m, err)
		}
		_ = d.Ack()
	case <-ctx.Done():
		t.Fatal("the replacement was not published")
	}
	cancel()
	_ = br.StopConsuming(context.Background())
}

func TestAccumulate(t *testing.T) {
	t.Parallel()
	reg := celery.NewRegistry()
	if err := RegisterBuiltins(reg); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		args   string
		kwargs string
		want   string
		err    bool
	}{
		{"index 0", `[[1, 2]]`, `{"index": 0}`, `[1, 2]`, false},
		{"negative index", `[1, 2, 3]`, `{"index": -1}`, `3`, false},
		{"no index: all args", `[1, 2]`, `{}`, `[1,2]`, false},
		{"index None: all args", `[1]`, `{"index": null}`, `[1]`, false},
		{"nothing", `[]`, `{}`, `[]`, false},
		{"out of range", `[1]`, `{"index": 1}`, "", true},
		{"bad index", `[1]`, `{"index": "x"}`, "", true},
	} {
		var args []json.RawMessage
		var kwargs map[string]json.RawMessage
		_ = json.Unmarshal([]byte(tc.args), &args)
		_ = json.Unmarshal([]byte(tc.kwargs), &kwargs)
		got, err := reg.Apply(context.Background(), TaskAccumulate, args, kwargs)
		if tc.err != (err != nil) || (!tc.err && string(got) != tc.want) {
			t.Errorf("%s: %s, %v; want %s", tc.name, got, err, tc.want)
		}
	}
}

func TestResultAsTuple(t *testing.T) {
	t.Parallel()
	g := Result{ID: "g", Group: &GroupResult{ID: "g", Results: []string{"a", "b"}}, Parent: &Result{ID: "p"}}
	for _, tc := range []struct {
		r    Result
		want string
	}{
		{Result{ID: "t"}, `[["t", null], null]`},
		{Result{ID: "t", Parent: &Result{ID: "p"}}, `[["t", [["p", null], null]], null]`},
		{g, `[["g", [["p", null], null]], [[["a", null], null], [["b", null], null]]]`},
		{Result{ID: "body", Parent: &g}, `[["body", [["g", [["p", null], null]], [[["a", null], null], [["b", null], null]]]], null]`},
	} {
		if got := string(tc.r.AsTuple()); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.r, got, tc.want)
		}
	}
}
