package engine

import "sync"

// lockedMap is a map guarded by a mutex, for the worker's per-task bookkeeping (reserved and
// active jobs): each task stores and deletes an entry in both, and sync.Map allocates a node per
// store (plus the boxed key), where a grown map reuses its slots. Critical sections are a map
// operation; Range calls f on a snapshot, without the lock. The zero value is ready to use.
type lockedMap[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]V
}

func (l *lockedMap[K, V]) Store(k K, v V) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[K]V{}
	}
	l.m[k] = v
	l.mu.Unlock()
}

func (l *lockedMap[K, V]) Load(k K) (V, bool) {
	l.mu.Lock()
	v, ok := l.m[k]
	l.mu.Unlock()
	return v, ok
}

func (l *lockedMap[K, V]) LoadAndDelete(k K) (V, bool) {
	l.mu.Lock()
	v, ok := l.m[k]
	if ok {
		delete(l.m, k)
	}
	l.mu.Unlock()
	return v, ok
}

func (l *lockedMap[K, V]) Delete(k K) {
	l.mu.Lock()
	delete(l.m, k)
	l.mu.Unlock()
}

func (l *lockedMap[K, V]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// Range calls f for each entry of a snapshot until f returns false.
func (l *lockedMap[K, V]) Range(f func(K, V) bool) {
	type kv struct {
		k K
		v V
	}
	l.mu.Lock()
	snap := make([]kv, 0, len(l.m))
	for k, v := range l.m {
		snap = append(snap, kv{k, v})
	}
	l.mu.Unlock()
	for _, e := range snap {
		if !f(e.k, e.v) {
			return
		}
	}
}
