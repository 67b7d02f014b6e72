package canvas

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend"
	"github.com/forumads/forumads/celery/backend/redisbackend"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/memorybroker"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/testenv"
)

// TestAddToChord: Sender.AddToChord (Celery's Task.add_to_chord) publishes the signature as a
// member of the running task's chord (its group, index, chord body and root) and grows the chord
// by one part in Redis (.t), so the chord completes only once the added task's part is counted,
// with both results.
func TestAddToChord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rc := testenv.Redis(t)
	prefix := "t:" + testenv.Suffix() + ":"
	gid := "g-" + testenv.Suffix()
	gkey := GroupKey(prefix, gid)
	testenv.DeleteKeysAtCleanup(t, rc, gkey+".j", gkey+".t", gkey+".s", redisbackend.TaskKey(prefix, "m"))
	be := redisbackend.New(rc, redisbackend.Options{KeyPrefix: prefix, Expires: time.Hour})
	br := memorybroker.New()
	t.Cleanup(func() { _ = br.Close() })
	s, err := NewSender(celery.Config{BrokerURL: "memory://"}, br, be)
	if err != nil {
		t.Fatal(err)
	}
	if err := be.SetChordSize(ctx, gid, 1); err != nil {
		t.Fatal(err)
	}
	body := S("identity").Signature
	idx := 0
	req := &celery.Request{ID: "m", Task: "add_to_all_to_chord", GroupID: gid, GroupIndex: &idx, RootID: "root",
		Embed: protocol.Embed{Chord: &body}}
	res, err := s.AddToChord(ctx, req, S("add", 1, 4))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := rc.Get(ctx, gkey+".t").Int(); err != nil || n != 1 {
		t.Errorf(".t = %d (%v), want 1", n, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ch, err := br.Consume(cctx, []broker.Queue{{Name: "celery", Exchange: "celery", RoutingKey: "celery"}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	var added *protocol.TaskMessage
	select {
	case d := <-ch:
		accept, _ := protocol.NewAccept([]string{"json"})
		added, err = protocol.Decode(d.Envelope, accept)
		if err != nil {
			t.Fatal(err)
		}
		_ = d.Ack()
	case <-cctx.Done():
		t.Fatal("the added task was not published")
	}
	cancel()
	_ = br.StopConsuming(context.Background())
	if added.ID != res.ID || added.Task != "add" || added.GroupID != gid || added.GroupIndex == nil || *added.GroupIndex != 0 ||
		added.Embed.Chord == nil || added.Embed.Chord.Task != "identity" || added.RootID != "root" || added.ParentID != "m" {
		t.Fatalf("added %+v", added)
	}
	testenv.DeleteKeysAtCleanup(t, rc, redisbackend.TaskKey(prefix, added.ID))
	out, err := be.OnChordPartReturn(ctx, backend.ChordPart{GroupID: gid, TaskID: "m", GroupIndex: &idx, State: protocol.StateSuccess, Result: json.RawMessage("0")})
	if err != nil || out.Complete {
		t.Fatalf("the task's own part: %+v, %v (the chord must wait for the added one)", out, err)
	}
	out, err = be.OnChordPartReturn(ctx, backend.ChordPart{GroupID: gid, TaskID: added.ID, GroupIndex: added.GroupIndex, State: protocol.StateSuccess, Result: json.RawMessage("5")})
	if err != nil || !out.Complete || len(out.Results) != 2 {
		t.Fatalf("the added part: %+v, %v, want the chord complete with 2 results", out, err)
	}
}

// TestAddToChordRefuses: outside a chord AddToChord is Celery's ValueError; with a result backend
// that cannot grow a chord it is an error and nothing is published.
func TestAddToChordRefuses(t *testing.T) {
	t.Parallel()
	br := memorybroker.New()
	t.Cleanup(func() { _ = br.Close() })
	s, err := NewSender(celery.Config{BrokerURL: "memory://"}, br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body := S("identity").Signature
	cases := []struct {
		name     string
		req      *celery.Request
		notChord bool
	}{
		{"no chord", &celery.Request{ID: "m", GroupID: "g"}, true},
		{"no group", &celery.Request{ID: "m", Embed: protocol.Embed{Chord: &body}}, true},
		{"backend cannot grow a chord", &celery.Request{ID: "m", GroupID: "g", Embed: protocol.Embed{Chord: &body}}, false},
	}
	for _, tc := range cases {
		_, err := s.AddToChord(context.Background(), tc.req, S("add", 1, 2))
		var nc *NotInChordError
		if err == nil || errors.As(err, &nc) != tc.notChord {
			t.Errorf("%s: AddToChord = %v, want an error (NotInChordError: %v)", tc.name, err, tc.notChord)
		}
		if tc.notChord && (nc.ExcType() != "ValueError" || nc.Error() != "Current task is not member of any chord") {
			t.Errorf("%s: %s: %s, want Celery's ValueError", tc.name, nc.ExcType(), nc.Error())
		}
	}
}
