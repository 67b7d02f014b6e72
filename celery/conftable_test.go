package celery

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestConfTableRedacts(t *testing.T) {
	t.Parallel()
	five := 5.0
	cfg := Config{BrokerURL: "amqp://u:secret@h1//;amqp://u:other@h2//", ResultBackend: "redis://:pw@r:6379/0",
		WorkerRevokeURL: "redis://x:y@r/1", TaskDefaultQueue: "q", TaskTimeLimit: &five,
		TaskRoutes: Routes{{Pattern: "a.*", Queue: "qa"}}}.WithDefaults()
	got := ConfTable(cfg, false)
	b, _ := json.Marshal(got)
	for _, secret := range []string{"secret", "other", ":pw@", "x:y@"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("conf shows %q: %s", secret, b)
		}
	}
	if got["broker_url"] != "amqp://u:**@h1//;amqp://u:**@h2//" || got["result_backend"] != "redis://:**@r:6379/0" ||
		got["task_time_limit"] != 5.0 || got["task_default_queue"] != "q" {
		t.Errorf("conf: %s", b)
	}
	if _, ok := got["worker_prefetch_multiplier"]; ok {
		t.Errorf("a default shown without with_defaults: %s", b)
	}
	routes, _ := got["task_routes"].([]any)
	if len(routes) != 1 || routes[0].(map[string]any)["queue"] != "qa" {
		t.Errorf("task_routes: %#v", got["task_routes"])
	}
	all := ConfTable(cfg, true)
	if all["worker_prefetch_multiplier"] != 4 || all["accept_content"] == nil {
		t.Errorf("with defaults: %v", all)
	}
}
