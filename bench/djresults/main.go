// Command djresults measures result writes per second to the django-db backend from Go: -n
// SUCCESS results (a new task id each, result_extended fields set, as a worker stores them) are
// written by -c goroutines through djangoapps/results on -dsn, whose django-celery-results tables
// must exist (bench/djresults.sh migrates a schema of its own). It prints one line:
//
//	go: N writes in S s = R writes/s (c=C)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/djangoapps/results"
)

func main() {
	n := flag.Int("n", 5000, "results to write")
	c := flag.Int("c", 1, "concurrent writers")
	dsn := flag.String("dsn", "", "PostgreSQL URL with django-celery-results' tables (search_path may pick the schema)")
	flag.Parse()
	if err := run(*dsn, *n, *c); err != nil {
		fmt.Fprintln(os.Stderr, "djresults:", err)
		os.Exit(1)
	}
}

// check validates the flags.
func check(dsn string, n, c int) error {
	switch {
	case dsn == "":
		return errors.New("-dsn is required")
	case n <= 0:
		return fmt.Errorf("-n %d: want at least 1", n)
	case c <= 0:
		return fmt.Errorf("-c %d: want at least 1", c)
	}
	return nil
}

func run(dsn string, n, c int) error {
	if err := check(dsn, n, c); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b, err := results.Open(ctx, dsn, results.Options{MaxOpenConns: c})
	if err != nil {
		return err
	}
	defer func() { _ = b.Close() }()
	run := fmt.Sprintf("%x", time.Now().UnixNano())
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, c)
	start := time.Now()
	for range c {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				m := protocol.ResultMeta{TaskID: fmt.Sprintf("bench-go-%s-%d", run, i), Status: protocol.StateSuccess,
					Result: json.RawMessage("5"), Extended: &protocol.ExtendedMeta{Name: "bench.add",
						Args: json.RawMessage("[2, 3]"), Kwargs: json.RawMessage("{}"), ArgsRepr: "[2, 3]", KwargsRepr: "{}",
						Worker: "celery@bench"}}
				if err := b.Store(ctx, m); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	fmt.Printf("go: %d writes in %.2f s = %.0f writes/s (c=%d)\n", n, elapsed.Seconds(), float64(n)/elapsed.Seconds(), c)
	return nil
}
