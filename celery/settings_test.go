package celery

import "testing"

func TestQueueByNameMatchesCelery(t *testing.T) {
	t.Parallel()
	cfg := Config{}.WithDefaults()
	q, ok := cfg.QueueByName("celery")
	if !ok || q.Exchange != "celery" || q.ExchangeType != "direct" || q.RoutingKey != "celery" || q.QueueArguments != nil {
		t.Fatalf("default queue = %+v", q)
	}
	q, ok = cfg.QueueByName("ads")
	if !ok || q.Exchange != "ads" || q.RoutingKey != "ads" {
		t.Fatalf("missing queue = %+v, want Celery's auto-created Queue('ads', Exchange('ads'), 'ads')", q)
	}
	off := false
	strict := Config{TaskCreateMissingQueues: &off}.WithDefaults()
	if _, ok := strict.QueueByName("ads"); ok {
		t.Fatal("task_create_missing_queues=false must refuse unknown queues")
	}
	mp := 10
	withPrio := Config{TaskQueueMaxPriority: &mp, TaskQueues: []QueueConfig{{Name: "p"}}}.WithDefaults()
	q, _ = withPrio.QueueByName("p")
	if q.Exchange != "celery" || q.RoutingKey != "p" || q.QueueArguments["x-max-priority"] != 10 {
		t.Fatalf("task_queues entry = %+v", q)
	}
}

func TestRoutesFirstMatchWins(t *testing.T) {
	t.Parallel()
	rs := Routes{{Pattern: "ads.import_feed", Queue: "ads.import"}, {Pattern: "ads.*", Queue: "ads"}}
	for task, want := range map[string]string{"ads.import_feed": "ads.import", "ads.score": "ads", "diag.add": ""} {
		r, ok := rs.Match(task)
		if r.Queue != want || ok != (want != "") {
			t.Errorf("route(%s) = %q, %v; want %q", task, r.Queue, ok, want)
		}
	}
}

func TestPrefetch(t *testing.T) {
	t.Parallel()
	m0, m4 := 0, 4
	for _, tc := range []struct {
		cfg  Config
		want int
	}{
		{Config{WorkerConcurrency: 8, WorkerPrefetchMultiplier: &m4}, 32},
		{Config{WorkerConcurrency: 8, WorkerPrefetchMultiplier: &m0}, 0},
		{Config{WorkerConcurrency: 20000, WorkerPrefetchMultiplier: &m4}, 0},
	} {
		if got := tc.cfg.Prefetch(); got != tc.want {
			t.Errorf("Prefetch(%+v) = %d, want %d", tc.cfg, got, tc.want)
		}
	}
}

func TestValidateNamesTheSetting(t *testing.T) {
	t.Parallel()
	neg := -1
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{TaskSerializer: "pickle"}, "task_serializer"},
		{Config{AcceptContent: []string{"json", "pickle"}}, "accept_content"},
		{Config{WorkerPrefetchMultiplier: &neg}, "worker_prefetch_multiplier"},
		{Config{TaskDefaultRateLimit: "fast"}, "task_default_rate_limit"},
		{Config{Timezone: "Mars/Olympus"}, "timezone"},
		{Config{TaskQueues: []QueueConfig{{}}}, "task_queues[0].name"},
	} {
		err := tc.cfg.Validate()
		if err == nil || len(err.Error()) < len(tc.want) || err.Error()[:len(tc.want)] != tc.want {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
	if err := (Config{}).WithDefaults().Validate(); err != nil {
		t.Fatalf("defaults must validate: %v", err)
	}
}
