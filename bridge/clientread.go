package bridge

import (
	"encoding/binary"
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
	pong     func()          // takes a pong to the session's ping; nil: the library does

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
	c.track(early) // the library reads these as they are: no pong taken out
	return c
}

func (c *clientReads) Read(p []byte) (int, error) {
	for {
		atRest := c.left == 0 && c.hn == 0 && !c.open
		if atRest {
			c.armPark()
		}
		n, err := c.Conn.Read(p)
		n = c.track(p[:n])
		if n == 0 && err == nil {
			continue // all of it was pongs to the session's pings
		}
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

// pongFrame is the length of a client's pong to the session's ping:
// header, masking key, payload.
const pongFrame = 2 + 4 + len(pingPayload)

// track follows frame boundaries through p, the next bytes read, and
// returns how many of them are left for the library: a pong to the
// session's ping that arrives whole in one read is taken out and reported
// (pong) here, so that the library does not spend a context and a timer
// on it. Anything else, a pong split across reads included, goes through.
func (c *clientReads) track(p []byte) int {
	n := len(p)
	for i := 0; i < n; {
		if c.left > 0 {
			k := int(min(c.left, int64(n-i)))
			c.left -= int64(k)
			i += k
			continue
		}
		if c.hn == 0 && c.pong != nil && n-i >= pongFrame && isPong(p[i:i+pongFrame]) {
			copy(p[i:], p[i+pongFrame:n])
			n -= pongFrame
			c.pong()
			continue
		}
		c.step(p[i])
		i++
	}
	return n
}

// isPong reports whether f is a client's final pong frame carrying
// pingPayload.
func isPong(f []byte) bool {
	if f[0] != 0x80|0xA || f[1] != 0x80|byte(len(pingPayload)) {
		return false
	}
	key := f[2:6]
	for i := range len(pingPayload) {
		if f[6+i]^key[i%4] != pingPayload[i] {
			return false
		}
	}
	return true
}

// step takes one header byte.
func (c *clientReads) step(b byte) {
	c.hdr[c.hn] = b
	c.hn++
	if c.hn < 2 {
		return
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
		return
	}
	switch size {
	case 126:
		size = int64(c.hdr[2])<<8 | int64(c.hdr[3])
	case 127:
		size = int64(binary.BigEndian.Uint64(c.hdr[2:10]) & (1<<63 - 1))
	}
	if op := c.hdr[0] & 0x0f; op < 0x8 { // data, not control
		c.open = c.hdr[0]&0x80 == 0
	}
	c.left, c.hn = size, 0
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
