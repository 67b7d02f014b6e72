package canvas_test

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/forumads/forumads/celery/canvas"
)

// list prints JSON args as a Python list.
func list(args []json.RawMessage) string {
	s := make([]string, len(args))
	for i, a := range args {
		s[i] = string(a)
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// ids returns a deterministic id maker for the examples ("id-1", "id-2", ...).
func ids() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("id-%d", n) }
}

// A chain is one message: the first step, with the rest in embed.chain (last element next).
func ExampleChain() {
	a := &canvas.Applier{Origin: "gen1@host", NewID: ids()}
	outs, res, err := a.Apply(canvas.Chain(canvas.S("diag.add", 1, 2), canvas.S("diag.add", 3), canvas.S("diag.add", 4)), canvas.Incoming{})
	if err != nil {
		panic(err)
	}
	m := outs[0].Msg
	fmt.Println(len(outs), "message:", m.Task, m.ID, list(m.Args))
	for _, step := range m.Embed.Chain {
		fmt.Println("then (reversed):", step.Task, list(step.Args))
	}
	fmt.Println("result:", res.ID, "parent:", res.Parent.ID)
	// Output:
	// 1 message: diag.add id-1 [1, 2]
	// then (reversed): diag.add [4]
	// then (reversed): diag.add [3]
	// result: id-3 parent: id-2
}

// A chord publishes its header members, each carrying the body in embed.chord; the chord size
// (ChordSize, on the last member) is stored in Redis right before that member is published.
func ExampleChord() {
	a := &canvas.Applier{Origin: "gen1@host", NewID: ids()}
	outs, res, err := a.Apply(canvas.Chord(canvas.Group(canvas.S("diag.add", 1, 1), canvas.S("diag.add", 2, 2)), canvas.S("diag.sum")), canvas.Incoming{})
	if err != nil {
		panic(err)
	}
	for _, o := range outs {
		size := ""
		if o.ChordSize != nil {
			size = fmt.Sprintf(" (store chord size %d for group %s first)", o.ChordSize.Size, o.ChordSize.GroupID)
		}
		fmt.Printf("%s %s group=%s index=%d body=%s%s\n", o.Msg.Task, o.Msg.ID, o.Msg.GroupID, *o.Msg.GroupIndex, o.Msg.Embed.Chord.Task, size)
	}
	fmt.Println("body result:", res.ID, "header group:", res.Parent.ID, strings.Join(res.Parent.Group.Results, ","))
	// Output:
	// diag.add id-1 group=id-3 index=0 body=diag.sum
	// diag.add id-2 group=id-3 index=1 body=diag.sum (store chord size 2 for group id-3 first)
	// body result: id-4 header group: id-3 id-1,id-2
}

// Link and LinkError attach callbacks; SI makes an immutable signature (the parent's result is not
// prepended to its args).
func ExampleSignature_Link() {
	a := &canvas.Applier{NewID: ids()}
	sig := canvas.S("diag.add", 1, 2).Link(canvas.SI("diag.echo", "done")).LinkError(canvas.S("diag.echo"))
	outs, _, err := a.Apply(sig, canvas.Incoming{})
	if err != nil {
		panic(err)
	}
	e := outs[0].Msg.Embed
	fmt.Println("callback:", e.Callbacks[0].Task, list(e.Callbacks[0].Args), "immutable:", e.Callbacks[0].Immutable)
	fmt.Println("errback:", e.Errbacks[0].Task)
	// Output:
	// callback: diag.echo ["done"] immutable: true
	// errback: diag.echo
}
