package celerysuite

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/canvas"
)

func addS() canvas.Signature { return canvas.S(name("add")) }

// nestedSignatures are the bodies of the return_nested_signature_<kind> tasks: the nested canvas
// each returns (never applied: its arguments are missing on purpose, as in the suite).
var nestedSignatures = map[string]func() canvas.Signature{
	"chain_chain": func() canvas.Signature { return canvas.Chain(canvas.Chain(addS())) },
	"chain_group": func() canvas.Signature { return canvas.Chain(canvas.Group(addS())) },
	"chain_chord": func() canvas.Signature { return canvas.Chain(canvas.Chord(canvas.Group(addS()), addS())) },
	"group_chain": func() canvas.Signature { return canvas.Group(canvas.Chain(addS())) },
	"group_group": func() canvas.Signature { return canvas.Group(canvas.Group(addS())) },
	"group_chord": func() canvas.Signature { return canvas.Group(canvas.Chord(canvas.Group(addS()), addS())) },
	"chord_chain": func() canvas.Signature { return canvas.Chord(canvas.Chain(addS()), addS()) },
	"chord_group": func() canvas.Signature { return canvas.Chord(canvas.Group(addS()), addS()) },
	"chord_chord": func() canvas.Signature {
		return canvas.Chord(canvas.Chord(canvas.Group(addS()), addS()), addS())
	},
}

// returnSignature is a task returning the signature build makes: its dict is the result.
func returnSignature(build func() canvas.Signature) celery.TaskFunc[none, canvas.Signature] {
	return func(context.Context, *celery.Task[none]) (canvas.Signature, error) {
		s := build()
		return s, s.Err()
	}
}

type sigDictArgs struct {
	SigDict json.RawMessage `celery:"sig_dict"`
}

// rebuildSignature decodes a signature dict and every signature nested in it (a chain's or
// group's tasks, a chord's header and body), failing with TypeError on anything that is not one,
// as the suite's Signature.from_dict walk does.
func rebuildSignature(_ context.Context, t *celery.Task[sigDictArgs]) (json.RawMessage, error) {
	sig, err := canvas.Decode(t.Args.SigDict)
	if err != nil {
		return nil, &typeError{fmt.Sprintf("%s is not a signature object: %v", t.Args.SigDict, err)}
	}
	if err := walk(sig); err != nil {
		return nil, &typeError{err.Error()}
	}
	return null, nil
}

func walk(sig canvas.Signature) error {
	if sig.Task == "" {
		return fmt.Errorf("%s is not a signature object", mustString(sig))
	}
	switch sig.SubtaskType {
	case canvas.TypeChain, canvas.TypeGroup:
		tasks, err := sig.Tasks()
		if err != nil {
			return err
		}
		for _, t := range tasks {
			if err := walk(t); err != nil {
				return err
			}
		}
	case canvas.TypeChord:
		h, err := sig.ChordHeader()
		if err != nil {
			return err
		}
		if err := walk(h); err != nil {
			return err
		}
		b, err := sig.ChordBody()
		if err != nil {
			return err
		}
		return walk(b)
	}
	return nil
}

func mustString(sig canvas.Signature) string {
	b, err := sig.MarshalJSON()
	if err != nil {
		return sig.Task
	}
	return string(b)
}
