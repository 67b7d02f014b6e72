// Package timerq holds values until their time comes and hands them on in time order: the
// worker's ETA/countdown timer (Celery's timer2 for eta and countdown messages). One goroutine per
// [Queue] fires the due values; it sleeps until the earliest one is due (no polling) and callers
// never block on it.
package timerq

import (
	"container/heap"
	"sync"
	"time"
)

// Queue holds items until their time comes, then hands them to fire, in time order, from one
// goroutine. It never blocks its callers and wakes only when the earliest item is due (no polling).
// Items due at the same time fire in the order they were added.
type Queue[T any] struct {
	mu    sync.Mutex
	items timerHeap[T]
	wake  chan struct{}
	stop  chan struct{}
	done  chan struct{}
	fire  func(T)
	now   func() time.Time
}

type timerItem[T any] struct {
	at  time.Time
	seq uint64
	v   T
}

type timerHeap[T any] struct {
	xs  []timerItem[T]
	seq uint64
}

func (h *timerHeap[T]) Len() int { return len(h.xs) }
func (h *timerHeap[T]) Less(i, j int) bool {
	if h.xs[i].at.Equal(h.xs[j].at) {
		return h.xs[i].seq < h.xs[j].seq
	}
	return h.xs[i].at.Before(h.xs[j].at)
}
func (h *timerHeap[T]) Swap(i, j int) { h.xs[i], h.xs[j] = h.xs[j], h.xs[i] }
func (h *timerHeap[T]) Push(x any)    { h.xs = append(h.xs, x.(timerItem[T])) }
func (h *timerHeap[T]) Pop() any {
	n := len(h.xs) - 1
	it := h.xs[n]
	h.xs[n] = timerItem[T]{}
	h.xs = h.xs[:n]
	return it
}

// New starts a queue that tells the time with now and hands each due item to fire (called from
// the queue's own goroutine, one item at a time). [Queue.Close] stops the goroutine.
func New[T any](now func() time.Time, fire func(T)) *Queue[T] {
	q := &Queue[T]{wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), fire: fire, now: now}
	go q.loop()
	return q
}

// Add schedules v at t.
func (q *Queue[T]) Add(t time.Time, v T) {
	q.mu.Lock()
	q.items.seq++
	heap.Push(&q.items, timerItem[T]{at: t, seq: q.items.seq, v: v})
	first := q.items.xs[0].seq == q.items.seq
	q.mu.Unlock()
	if first {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// Len is the number of items waiting.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.items.Len()
}

// RemoveIf takes out every waiting item for which drop is true and returns them.
func (q *Queue[T]) RemoveIf(drop func(T) bool) []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []T
	kept := q.items.xs[:0]
	for _, it := range q.items.xs {
		if drop(it.v) {
			out = append(out, it.v)
		} else {
			kept = append(kept, it)
		}
	}
	for i := len(kept); i < len(q.items.xs); i++ {
		q.items.xs[i] = timerItem[T]{}
	}
	q.items.xs = kept
	heap.Init(&q.items)
	return out
}

// Close stops the timer and returns the items that never fired. It waits for a fire in progress
// to return. It must be called once.
func (q *Queue[T]) Close() []T {
	close(q.stop)
	<-q.done
	return q.RemoveIf(func(T) bool { return true })
}

func (q *Queue[T]) loop() {
	defer close(q.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		q.mu.Lock()
		var due []T
		now := q.now()
		for q.items.Len() > 0 && !q.items.xs[0].at.After(now) {
			due = append(due, heap.Pop(&q.items).(timerItem[T]).v)
		}
		wait := time.Hour
		if q.items.Len() > 0 {
			wait = q.items.xs[0].at.Sub(now)
		}
		q.mu.Unlock()
		for _, v := range due {
			q.fire(v)
		}
		t.Reset(wait)
		select {
		case <-q.stop:
			return
		case <-q.wake:
		case <-t.C:
		}
	}
}
