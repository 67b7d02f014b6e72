package protocol

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestSignatureRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
	}{
		{"plain", `{"task": "tasks.mul", "args": [10], "kwargs": {}, "options": {}, "subtask_type": null, "immutable": false}`},
		{"chain step", `{"task": "tasks.mul", "args": [8], "kwargs": {}, "options": {"task_id": "b351aa49-9b44-49ad-b89f-c8ff5a0e03fa", "reply_to": "142da0e5-f83f-37de-a004-2a4da46f2b14"}, "subtask_type": null, "immutable": false}`},
		{"ordered kwargs and options", `{"task": "t", "args": [], "kwargs": {"z": 1, "a": {"y": 2, "b": 3}}, "options": {"queue": "q", "link": [{"task": "u"}]}, "subtask_type": "group", "immutable": true}`},
		{"chord_size and extras", `{"task": "celery.chord", "args": [], "kwargs": {}, "options": {}, "subtask_type": "chord", "immutable": false, "chord_size": 3, "zz": [1], "aa": null}`},
		{"unicode", `{"task": "t\u00fc", "args": ["\ud83d\ude80"], "kwargs": {"\u00e9": 1}, "options": {}, "subtask_type": null, "immutable": false}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var s Signature
			if err := json.Unmarshal([]byte(tc.in), &s); err != nil {
				t.Fatal(err)
			}
			got, err := s.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.in {
				t.Errorf("round trip\n got %s\nwant %s", got, tc.in)
			}
		})
	}
}

func TestSignatureFields(t *testing.T) {
	t.Parallel()
	var s Signature
	in := `{"immutable": true, "task": "t", "args": [1, "x"], "kwargs": {"b": 1, "a": 2, "b": 3}, "options": null,
		"subtask_type": "chain", "chord_size": 2, "extra": {"k": [1]}}`
	if err := json.Unmarshal([]byte(in), &s); err != nil {
		t.Fatal(err)
	}
	if s.Task != "t" || !s.Immutable || s.SubtaskType != "chain" || *s.ChordSize != 2 || s.Options != nil {
		t.Errorf("got %+v", s)
	}
	if !reflect.DeepEqual(s.Args, raws("1", `"x"`)) {
		t.Errorf("Args = %s", s.Args)
	}
	if !reflect.DeepEqual(s.KwargsOrder, []string{"b", "a"}) || string(s.Kwargs["b"]) != "3" {
		t.Errorf("Kwargs = %v / %v", s.Kwargs, s.KwargsOrder)
	}
	if string(s.Extra["extra"]) != `{"k": [1]}` || !reflect.DeepEqual(s.ExtraOrder, []string{"extra"}) {
		t.Errorf("Extra = %v", s.Extra)
	}
	out, err := s.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"task": "t", "args": [1, "x"], "kwargs": {"b": 3, "a": 2}, "options": {}, "subtask_type": "chain", "immutable": true, "chord_size": 2, "extra": {"k": [1]}}`
	if string(out) != want {
		t.Errorf("MarshalJSON\n got %s\nwant %s", out, want)
	}
	// The decoded raw values must not alias the caller's buffer.
	buf := []byte(`{"task": "t", "args": [12345]}`)
	var s2 Signature
	if err := s2.UnmarshalJSON(buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX")
	if string(s2.Args[0]) != "12345" {
		t.Errorf("Args alias the input: %s", s2.Args[0])
	}
}

func TestSignatureMarshalSkipsExtraShadowingKnownKeys(t *testing.T) {
	t.Parallel()
	s := Signature{Task: "t", Extra: map[string]json.RawMessage{"task": json.RawMessage(`"evil"`), "x": json.RawMessage(`1`)}}
	got, err := s.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"task": "t", "args": [], "kwargs": {}, "options": {}, "subtask_type": null, "immutable": false, "x": 1}`
	if string(got) != want {
		t.Errorf("got %s", got)
	}
	bad := Signature{Task: "t", Args: raws("{")}
	if _, err := bad.MarshalJSON(); err == nil {
		t.Error("invalid raw arg: want an error")
	}
}

func TestSignatureUnmarshalErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
	}{
		{"not JSON", `{`},
		{"array", `[]`},
		{"string", `"x"`},
		{"task not string", `{"task": 1}`},
		{"args not list", `{"args": {}}`},
		{"kwargs not mapping", `{"kwargs": []}`},
		{"options not mapping", `{"options": "x"}`},
		{"subtask_type not string", `{"subtask_type": 1}`},
		{"immutable not bool", `{"immutable": "yes"}`},
		{"chord_size not int", `{"chord_size": 1.5}`},
		{"chord_size too big", `{"chord_size": 1e30}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var s Signature
			if err := json.Unmarshal([]byte(tc.in), &s); err == nil {
				t.Errorf("Unmarshal(%s) = %+v, want an error", tc.in, s)
			}
		})
	}
	var s Signature
	if err := s.UnmarshalJSON([]byte("null")); err != nil || s.Task != "" {
		t.Errorf("null: %v %+v", err, s)
	}
}
