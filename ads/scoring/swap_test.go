package scoring

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/redis/go-redis/v9"
)

// TestScoreSwapIsAtomic polls rank keys in a tight loop while Score runs again and again over data
// that changes between runs: every value read must be one that some run published in full.
func TestScoreSwapIsAtomic(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for i := range 40 {
		e.forum(fmt.Sprintf("f%02d", i), fmt.Sprintf("c%d", i%5))
	}
	var campaigns []int64
	for i := range 60 {
		_, c := e.simple(camp{bid: int64(1000 + i), forums: map[bool][]string{true: {"f01", "f02"}}[i%3 == 0],
			categories: map[bool][]string{true: {"c1"}}[i%4 == 1]})
		campaigns = append(campaigns, c)
	}
	watched := []string{e.keys.RankDefault("sidebar"), e.keys.RankForum("sidebar", "f01"),
		e.keys.RankCategory("inline", "c1"), e.keys.RankForum("footer", "f39"), e.keys.RankDefault("header")}

	published := map[string]map[string]bool{} // key -> every value a run published
	record := func() {
		for _, k := range watched {
			v, err := e.rc.Get(e.ctx, k).Result()
			if err != nil {
				t.Fatalf("%s after a run: %v", k, err)
			}
			if published[k] == nil {
				published[k] = map[string]bool{}
			}
			published[k][v] = true
		}
	}
	e.score(Options{})
	record()

	ctx, stop := context.WithCancel(context.Background())
	type seen struct {
		values  map[string]map[string]bool
		missing map[string]int
		reads   int
	}
	done, ready := make(chan seen), make(chan struct{})
	go func() {
		s := seen{values: map[string]map[string]bool{}, missing: map[string]int{}}
		for round := 0; ctx.Err() == nil; round++ {
			if round == 1 {
				close(ready)
			}
			for _, k := range watched {
				v, err := e.rc.Get(ctx, k).Result()
				s.reads++
				switch {
				case errors.Is(err, redis.Nil):
					s.missing[k]++
				case err != nil:
					if ctx.Err() == nil {
						s.missing[k+" ("+err.Error()+")"]++
					}
				default:
					if s.values[k] == nil {
						s.values[k] = map[string]bool{}
					}
					s.values[k][v] = true
				}
			}
		}
		done <- s
	}()
	<-ready
	for run := range 25 {
		// Change the data: pause a varying set of campaigns, so list lengths change every run.
		e.exec(`UPDATE campaigns SET status = CASE WHEN id % 7 = $1 OR id % 5 = $2 THEN 'paused' ELSE 'active' END
			WHERE id = ANY($3)`, run%7, (run+2)%5, pq.Array(campaigns))
		e.score(Options{})
		record()
	}
	stop()
	s := <-done
	for k, n := range s.missing {
		t.Errorf("%s read missing %d times", k, n)
	}
	distinct := 0
	for k, vals := range s.values {
		for v := range vals {
			if _, err := DecodeList([]byte(v)); err != nil {
				t.Errorf("%s: read an invalid list: %v", k, err)
			}
			if !published[k][v] {
				t.Errorf("%s: read a value no run published in full: %s", k, v)
			}
		}
		distinct += len(vals)
	}
	if len(published[watched[0]]) < 3 {
		t.Errorf("the data did not change between runs: %d distinct default lists", len(published[watched[0]]))
	}
	t.Logf("%d reads, %d distinct values seen", s.reads, distinct)
}

// TestScoreConcurrentRunsDoNotMix runs two Score calls that publish different lists at the same time:
// the result must be exactly what one of them publishes alone.
func TestScoreConcurrentRunsDoNotMix(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for i := range 30 {
		e.forum(fmt.Sprintf("f%02d", i), fmt.Sprintf("c%d", i%4))
	}
	ending := now.Add(time.Hour)
	for i := range 40 {
		c := camp{bid: int64(500 + i), forums: map[bool][]string{true: {"f03", "x"}}[i%3 == 0]}
		if i%2 == 0 {
			c.end = &ending // in run B's future these have ended, and forum x goes away
		}
		e.simple(c)
	}
	early, late := Options{Now: clock}, Options{Now: func() time.Time { return now.Add(2 * time.Hour) }}
	alone := func(o Options) map[string]string {
		keys := newKeys(t, e.rc)
		if _, err := Score(e.ctx, e.db, e.rc, keys, o); err != nil {
			t.Fatal(err)
		}
		return e.snapshot(keys)
	}
	a, b := alone(early), alone(late)
	if reflect.DeepEqual(a, b) {
		t.Fatal("the two runs must publish different lists")
	}
	for round := range 6 {
		keys := newKeys(t, e.rc)
		if round%2 == 1 { // start from a published state too
			if _, err := Score(e.ctx, e.db, e.rc, keys, late); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		var gens [2]int64
		for i, o := range []Options{early, late} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := Score(e.ctx, e.db, e.rc, keys, o)
				if err != nil {
					t.Error(err)
				}
				gens[i] = s.Generation
			}()
		}
		wg.Wait()
		got := e.snapshot(keys)
		if !reflect.DeepEqual(got, a) && !reflect.DeepEqual(got, b) {
			t.Errorf("round %d: concurrent runs published a mix", round)
		}
		if gens[0] == gens[1] {
			t.Errorf("round %d: both runs report generation %d", round, gens[0])
		}
	}
}

func TestWriteRankKeysMatchContract(t *testing.T) {
	t.Parallel()
	// Every key Score writes must be one isRankKey accepts, or the next run could not delete it.
	e := setup(t)
	e.forum("f", "c")
	e.simple(camp{forums: []string{"g"}, categories: []string{"d"}})
	e.score(Options{})
	for _, k := range e.rc.SMembers(e.ctx, e.keys.RankIndex()).Val() {
		if !isRankKey(e.keys, k) {
			t.Errorf("written key %s is not recognized as a rank key", k)
		}
	}
}

// TestScoreSwapRetriesAfterAnotherRun makes a second run publish between the first run's WATCH and its
// EXEC: the first run's EXEC must fail and its swap run again over the second run's index, leaving
// exactly the first run's lists.
func TestScoreSwapRetriesAfterAnotherRun(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.forum("f", "c")
	ending := now.Add(time.Hour)
	e.simple(camp{forums: []string{"only-early"}, end: &ending})
	e.simple(camp{categories: []string{"always"}})
	e.simple(camp{forums: []string{"only-late"}, start: now.Add(90 * time.Minute)}) // the retry must delete its keys
	early, late := Options{Now: clock}, Options{Now: func() time.Time { return now.Add(2 * time.Hour) }}
	alone := newKeys(t, e.rc)
	if _, err := Score(e.ctx, e.db, e.rc, alone, early); err != nil {
		t.Fatal(err)
	}
	want := e.snapshot(alone)

	var other Summary
	interfere := early
	interfere.beforeExec = func(attempt int) {
		if attempt == 1 {
			var err error
			if other, err = Score(e.ctx, e.db, e.rc, e.keys, late); err != nil {
				t.Error(err)
			}
		}
	}
	s, err := Score(e.ctx, e.db, e.rc, e.keys, interfere)
	if err != nil {
		t.Fatal(err)
	}
	if s.SwapAttempts != 2 || other.Generation != 1 || s.Generation != 2 {
		t.Errorf("run %+v, interfering run %+v: want 2 attempts, generations 1 then 2", s, other)
	}
	if got := e.snapshot(e.keys); !reflect.DeepEqual(got, want) {
		t.Errorf("after the retried swap:\n%v\nwant\n%v", got, want)
	}
}
