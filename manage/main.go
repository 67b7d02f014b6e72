// Command manage is the ads system's command line, in the spirit of Django's manage.py and
// `celery call`: it runs a task once in the foreground, sends one to the workers, applies the
// schema and generates sample data. It reads the same celeryconfig.yaml and environment as the
// worker (CELERY_BROKER_URL, CELERY_RESULT_BACKEND, DATABASE_URL, REDIS_URL, ADS_KEY_PREFIX).
//
//	manage [--config FILE] [-l LEVEL] COMMAND [flags] [args]
//
//	run TASK [ARG...] [--args JSON] [--kwargs JSON]   run TASK here, print its result (JSON)
//	call TASK [ARG...] [--args JSON] [--kwargs JSON] [--queue Q] [--countdown S] [--eta TIME]
//	     [--expires S] [--wait] [--timeout S]          send TASK to the workers, print its id
//	tasks                                             list the task names workers register
//	schema                                            apply schema.sql to the database
//	gen-feed [flags] [-o FILE]                        write a sample advertiser feed
//	gen-stats [flags]                                 write sample hourly stats into the database
//	deadletter list|replay|purge [flags]              inspect, replay or delete dead-lettered messages
//
// ARG is a JSON value; a word that is not JSON is taken as a string (manage run ads.import_feed
// samples/feed.csv).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/forumads/forumads/ads/adsconfig"
	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/internal/config"
	"github.com/forumads/forumads/internal/logging"
	"github.com/forumads/forumads/internal/wiring"
	"github.com/forumads/forumads/tasks"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: manage [--config FILE] [-l LEVEL] COMMAND [flags] [args]

commands:
  run TASK [ARG...]    run a task once here and print its result (like a Django management command)
  call TASK [ARG...]   send a task to the workers and print its id (like celery call)
  tasks                list the registered task names
  schema               apply schema.sql to the database (DATABASE_URL)
  gen-feed             write a sample advertiser feed
  gen-stats            write sample hourly stats into the database
  deadletter list|replay|purge   inspect, replay or delete dead-lettered messages

run "manage COMMAND -h" for a command's flags.
`

// env is what every command gets.
type env struct {
	file   *config.File
	log    *slog.Logger
	stdout io.Writer
	stderr io.Writer
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("manage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	cfgPath := fs.String("config", "", "configuration file (default "+config.DefaultPath+")")
	var level string
	for _, n := range []string{"l", "loglevel"} {
		fs.StringVar(&level, n, "WARNING", "DEBUG, INFO, WARNING, ERROR or CRITICAL")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	log, err := logging.New(stderr, level, "MainProcess")
	if err != nil {
		fmt.Fprintln(stderr, "manage:", err)
		return 2
	}
	file, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "manage:", err)
		return 1
	}
	e := &env{file: file, log: log, stdout: stdout, stderr: stderr}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	var cerr error
	switch cmd {
	case "run":
		cerr = e.runTask(ctx, rest)
	case "call":
		cerr = e.call(ctx, rest)
	case "tasks":
		cerr = e.tasks()
	case "schema":
		cerr = e.schema(ctx)
	case "gen-feed":
		cerr = e.genFeed(rest)
	case "gen-stats":
		cerr = e.genStats(ctx, rest)
	case "deadletter":
		cerr = e.deadletter(ctx, rest)
	default:
		fmt.Fprintf(stderr, "manage: unknown command %q\n", cmd)
		fs.Usage()
		return 2
	}
	var ue usageError
	switch {
	case cerr == nil:
		return 0
	case errors.As(cerr, &ue):
		fmt.Fprintln(stderr, "manage:", cerr)
		return 2
	case errors.Is(cerr, flag.ErrHelp):
		return 0
	default:
		fmt.Fprintf(stderr, "manage %s: %v\n", cmd, cerr)
		return 1
	}
}

// usageError is a mistake on the command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// taskFlags are the flags run and call share: the task's arguments.
type taskFlags struct {
	args, kwargs string
}

func (tf *taskFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&tf.args, "args", "", `positional arguments as a JSON list, e.g. '["samples/feed.csv"]'`)
	fs.StringVar(&tf.kwargs, "kwargs", "", `keyword arguments as a JSON object, e.g. '{"batch_size": 1000}'`)
}

// parseFlagsAnywhere parses fs over args, allowing flags after positional arguments, and returns
// the positional ones.
func parseFlagsAnywhere(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// taskArgs builds a task's args and kwargs from the positional words and the flags.
func taskArgs(words []string, tf taskFlags) ([]json.RawMessage, map[string]json.RawMessage, error) {
	var args []json.RawMessage
	if tf.args != "" {
		if err := json.Unmarshal([]byte(tf.args), &args); err != nil {
			return nil, nil, usageError{fmt.Sprintf("--args must be a JSON list: %v", err)}
		}
	}
	for _, w := range words {
		if json.Valid([]byte(w)) {
			args = append(args, json.RawMessage(w))
			continue
		}
		b, _ := json.Marshal(w)
		args = append(args, b)
	}
	kwargs := map[string]json.RawMessage{}
	if tf.kwargs != "" {
		if err := json.Unmarshal([]byte(tf.kwargs), &kwargs); err != nil {
			return nil, nil, usageError{fmt.Sprintf("--kwargs must be a JSON object: %v", err)}
		}
	}
	return args, kwargs, nil
}

func (e *env) runTask(ctx context.Context, argv []string) error {
	fs := flag.NewFlagSet("manage run", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var tf taskFlags
	tf.register(fs)
	words, err := parseFlagsAnywhere(fs, argv)
	if err != nil {
		return err
	}
	if len(words) == 0 {
		return usageError{"run: name the task, e.g. manage run ads.score"}
	}
	name := words[0]
	args, kwargs, err := taskArgs(words[1:], tf)
	if err != nil {
		return err
	}
	set, err := tasks.Open(e.file, tasks.Options{Logger: e.log})
	if err != nil {
		return err
	}
	defer set.Close()
	start := time.Now()
	res, err := set.Registry.ApplyWith(ctx, name, args, kwargs, celery.ApplyOptions{
		OnState: func(_ context.Context, state string, meta any) error {
			b, _ := json.Marshal(meta)
			fmt.Fprintf(e.stderr, "%s %s %s\n", name, state, b)
			return nil
		},
	})
	if err != nil {
		typ, _, msg := celery.ExceptionOf(err)
		return fmt.Errorf("%s failed after %s: %s: %s", name, time.Since(start).Round(time.Millisecond), typ, msg)
	}
	fmt.Fprintln(e.stdout, string(res))
	return nil
}

func (e *env) call(ctx context.Context, argv []string) error {
	fs := flag.NewFlagSet("manage call", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var tf taskFlags
	tf.register(fs)
	queue := fs.String("queue", "", "queue to send to (default: task_routes, then task_default_queue)")
	countdown := fs.Float64("countdown", 0, "run no earlier than this many seconds from now")
	eta := fs.String("eta", "", "run no earlier than this time (RFC 3339)")
	expires := fs.Float64("expires", 0, "seconds after which the task is revoked if it has not started")
	wait := fs.Bool("wait", false, "wait for the result and print it")
	timeout := fs.Float64("timeout", 60, "with --wait: seconds to wait")
	words, err := parseFlagsAnywhere(fs, argv)
	if err != nil {
		return err
	}
	if len(words) == 0 {
		return usageError{"call: name the task, e.g. manage call ads.score"}
	}
	name := words[0]
	args, kwargs, err := taskArgs(words[1:], tf)
	if err != nil {
		return err
	}
	var opts []celery.SendOption
	if *queue != "" {
		opts = append(opts, celery.WithQueue(*queue))
	}
	if *countdown > 0 {
		opts = append(opts, celery.WithCountdown(time.Duration(*countdown*float64(time.Second))))
	}
	if *eta != "" {
		t, err := time.Parse(time.RFC3339, *eta)
		if err != nil {
			return usageError{fmt.Sprintf("--eta: %v", err)}
		}
		opts = append(opts, celery.WithETA(t))
	}
	if *expires > 0 {
		opts = append(opts, celery.WithExpiresIn(time.Duration(*expires*float64(time.Second))))
	}
	cfg := e.file.Celery
	br, err := wiring.Broker(cfg, "manage", e.log)
	if err != nil {
		return err
	}
	defer br.Close()
	co := celery.ClientOptions{Config: cfg, Broker: br}
	backend, rc, err := wiring.Backend(cfg)
	if err != nil {
		return err
	}
	if backend != nil {
		co.Backend = backend
		defer rc.Close()
	}
	client, err := celery.NewClient(co)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := client.SendRaw(sctx, name, args, kwargs, opts...)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, res.ID)
	if !*wait {
		return nil
	}
	if backend == nil {
		return errors.New("--wait needs a result_backend")
	}
	wctx, cancel := context.WithTimeout(ctx, time.Duration(*timeout*float64(time.Second)))
	defer cancel()
	v, err := res.Get(wctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, string(v))
	return nil
}

func (e *env) tasks() error {
	set, err := tasks.Open(e.file, tasks.Options{Logger: e.log})
	if err != nil {
		return err
	}
	defer set.Close()
	fmt.Fprintln(e.stdout, strings.Join(set.Registry.Names(), "\n"))
	return nil
}

func (e *env) schema(ctx context.Context) error {
	st, err := adsconfig.FromFile(e.file, nil)
	if err != nil {
		return err
	}
	db, err := adsconfig.OpenDB(st.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := adsconfig.ApplySchema(ctx, db); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "schema.sql applied to %s\n", wiring.Redacted(st.DatabaseURL))
	return nil
}
