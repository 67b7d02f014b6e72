package scoring

import "sort"

// entry is a ranked ad: its EV and its position in the run's ads, which are read in ascending id
// order, so a smaller position is a smaller ad id.
type entry struct {
	ev float64
	i  int32
}

// better orders entries best first: EV descending, then ad id ascending.
func better(a, b entry) bool { return a.ev > b.ev || (a.ev == b.ev && a.i < b.i) }

// topK keeps the k best entries pushed into it, as a heap whose root is the worst kept.
type topK struct {
	k int
	h []entry
}

func (t *topK) push(e entry) {
	if len(t.h) < t.k {
		t.h = append(t.h, e)
		for c := len(t.h) - 1; c > 0; {
			p := (c - 1) / 2
			if !better(t.h[p], t.h[c]) {
				break
			}
			t.h[p], t.h[c] = t.h[c], t.h[p]
			c = p
		}
		return
	}
	if t.k == 0 || !better(e, t.h[0]) {
		return
	}
	t.h[0] = e
	for p := 0; ; {
		w := p
		if l := 2*p + 1; l < len(t.h) && better(t.h[w], t.h[l]) {
			w = l
		}
		if r := 2*p + 2; r < len(t.h) && better(t.h[w], t.h[r]) {
			w = r
		}
		if w == p {
			return
		}
		t.h[p], t.h[w] = t.h[w], t.h[p]
		p = w
	}
}

// sorted returns the kept entries best first (reusing the heap's storage: push no more after).
func (t *topK) sorted() []entry {
	if t == nil {
		return nil
	}
	sort.Slice(t.h, func(a, b int) bool { return better(t.h[a], t.h[b]) })
	return t.h
}

// merge appends to dst the k best of lists, each sorted best first and disjoint from the others.
func merge(dst []entry, k int, lists ...[]entry) []entry {
	dst = dst[:0]
	pos := make([]int, len(lists))
	for len(dst) < k {
		best := -1
		for li, l := range lists {
			if pos[li] < len(l) && (best < 0 || better(l[pos[li]], lists[best][pos[best]])) {
				best = li
			}
		}
		if best < 0 {
			break
		}
		dst = append(dst, lists[best][pos[best]])
		pos[best]++
	}
	return dst
}
