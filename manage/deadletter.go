package main

// manage deadletter: inspect, replay and purge the messages the worker moved to its dead-letter
// queue (worker_dead_letter_queue, default celery.deadletter; see celery/deadletter.go).
//
//	deadletter list   [--queue Q] [--limit N] [--json]
//	deadletter replay [--queue Q] (--id ID ... | --all) [--to QUEUE]
//	deadletter purge  [--queue Q] (--id ID ... | --all) --yes
//
// The work itself is the broker's dead-letter API (broker.DeadLetterQueues, implemented by
// celery/broker/amqpbroker, whose deadletters.go says how messages are read without being lost or
// reordered and how each replayed message moves exactly once); this file parses the flags, checks
// them before connecting (mistakes are usage errors, exit 2) and prints what the broker did. Errors
// from the broker name the messages left behind, and the command exits 1.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/amqpbroker"
	"github.com/forumads/forumads/internal/wiring"
)

const deadletterUsage = `usage:
  manage deadletter list   [--queue Q] [--limit N] [--json]
  manage deadletter replay [--queue Q] (--id ID ... | --all) [--to QUEUE]
  manage deadletter purge  [--queue Q] (--id ID ... | --all) --yes

Q defaults to worker_dead_letter_queue (celery.deadletter). IDs may also be given as arguments.
`

// deadletterTimeout bounds a whole deadletter command.
const deadletterTimeout = 10 * time.Minute

// deadLetter describes one message of the dead-letter queue (what list prints).
type deadLetter = broker.DeadLetterInfo

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

// newSelection checks the command line's choice of messages; the broker acts on it.
func newSelection(all bool, ids []string) (broker.DeadLetterSelection, error) {
	switch {
	case all && len(ids) > 0:
		return broker.DeadLetterSelection{}, usageError{"give either --id or --all, not both"}
	case !all && len(ids) == 0:
		return broker.DeadLetterSelection{}, usageError{"name the messages with --id ID (repeatable) or --all"}
	}
	return broker.DeadLetterSelection{All: all, IDs: ids}, nil
}

// dialDLQ returns the broker's dead-letter API for cfg's broker_url: RabbitMQ's (each URL tried
// once per command, nothing connected until the command runs) or, for redis://, the Redis
// broker's (with broker_transport_options).
func dialDLQ(cfg celery.Config) (broker.DeadLetterQueues, func(), error) {
	if s, _, _ := strings.Cut(strings.TrimSpace(cfg.BrokerURL), "://"); s == "redis" || s == "rediss" {
		b, err := wiring.Broker(cfg, "manage deadletter", slog.New(slog.DiscardHandler))
		if err != nil {
			return nil, nil, err
		}
		return b.(broker.DeadLetterQueues), func() { _ = b.Close() }, nil
	}
	b, err := amqpbroker.New(cfg.BrokerURL, amqpbroker.Options{ConnectionName: "manage deadletter", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, nil, err
	}
	return b, func() { _ = b.Close() }, nil
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
	var sel broker.DeadLetterSelection
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
	if to != nil && *to == *queue {
		return usageError{fmt.Sprintf("--to %q is the dead-letter queue itself", *to)}
	}
	q, closeQ, err := dialDLQ(e.file.Celery)
	if err != nil {
		return err
	}
	defer closeQ()
	switch sub {
	case "list":
		dls, err := q.ListDeadLetters(ctx, *queue, *limit)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(e.stdout, dls)
		}
		return writeTable(e.stdout, dls)
	case "replay":
		done, err := q.ReplayDeadLetters(ctx, *queue, sel, *to)
		for _, r := range done {
			fmt.Fprintf(e.stdout, "replayed %s (%s) to %s\n", r.ID, r.Task, r.To)
		}
		fmt.Fprintf(e.stderr, "%d message(s) replayed from %s\n", len(done), *queue)
		return err
	default: // purge
		if sel.All {
			n, err := q.PurgeAllDeadLetters(ctx, *queue)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "%d message(s) deleted from %s\n", n, *queue)
			return nil
		}
		done, err := q.PurgeDeadLetters(ctx, *queue, sel.IDs)
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
