package broker

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// kombuGolden is testdata/kombu55_routing_keys.json: kombu 5.5's calculate_routing_key and
// level_name, run by /usr/bin/python3 on kombu's own source (celery/kombu main,
// kombu/transport/native_delayed_delivery.py), e.g.
//
//	python3 -c 'import importlib.util as u; s=u.spec_from_file_location("n","/tmp/ndd.py"); m=u.module_from_spec(s); s.loader.exec_module(m); print(m.calculate_routing_key(600, "quorum.q"))'
type kombuGolden struct {
	Keys []struct {
		Countdown  int64  `json:"countdown"`
		RoutingKey string `json:"routing_key"`
		Key        string `json:"key"`
	} `json:"calculate_routing_key"`
	Levels []struct {
		Level int    `json:"level"`
		Name  string `json:"name"`
	} `json:"level_name"`
}

func readGolden(t *testing.T) kombuGolden {
	t.Helper()
	data, err := os.ReadFile("testdata/kombu55_routing_keys.json")
	if err != nil {
		t.Fatal(err)
	}
	var g kombuGolden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Keys) == 0 || len(g.Levels) != DelayedDeliveryLevels {
		t.Fatalf("golden file: %d keys, %d levels", len(g.Keys), len(g.Levels))
	}
	return g
}

func TestDelayedRoutingKeyMatchesKombu(t *testing.T) {
	t.Parallel()
	for _, tc := range readGolden(t).Keys {
		got, err := DelayedRoutingKey(tc.Countdown, tc.RoutingKey)
		if err != nil || got != tc.Key {
			t.Errorf("DelayedRoutingKey(%d, %q) = %q, %v; kombu: %q", tc.Countdown, tc.RoutingKey, got, err, tc.Key)
		}
		cd, rk, ok := SplitDelayedRoutingKey(got)
		if !ok || cd != tc.Countdown || rk != tc.RoutingKey {
			t.Errorf("SplitDelayedRoutingKey(%q) = %d, %q, %v; want %d, %q", got, cd, rk, ok, tc.Countdown, tc.RoutingKey)
		}
	}
}

func TestDelayedLevelNamesMatchKombu(t *testing.T) {
	t.Parallel()
	for _, tc := range readGolden(t).Levels {
		if got := DelayedLevel(tc.Level); got != tc.Name {
			t.Errorf("DelayedLevel(%d) = %q, kombu %q", tc.Level, got, tc.Name)
		}
	}
	if DelayedEntryExchange() != "celery_delayed_27" {
		t.Errorf("entry exchange %q", DelayedEntryExchange())
	}
}

func TestDelayedRoutingKeyRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		countdown int64
		key, want string
	}{
		{0, "celery", "positive"},
		{-5, "celery", "positive"},
		{1 << 28, "celery", "beyond the 28 levels"},
		{10, "", "non-empty"},
	} {
		_, err := DelayedRoutingKey(tc.countdown, tc.key)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DelayedRoutingKey(%d, %q) error %v, want one saying %q", tc.countdown, tc.key, err, tc.want)
		}
	}
}

func TestSplitDelayedRoutingKeyRefusesOtherKeys(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"", "celery", "0.1.celery", strings.Repeat("2.", 28) + "x",
		strings.Repeat("0.", 27) + "1", strings.Repeat("0,", 28) + "x"} {
		if cd, rk, ok := SplitDelayedRoutingKey(key); ok {
			t.Errorf("SplitDelayedRoutingKey(%q) = %d, %q, true; want false", key, cd, rk)
		}
	}
}

func TestDelayedDeliveryBindingKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"celery": "#.celery", "a.b": "#.a.b", "#": "#", "#.x": "#.x"} {
		if got := DelayedDeliveryBindingKey(in); got != want {
			t.Errorf("DelayedDeliveryBindingKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzSplitDelayedRoutingKey: any key SplitDelayedRoutingKey accepts is rebuilt exactly by
// DelayedRoutingKey (when its delay is positive), and it never panics.
func FuzzSplitDelayedRoutingKey(f *testing.F) {
	f.Add(strings.Repeat("0.", 27) + "1.celery")
	f.Add(strings.Repeat("1.", 28) + "a.b")
	f.Add(strings.Repeat("0.", 28) + "x")
	f.Add("celery")
	f.Fuzz(func(t *testing.T, key string) {
		cd, rk, ok := SplitDelayedRoutingKey(key)
		if !ok {
			return
		}
		if cd < 0 || cd >= 1<<DelayedDeliveryLevels {
			t.Fatalf("countdown %d out of range", cd)
		}
		if cd == 0 || rk == "" {
			return
		}
		again, err := DelayedRoutingKey(cd, rk)
		if err != nil || again != key {
			t.Fatalf("DelayedRoutingKey(%d, %q) = %q, %v; split from %q", cd, rk, again, err, key)
		}
	})
}
