package serving

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
)

// TestCoalescer: every caller gets the result of a read that started after it called (never an
// older one), however the calls interleave.
func TestCoalescer(t *testing.T) {
	t.Parallel()
	var c coalescer[int64]
	var runs atomic.Int64
	read := func(context.Context) (int64, error) { return runs.Add(1), nil }
	const workers, calls = 8, 300
	var wg sync.WaitGroup
	var sharedN atomic.Int64
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range calls {
				before := runs.Load()
				v, shared, err := c.do(context.Background(), read)
				if err != nil {
					t.Errorf("do: %v", err)
					return
				}
				if v <= before {
					t.Errorf("got read %d, started before the call (reads started by then: %d)", v, before)
					return
				}
				if shared {
					sharedN.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d calls, %d reads, %d shared", workers*calls, runs.Load(), sharedN.Load())
	if runs.Load()+sharedN.Load() != workers*calls {
		t.Fatalf("%d reads + %d shared answers != %d calls", runs.Load(), sharedN.Load(), workers*calls)
	}
}

// TestCoalescerWaitsForANewRead: a call made while a read is in flight gets the next read; a
// call whose context has ended gets an error rather than waiting.
func TestCoalescerWaitsForANewRead(t *testing.T) {
	t.Parallel()
	var c coalescer[int]
	release := make(chan struct{})
	entered := make(chan struct{})
	first := make(chan int, 1)
	go func() {
		v, _, _ := c.do(context.Background(), func(context.Context) (int, error) {
			close(entered)
			<-release
			return 1, nil
		})
		first <- v
	}()
	<-entered
	// A second caller arrives while read 1 is in flight: it sends read 2 once read 1 ends.
	second := make(chan int, 1)
	go func() {
		v, shared, err := c.do(context.Background(), func(context.Context) (int, error) { return 2, nil })
		if err != nil || shared {
			t.Errorf("second caller: shared %v, err %v", shared, err)
		}
		second <- v
	}()
	for {
		c.mu.Lock()
		w := c.waiting != nil
		c.mu.Unlock()
		if w {
			break
		}
		select {
		case v := <-second:
			t.Fatalf("the second caller returned %d while read 1 was in flight", v)
		default:
		}
	}
	// A third caller with an ended context joins read 2 and gives up at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, shared, err := c.do(ctx, func(context.Context) (int, error) { return 3, nil }); err == nil || !shared {
		t.Fatalf("a caller with an ended context: shared %v, err %v; want a shared read's error", shared, err)
	}
	close(release)
	if v := <-first; v != 1 {
		t.Fatalf("first caller got %d, want 1", v)
	}
	if v := <-second; v != 2 {
		t.Fatalf("second caller got %d, want 2", v)
	}
}
