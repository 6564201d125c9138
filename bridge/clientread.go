package bridge

import (
	"errors"
	"net"
	"os"
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
	net.Conn // the hijacked connection
	parkState
	pong func() // takes a pong to the session's ping; nil: the library does

	frames frameCursor // through what the library read
	open   bool        // a data message has frames still to come
}

// newClientReads wraps the hijacked conn; early is what the client sent
// after its request head, which the library reads before conn.
func newClientReads(conn net.Conn, early []byte) *clientReads {
	c := &clientReads{Conn: conn}
	c.parkState.conn = conn
	if sc, ok := vectorConn(conn).(syscall.Conn); ok {
		c.rc, _ = sc.SyscallConn()
	}
	c.track(early) // the library reads these as they are: no pong taken out
	return c
}

func (c *clientReads) Read(p []byte) (int, error) {
	for {
		atRest := c.frames.between() && !c.open
		if atRest {
			c.arm()
		}
		n, err := c.Conn.Read(p)
		n = c.track(p[:n])
		if n == 0 && err == nil {
			continue // all of it was pongs to the session's pings
		}
		if n > 0 || err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		if atRest && c.mayPark() {
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
		if k := c.frames.skip(n - i); k > 0 {
			i += k
			continue
		}
		if c.frames.hn == 0 && c.pong != nil && n-i >= pongFrame && isPong(p[i:i+pongFrame]) {
			copy(p[i:], p[i+pongFrame:n])
			n -= pongFrame
			c.pong()
			continue
		}
		if c.frames.header(p[i]) {
			if h := c.frames.hdr[0]; h&0x0f < 0x8 { // data, not control
				c.open = h&0x80 == 0
			}
		}
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
