package amqpbroker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/testenv"
)

func TestParseURLs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want []string
		ok   bool
	}{
		{"amqp://guest:guest@127.0.0.1:5672//", []string{"amqp://guest:guest@127.0.0.1:5672/%2F"}, true},
		{"pyamqp://u:p@h:5672/vh", []string{"amqp://u:p@h:5672/vh"}, true},
		{"amqp://h", []string{"amqp://guest:guest@h/%2F"}, true},
		{"amqp://a//;amqp://b//", []string{"amqp://guest:guest@a/%2F", "amqp://guest:guest@b/%2F"}, true},
		{"redis://h", nil, false},
		{"", nil, false},
	} {
		got, err := ParseURLs(tc.in)
		if (err == nil) != tc.ok || strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("ParseURLs(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseURLsNamesTheBadEntryWithoutItsPassword(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in, want string
	}{
		{"unknown scheme in a list", "amqp://u:pw1@a//;redis://u:pw2@b:6379/0",
			`broker_url entry 2 of 2 (redis://u:xxxxx@b:6379/0): unsupported scheme "redis"`},
		{"unparsable port", "amqp://u:pw1@a:56x72//;amqp://u:pw2@b//",
			`broker_url entry 1 of 2 (amqp://u:xxxxx@a:56x72//): not a URL: invalid port ":56x72" after host`},
		{"port out of range", "amqp://u:pw1@a:99999//",
			`broker_url amqp://u:xxxxx@a:99999//: port "99999" is not a number up to 65535`},
		{"control character", "amqp://a//;amqp://u:pw1@b\x7f//", "broker_url entry 2 of 2 (amqp://u:xxxxx@b"},
		{"no scheme", "amqp://a//; u:pw1@b:5672",
			`broker_url entry 2 of 2 (u:xxxxx@b:5672)`},
		{"no // after the scheme", "amqp://a//;amqp:u:pw1@b", "broker_url entry 2 of 2 (amqp:xxxxx@b): not a URL of the form"},
		{"one slash after the scheme", "amqp:/h//", "broker_url amqp:/h//: not a URL of the form"},
		{"whitespace", "amqp://u:pw1@h/v?x= 1", "broker_url amqp://u:xxxxx@h/v?x= 1: contains whitespace"},
		{"middle entry", "amqp://a//;amqp://u:pw1@[::1//;amqp://c//",
			`broker_url entry 2 of 3 (amqp://u:xxxxx@[::1//): not a URL: missing ']' in host`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseURLs(tc.in)
			if err == nil {
				t.Fatalf("ParseURLs(%q) accepted a bad entry", tc.in)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "pw") {
				t.Fatalf("ParseURLs(%q) = %q, want it to contain %q and no password", tc.in, err, tc.want)
			}
		})
	}
}

func FuzzParseURLs(f *testing.F) {
	for _, s := range []string{"amqp://guest:guest@127.0.0.1:5672//", "amqp://a//;pyamqp://u:p@b:1/v",
		"redis://h", "amqp://u:p@h:x//", "amqps://[::1]:5671/%2F", ";;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		urls, err := ParseURLs(in)
		if err != nil {
			if len(urls) != 0 {
				t.Fatalf("ParseURLs(%q) returned URLs with an error", in)
			}
			return
		}
		for _, u := range urls {
			if _, err := amqp.ParseURI(u); err != nil {
				t.Fatalf("ParseURLs(%q) gave %q, which amqp091-go refuses: %v", in, u, err)
			}
		}
	})
}

func TestTableValueFitsPyAMQP(t *testing.T) {
	t.Parallel()
	in := map[string]any{"small": 7, "big": 1 << 40, "neg": -(1 << 40), "u8": uint8(3), "list": []any{1, "a"}, "nested": map[string]any{"n": 2}}
	got := Table(in)
	if got["small"] != int32(7) || got["big"] != int64(1<<40) || got["neg"] != int64(-(1<<40)) || got["u8"] != int32(3) {
		t.Fatalf("ints: %#v", got)
	}
	if got["list"].([]any)[0] != int32(1) || got["nested"].(amqp.Table)["n"] != int32(2) {
		t.Fatalf("nested: %#v", got)
	}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestDeclarePublishConsumeAgainstRabbitMQ(t *testing.T) {
	t.Parallel()
	q := broker.Queue{Name: testenv.Name(t, "amqpbroker"), ExchangeType: "direct"}
	q.Exchange, q.RoutingKey = q.Name, q.Name
	testenv.DeleteQueuesAtCleanup(t, q.Name)
	b, err := New(testenv.AMQPURL(), Options{ConnectionName: "amqpbroker-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	deliveries, err := b.Consume(ctx, []broker.Queue{q}, 10)
	if err != nil {
		t.Fatal(err)
	}
	env := protocol.Envelope{Body: []byte(`{"x":1}`), ContentType: "application/json", ContentEncoding: "utf-8",
		DeliveryMode: 2, CorrelationID: "c1", Headers: map[string]any{"x-n": 1 << 40}}
	if err := b.Publish(ctx, broker.Publishing{Exchange: q.Exchange, RoutingKey: q.RoutingKey, Envelope: env}); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-deliveries:
		if string(d.Body) != `{"x":1}` || d.CorrelationID != "c1" || d.Queue != q.Name || d.Headers["x-n"] != int64(1<<40) || d.Generation != 1 {
			t.Fatalf("delivery %+v", d)
		}
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("no delivery")
	}
	if err := b.SetPrefetch(20); err != nil {
		t.Fatal(err)
	}
	if err := b.StopConsuming(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-deliveries:
		if ok {
			t.Fatal("unexpected delivery after StopConsuming")
		}
	case <-ctx.Done():
		t.Fatal("deliveries not closed after StopConsuming")
	}
}

func TestDeclareMismatchIsReportedNotRetried(t *testing.T) {
	t.Parallel()
	name := testenv.Name(t, "amqpbroker")
	testenv.DeleteQueuesAtCleanup(t, name)
	b, err := New(testenv.AMQPURL(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.Declare(ctx, broker.Queue{Name: name}); err != nil {
		t.Fatal(err)
	}
	mp := 5
	err = b.Declare(ctx, broker.Queue{Name: name, MaxPriority: &mp})
	var aerr *amqp.Error
	if !errors.As(err, &aerr) || aerr.Code != amqp.PreconditionFailed || !strings.Contains(err.Error(), "other settings") {
		t.Fatalf("redeclaring with other arguments: %v", err)
	}
}
