package main

// manage deadletter: inspect, replay and purge the messages the worker moved to its dead-letter
// queue (worker_dead_letter_queue, default celery.deadletter; see celery/deadletter.go).
//
//	deadletter list   [--queue Q] [--limit N] [--json]
//	deadletter replay [--queue Q] (--id ID ... | --all) [--to QUEUE]
//	deadletter purge  [--queue Q] (--id ID ... | --all) --yes
//
// # How messages are read without losing or reordering them
//
// Every command reads the dead-letter queue with basic.get and manual acknowledgement, on one
// channel, at most as many messages as the queue held when the command started (so messages
// dead-lettered meanwhile cannot make it loop). A message is acknowledged only once what the
// command does with it is done: replayed and confirmed by the broker, or purged. Every other message
// it read is handed back with a single basic.nack(multiple, requeue) when the command ends, and
// RabbitMQ puts requeued messages back in their original positions; if the command dies instead,
// closing the channel requeues them the same way. So list changes nothing but the messages'
// redelivered flag, and a consumer of the dead-letter queue (there normally is none) would see the
// messages only while a command holds them.
//
// # Replay
//
// A replayed message goes to its original queue (x-original-queue; for a message RabbitMQ itself
// dead-lettered, the queue in its first x-death entry), or to --to, through the default exchange,
// so it reaches that one queue whatever the original exchange's bindings. It keeps its body, its
// properties and its headers minus the ones the worker added (x-dead-letter-reason,
// x-original-*, x-dead-lettered-by, x-dead-lettered-at). It is published mandatory, on a channel
// in confirm mode, one message at a time: the dead letter is acknowledged only after the broker
// confirmed the copy and did not return it as unroutable. A message the broker returns (its queue
// does not exist) or nacks, or that has no original queue, stays in the dead-letter queue and
// replay goes on with the next; any other failure (a closed channel or connection) stops replay.
// Either way the errors name the messages and the command exits 1. A crash between the confirm and
// the ack can at worst leave a message in both queues, never in neither.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/amqpwire"
	"github.com/forumads/forumads/celery/broker/amqpbroker"
)

const deadletterUsage = `usage:
  manage deadletter list   [--queue Q] [--limit N] [--json]
  manage deadletter replay [--queue Q] (--id ID ... | --all) [--to QUEUE]
  manage deadletter purge  [--queue Q] (--id ID ... | --all) --yes

Q defaults to worker_dead_letter_queue (celery.deadletter). IDs may also be given as arguments.
`

// deadLetterHeaders are the headers the worker adds when it dead-letters a message; replay removes them.
var deadLetterHeaders = []string{celery.HeaderDeadLetterReason, celery.HeaderOriginalQueue, celery.HeaderOriginalExchange,
	celery.HeaderOriginalKey, celery.HeaderDeadLetteredBy, celery.HeaderDeadLetteredAt}

// deadletterTimeout bounds a whole deadletter command.
const deadletterTimeout = 10 * time.Minute

// deadLetter describes one message of the dead-letter queue.
type deadLetter struct {
	ID                 string `json:"id"`
	Task               string `json:"task"`
	Reason             string `json:"reason"`
	OriginalQueue      string `json:"original_queue"`
	OriginalExchange   string `json:"original_exchange"`
	OriginalRoutingKey string `json:"original_routing_key"`
	DeadLetteredAt     string `json:"dead_lettered_at"`
	DeadLetteredBy     string `json:"dead_lettered_by"`
	ContentType        string `json:"content_type"`
	BodyBytes          int    `json:"body_bytes"`
}

// describe reads what list shows from a dead letter's headers and properties. The id and task
// come from the protocol-2 headers, else from a protocol-1 JSON body, else from the properties
// (correlation_id, message_id); what is missing stays empty.
func describe(headers amqp.Table, p amqp.Delivery) deadLetter {
	d := deadLetter{
		ID:                 headerString(headers, "id"),
		Task:               headerString(headers, "task"),
		Reason:             headerString(headers, celery.HeaderDeadLetterReason),
		OriginalQueue:      originalQueue(headers),
		OriginalExchange:   headerString(headers, celery.HeaderOriginalExchange),
		OriginalRoutingKey: headerString(headers, celery.HeaderOriginalKey),
		DeadLetteredAt:     headerString(headers, celery.HeaderDeadLetteredAt),
		DeadLetteredBy:     headerString(headers, celery.HeaderDeadLetteredBy),
		ContentType:        p.ContentType,
		BodyBytes:          len(p.Body),
	}
	if (d.ID == "" || d.Task == "") && strings.Contains(p.ContentType, "json") {
		var v1 struct {
			ID   any `json:"id"`
			Task any `json:"task"`
		}
		if json.Unmarshal(p.Body, &v1) == nil {
			if s, ok := v1.ID.(string); ok && d.ID == "" {
				d.ID = s
			}
			if s, ok := v1.Task.(string); ok && d.Task == "" {
				d.Task = s
			}
		}
	}
	if d.ID == "" {
		d.ID = p.CorrelationId
	}
	if d.ID == "" {
		d.ID = p.MessageId
	}
	if d.Reason == "" {
		if r := xDeathString(headers, "reason"); r != "" {
			d.Reason = "rabbitmq: " + r
		}
	}
	if d.DeadLetteredAt == "" && !p.Timestamp.IsZero() {
		d.DeadLetteredAt = p.Timestamp.UTC().Format(time.RFC3339)
	}
	return d
}

// headerString returns a header as text: strings as they are, []byte as UTF-8 text, other
// scalars formatted; tables and arrays (and a missing header) give "".
func headerString(h amqp.Table, key string) string {
	switch v := h[key].(type) {
	case nil:
		return ""
	case string:
		return v
	case []byte:
		return string(v)
	case amqp.Table, []any:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// originalQueue is the queue a dead letter came from: x-original-queue (set by the worker), else the
// queue of the first x-death entry (set by RabbitMQ's own dead-lettering).
func originalQueue(h amqp.Table) string {
	if q := headerString(h, celery.HeaderOriginalQueue); q != "" {
		return q
	}
	return xDeathString(h, "queue")
}

// xDeathString returns a field of the first entry of RabbitMQ's x-death header.
func xDeathString(h amqp.Table, field string) string {
	deaths, _ := h["x-death"].([]any)
	if len(deaths) == 0 {
		return ""
	}
	first, _ := deaths[0].(amqp.Table)
	return headerString(first, field)
}

// withoutDeadLetterHeaders returns a copy of h without the headers the worker added.
func withoutDeadLetterHeaders(h amqp.Table) amqp.Table {
	out := make(amqp.Table, len(h))
	for k, v := range h {
		if !slices.Contains(deadLetterHeaders, k) {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// republishing is the message replay publishes for the dead letter d.
func republishing(d amqp.Delivery) amqp.Publishing {
	mode := d.DeliveryMode
	if mode == 0 {
		mode = amqp.Persistent
	}
	return amqp.Publishing{
		Headers:         withoutDeadLetterHeaders(d.Headers),
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    mode,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		Expiration:      d.Expiration,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		UserId:          d.UserId,
		AppId:           d.AppId,
		Body:            d.Body,
	}
}

// idList is a repeatable --id flag; each value may also hold several ids separated by commas.
type idList []string

func (l *idList) String() string { return strings.Join(*l, ",") }

func (l *idList) Set(v string) error {
	for _, id := range strings.Split(v, ",") {
		if id = strings.TrimSpace(id); id != "" {
			*l = append(*l, id)
		}
	}
	return nil
}

// selection is which messages replay and purge act on.
type selection struct {
	all bool
	ids map[string]bool // wanted ids; true once found
}

func newSelection(all bool, ids []string) (selection, error) {
	switch {
	case all && len(ids) > 0:
		return selection{}, usageError{"give either --id or --all, not both"}
	case !all && len(ids) == 0:
		return selection{}, usageError{"name the messages with --id ID (repeatable) or --all"}
	}
	s := selection{all: all, ids: map[string]bool{}}
	for _, id := range ids {
		s.ids[id] = false
	}
	return s, nil
}

// take reports whether the message with id is selected, marking it found.
func (s selection) take(id string) bool {
	if s.all {
		return true
	}
	if _, ok := s.ids[id]; !ok {
		return false
	}
	s.ids[id] = true
	return true
}

// done reports whether every named id was found.
func (s selection) done() bool {
	if s.all {
		return false
	}
	for _, found := range s.ids {
		if !found {
			return false
		}
	}
	return true
}

// missing returns the named ids not found, sorted.
func (s selection) missing() []string {
	var out []string
	for id, found := range s.ids {
		if !found {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// dlq is a connection to the broker for one command on one dead-letter queue.
type dlq struct {
	conn  *amqp.Connection
	queue string
}

// dialDLQ connects to the first reachable broker URL, through amqpwire as every connection here.
func dialDLQ(brokerURL, queue string) (*dlq, error) {
	urls, err := amqpbroker.ParseURLs(brokerURL)
	if err != nil {
		return nil, err
	}
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("manage deadletter")
	var errs []error
	for _, u := range urls {
		conn, err := amqp.DialConfig(u, amqp.Config{
			Heartbeat:  10 * time.Second,
			Locale:     "en_US",
			Properties: props,
			Dial:       amqpwire.Dialer(nil, amqpwire.Options{}),
		})
		if err == nil {
			return &dlq{conn: conn, queue: queue}, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("connecting to the broker: %w", errors.Join(errs...))
}

func (q *dlq) close() error { return q.conn.Close() }

// visitFunc sees one message; it may acknowledge it (and must report so, as acked). stop ends the
// scan early; an error ends it too and is returned.
type visitFunc func(d amqp.Delivery) (acked, stop bool, err error)

// scan reads up to limit messages (limit <= 0: all the queue held at the start) without
// acknowledging them and calls visit on each, in queue order. Messages visit did not acknowledge
// are requeued, in place, when scan returns (see the file comment).
func (q *dlq) scan(ctx context.Context, limit int, visit visitFunc) (err error) {
	ch, err := q.conn.Channel()
	if err != nil {
		return fmt.Errorf("opening a channel: %w", err)
	}
	defer func() {
		if cerr := ch.Close(); cerr != nil && err == nil && !errors.Is(cerr, amqp.ErrClosed) {
			err = fmt.Errorf("closing the channel: %w", cerr)
		}
	}()
	info, err := ch.QueueDeclarePassive(q.queue, true, false, false, false, nil)
	if err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return fmt.Errorf("dead-letter queue %q does not exist (no message was ever dead-lettered there?)", q.queue)
		}
		return fmt.Errorf("looking up queue %q: %w", q.queue, err)
	}
	n := info.Messages
	if limit > 0 {
		n = min(n, limit)
	}
	var lastUnacked uint64
	defer func() {
		if lastUnacked == 0 || ch.IsClosed() {
			return // a closed channel has already returned its unacknowledged messages
		}
		if nerr := ch.Nack(lastUnacked, true, true); nerr != nil && err == nil {
			err = fmt.Errorf("returning the messages read to %q: %w", q.queue, nerr)
		}
	}()
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("reading %q: %w", q.queue, context.Cause(ctx))
		}
		d, ok, err := ch.Get(q.queue, false)
		if err != nil {
			return fmt.Errorf("reading %q: %w", q.queue, err)
		}
		if !ok {
			return nil
		}
		acked, stop, err := visit(d)
		if !acked {
			lastUnacked = d.DeliveryTag
		}
		if err != nil || stop {
			return err
		}
	}
	return nil
}

// list returns up to limit dead letters (limit <= 0: all), leaving them in the queue.
func (q *dlq) list(ctx context.Context, limit int) ([]deadLetter, error) {
	var out []deadLetter
	err := q.scan(ctx, limit, func(d amqp.Delivery) (bool, bool, error) {
		out = append(out, describe(d.Headers, d))
		return false, false, nil
	})
	return out, err
}

// replayed is one message replay moved.
type replayed struct {
	deadLetter
	To string `json:"to"`
}

// replay republishes the selected dead letters (see the file comment); to, when set, overrides the
// original queue. It returns what it moved, also when it stops on an error.
func (q *dlq) replay(ctx context.Context, sel selection, to string) ([]replayed, error) {
	if to == q.queue {
		return nil, usageError{fmt.Sprintf("--to %q is the dead-letter queue itself", to)}
	}
	pub, err := q.conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("opening a channel: %w", err)
	}
	defer pub.Close()
	if err := pub.Confirm(false); err != nil {
		return nil, fmt.Errorf("enabling publisher confirms: %w", err)
	}
	returns := pub.NotifyReturn(make(chan amqp.Return, 1))
	var (
		done    []replayed
		skipped []error // messages left in the queue; replay goes on with the others
	)
	err = q.scan(ctx, 0, func(d amqp.Delivery) (bool, bool, error) {
		info := describe(d.Headers, d)
		if !sel.take(info.ID) {
			return false, false, nil
		}
		target := to
		if target == "" {
			target = info.OriginalQueue
		}
		switch target {
		case "":
			skipped = append(skipped, fmt.Errorf("message %s (%s) has no x-original-queue: replay it with --to QUEUE", info.ID, info.Task))
			return false, false, nil
		case q.queue:
			skipped = append(skipped, fmt.Errorf("message %s (%s) came from %q itself: replay it with --to QUEUE", info.ID, info.Task, q.queue))
			return false, false, nil
		}
		if err := publishConfirmed(ctx, pub, returns, target, republishing(d)); err != nil {
			err = fmt.Errorf("replaying message %s (%s) to %q: %w", info.ID, info.Task, target, err)
			var refused refusedError
			if errors.As(err, &refused) {
				skipped = append(skipped, err)
				return false, false, nil
			}
			return false, true, err
		}
		if err := d.Ack(false); err != nil {
			return false, true, fmt.Errorf("message %s was replayed to %q but could not be removed from %q (it is now in both): %w",
				info.ID, target, q.queue, err)
		}
		done = append(done, replayed{deadLetter: info, To: target})
		return true, sel.done(), nil
	})
	if !sel.all && !sel.done() {
		skipped = append(skipped, fmt.Errorf("not in %q: %s", q.queue, strings.Join(sel.missing(), ", ")))
	}
	if err != nil || len(skipped) > 0 {
		err = fmt.Errorf("%w (every message not replayed stays in %q)", errors.Join(append(skipped, err)...), q.queue)
	}
	return done, err
}

// refusedError is a message the broker returned or nacked: that message stays in the dead-letter
// queue and replay goes on with the next.
type refusedError struct{ msg string }

func (e refusedError) Error() string { return e.msg }

// publishConfirmed publishes msg to queue through the default exchange, mandatory, and waits for
// the broker's confirm; a message returned as unroutable (no such queue) is an error.
func publishConfirmed(ctx context.Context, ch *amqp.Channel, returns <-chan amqp.Return, queue string, msg amqp.Publishing) error {
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, msg)
	if err != nil {
		return fmt.Errorf("publishing: %w", err)
	}
	ok, err := conf.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("waiting for the publish confirm: %w", err)
	}
	// RabbitMQ sends basic.return before the confirm, and amqp091-go hands it over before it
	// processes the confirm, so a return for this message is already here.
	select {
	case r := <-returns:
		if r.ReplyCode == amqp.NoRoute {
			return refusedError{fmt.Sprintf("queue %q does not exist (the broker returned the message: %s)", queue, r.ReplyText)}
		}
		return refusedError{fmt.Sprintf("the broker returned the message: %d %s", r.ReplyCode, r.ReplyText)}
	default:
	}
	if !ok {
		return refusedError{"the broker refused the message (nack)"}
	}
	return nil
}

// purgeSelected deletes the selected dead letters and returns them.
func (q *dlq) purgeSelected(ctx context.Context, sel selection) ([]deadLetter, error) {
	var done []deadLetter
	err := q.scan(ctx, 0, func(d amqp.Delivery) (bool, bool, error) {
		info := describe(d.Headers, d)
		if !sel.take(info.ID) {
			return false, false, nil
		}
		if err := d.Ack(false); err != nil {
			return false, true, fmt.Errorf("deleting message %s: %w", info.ID, err)
		}
		done = append(done, info)
		return true, sel.done(), nil
	})
	if err == nil && !sel.done() {
		err = fmt.Errorf("not in %q: %s", q.queue, strings.Join(sel.missing(), ", "))
	}
	return done, err
}

// purgeAll empties the queue and returns how many messages it deleted.
func (q *dlq) purgeAll() (int, error) {
	ch, err := q.conn.Channel()
	if err != nil {
		return 0, fmt.Errorf("opening a channel: %w", err)
	}
	defer ch.Close()
	if _, err := ch.QueueDeclarePassive(q.queue, true, false, false, false, nil); err != nil {
		return 0, fmt.Errorf("dead-letter queue %q: %w", q.queue, err)
	}
	n, err := ch.QueuePurge(q.queue, false)
	if err != nil {
		return 0, fmt.Errorf("purging %q: %w", q.queue, err)
	}
	return n, nil
}

// deadletter runs "manage deadletter SUBCOMMAND".
func (e *env) deadletter(ctx context.Context, argv []string) error {
	if len(argv) == 0 {
		fmt.Fprint(e.stderr, deadletterUsage)
		return usageError{"deadletter: name a subcommand: list, replay or purge"}
	}
	sub, argv := argv[0], argv[1:]
	fs := flag.NewFlagSet("manage deadletter "+sub, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(e.stderr, deadletterUsage) }
	queue := fs.String("queue", e.file.Celery.WorkerDeadLetterQueue, "the dead-letter queue")
	var (
		limit        *int
		asJSON       *bool
		all, yes     *bool
		to           *string
		ids          idList
		wantsMessage bool
	)
	switch sub {
	case "list":
		limit = fs.Int("limit", 100, "show at most this many messages (0: all)")
		asJSON = fs.Bool("json", false, "print a JSON array instead of a table")
	case "replay", "purge":
		wantsMessage = true
		fs.Var(&ids, "id", "a task id (repeatable, or comma-separated)")
		all = fs.Bool("all", false, "every message in the queue")
		if sub == "replay" {
			to = fs.String("to", "", "publish to this queue instead of each message's original queue")
		} else {
			yes = fs.Bool("yes", false, "confirm that the messages are to be deleted")
		}
	case "-h", "--help", "help":
		fmt.Fprint(e.stderr, deadletterUsage)
		return nil
	default:
		fmt.Fprint(e.stderr, deadletterUsage)
		return usageError{fmt.Sprintf("deadletter: unknown subcommand %q (list, replay, purge)", sub)}
	}
	words, err := parseFlagsAnywhere(fs, argv)
	if err != nil {
		return err
	}
	switch {
	case *queue == "":
		return usageError{"deadletter: --queue is empty"}
	case !wantsMessage && len(words) > 0:
		return usageError{fmt.Sprintf("deadletter %s: unexpected arguments %q", sub, words)}
	case limit != nil && *limit < 0:
		return usageError{"deadletter list: --limit must be 0 (all) or more"}
	}
	var sel selection
	if wantsMessage {
		if sel, err = newSelection(*all, append(ids, words...)); err != nil {
			return err
		}
		if yes != nil && !*yes {
			return usageError{"deadletter purge deletes messages for good: add --yes"}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, deadletterTimeout)
	defer cancel()
	q, err := dialDLQ(e.file.Celery.BrokerURL, *queue)
	if err != nil {
		return err
	}
	defer q.close()
	switch sub {
	case "list":
		dls, err := q.list(ctx, *limit)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(e.stdout, dls)
		}
		return writeTable(e.stdout, dls)
	case "replay":
		done, err := q.replay(ctx, sel, *to)
		for _, r := range done {
			fmt.Fprintf(e.stdout, "replayed %s (%s) to %s\n", r.ID, r.Task, r.To)
		}
		fmt.Fprintf(e.stderr, "%d message(s) replayed from %s\n", len(done), *queue)
		return err
	default: // purge
		if sel.all {
			n, err := q.purgeAll()
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "%d message(s) deleted from %s\n", n, *queue)
			return nil
		}
		done, err := q.purgeSelected(ctx, sel)
		for _, d := range done {
			fmt.Fprintf(e.stdout, "deleted %s (%s)\n", d.ID, d.Task)
		}
		fmt.Fprintf(e.stderr, "%d message(s) deleted from %s\n", len(done), *queue)
		return err
	}
}

func writeJSON(w io.Writer, dls []deadLetter) error {
	if dls == nil {
		dls = []deadLetter{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(dls)
}

// writeTable prints one line per dead letter; the reason is cut to at most 80 characters (--json
// has it whole); ids, tasks and queues are never cut, so they can be copied into replay.
func writeTable(w io.Writer, dls []deadLetter) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTASK\tORIGINAL QUEUE\tDEAD-LETTERED AT\tREASON")
	for _, d := range dls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cell(d.ID, 0), cell(d.Task, 0), cell(d.OriginalQueue, 0),
			cell(d.DeadLetteredAt, 0), cell(d.Reason, 80))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(dls) == 0 {
		_, err := fmt.Fprintln(w, "(no messages)")
		return err
	}
	return nil
}

// cell makes s printable in one table cell: control characters become spaces, invalid UTF-8 is
// replaced, and it is cut to max runes with "…" (max <= 0: never); empty is "-".
func cell(s string, max int) string {
	if s == "" {
		return "-"
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if max > 0 && utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max-1]) + "…"
	}
	return s
}
