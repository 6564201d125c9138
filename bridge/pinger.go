package bridge

import (
	"container/heap"
	"sync"
	"time"
)

// pinger sends every session's keepalive pings, and watches their pong
// deadlines, from one goroutine. A timer per session (time.AfterFunc)
// starts a goroutine each time it fires, and the pings of sessions opened
// together fall due together: 9,000 idle sessions' first pings started
// hundreds of goroutines at once, whose stacks the process kept (PSS up by
// 0.3 to 8 MB at the first ping). Here a session has one entry in a heap,
// for its next ping or, with a ping out, for its pong deadline
// (session.due). An idle session's ping is one write on this goroutine
// (frameWriter.tryPing); only a ping that would have to wait, for a busy
// writer or a full socket, gets a goroutine of its own.
//
// The goroutine starts with the first session that wants a ping and then
// stays, as the parker's does.
type pinger struct {
	once sync.Once
	kick chan struct{} // a session now comes first: the wait is shorter

	mu  sync.Mutex
	due pingQueue
}

var pings pinger

// base is the origin of the pinger's times: durations since it read the
// monotonic clock, which no change of the wall clock moves.
var base = time.Now()

// add (re)schedules s's next time (session.due) after d from now.
func (p *pinger) add(s *session, d time.Duration) {
	p.once.Do(func() {
		p.kick = make(chan struct{}, 1)
		go p.loop()
	})
	at := time.Since(base) + d
	p.mu.Lock()
	s.pingAt = at
	if s.pingIdx >= 0 {
		heap.Fix(&p.due, s.pingIdx)
	} else {
		heap.Push(&p.due, s)
	}
	first := s.pingIdx == 0
	p.mu.Unlock()
	if first {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

// queued reports whether s is on the schedule.
func (p *pinger) queued(s *session) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return s.pingIdx >= 0
}

// remove takes s off the schedule, if it is on it.
func (p *pinger) remove(s *session) {
	p.mu.Lock()
	if s.pingIdx >= 0 {
		heap.Remove(&p.due, s.pingIdx)
	}
	p.mu.Unlock()
}

// next takes the first session off the schedule if its ping is due by
// now; otherwise it returns how long until it is (an hour when none is
// scheduled: a kick comes first).
func (p *pinger) next(now time.Duration) (*session, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.due) == 0 {
		return nil, time.Hour
	}
	if s := p.due[0]; s.pingAt > now {
		return nil, s.pingAt - now
	}
	return heap.Pop(&p.due).(*session), 0
}

func (p *pinger) loop() {
	t := time.NewTimer(time.Hour)
	for {
		s, wait := p.next(time.Since(base))
		if s != nil {
			s.due()
			continue
		}
		t.Reset(wait)
		select {
		case <-t.C:
		case <-p.kick:
		}
	}
}

// pingQueue is a binary heap of sessions by the time of their next ping
// (container/heap); each session knows its place (pingIdx, -1 when off).
type pingQueue []*session

func (q pingQueue) Len() int           { return len(q) }
func (q pingQueue) Less(i, j int) bool { return q[i].pingAt < q[j].pingAt }

func (q pingQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].pingIdx, q[j].pingIdx = i, j
}

func (q *pingQueue) Push(x any) {
	s := x.(*session)
	s.pingIdx = len(*q)
	*q = append(*q, s)
}

func (q *pingQueue) Pop() any {
	old := *q
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	s.pingIdx = -1
	return s
}
