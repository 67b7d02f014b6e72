package canvas

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"testing"

	"github.com/forumads/forumads/celery/backend"
	"github.com/forumads/forumads/celery/backend/memorybackend"
	"github.com/forumads/forumads/celery/protocol"
)

// runCanvas executes the messages outs as a Celery 5.2 worker would, one at a time in publishing
// order: add returns the sum of its int args, identity its first arg; after each task its
// callbacks and next chain step are applied, its result stored, and its chord part counted
// (the chord size stored first, as the publisher does); a completed chord's body is applied.
// It returns the store and the chord sizes stored, in order.
func runCanvas(t *testing.T, a *Applier, outs []Outgoing) (*memorybackend.Backend, []int) {
	t.Helper()
	ctx := context.Background()
	store := memorybackend.New(memorybackend.Options{})
	ran := map[string]bool{}
	var sizes []int
	queue := append([]Outgoing(nil), outs...)
	for len(queue) > 0 {
		if len(ran) > 1000 {
			t.Fatal("more than 1000 tasks run: the canvas does not end")
		}
		o := queue[0]
		queue = queue[1:]
		if o.ChordSize != nil {
			if err := store.SetChordSize(ctx, o.ChordSize.GroupID, o.ChordSize.Size); err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, o.ChordSize.Size)
		}
		m := o.Msg
		if _, dup := ran[m.ID]; dup {
			t.Fatalf("task id %s published twice", m.ID)
		}
		ran[m.ID] = true
		var result json.RawMessage
		switch m.Task {
		case "add":
			sum := 0
			for _, arg := range m.Args {
				n, err := strconv.Atoi(string(arg))
				if err != nil {
					t.Fatalf("add%s: %v", protocol.ReprArgs(m.Args), err)
				}
				sum += n
			}
			result = json.RawMessage(strconv.Itoa(sum))
		case "identity":
			result = m.Args[0]
		default:
			t.Fatalf("unknown task %s", m.Task)
		}
		cbs, err := a.Callbacks(m, result)
		if err != nil {
			t.Fatal(err)
		}
		next, err := a.NextChainStep(m, result)
		if err != nil {
			t.Fatal(err)
		}
		queue = append(append(queue, cbs...), next...)
		meta := protocol.ResultMeta{TaskID: m.ID, Status: protocol.StateSuccess, Result: result, GroupID: m.GroupID}
		if err := store.Store(ctx, meta); err != nil {
			t.Fatal(err)
		}
		if m.Embed.Chord == nil || m.GroupID == "" {
			continue
		}
		done, err := store.OnChordPartReturn(ctx, backend.ChordPart{GroupID: m.GroupID, TaskID: m.ID,
			GroupIndex: m.GroupIndex, State: protocol.StateSuccess, Result: result})
		if err != nil {
			t.Fatal(err)
		}
		if !done.Complete {
			continue
		}
		if done.Err != nil {
			t.Fatalf("chord %s failed: %s", m.GroupID, done.Err.Message)
		}
		body, err := a.ChordBody(*m.Embed.Chord, done.Results, m)
		if err != nil {
			t.Fatal(err)
		}
		queue = append(queue, body...)
	}
	return store, sizes
}

// TestNestedShapes: the nested canvases of Celery's integration suite, applied as Celery's client
// and worker apply them, finish with Python's result: every part counted in the chord whose body
// waits for it, and the chord sizes those of Celery's chord._descend.
func TestNestedShapes(t *testing.T) {
	t.Parallel()
	add := func(a ...any) Signature { return SI("add", a...) }
	id := func(a ...any) Signature { return SI("identity", a...) }
	cases := []struct {
		name  string
		sig   Signature
		want  string
		sizes []int // chord sizes stored, in order
	}{
		// test_canvas.py::test_chord::test_nested_group_chain: a group member chain ending in a
		// group; its group's members are the chord's parts (size 1 + 2).
		{"group member chain ending in a group",
			Chain(add(1, 0), Group(add(1, 100), Chain(add(1, 200), Group(add(1, 1000), add(1, 2000)))), add(1, 10)),
			"11", []int{3}},
		// test_chain_chord_chain_chord: a chord at the end of a chain in a chord header; its body
		// is the outer chord's part.
		{"chord ending a chain in a chord header",
			Chain(id(1), Chord(Group(id(2), Chain(id(3), Chord(Group(id(4), id(5)), id(6)))), id(7))),
			"7", []int{2, 2}},
		// A chord directly in a chord header, and a group in a group (unrolled).
		{"chord and group in a chord header",
			Chord(Group(Chord(Group(add(1, 1), add(2, 2)), S("identity")), Group(add(3, 3), add(4, 4))), S("identity")),
			"[[2, 4], 6, 8]", []int{2, 3}},
		// The results of a chain ending in a group are flat in the outer chord's body without a
		// saved header (Celery saves one; see the README).
		{"chain ending in a group in a chord header",
			Chord(Group(Chain(SI("identity", 42), Group(S("identity"), S("identity")))), S("identity")),
			"[42, 42]", []int{2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := &Applier{Origin: "o", ReplyTo: "r", NewID: seqIDs()}
			outs, res, err := a.Apply(tc.sig, Incoming{})
			if err != nil {
				t.Fatal(err)
			}
			store, sizes := runCanvas(t, a, outs)
			if !slices.Equal(sizes, tc.sizes) {
				t.Errorf("chord sizes %v, want %v", sizes, tc.sizes)
			}
			meta, err := store.Get(context.Background(), res.ID)
			if err != nil || meta.Status != protocol.StateSuccess || string(meta.Result) != tc.want {
				t.Errorf("result %s: %s %s (%v), want %s", res.ID, meta.Status, meta.Result, err, tc.want)
			}
		})
	}
}

// TestChainMembershipOnLastStep: a chain whose options carry group_id, group_index and chord (what
// Celery's chord.run leaves on a chord body that is a chain, when the chord is itself a header
// member: test_replaced_nested_chord) counts in that chord through its last step only, as
// Celery's prepare_steps freezes it; its first step is no member (its result must not complete
// the outer chord).
func TestChainMembershipOnLastStep(t *testing.T) {
	t.Parallel()
	body := Chain(S("add_to_all", 5), S("tsum")).Set("group_id", "outer").Set("group_index", 1).
		Set("chord", S("add_to_all", 9)).Queue("q")
	a := &Applier{NewID: seqIDs()}
	outs, err := a.ChordBody(body.Signature, []json.RawMessage{json.RawMessage("3"), json.RawMessage("7")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 1 {
		t.Fatalf("%d messages, want 1", len(outs))
	}
	first := outs[0]
	if first.Msg.Task != "add_to_all" || first.Msg.GroupID != "" || first.Msg.GroupIndex != nil || first.Msg.Embed.Chord != nil {
		t.Errorf("first step %s: group %q, index %v, chord %v: want no membership", first.Msg.Task, first.Msg.GroupID,
			first.Msg.GroupIndex, first.Msg.Embed.Chord)
	}
	if first.Route.Queue != "q" {
		t.Errorf("first step queue %q, want the chain's q", first.Route.Queue)
	}
	if len(first.Msg.Embed.Chain) != 1 {
		t.Fatalf("embed.chain %d steps, want 1", len(first.Msg.Embed.Chain))
	}
	next, err := a.NextChainStep(first.Msg, json.RawMessage("[8, 12]"))
	if err != nil || len(next) != 1 {
		t.Fatalf("next step %v, %v", next, err)
	}
	last := next[0].Msg
	if last.Task != "tsum" || last.GroupID != "outer" || last.GroupIndex == nil || *last.GroupIndex != 1 ||
		last.Embed.Chord == nil || last.Embed.Chord.Task != "add_to_all" {
		t.Errorf("last step %s: group %q, index %v, chord %v: want outer, 1, add_to_all", last.Task, last.GroupID, last.GroupIndex, last.Embed.Chord)
	}
}
