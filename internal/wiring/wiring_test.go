package wiring

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/celery/redisconn"
	"github.com/forumads/forumads/internal/testenv"
)

func TestRedacted(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"amqp://guest:secret@127.0.0.1:5672//": "amqp://guest:**@127.0.0.1:5672//",
		"redis://:pw@r:6379/0":                 "redis://:**@r:6379/0",
		"redis://127.0.0.1:6379/0":             "redis://127.0.0.1:6379/0",
		"amqp://user@h//":                      "amqp://user@h//",
		"sentinel://:a@h:1;sentinel://:b@h:2":  "sentinel://:**@h:1;sentinel://:**@h:2",
	} {
		if got := Redacted(in); got != want {
			t.Errorf("Redacted(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBackendSchemes(t *testing.T) {
	t.Parallel()
	b, closer, err := Backend(celery.Config{})
	if b != nil || closer != nil || err != nil {
		t.Fatal("no result_backend must mean no backend")
	}
	closed := testenv.FreeAddr(t)
	for _, tc := range []struct {
		url       string
		transport map[string]any // result_backend_transport_options
		want      string         // the adapter's type, or "" for an error
		errParts  []string
	}{
		{url: "redis://127.0.0.1:6379/3", want: "*redisbackend.Backend"},
		{url: "rediss://127.0.0.1:6380/0", want: "*redisbackend.Backend"},
		{url: "unix:///tmp/redis.sock?db=2", want: "*redisbackend.Backend"},
		{url: "memory://", want: "*memorybackend.Backend"},
		{url: "sentinel://127.0.0.1:26379", errParts: []string{"result_backend", "master_name"}},
		// Sentinels that do not answer at start are an outage, not a mistake: the client keeps asking.
		{url: "sentinel://" + closed + ";sentinel://" + closed + "/0", transport: map[string]any{"master_name": "mymaster"}, errParts: []string{"listed twice"}},
		{url: "sentinel://:pw@" + closed + "/2", transport: map[string]any{"master_name": "mymaster"}, want: "*redisbackend.Backend"},
		// A Redis that is not a Sentinel refuses the question: a configuration mistake.
		{url: "sentinel://127.0.0.1:6379", transport: map[string]any{"master_name": "mymaster"}, errParts: []string{"result_backend", "127.0.0.1:6379"}},
		{url: "SENTINEL://127.0.0.1:6379", errParts: []string{"master_name"}},
		{url: "django-db", errParts: []string{"django-db", "database_url is not set"}},
		{url: "db+postgresql://u@127.0.0.1/x", errParts: []string{"db+postgresql", "not supported"}},
		{url: "rpc://", errParts: []string{`"rpc"`, "not supported"}},
		{url: "mongodb://127.0.0.1/x", errParts: []string{`"mongodb"`, "not supported"}},
		{url: "127.0.0.1:6379", errParts: []string{"not supported"}},
		{url: "redis://127.0.0.1:6379/notadb", errParts: []string{"result_backend", "redis url"}},
	} {
		b, closer, err := Backend(celery.Config{ResultBackend: tc.url, ResultBackendTransportOptions: tc.transport})
		if tc.want == "" {
			if err == nil || b != nil || closer != nil {
				t.Errorf("%s: backend %T, closer %v, err %v; want an error", tc.url, b, closer, err)
				continue
			}
			for _, p := range tc.errParts {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("%s: error %q does not say %q", tc.url, err, p)
				}
			}
			continue
		}
		if err != nil || fmt.Sprintf("%T", b) != tc.want {
			t.Errorf("%s: backend %T, %v; want %s", tc.url, b, err, tc.want)
		}
		if closer != nil {
			_ = closer.Close()
		}
	}
	_, rc, err := Backend(celery.Config{ResultBackend: "redis://127.0.0.1:6379/3"})
	if err != nil || rc.(*redis.Client).Options().DB != 3 {
		t.Fatalf("redis backend: %v", err)
	}
	_ = rc.Close()
	// memory:// is one backend per process: what one part stores, another reads.
	m1, _, _ := Backend(celery.Config{ResultBackend: "memory://"})
	m2, _, _ := Backend(celery.Config{ResultBackend: "memory://"})
	ctx := context.Background()
	if err := m1.Store(ctx, protocol.ResultMeta{TaskID: "wiring-shared", Status: protocol.StateSuccess}); err != nil {
		t.Fatal(err)
	}
	if got, err := m2.Get(ctx, "wiring-shared"); err != nil || got.Status != protocol.StateSuccess {
		t.Fatalf("a second memory:// backend read %+v, %v; want the first one's SUCCESS", got, err)
	}
}

// TestDjangoDBBackendErrors: result_backend django-db checks database_url at start, and says what
// is wrong: no database there, or one without django-celery-results' tables.
func TestDjangoDBBackendErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, dsn string
		errParts  []string
	}{
		{"nothing listens", "postgres://forumads:forumads@127.0.0.1:1/forumads?sslmode=disable&connect_timeout=2",
			[]string{"django-db", "cannot connect", "127.0.0.1:1"}},
		{"no such database", "postgres://forumads:secretpw@127.0.0.1:5432/wiring_no_such_db?sslmode=disable",
			[]string{"django-db", "cannot connect", "wiring_no_such_db", "forumads:**@"}},
		{"tables missing", "postgres://forumads:forumads@127.0.0.1:5432/forumads?sslmode=disable&search_path=wiring_no_such_schema",
			[]string{"django_celery_results_taskresult does not exist", "manage.py migrate django_celery_results"}},
		{"not a URL", "postgres://%zz", []string{"django-db", "database_url"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, closer, err := Backend(celery.Config{ResultBackend: "django-db", DatabaseURL: tc.dsn})
			if err == nil || b != nil || closer != nil {
				t.Fatalf("backend %T, closer %v, err %v; want an error", b, closer, err)
			}
			for _, p := range tc.errParts {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("error %q does not say %q", err, p)
				}
			}
			if strings.Contains(err.Error(), "secretpw") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

// TestBrokerSchemes: the adapter is chosen by broker_url's scheme, and a URL no adapter serves is
// refused with an error that says why.
func TestBrokerSchemes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url     string
		adapter string // %T of the broker, "" when an error is expected
		errHas  string
	}{
		{"amqp://guest:guest@127.0.0.1:5672//", "*amqpbroker.Broker", ""},
		{"amqps://u:p@127.0.0.1:5671/vh", "*amqpbroker.Broker", ""},
		{"pyamqp://127.0.0.1//", "*amqpbroker.Broker", ""},
		{"AMQP://127.0.0.1//", "*amqpbroker.Broker", ""},
		{"amqp://a//;amqp://b//", "*amqpbroker.Broker", ""},
		{"memory://", "*memorybroker.Conn", ""},
		{"memory://localhost/", "*memorybroker.Conn", ""},
		{"memory://;amqp://a//", "", "failover"},
		{"redis://127.0.0.1:6379/10", "*wiring.RedisBroker", ""},
		{"rediss://127.0.0.1:6380/0", "*wiring.RedisBroker", ""},
		{"redis://a:6379/0;redis://b:6379/0", "", "failover"},
		{"redis://127.0.0.1:6379/notadb", "", "broker_url"},
		{"sentinel://127.0.0.1:26379", "", "master_name"},
		{"sqs://", "", `unknown scheme "sqs"`},
		{"amqp:/127.0.0.1", "", "no scheme"},
		{"127.0.0.1:5672", "", "no scheme"},
		{"", "", "empty"},
		{"  ", "", "empty"},
		{"amqp://h:notaport//", "", "broker_url"},
		{"amqp://a//;redis://u:pw@b//", "", "broker_url entry 2 of 2 (redis://u:xxxxx@b//)"},
	} {
		b, err := Broker(celery.Config{BrokerURL: tc.url}, "wiring-test", nil)
		if tc.adapter == "" {
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("Broker(%q): error %v, want one mentioning %q", tc.url, err, tc.errHas)
			}
			if b != nil {
				t.Errorf("Broker(%q) returned a broker with its error", tc.url)
			}
			continue
		}
		if err != nil {
			t.Errorf("Broker(%q): %v", tc.url, err)
			continue
		}
		if got := fmt.Sprintf("%T", b); got != tc.adapter {
			t.Errorf("Broker(%q) is a %s, want %s", tc.url, got, tc.adapter)
		}
		_ = b.Close()
	}
}

// TestMemoryBrokerServesTheClient: two memory:// brokers from wiring (a client's and a worker's)
// reach the same queues: what one publishes the other consumes.
func TestMemoryBrokerServesTheClient(t *testing.T) {
	t.Parallel()
	b, err := Broker(celery.Config{BrokerURL: "memory://"}, "wiring-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	q := broker.Queue{Name: "wiring-test." + t.Name()}
	other, err := Broker(celery.Config{BrokerURL: "memory://"}, "wiring-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.Publish(t.Context(), broker.Publishing{RoutingKey: q.Name, Declare: &q,
		Envelope: protocol.Envelope{Body: []byte("hi")}}); err != nil {
		t.Fatal(err)
	}
	ch, err := b.Consume(t.Context(), []broker.Queue{q}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if d := <-ch; d == nil || string(d.Body) != "hi" {
		t.Fatalf("got %v", d)
	}
	if !broker.Connected(b) || broker.Reconnects(b) != 0 {
		t.Fatal("an in-process broker is always connected and never reconnects")
	}
}

// TestRedisClients: the repository's Redis settings take their Sentinel options from
// result_backend_transport_options, the broker's from broker_transport_options, and every client
// is the one go-redis type (a failover client is a *redis.Client too).
func TestRedisClients(t *testing.T) {
	t.Parallel()
	closed := testenv.FreeAddr(t)
	cfg := celery.Config{BrokerURL: "sentinel://" + closed, BrokerTransportOptions: map[string]any{"master_name": "broker-master"},
		ResultBackendTransportOptions: map[string]any{"master_name": "results-master"}}
	rc, err := AppRedis(cfg, "sentinel://"+closed+"/4", nil)
	if err != nil {
		t.Fatal(err)
	}
	if o := rc.Options(); o.DB != 4 || o.DialTimeout != redisconn.DefaultDialTimeout || o.PoolSize < redisconn.DefaultPoolSize {
		t.Errorf("app client options: db %d dial %v pool %d", o.DB, o.DialTimeout, o.PoolSize)
	}
	_ = rc.Close()
	bc, err := BrokerRedis(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = bc.Close()
	if _, err := BrokerRedis(celery.Config{BrokerURL: "sentinel://" + closed}, nil); err == nil || !strings.Contains(err.Error(), "broker_url") ||
		!strings.Contains(err.Error(), "master_name") {
		t.Errorf("broker sentinel without master_name: %v", err)
	}
	if _, err := AppRedis(celery.Config{}, "sentinel://"+closed, nil); err == nil || !strings.Contains(err.Error(), "master_name") {
		t.Errorf("app sentinel without result_backend_transport_options: %v", err)
	}
	if _, err := Redis("http://127.0.0.1/"); err == nil || !strings.Contains(err.Error(), `unknown scheme "http"`) {
		t.Errorf("unknown scheme: %v", err)
	}
}

// TestAMQPOptionsFromBrokerConnectionSettings: Celery's broker connection settings reach the
// RabbitMQ adapter, Celery's 0s (no heartbeat, retry forever) as the adapter's negatives.
func TestAMQPOptionsFromBrokerConnectionSettings(t *testing.T) {
	t.Parallel()
	f := func(v float64) *float64 { return &v }
	i := func(v int) *int { return &v }
	no := false
	for _, tc := range []struct {
		name               string
		cfg                celery.Config
		timeout, heartbeat time.Duration
		maxRetries         int
		noRetryOnStartup   bool
	}{
		{"defaults", celery.Config{}, 4 * time.Second, 120 * time.Second, 100, false},
		{"set", celery.Config{BrokerConnectionTimeout: f(1.5), BrokerHeartbeat: f(30), BrokerConnectionMaxRetries: i(7),
			BrokerConnectionRetryOnStartup: &no}, 1500 * time.Millisecond, 30 * time.Second, 7, true},
		{"zeros", celery.Config{BrokerHeartbeat: f(0), BrokerConnectionMaxRetries: i(0)}, 4 * time.Second, -1, -1, false},
	} {
		o := amqpOptions(tc.cfg, "n", nil)
		if o.ConnectionTimeout != tc.timeout || o.Heartbeat != tc.heartbeat || o.MaxRetries != tc.maxRetries || o.NoRetryOnStartup != tc.noRetryOnStartup {
			t.Errorf("%s: options %+v", tc.name, o)
		}
	}
}
