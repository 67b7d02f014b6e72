package celerysuite

import (
	"encoding/json"
	"testing"
)

func rawKw(kv ...string) map[string]json.RawMessage {
	m := map[string]json.RawMessage{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = json.RawMessage(kv[i+1])
	}
	return m
}

func TestRetryOnceArgs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		kwargs    map[string]json.RawMessage
		wantMax   int
		wantCD    *float64
		wantError bool
	}{
		{"defaults", nil, 1, ptr(0.1), false},
		{"countdown None is the default retry delay", rawKw("countdown", "null"), 1, nil, false},
		{"countdown and max_retries", rawKw("countdown", "2", "max_retries", "3", "expires", "60.0"), 3, ptr(2.0), false},
		{"unknown keyword", rawKw("nope", "1"), 0, nil, true},
		{"bad countdown", rawKw("countdown", `"x"`), 0, nil, true},
	} {
		var a retryOnceArgs
		err := a.UnmarshalCelery([]json.RawMessage{json.RawMessage(`"id"`)}, tc.kwargs)
		if tc.wantError {
			if err == nil {
				t.Errorf("%s: no error", tc.name)
			}
			continue
		}
		if err != nil || a.MaxRetries != tc.wantMax || (a.Countdown == nil) != (tc.wantCD == nil) ||
			(a.Countdown != nil && *a.Countdown != *tc.wantCD) {
			t.Errorf("%s: %+v, %v", tc.name, a, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestLinkMsgArgs(t *testing.T) {
	t.Parallel()
	var a linkMsgArgs
	if err := a.UnmarshalCelery([]json.RawMessage{json.RawMessage(`"Hello "`)}, rawKw("link_msg", `"m"`)); err != nil ||
		len(a.Args) != 1 || string(a.LinkMsg) != `"m"` {
		t.Errorf("%+v, %v", a, err)
	}
	if err := a.UnmarshalCelery(nil, rawKw("other", "1")); err == nil {
		t.Error("unexpected keyword accepted")
	}
}

// FuzzUnmarshalArgs: the hand-written argument decoders take any kwargs without panicking.
func FuzzUnmarshalArgs(f *testing.F) {
	f.Add("countdown", "0.5")
	f.Add("max_retries", "null")
	f.Add("link_msg", `"x"`)
	f.Add("expires", "{")
	f.Fuzz(func(t *testing.T, key, value string) {
		kw := map[string]json.RawMessage{key: json.RawMessage(value)}
		var r retryOnceArgs
		_ = r.UnmarshalCelery(nil, kw)
		var l linkMsgArgs
		_ = l.UnmarshalCelery([]json.RawMessage{json.RawMessage(value)}, kw)
	})
}
