package revoke

import (
	"reflect"
	"testing"
	"time"
)

func TestDecodeNotice(t *testing.T) {
	t.Parallel()
	ok, err := DecodeNotice([]byte(`{"ids":["a","b"],"terminate":true,"signal":"SIGKILL","expires":1795630000123}`))
	if err != nil || !reflect.DeepEqual(ok, Notice{IDs: []string{"a", "b"}, Terminate: true, Signal: "SIGKILL", Expires: time.UnixMilli(1795630000123)}) {
		t.Fatalf("DecodeNotice = %+v, %v", ok, err)
	}
	for _, bad := range []string{
		``, `null`, `[]`, `{"ids":["a"],"terminate":false,"signal":""}`,
		`{"ids":[],"terminate":false,"signal":"","expires":1}`,
		`{"ids":[""],"terminate":false,"signal":"","expires":1}`,
		`{"ids":["a"],"terminate":false,"signal":"SIGKILL","expires":1}`,
		`{"ids":["a"],"terminate":true,"signal":"KILL","expires":1}`,
		`{"ids":["a"],"terminate":true,"signal":"SIGKILL","expires":0}`,
		`{"ids":["a"],"terminate":"yes","signal":"","expires":1}`,
		`{"ids":["a"],"terminate":false,"signal":"","expires":1,"x":1}`,
		`{"IDS":["a"],"terminate":false,"signal":"","expires":1}`,
		`{"ids":null,"terminate":false,"signal":"","expires":1}`,
		`{"ids":["a"],"terminate":false,"signal":"","expires":1} {}`,
		"{\"ids\":[\"\xff\"],\"terminate\":false,\"signal\":\"\",\"expires\":1}",
	} {
		if n, err := DecodeNotice([]byte(bad)); err == nil {
			t.Errorf("DecodeNotice(%s) = %+v", bad, n)
		}
	}
}

func FuzzDecodeNotice(f *testing.F) {
	f.Add([]byte(`{"ids":["a","b"],"terminate":true,"signal":"SIGKILL","expires":1795630000123}`))
	f.Add([]byte(`{"ids":["6f1c0000-0000-4000-8000-000000000000"],"terminate":false,"signal":"","expires":1}`))
	f.Add([]byte(`{"ids":["a"],"terminate":true,"signal":"KILL","expires":1}`))
	f.Add([]byte(`{"hello":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := DecodeNotice(data)
		if err != nil {
			return
		}
		if len(n.IDs) == 0 || n.Expires.UnixMilli() <= 0 || (n.Signal != "") != n.Terminate {
			t.Fatalf("decoded an invalid notice %+v from %s", n, data)
		}
		enc, err := EncodeNotice(n)
		if err != nil {
			t.Fatalf("EncodeNotice(%+v): %v", n, err)
		}
		back, err := DecodeNotice(enc)
		if err != nil || !reflect.DeepEqual(back, n) {
			t.Fatalf("round trip %s -> %+v -> %s -> %+v, %v", data, n, enc, back, err)
		}
	})
}

func FuzzParseSignal(f *testing.F) {
	for _, s := range []string{"", "TERM", "SIGKILL", "9", "kill", "SIG", "65"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, err := ParseSignal(s)
		if err != nil {
			return
		}
		n, err := SignalNumber(name)
		if err != nil || n < 1 || n > 64 {
			t.Fatalf("ParseSignal(%q) = %q, which has no number (%v)", s, name, err)
		}
		if again, err := ParseSignal(name); err != nil || again != name {
			t.Fatalf("ParseSignal is not idempotent: %q -> %q -> %q, %v", s, name, again, err)
		}
	})
}
