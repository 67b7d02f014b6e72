package canvas

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func pythonSignatures(t testing.TB) map[string]string {
	t.Helper()
	data, err := os.ReadFile("testdata/python_signatures.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSignatureJSONMatchesPython: Go-built signatures encode byte for byte
// as Python's json.dumps of the same canvas (testdata made with Celery 5.2).
func TestSignatureJSONMatchesPython(t *testing.T) {
	t.Parallel()
	py := pythonSignatures(t)
	add, xsum := func(a ...any) Signature { return S("tasks.add", a...) }, func() Signature { return S("tasks.xsum") }
	cases := map[string]Signature{
		"task":      add(2, 2),
		"immutable": SI("tasks.add", 1, 2),
		"options":   add(1).Queue("q1").Countdown(5).Priority(3),
		"kwargs":    S("tasks.add").Kwarg("x", 1).Kwarg("y", map[string]any{"a": []int{1, 2}}),
		"link":      add(1, 2).Link(add(10)).LinkError(xsum()),
		"chain":     Chain(add(2, 2), add(4), xsum()),
		"group":     Group(add(1, 1), add(2, 2)),
		"chord":     Chord(Group(add(1, 1), add(2, 2)), xsum()),
		"nested":    Chain(add(1, 1), Group(add(2), add(3)), xsum()),
	}
	for name, sig := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := sig.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != py[name] {
				t.Errorf("\n got %s\nwant %s", got, py[name])
			}
			// And Python's text decodes and re-encodes to the same bytes.
			d, err := Decode([]byte(py[name]))
			if err != nil {
				t.Fatal(err)
			}
			again, err := d.MarshalJSON()
			if err != nil || string(again) != py[name] {
				t.Errorf("round trip: %s, %v", again, err)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"not json":      `{"task": `,
		"not an object": `[1, 2]`,
		"no task":       `{"args": []}`,
		"task not str":  `{"task": 5}`,
		"args not list": `{"task": "a", "args": {}}`,
		"bad immutable": `{"task": "a", "immutable": "yes"}`,
		"null":          `null`,
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := Decode([]byte(in)); err == nil || !strings.HasPrefix(err.Error(), "canvas: decode signature") {
				t.Errorf("Decode(%s) = %v, want a canvas error", in, err)
			}
		})
	}
}

func TestConstructionErrors(t *testing.T) {
	t.Parallel()
	bad := S("tasks.add", func() {})
	cases := map[string]Signature{
		"unencodable arg":    bad,
		"empty name":         S(""),
		"in chain":           Chain(S("a"), bad),
		"in group":           Group(bad),
		"in chord body":      Chord(Group(S("a")), bad),
		"as link":            S("a").Link(bad),
		"unencodable option": S("a").Set("x", make(chan int)),
		"invalid raw json":   S("a", json.RawMessage("{")),
	}
	for name, sig := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if sig.Err() == nil {
				t.Fatal("no construction error")
			}
			if _, err := sig.MarshalJSON(); err == nil {
				t.Error("MarshalJSON accepted a broken signature")
			}
			a := &Applier{}
			if _, _, err := a.Apply(sig, Incoming{}); err == nil {
				t.Error("Apply accepted a broken signature")
			}
		})
	}
}

func TestSettersDoNotAlias(t *testing.T) {
	t.Parallel()
	base := S("a", 1).Queue("q")
	x := base.Queue("other").Link(S("cb"))
	if string(base.Options["queue"]) != `"q"` || base.Options["link"] != nil {
		t.Errorf("setter changed the original: %s", mustJSON(base))
	}
	if string(x.Options["queue"]) != `"other"` {
		t.Errorf("copy not changed: %s", mustJSON(x))
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range pythonSignatures(f) {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"task": "a", "args": [1, "x", null], "kwargs": {"k": [1.5e3]}, "options": {"link": {"task": "b"}}, "subtask_type": null, "immutable": true, "chord_size": 3, "extra": 1}`))
	f.Add([]byte(`{"task": "\ud800", "args": []}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Decode(data)
		if err != nil {
			return
		}
		if s.Task == "" {
			t.Fatal("decoded a signature without a task")
		}
		// Encoding is stable: encode, decode, encode gives the same bytes.
		b1, err := s.MarshalJSON()
		if err != nil {
			return
		}
		s2, err := Decode(b1)
		if err != nil {
			t.Fatalf("re-decode of %s: %v", b1, err)
		}
		b2, err := s2.MarshalJSON()
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("not stable:\n%s\n%s (%v)", b1, b2, err)
		}
		// Applying never panics; a task signature gives a message or an error.
		a := &Applier{NewID: func() string { return "id" }}
		outs, _, err := a.Apply(s, Incoming{})
		if err == nil && s.SubtaskType == "" && (len(outs) != 1 || outs[0].Msg.Task != s.Task) {
			t.Fatalf("task signature gave %d messages", len(outs))
		}
	})
}

// TestTasksMemo: Tasks and ChordHeader answer from what the signature was built from, as copies a
// caller may change, and decode again once the kwarg holds other bytes.
func TestTasksMemo(t *testing.T) {
	g := Group(S("diag.add", 1, 2), S("diag.add", 3, 4))
	first, err := g.Tasks()
	if err != nil || len(first) != 2 {
		t.Fatalf("Tasks = %v, %v", first, err)
	}
	first[0].setRaw("queue", json.RawMessage(`"changed"`))
	first[0].Args[0] = json.RawMessage("9")
	again, _ := g.Tasks()
	if _, ok := again[0].Options["queue"]; ok || string(again[0].Args[0]) != "1" {
		t.Errorf("a change to a returned member reached the group: %+v", again[0])
	}
	// Bytes put in kwargs.tasks by hand are decoded, not the memo.
	c := g.clone()
	c.Kwargs["tasks"] = json.RawMessage(`[{"task": "diag.echo", "args": [], "kwargs": {}, "options": {}, "subtask_type": null, "immutable": false}]`)
	got, err := c.Tasks()
	if err != nil || len(got) != 1 || got[0].Task != "diag.echo" {
		t.Errorf("Tasks after kwargs.tasks changed = %+v, %v; want diag.echo", got, err)
	}
	// The same for a chord header.
	ch := Chord(g, S("diag.sum"))
	h, err := ch.ChordHeader()
	if err != nil || h.SubtaskType != TypeGroup {
		t.Fatalf("ChordHeader = %+v, %v", h, err)
	}
	if m, _ := h.Tasks(); len(m) != 2 || m[1].Task != "diag.add" {
		t.Errorf("header members %+v", m)
	}
	want, _ := json.Marshal(h)
	c = ch.clone()
	c.Kwargs["header"] = append(json.RawMessage(nil), c.Kwargs["header"]...) // equal bytes, new memory
	decoded, err := c.ChordHeader()
	if got, _ := json.Marshal(decoded); err != nil || string(got) != string(want) {
		t.Errorf("decoded header %s (%v), memo header %s: they must encode the same", got, err, want)
	}
}
