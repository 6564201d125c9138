package bridge

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// parkAfter is how long a side of a session may be silent before its
// reader gives up its goroutine and waits in the parker (Linux). An
// interactive session pauses for less between bursts, and a wake-up
// costs a goroutine's start, once per burst.
const parkAfter = 100 * time.Millisecond

// errParked ends a target reader's goroutine: the parker runs the reader
// again once the target has something.
var errParked = errors.New("parked")

// clientReads is the hijacked connection as the library reads it. It
// follows the client's frames (headers and lengths) through the bytes it
// reads, so it knows when the library waits for a new message. While it
// does, a read deadline parks the client reader after parkAfter, like the
// target's (rawReader), and the session is left with no goroutine at all
// while both sides are quiet. Inside a message a deadline never ends a
// read: the read is retried without one, as a client may take its time
// over a message.
type clientReads struct {
	net.Conn                 // the hijacked connection
	rc       syscall.RawConn // its socket's, for the parker; nil: never park
	wake     func()          // runs the client reader again; nil: never park

	left  int64    // payload bytes still to come in the current frame
	hdr   [14]byte // the current frame's header bytes so far
	hn    int
	open  bool      // a data message has frames still to come
	armed time.Time // the read deadline set for parking, or zero

	mu       sync.Mutex // orders parking with stop
	stopped  bool
	parked   bool
	parkedAs uint64
}

// newClientReads wraps the hijacked conn; early is what the client sent
// after its request head, which the library reads before conn.
func newClientReads(conn net.Conn, early []byte) *clientReads {
	c := &clientReads{Conn: conn}
	if sc, ok := vectorConn(conn).(syscall.Conn); ok {
		c.rc, _ = sc.SyscallConn()
	}
	c.track(early)
	return c
}

func (c *clientReads) Read(p []byte) (int, error) {
	for {
		atRest := c.left == 0 && c.hn == 0 && !c.open
		if atRest {
			c.armPark()
		}
		n, err := c.Conn.Read(p)
		c.track(p[:n])
		if n > 0 || err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		if atRest && c.parking() {
			return 0, errParked
		}
		// A deadline set at a message boundary, passed inside the next
		// message: read on without one (stop's deadline excepted).
		if !c.disarm() {
			return n, err
		}
	}
}

// track follows frame boundaries through p, the next bytes read.
func (c *clientReads) track(p []byte) {
	for len(p) > 0 {
		if c.left > 0 {
			k := min(c.left, int64(len(p)))
			c.left -= k
			p = p[k:]
			continue
		}
		c.hdr[c.hn] = p[0]
		c.hn++
		p = p[1:]
		if c.hn < 2 {
			continue
		}
		need, size := 2, int64(c.hdr[1]&0x7f)
		switch size {
		case 126:
			need = 4
		case 127:
			need = 10
		}
		if c.hdr[1]&0x80 != 0 {
			need += 4 // the masking key
		}
		if c.hn < need {
			continue
		}
		switch size {
		case 126:
			size = int64(c.hdr[2])<<8 | int64(c.hdr[3])
		case 127:
			size = 0
			for _, b := range c.hdr[2:10] {
				size = size<<8 | int64(b)
			}
			size &= 1<<63 - 1
		}
		if op := c.hdr[0] & 0x0f; op < 0x8 { // data, not control
			c.open = c.hdr[0]&0x80 == 0
		}
		c.left, c.hn = size, 0
	}
}

// armPark sets the deadline that parks the reader after parkAfter of
// silence, renewed only once half of it is gone.
func (c *clientReads) armPark() {
	if c.wake == nil {
		return
	}
	now := time.Now()
	if c.armed.Sub(now) >= parkAfter/2 {
		return
	}
	c.mu.Lock()
	if !c.stopped {
		c.armed = now.Add(parkAfter)
		c.Conn.SetReadDeadline(c.armed)
	}
	c.mu.Unlock()
}

// disarm clears the park deadline; false means the session ends.
func (c *clientReads) disarm() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return false
	}
	c.armed = time.Time{}
	c.Conn.SetReadDeadline(time.Time{})
	return true
}

// parking reports whether a park deadline ended the read.
func (c *clientReads) parking() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.stopped && c.wake != nil
}

// park hands the socket to the parker, as rawReader.park does.
func (c *clientReads) park() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return false
	}
	c.Conn.SetReadDeadline(time.Time{})
	c.armed = time.Time{}
	key, err := idle.park(c.rc, c.woken)
	if err != nil {
		c.wake = nil
		return false
	}
	c.parked, c.parkedAs = true, key
	return true
}

func (c *clientReads) woken() {
	c.mu.Lock()
	c.parked = false
	c.mu.Unlock()
	idle.unpark(c.rc)
	c.wake()
}

// stop ends parking as the session ends; a parked reader is woken.
func (c *clientReads) stop() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	c.Conn.SetReadDeadline(time.Time{}) // a park deadline, if any
	mine := c.parked && idle.cancel(c.parkedAs)
	c.parked = false
	c.mu.Unlock()
	if mine {
		idle.unpark(c.rc)
		go c.wake()
	}
}
