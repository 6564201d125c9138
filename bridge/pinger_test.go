package bridge

import (
	"container/heap"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestPingQueue schedules, reschedules and removes sessions at random in
// the pinger's queue: each session must always know its place, and the
// queue must give them up by due time.
func TestPingQueue(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var q pingQueue
	all := make([]*session, 200)
	for i := range all {
		all[i] = &session{pingIdx: -1}
	}
	check := func(step int) {
		t.Helper()
		for i, s := range q {
			if s.pingIdx != i {
				t.Fatalf("step %d: the session at %d thinks it is at %d", step, i, s.pingIdx)
			}
		}
		for _, s := range all {
			if s.pingIdx >= 0 && (s.pingIdx >= len(q) || q[s.pingIdx] != s) {
				t.Fatalf("step %d: a session off the queue thinks it is at %d", step, s.pingIdx)
			}
		}
	}
	for step := range 5000 {
		s := all[rng.IntN(len(all))]
		switch {
		case rng.IntN(4) == 0 && s.pingIdx >= 0: // remove, as conclude does
			heap.Remove(&q, s.pingIdx)
		case rng.IntN(10) == 0 && len(q) > 0: // the loop takes the first
			first := heap.Pop(&q).(*session)
			for _, o := range q {
				if o.pingAt < first.pingAt {
					t.Fatalf("step %d: popped %v with %v still queued", step, first.pingAt, o.pingAt)
				}
			}
		default: // add or reschedule, as add does
			s.pingAt = time.Duration(rng.IntN(1000))
			if s.pingIdx >= 0 {
				heap.Fix(&q, s.pingIdx)
			} else {
				heap.Push(&q, s)
			}
		}
		check(step)
	}
	var got []time.Duration
	for len(q) > 0 {
		got = append(got, heap.Pop(&q).(*session).pingAt)
	}
	if !slices.IsSorted(got) {
		t.Fatalf("drained out of order: %v", got)
	}
	check(-1)
}
