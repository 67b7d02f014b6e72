package celery

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecodeArgs feeds arbitrary JSON args/kwargs to the argument decoder: it never panics, and it
// either fills the struct or returns an *ArgsError; what it accepts is consistent with a re-decode.
func FuzzDecodeArgs(f *testing.F) {
	f.Add(`[2, 3]`, `{}`)
	f.Add(`["feed.csv", 10, true, 7, "a", "b"]`, `{"other": {"k": [1]}}`)
	f.Add(`[]`, `{"feed": "x", "limit": null}`)
	f.Add(`[1]`, `{"feed": 1}`)
	f.Add(`[{"a": 1e400}]`, `{"verbose": "yes"}`)
	plan, err := planArgs(reflect.TypeFor[mixedArgs]())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, argsJSON, kwargsJSON string) {
		var args []json.RawMessage
		var kwargs map[string]json.RawMessage
		if json.Unmarshal([]byte(argsJSON), &args) != nil || json.Unmarshal([]byte(kwargsJSON), &kwargs) != nil {
			return
		}
		var got mixedArgs
		err := plan.decode("fuzz", reflect.ValueOf(&got), args, kwargs)
		if err != nil {
			var ae *ArgsError
			if !errors.As(err, &ae) {
				t.Fatalf("error %T is not an *ArgsError: %v", err, err)
			}
			return
		}
		var again mixedArgs
		if err := plan.decode("fuzz", reflect.ValueOf(&again), args, kwargs); err != nil {
			t.Fatalf("accepted once, refused the second time: %v", err)
		}
		if !reflect.DeepEqual(got, again) {
			t.Fatalf("decoding is not deterministic: %+v vs %+v", got, again)
		}
	})
}
