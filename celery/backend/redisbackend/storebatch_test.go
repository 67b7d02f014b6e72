package redisbackend

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/forumads/forumads/celery/protocol"
)

// Stores made at the same time (a busy worker's finishing tasks) share pipelines; each is still
// written, published on its own channel and answered with its own outcome, also when the script
// cache was flushed just before them.
func TestConcurrentStoresEachWrittenPublishedAndAnswered(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flush bool
	}{
		{"script cached", false},
		{"script cache flushed", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, c, prefix := newBackend(t, 0)
			ctx := context.Background()
			const n = 300
			ids := make([]string, n)
			for i := range ids {
				ids[i] = newUUID()
			}
			// Every third task already has a SUCCESS: its Store must be refused, alone.
			for i := 0; i < n; i += 3 {
				if err := b.Store(ctx, successMeta(ids[i], `"first"`)); err != nil {
					t.Fatal(err)
				}
			}
			ps := c.PSubscribe(ctx, prefix+"celery-task-meta-*")
			t.Cleanup(func() { _ = ps.Close() })
			if _, err := ps.Receive(ctx); err != nil {
				t.Fatalf("psubscribe: %v", err)
			}
			if tc.flush {
				if err := c.ScriptFlush(ctx).Err(); err != nil {
					t.Fatal(err)
				}
			}
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = b.Store(ctx, successMeta(ids[i], `"second"`))
				}()
			}
			wg.Wait()
			published := map[string]string{}
			for i := range n {
				if i%3 != 0 {
					msg, err := ps.ReceiveMessage(ctx)
					if err != nil {
						t.Fatalf("receive: %v", err)
					}
					published[strings.TrimPrefix(msg.Channel, prefix+"celery-task-meta-")] = msg.Payload
				}
			}
			for i, id := range ids {
				want := `"second"`
				if i%3 == 0 {
					want = `"first"`
					if !errors.Is(errs[i], ErrAlreadySucceeded) {
						t.Errorf("Store %d over a SUCCESS: %v, want ErrAlreadySucceeded", i, errs[i])
					}
					if _, ok := published[id]; ok {
						t.Errorf("Store %d over a SUCCESS published", i)
					}
				} else {
					if errs[i] != nil {
						t.Errorf("Store %d: %v", i, errs[i])
					}
					if got, wantPub := published[id], mustMarshal(t, successMeta(id, want)); got != wantPub {
						t.Errorf("published for %d: %s, want %s", i, got, wantPub)
					}
				}
				m, err := b.Get(ctx, id)
				if err != nil || m.Status != protocol.StateSuccess || string(m.Result) != want {
					t.Errorf("Get %d = %+v, %v; want SUCCESS %s", i, m, err, want)
				}
			}
		})
	}
}

// A Store whose context ends while it waits for a batch returns the context's error; the others
// are written.
func TestStoreCancelledWhileQueuedReturnsContextError(t *testing.T) {
	b, _, _ := newBackend(t, 0)
	// Hold the batcher as a running batch would, so that the Store queues.
	b.stores.mu.Lock()
	b.stores.running = true
	b.stores.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Store(ctx, successMeta(newUUID(), `1`)) }()
	for {
		b.stores.mu.Lock()
		queued := len(b.stores.queue)
		b.stores.mu.Unlock()
		if queued == 1 {
			break
		}
		runtime.Gosched()
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Store = %v, want context.Canceled", err)
	}
	b.stores.mu.Lock()
	left := len(b.stores.queue)
	b.stores.running = false
	b.stores.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d Stores left queued, want none", left)
	}
	if err := b.Store(context.Background(), successMeta(newUUID(), `2`)); err != nil {
		t.Fatalf("Store after a cancelled one: %v", err)
	}
}
