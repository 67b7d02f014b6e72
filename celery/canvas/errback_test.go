package canvas

import (
	"encoding/json"
	"testing"

	"github.com/forumads/forumads/celery/protocol"
)

// TestNewStyleErrbacks: errbacks taking (request, exc, traceback) are published on their own with
// the failed task's request; old-style ones as one group with the failed id; immutable ones keep
// their args.
func TestNewStyleErrbacks(t *testing.T) {
	t.Parallel()
	a := &Applier{NewID: seqIDs(), RequestErrback: func(task string) bool { return task == "new" }}
	msg := &protocol.TaskMessage{ID: "f", Task: "fail", RootID: "root", Args: []json.RawMessage{json.RawMessage("1")},
		Embed: protocol.Embed{Errbacks: []protocol.Signature{S("old").Signature, S("new").Signature, SI("new", "own").Signature}}}
	outs, err := a.ErrbacksWith(msg, "f", json.RawMessage(`{"exc_type": "ValueError"}`), false)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]json.RawMessage{}
	for _, o := range outs {
		got[o.Msg.Task+argsOf(o)] = o.Msg.Args
		if o.Msg.ParentID != "f" || o.Msg.RootID != "root" {
			t.Errorf("%s: parent %s root %s", o.Msg.Task, o.Msg.ParentID, o.Msg.RootID)
		}
	}
	if _, ok := got[`old('f',)`]; !ok {
		t.Errorf("old-style errback not called with the failed id: %v", got)
	}
	if _, ok := got[`new('own',)`]; !ok {
		t.Errorf("immutable new-style errback lost its own args: %v", got)
	}
	var req map[string]any
	for k, args := range got {
		if len(args) == 3 && k[:3] == "new" {
			if err := json.Unmarshal(args[0], &req); err != nil {
				t.Fatal(err)
			}
			if string(args[1]) != `{"exc_type": "ValueError"}` || string(args[2]) != "null" {
				t.Errorf("exc, traceback = %s, %s", args[1], args[2])
			}
		}
	}
	if req["id"] != "f" || req["task"] != "fail" || req["root_id"] != "root" {
		t.Errorf("request %v", req)
	}
	if len(outs) != 3 {
		t.Errorf("%d errbacks published, want 3", len(outs))
	}
}
