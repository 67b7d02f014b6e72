package celery

import (
	"errors"
	"strings"
	"testing"

	"github.com/forumads/forumads/celery/internal/routing"
)

// TestRouterRoutesLikeTheConfig: the public Router reads task_routes (globs and re: patterns),
// task_queues and the defaults from the config, lets a call's options win, and clamps the
// priority to a byte.
func TestRouterRoutesLikeTheConfig(t *testing.T) {
	t.Parallel()
	big, off := 300, false
	r, err := NewRouter(Config{
		TaskRoutes:              Routes{{Pattern: "ads.*", Queue: "ads"}, {Pattern: `re:^media\.`, Queue: "media", Priority: &big}},
		TaskQueues:              []QueueConfig{{Name: "celery"}, {Name: "ads"}, {Name: "media"}, {Name: "other"}},
		TaskCreateMissingQueues: &off,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		task  string
		opts  []SendOption
		queue string
		prio  uint8
	}{
		{"ads.score", nil, "ads", 0},
		{"media.resize", nil, "media", 255},
		{"media.resize", []SendOption{WithQueue("other"), WithPriority(3)}, "other", 3},
		{"plain", nil, "celery", 0},
	} {
		d, err := r.Route(tc.task, tc.opts...)
		if err != nil || d.Queue.Name != tc.queue || d.RoutingKey != tc.queue || d.Exchange != "" || d.Priority != tc.prio {
			t.Errorf("Route(%q) = %+v, %v; want queue %q through the default exchange at priority %d", tc.task, d, err, tc.queue, tc.prio)
		}
		if p := d.Publishing(); err == nil && (p.Declare == nil || p.Declare.Name != tc.queue || p.RoutingKey != d.RoutingKey) {
			t.Errorf("Publishing of %+v = %+v", d, p)
		}
	}
	_, err = r.Route("plain", WithQueue("nope"))
	var nf *routing.QueueNotFoundError
	if !errors.As(err, &nf) || nf.Queue != "nope" {
		t.Errorf("Route to a queue task_queues lacks = %v, want a queue-not-found error", err)
	}
	if m, ok := r.Match("media.x"); !ok || m.Queue != "media" {
		t.Errorf("Match(media.x) = %+v, %v", m, ok)
	}
}

// TestValidateNamesABadRoutePattern: a re: pattern that does not compile is refused, naming it.
func TestValidateNamesABadRoutePattern(t *testing.T) {
	t.Parallel()
	cfg := Config{TaskRoutes: Routes{{Pattern: "re:ads.(", Queue: "q"}}}
	if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), `task_routes["re:ads.("]`) {
		t.Errorf("Validate = %v, want an error naming the pattern", err)
	}
	if _, err := NewRouter(cfg); err == nil {
		t.Error("NewRouter accepted a pattern that does not compile")
	}
	if _, ok := cfg.TaskRoutes.Match("ads.x"); ok {
		t.Error("a table that does not compile routed a task")
	}
}

// TestDeliveryMode: task_default_delivery_mode as Celery reads it.
func TestDeliveryMode(t *testing.T) {
	t.Parallel()
	for v, want := range map[any]uint8{nil: 2, 1: 1, 2: 2, "transient": 1, "persistent": 2, "1": 1} {
		if got := (Config{TaskDefaultDeliveryMode: v}).DeliveryMode(); got != want {
			t.Errorf("DeliveryMode(%v) = %d, want %d", v, got, want)
		}
	}
}
