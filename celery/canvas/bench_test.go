package canvas

import (
	"encoding/json"
	"testing"
	"time"
)

// BenchmarkApplyChain builds and encodes the messages of a three-step chain.
func BenchmarkApplyChain(b *testing.B) {
	a := &Applier{Origin: "gen1@bench", ReplyTo: "r"}
	s := testSender(a)
	sig := Chain(S("add", 1, 2), S("add", 3), S("add", 4))
	for b.Loop() {
		outs, _, err := a.Apply(sig, Incoming{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Envelope(outs[0], time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyChord100 builds the 100 header messages of a chord.
func BenchmarkApplyChord100(b *testing.B) {
	a := &Applier{Origin: "gen1@bench", ReplyTo: "r"}
	var header []Signature
	for i := range 100 {
		header = append(header, S("add", i, i))
	}
	sig := Chord(Group(header...), S("xsum"))
	for b.Loop() {
		if _, _, err := a.Apply(sig, Incoming{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNextChainStep is the worker's cost of publishing a chain step.
func BenchmarkNextChainStep(b *testing.B) {
	a := &Applier{Origin: "gen1@bench", ReplyTo: "r"}
	outs, _, err := a.Apply(Chain(S("add", 1, 2), S("add", 3), S("add", 4)), Incoming{})
	if err != nil {
		b.Fatal(err)
	}
	msg := outs[0].Msg
	for b.Loop() {
		if _, err := a.NextChainStep(msg, json.RawMessage("3")); err != nil {
			b.Fatal(err)
		}
	}
}
