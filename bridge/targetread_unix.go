//go:build unix

package bridge

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// rawReader reads a socket when it is readable, into a buffer taken from
// the pool only then. Its fields carry one read's state in and out of
// the function RawConn.Read calls, made once so that reads allocate
// nothing.
//
// After parkAfter without bytes, read parks: the socket goes to the
// parker and read returns errParked; wake is run (on a new goroutine) when
// the socket is readable, or when the session ends (stop).
type rawReader struct {
	conn   net.Conn
	rc     syscall.RawConn
	pool   *sync.Pool // the current read's
	window func([]byte) []byte
	fn     func(fd uintptr) bool

	bp   *[]byte
	n    int
	rerr error

	wake  func()    // nil: never park
	armed time.Time // the read deadline set for parking, or zero

	mu       sync.Mutex // orders parking with stop
	stopped  bool       // the session ends: no more parking or park deadlines
	parked   bool
	parkedAs uint64 // the parker's key while parked
}

func newRawReader(conn net.Conn, window func([]byte) []byte) *rawReader {
	var sc syscall.Conn
	switch c := conn.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &rawReader{conn: conn, rc: rc, window: window}
	r.fn = r.readable
	return r
}

// readable is called by RawConn.Read at once, and again each time the
// poller says the socket is readable, until it returns true. The buffer
// is the pool's whenever it is not running.
func (r *rawReader) readable(fd uintptr) bool {
	r.bp = r.pool.Get().(*[]byte)
	for {
		r.n, r.rerr = syscall.Read(int(fd), r.window(*r.bp))
		if r.rerr != syscall.EINTR {
			break
		}
	}
	if r.rerr == syscall.EAGAIN {
		r.pool.Put(r.bp)
		r.bp = nil
		r.armPark()
		return false
	}
	return true
}

// armPark sets the read deadline that parks the reader after parkAfter
// of silence. It is renewed only once half of it is gone, so a busy
// reader does not pay for a deadline on every read.
func (r *rawReader) armPark() {
	if r.wake == nil {
		return
	}
	now := time.Now()
	if r.armed.Sub(now) >= parkAfter/2 {
		return
	}
	r.mu.Lock()
	if !r.stopped {
		r.armed = now.Add(parkAfter)
		r.conn.SetReadDeadline(r.armed)
	}
	r.mu.Unlock()
}

// read reads into a buffer from pool.
func (r *rawReader) read(pool *sync.Pool) (*[]byte, int, error) {
	r.pool = pool
	err := r.rc.Read(r.fn)
	bp, n, rerr := r.bp, r.n, r.rerr
	r.bp = nil
	switch {
	case err != nil: // a deadline, or the socket was closed
		if bp != nil {
			r.pool.Put(bp)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && r.parking() {
			return nil, 0, errParked
		}
		return nil, 0, err
	case rerr != nil:
		r.pool.Put(bp)
		return nil, 0, os.NewSyscallError("read", rerr)
	case n <= 0:
		r.pool.Put(bp)
		return nil, 0, io.EOF
	}
	return bp, n, nil
}

// parking reports whether a park deadline (not stop's) ended the read.
func (r *rawReader) parking() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.stopped && r.wake != nil
}

// park hands the socket to the parker. The reader's goroutine calls it
// last, after read returned errParked and its caller unwound, so that the
// goroutine wake starts never overlaps it. false means stop came first,
// or parking failed: the caller reads on.
func (r *rawReader) park() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return false // and stop's deadline stays
	}
	r.conn.SetReadDeadline(time.Time{})
	r.armed = time.Time{}
	key, err := idle.park(r.rc, r.woken)
	if err != nil {
		r.wake = nil // read on the goroutine from now on
		return false
	}
	r.parked, r.parkedAs = true, key
	return true
}

// woken runs on the parker's goroutine for this reader.
func (r *rawReader) woken() {
	r.mu.Lock()
	r.parked = false
	r.mu.Unlock()
	idle.unpark(r.rc)
	r.wake()
}

// stop ends parking, with deadline for the reads still to come; a parked
// reader is woken to read until then.
func (r *rawReader) stop(deadline time.Time) {
	r.mu.Lock()
	r.stopped = true
	r.conn.SetReadDeadline(deadline)
	mine := r.parked && idle.cancel(r.parkedAs)
	if mine {
		r.parked = false
	}
	r.mu.Unlock()
	if mine {
		idle.unpark(r.rc)
		go r.wake()
	}
}
