package canvas

import "testing"

// TestChainOption: a signature's chain option (what Celery's chord.run leaves on a chord body
// followed by more steps) is published as the rest of the chain, after a chain's own steps.
func TestChainOption(t *testing.T) {
	t.Parallel()
	after := Group(S("after", 0), S("after", 1))
	for _, tc := range []struct {
		name string
		sig  Signature
		want string // names of the published first message's embed.chain
	}{
		{"task", S("connect").Set("chain", []Signature{after}), TaskGroup},
		{"chain: later steps run last", Chain(S("a"), S("b")).Set("chain", []Signature{S("z")}), "z,b"},
		{"chain option is not copied to every step", Chain(S("a")).Set("chain", []Signature{S("z")}), "z"},
	} {
		outs, _, err := (&Applier{NewID: seqIDs()}).Apply(tc.sig, Incoming{})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := names(outs[0].Msg.Embed.Chain); got != tc.want {
			t.Errorf("%s: embed.chain %s, want %s", tc.name, got, tc.want)
		}
	}
	// A chord followed by steps: they run after its body (its body becomes a chain of them).
	outs, _, err := (&Applier{NewID: seqIDs()}).Apply(Chain(Chord(Group(S("h")), S("body")), S("next")), Incoming{})
	if err != nil {
		t.Fatal(err)
	}
	body := FromProtocol(*outs[0].Msg.Embed.Chord)
	steps, err := body.Tasks()
	var got []string
	for _, s := range steps {
		got = append(got, s.Task)
	}
	if err != nil || body.SubtaskType != TypeChain || len(got) != 2 || got[0] != "body" || got[1] != "next" {
		t.Errorf("chord body %s steps %v %v, want the chain body, next", body.Task, got, err)
	}
}
