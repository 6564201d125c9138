package bridge

import (
	"net"
	"sync"
	"syscall"
	"time"
)

// parkState is a session reader's side of the parker (both readers have
// one: rawReader for the target, clientReads for the client). While the
// reader waits, a read deadline, renewed only once half of it is gone,
// ends its wait after parkAfter of silence; the reader then unwinds and,
// last thing on its goroutine, parks: the socket goes to the parker, which
// runs wake on a new goroutine once the socket is readable. stop (the
// session ends) takes a parked reader back and wakes it, and no reader
// parks again.
type parkState struct {
	conn net.Conn        // for the deadlines
	rc   syscall.RawConn // the socket's, for the parker
	wake func()          // runs the reader again; nil: never park
	// taken, when not nil, takes what a parked socket has without the
	// reader, on the parker's goroutine, if it is all a pong: see quick.
	taken func() bool
	armed time.Time // the park deadline, or zero

	w       parked     // what the parker keeps, once made (waiting)
	mu      sync.Mutex // orders parking with stop
	stopped bool       // the session ends: no more parking or park deadlines
	parked  bool
	key     uint64 // the parker's, while parked
}

// arm sets the park deadline, unless enough of it is left. The reader's
// goroutine calls it before it waits.
func (p *parkState) arm() {
	if p.wake == nil {
		return
	}
	now := time.Now()
	if p.armed.Sub(now) >= parkAfter/2 {
		return
	}
	p.mu.Lock()
	if !p.stopped {
		p.armed = now.Add(parkAfter)
		p.conn.SetReadDeadline(p.armed)
	}
	p.mu.Unlock()
}

// disarm clears the park deadline; false means stop's deadline rules.
func (p *parkState) disarm() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return false
	}
	p.armed = time.Time{}
	p.conn.SetReadDeadline(time.Time{})
	return true
}

// mayPark reports whether a deadline that ended a read was the park
// deadline (not stop's).
func (p *parkState) mayPark() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.stopped && p.wake != nil
}

// park hands the socket to the parker. The reader's goroutine calls it
// last, after its read returned errParked and its caller unwound, so that
// the goroutine wake starts never overlaps it. false means stop came
// first, or parking failed: the caller reads on.
func (p *parkState) park() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return false // and stop's deadline stays
	}
	p.conn.SetReadDeadline(time.Time{})
	p.armed = time.Time{}
	key, err := idle.park(p.rc, p.waiting())
	if err != nil {
		p.wake = nil // read on the goroutine from now on
		return false
	}
	p.parked, p.key = true, key
	return true
}

// parked is what the parker keeps for a parked reader: wake starts it
// again on a goroutine of its own; quick, when not nil, first tries on the
// parker's goroutine to take what came without waking it, and then parks
// it again (repark).
type parked struct {
	wake  func()
	quick func(key uint64) bool
}

// waiting is what the parker keeps for the parked reader, made once (a
// method value is an allocation).
func (p *parkState) waiting() parked {
	if p.w.wake == nil {
		p.w.wake = p.woken
		if p.taken != nil {
			p.w.quick = p.quick
		}
	}
	return p.w
}

// quick runs on the parker's goroutine when the parked socket is readable,
// before woken: when taken takes what came, the reader stays parked, under
// the same key, and no goroutine starts. Under mu, so that stop either
// comes first (and the reader is woken) or finds it parked again; taken
// may take the session's lock (the pong), which is never held by whoever
// takes mu.
func (p *parkState) quick(key uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || !p.taken() {
		return false
	}
	return idle.repark(p.rc, key, p.waiting()) == nil
}

// woken runs on the parker's goroutine for this reader.
func (p *parkState) woken() {
	p.mu.Lock()
	p.parked = false
	p.mu.Unlock()
	idle.unpark(p.rc)
	p.wake()
}

// stop ends parking, with deadline for the reads still to come (zero:
// none); a parked reader is taken back and woken to read, on a goroutine
// of its own.
func (p *parkState) stop(deadline time.Time) {
	if p.take(deadline) {
		go p.wake()
	}
}

// take is stop, except that a parked reader taken back is left for the
// caller to run (wake) on a goroutine it already has: it returns whether
// it took one.
func (p *parkState) take(deadline time.Time) bool {
	p.mu.Lock()
	p.stopped = true
	p.conn.SetReadDeadline(deadline)
	mine := p.parked && idle.cancel(p.key)
	p.parked = false
	p.mu.Unlock()
	if mine {
		idle.unpark(p.rc)
	}
	return mine
}
