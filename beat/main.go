// Command beat is the Go celery beat: it publishes the periodic tasks of celeryconfig.yaml's
// beat_schedule as ordinary Celery protocol-2 messages, which Python and Go workers both run. The
// last run of every entry is kept in Redis, so restarts neither repeat nor forget runs, and several
// beat processes can run at once: each run is sent by exactly one of them.
//
// Usage:
//
//	beat [--config celeryconfig.yaml] [-S/--scheduler name] [-l info] [--list] [--metrics-addr host:port]
//
// With beat_scheduler (or -S) django_celery_beat.schedulers:DatabaseScheduler (or `django`), the
// schedule is django-celery-beat's tables in the PostgreSQL database beat_database_url (env
// BEAT_DATABASE_URL) names, re-read when the admin changes it; at start beat_schedule's entries
// (and, with result_expires, celery.backend_cleanup) are written into those tables as the Python
// DatabaseScheduler does, and no Redis is needed (see djangoapps/beatdb).
//
// CELERY_BROKER_URL and CELERY_RESULT_BACKEND override broker_url and result_backend; REDIS_URL is
// the state store when beat_state_url is not set. SIGHUP reloads the schedule; SIGTERM or SIGINT
// stops beat (exit 0).
//
// Prometheus metrics (beat_publishes_total, beat_publish_failures_total,
// beat_publish_lateness_seconds, beat_entries, Go and process metrics; see internal/metrics) are
// served on GET /metrics at --metrics-addr (default BEAT_METRICS_ADDR, else 127.0.0.1:9809; empty:
// no server), with GET /healthz answering 503 while the Redis state store does not. Several beats
// on one host need distinct addresses: one that cannot listen logs an ERROR and runs without metrics.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/forumads/forumads/celery/beat"
	"github.com/forumads/forumads/celery/beat/redisbeat"
	"github.com/forumads/forumads/djangoapps/beatdb"
	"github.com/forumads/forumads/internal/beatops"
	"github.com/forumads/forumads/internal/config"
	"github.com/forumads/forumads/internal/logging"
	"github.com/forumads/forumads/internal/metrics"
	"github.com/forumads/forumads/internal/wiring"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// defaultMetricsAddr is where metrics are served when neither --metrics-addr nor
// BEAT_METRICS_ADDR says otherwise.
const defaultMetricsAddr = "127.0.0.1:9809"

type flags struct {
	config, loglevel, metricsAddr, scheduler string
	list                                     bool
}

// parseFlags reads the command line; lookupEnv is os.LookupEnv (BEAT_METRICS_ADDR).
func parseFlags(args []string, out io.Writer, lookupEnv func(string) (string, bool)) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("beat", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&f.config, "config", "", "configuration file (default "+config.DefaultPath+")")
	for _, n := range []string{"l", "loglevel"} {
		fs.StringVar(&f.loglevel, n, "INFO", "DEBUG, INFO, WARNING, ERROR or CRITICAL")
	}
	for _, n := range []string{"S", "scheduler"} {
		fs.StringVar(&f.scheduler, n, "", "beat_scheduler: "+beatdb.SchedulerName+" (or django) reads django-celery-beat's tables")
	}
	fs.BoolVar(&f.list, "list", false, "print every entry with its next run time and exit")
	addr, ok := lookupEnv("BEAT_METRICS_ADDR")
	if !ok {
		addr = defaultMetricsAddr
	}
	fs.StringVar(&f.metricsAddr, "metrics-addr", addr, "serve Prometheus metrics on host:port (env BEAT_METRICS_ADDR; empty: off)")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if f.metricsAddr != "" {
		if _, _, err := net.SplitHostPort(f.metricsAddr); err != nil {
			err = fmt.Errorf("--metrics-addr (or BEAT_METRICS_ADDR) %q is not host:port: %w", f.metricsAddr, err)
			fmt.Fprintln(out, "beat:", err)
			return f, err
		}
	}
	return f, nil
}

// loaded is a parsed configuration: everything is checked before anything is used.
type loaded struct {
	file     *config.File
	settings beat.Settings
	loc      *time.Location
	entries  []*beat.Entry
	// db is set with django-celery-beat's DatabaseScheduler.
	db *beatdb.Settings
}

// load reads the configuration; scheduler, if set, is -S (it wins over beat_scheduler).
func load(path, scheduler string) (*loaded, error) {
	file, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if scheduler != "" {
		file.Settings["beat_scheduler"] = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: scheduler}
	}
	loc, err := time.LoadLocation(file.Celery.Timezone)
	if err != nil {
		return nil, fmt.Errorf("timezone: %w", err)
	}
	entries, err := beat.ParseSchedule(file.Settings["beat_schedule"], loc)
	if err != nil {
		return nil, err
	}
	st, err := beat.ParseSettings(file.Settings, os.Getenv("REDIS_URL"), file.Celery.ResultBackend)
	if err != nil {
		return nil, err
	}
	l := &loaded{file: file, settings: st, loc: loc, entries: entries}
	switch {
	case beatdb.IsDatabaseScheduler(st.Scheduler):
		ds, err := beatdb.ParseSettings(file.Settings, os.LookupEnv)
		if err != nil {
			return nil, err
		}
		l.db = &ds
	case !beat.IsDefaultScheduler(st.Scheduler):
		return nil, fmt.Errorf("beat_scheduler %q: want %s (Redis state) or %s (django-celery-beat's tables)",
			st.Scheduler, beat.DefaultScheduler, beatdb.SchedulerName)
	default:
		// celery.backend_cleanup at 4:00 when results expire in a backend that keeps them.
		if l.entries, err = beat.InstallDefaultEntries(l.entries, file.Celery.ResultBackend, file.Celery.ResultTTL(), loc); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	f, err := parseFlags(args, stderr, os.LookupEnv)
	if err != nil {
		return 2
	}
	log, err := logging.New(stderr, f.loglevel, "MainProcess")
	if err != nil {
		fmt.Fprintln(stderr, "beat:", err)
		return 2
	}
	cfg, err := load(f.config, f.scheduler)
	if err != nil {
		log.Error("beat: " + err.Error())
		return 1
	}
	var (
		store  beat.Store
		source *beatdb.DB // django-celery-beat's tables, when they are the schedule
		ping   func(context.Context) error
	)
	if cfg.db != nil {
		db, err := beatdb.Open(cfg.db.DatabaseURL)
		if err != nil {
			log.Error("beat: " + err.Error())
			return 1
		}
		defer db.Close()
		source = beatdb.New(db, beatdb.Options{Logger: log, Known: cfg.db.Known()})
		started := time.Now()
		defer func() {
			log.Info(fmt.Sprintf("beat: database scheduler: %d SQL statements in %.1f s", source.Queries(), time.Since(started).Seconds()))
		}()
		store, ping = source, source.Ping
		cfg.settings.StateURL = cfg.db.DatabaseURL // for the banner
	} else {
		rc, err := wiring.AppRedis(cfg.file.Celery, cfg.settings.StateURL, log)
		if err != nil {
			log.Error("beat: beat_state_url: " + err.Error())
			return 1
		}
		defer rc.Close()
		store = redisbeat.New(rc, cfg.settings.KeyPrefix, cfg.settings.LockTTL)
		ping = func(ctx context.Context) error { return wiring.Ping(ctx, rc) }
	}

	ctx, cancel := context.WithCancel(context.Background()) // the metrics server's and --list's
	defer cancel()
	if f.list {
		s := beat.NewScheduler(beat.SchedulerOptions{Store: store, Logger: log, MissedRuns: cfg.settings.MissedRuns})
		entries := cfg.entries
		if source != nil {
			if entries, err = source.Entries(ctx); err != nil {
				log.Error("beat: " + err.Error())
				return 1
			}
		}
		if err := s.Load(ctx, entries); err != nil {
			log.Error("beat: " + err.Error())
			return 1
		}
		if err := s.WriteList(stdout, cfg.loc); err != nil {
			return 1
		}
		return 0
	}

	if source != nil {
		// As the Python DatabaseScheduler's setup_schedule: the celery.backend_cleanup row (with
		// result_expires), then beat_schedule's entries, written into the tables. A row that cannot
		// be written is logged with its name; the others run.
		ictx, icancel := context.WithTimeout(ctx, 30*time.Second)
		_ = source.InstallDefaultEntries(ictx, cfg.file.Celery.ResultTTL(), cfg.loc)
		_ = source.UpdateFromDict(ictx, cfg.entries)
		icancel()
	}
	br, err := wiring.Broker(cfg.file.Celery, "beat", log)
	if err != nil {
		log.Error("beat: " + err.Error())
		return 1
	}
	defer br.Close()
	pubBroker, closeSent, err := beatops.SentEvents(cfg.file.Celery, br, log)
	if err != nil {
		log.Error("beat: " + err.Error())
		return 1
	}
	defer closeSent()
	pub, err := beat.NewClientPublisher(cfg.file.Celery, pubBroker)
	if err != nil {
		log.Error("beat: " + err.Error())
		return 1
	}
	reg := metrics.NewRegistry()
	bm := metrics.NewBeat(reg)
	if f.metricsAddr != "" {
		var wg sync.WaitGroup
		defer func() { cancel(); wg.Wait() }()
		wg.Go(func() {
			healthz := func() error {
				hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				if err := ping(hctx); err != nil {
					return fmt.Errorf("beat state store: %w", err)
				}
				return nil
			}
			if err := metrics.Serve(ctx, f.metricsAddr, reg, healthz, log); err != nil {
				log.Error("beat: no metrics: " + err.Error())
			}
		})
	}
	so := beat.SchedulerOptions{Store: store, Publisher: pub, Logger: log, MissedRuns: cfg.settings.MissedRuns, Location: cfg.loc,
		OnLoad: bm.SetEntries,
		OnPublish: func(entry, task string, slot time.Time, err error) {
			if err != nil {
				bm.PublishFailed(entry, task)
				return
			}
			bm.Published(entry, task, time.Since(slot))
		}}
	bo := beat.BeatOptions{Logger: log}
	reload := make(chan []*beat.Entry)
	if source != nil {
		so.Source, bo.Source, bo.SourcePoll = source, source, cfg.db.Poll
	} else {
		bo.Entries, bo.Reload = cfg.entries, reload
	}
	bo.Scheduler = beat.NewScheduler(so)
	_ = beatops.Banner(stderr, time.Now(), cfg.file.Celery, cfg.settings, cfg.loc)
	b, err := beat.New(bo)
	if err != nil {
		log.Error("beat: " + err.Error())
		return 1
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go reloadOnSignal(ctx, hup, f.config, f.scheduler, cfg.settings, reload, log)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	runErr := make(chan error, 1)
	go func() { runErr <- b.Run(context.Background()) }()
	for {
		select {
		case err := <-runErr:
			if err != nil && !errors.Is(err, beat.ErrBeatClosed) {
				log.Error("beat: " + err.Error())
				return 1
			}
			return 0
		case <-sigs:
			// The first SIGTERM or SIGINT lets a send in flight finish (for at most
			// shutdownGrace); a second one cancels it.
			sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
			go func() {
				defer cancel()
				_ = b.Shutdown(sctx)
			}()
		}
	}
}

// shutdownGrace is how long a SIGTERM lets the sends in flight finish before they are cancelled.
const shutdownGrace = 10 * time.Second

// reloadOnSignal re-reads the configuration at each value on hup (SIGHUP) and hands its schedule
// to beat, in order; a file that cannot be read, or that changes the settings that need a
// restart, keeps the previous schedule. It returns when ctx ends.
func reloadOnSignal(ctx context.Context, hup <-chan os.Signal, path, scheduler string, settings beat.Settings, reload chan<- []*beat.Entry, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		if !beat.IsDefaultScheduler(settings.Scheduler) {
			log.Info("beat: SIGHUP ignored: the schedule is the database's, re-read whenever it changes")
			continue
		}
		next, err := load(path, scheduler)
		if err == nil && next.settings != settings {
			err = errors.New("beat_state_url, beat_key_prefix, beat_lock_ttl and beat_missed_runs need a restart")
		}
		if err != nil {
			log.Error("beat: reload failed, keeping the previous schedule: " + err.Error())
			continue
		}
		log.Info("beat: reloading the schedule", "entries", len(next.entries))
		select {
		case reload <- next.entries:
		case <-ctx.Done():
			return
		}
	}
}
