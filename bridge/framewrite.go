package bridge

import (
	"encoding/binary"
	"net"
	"sync"
	"syscall"
	"time"
)

// frameWriteBuffer is the size of the library's buffered frame writer
// toward a client on a plain socket. A frame larger than the buffer leaves
// the library in two writes: the buffer, full with the header and the
// start of the payload, and then the rest. frameWriter gathers those
// writes, for all the messages of one target read, into one writev, so the
// buffer can be small, which an idle session is glad of, and a message
// costs no system call of its own. On TLS the buffer stays net/http's
// 4 KiB: there each flush is a record.
const (
	frameWriteBuffer = 256
	tlsWriteBuffer   = 4 << 10
)

// maxFrameHeader is the longest header of an unmasked frame.
const maxFrameHeader = 10

// maxGather is how many frames a gathering holds before it writes: eight
// messages of the default read size, a bulk read.
const maxGather = 8

// A gathering holds the writes of one batch of messages until they go out
// in one writev: copies of the library's buffer flushes (at most
// frameWriteBuffer bytes each, in arena) and, by reference, the payloads
// it writes past its buffer, which are slices of the session's own buffer
// and stay put until release. It is pooled: a session holds one only
// while it writes.
type gathering struct {
	arena [2 * maxGather * frameWriteBuffer]byte
	used  int
	tail  bool // the last entry is in arena and ends at used
	iov   [4*maxGather + 1][]byte
	n     int
	bufs  net.Buffers // over iov; a field, so that writing allocates nothing
}

var gatherings = sync.Pool{New: func() any { return new(gathering) }}

// add takes one write of the library's.
func (g *gathering) add(p []byte) {
	if len(p) > frameWriteBuffer {
		g.iov[g.n] = p
		g.n++
		g.tail = false
		return
	}
	start := g.used
	g.used += copy(g.arena[start:], p)
	if g.tail { // the last entry ends where p was copied: extend it
		g.iov[g.n-1] = g.arena[start-len(g.iov[g.n-1]) : g.used]
		return
	}
	g.iov[g.n] = g.arena[start:g.used]
	g.n++
	g.tail = true
}

// fits reports whether add(p) has room.
func (g *gathering) fits(p []byte) bool {
	return g.n < len(g.iov) && (len(p) > frameWriteBuffer || g.used+len(p) <= len(g.arena))
}

func (g *gathering) reset() {
	clear(g.iov[:g.n])
	g.n, g.used, g.tail = 0, 0, false
	g.bufs = nil
}

// frameWriter is what the library's frame writer flushes into. Every write
// gets its own deadline, so that the library's own frames (pings, pongs,
// the close) are bounded like the session's messages, and never fail on
// the deadline of a write long past.
//
// On a plain TCP or Unix socket (vec), between start and release, the
// library's writes are gathered and go out in one writev at release (or
// earlier, when a gathering is full). Frames the library writes meanwhile
// on its own, a ping or the close, keep their place in line. All writes
// come under the library's frame lock; mu orders them with start and
// release.
//
// It also follows the frames it is given (their headers and lengths), so
// that the session's own pings (ping) go out between frames, never inside
// one, and never after a close frame.
type frameWriter struct {
	conn    net.Conn // the hijacked connection
	vec     net.Conn // *net.TCPConn or *net.UnixConn under conn, or nil
	timeout time.Duration

	mu sync.Mutex
	g  *gathering // between start and release

	frames  frameCursor // through what the library wrote
	closed  bool        // a close frame went out: nothing may follow it
	pingDue bool        // a ping waits for the current frame to end

	// tryPing's write without waiting: vec's raw connection (nil with
	// TLS, or where there is none) and the write, made with the writer so
	// that the first ping allocates nothing either, with what it wrote.
	rc      syscall.RawConn
	pingW   func(fd uintptr) bool
	pingN   int
	pingErr error
}

// pingPayload is the payload of the session's pings, and pingFrame the
// whole frame (final, opcode 9, unmasked, as a server sends). A ping is a
// constant write: it allocates nothing, where the library's Ping costs a
// context, a channel, a map entry and a waiting goroutine. The library
// reports the pong (AcceptOptions.OnPongReceived).
const pingPayload = "wsbridge"

// pingFrame is never written to: a gathering copies it, a socket does not
// keep it.
var pingFrame = []byte("\x89\x08" + pingPayload)

// newFrameWriter writes to conn; rc, if not nil, is the raw connection of
// the socket under it (clientReads has it), for tryPing.
func newFrameWriter(conn net.Conn, timeout time.Duration, rc syscall.RawConn) *frameWriter {
	w := &frameWriter{conn: conn, vec: vectorConn(conn), timeout: timeout}
	if w.vec != nil && rc != nil {
		w.rc = rc
		w.pingW = func(fd uintptr) bool {
			w.pingN, w.pingErr = writeFD(fd, pingFrame)
			return true // never wait
		}
	}
	return w
}

// bufferSize is the size for the library's buffered writer over w.
func (w *frameWriter) bufferSize() int {
	if w.vec == nil {
		return tlsWriteBuffer
	}
	return frameWriteBuffer
}

func (w *frameWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.track(p)
	if err := w.put(p); err != nil {
		return 0, err
	}
	w.pingIfDue()
	return len(p), nil
}

// put writes p, or gathers it; the caller holds mu.
func (w *frameWriter) put(p []byte) error {
	if g := w.g; g != nil {
		if !g.fits(p) {
			if err := w.flush(); err != nil {
				return err
			}
		}
		g.add(p)
		return nil
	}
	w.deadline()
	_, err := w.conn.Write(p)
	return err
}

// track follows frame boundaries through p, the next bytes written.
func (w *frameWriter) track(p []byte) {
	for len(p) > 0 {
		if k := w.frames.skip(len(p)); k > 0 {
			p = p[k:]
			continue
		}
		if w.frames.header(p[0]) && w.frames.hdr[0]&0x0f == 0x8 {
			w.closed = true
		}
		p = p[1:]
	}
}

// frameCursor follows WebSocket frame boundaries through a stream of
// bytes, given one piece after another.
type frameCursor struct {
	left int64    // payload bytes still to come in the current frame
	hdr  [14]byte // the current frame's header, as far as it came
	hn   int
}

// between reports whether the stream is between two frames.
func (f *frameCursor) between() bool { return f.left == 0 && f.hn == 0 }

// skip takes up to n bytes of the current frame's payload and returns how
// many it took: none when a header comes next.
func (f *frameCursor) skip(n int) int {
	k := int(min(f.left, int64(n)))
	f.left -= int64(k)
	return k
}

// header takes the next header byte; at the header's last it returns true,
// with the header in hdr and its payload's length in left.
func (f *frameCursor) header(b byte) bool {
	f.hdr[f.hn] = b
	f.hn++
	if f.hn < 2 {
		return false
	}
	need, size := 2, int64(f.hdr[1]&0x7f)
	switch size {
	case 126:
		need = 4
	case 127:
		need = 10
	}
	if f.hdr[1]&0x80 != 0 {
		need += 4 // the masking key, which only a client sends
	}
	if f.hn < need {
		return false
	}
	switch size {
	case 126:
		size = int64(binary.BigEndian.Uint16(f.hdr[2:4]))
	case 127:
		size = int64(binary.BigEndian.Uint64(f.hdr[2:10]) & (1<<63 - 1))
	}
	f.left, f.hn = size, 0
	return true
}

// ping sends a ping now, or after the frame being written, unless a close
// frame went out. A failed write is the pumps' to report.
func (w *frameWriter) ping() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pingDue = true
	w.pingIfDue()
}

// tryPing is ping for the pinger's goroutine, which must not wait. It
// writes the ping at once, without waiting for room in the socket, or
// leaves it to the end of the frame being written, as ping does; it
// returns false, having done nothing, when the ping could only wait: for
// the writer (busy, or gathering), for TLS, or for a full socket. The
// caller then sends it with ping on a goroutine of its own.
func (w *frameWriter) tryPing() bool {
	if w.rc == nil || !w.mu.TryLock() {
		return false
	}
	if w.g != nil {
		w.mu.Unlock()
		return false
	}
	if w.closed || !w.frames.between() {
		w.pingDue = !w.closed // the frame's last Write sends it
		w.mu.Unlock()
		return true
	}
	// The write never waits, but a deadline an earlier write left, long
	// past for a quiet session, would refuse it before it is tried.
	w.conn.SetWriteDeadline(time.Time{})
	w.pingN, w.pingErr = 0, nil
	w.rc.Write(w.pingW)
	switch n := w.pingN; {
	case n == len(pingFrame):
		w.mu.Unlock()
		return true
	case n > 0:
		// Part of the frame went: its rest must follow before anything
		// else, and may have to wait, on a goroutine that then lets mu go.
		go func() {
			defer w.mu.Unlock()
			w.deadline()
			w.conn.Write(pingFrame[n:])
		}()
		return true
	}
	w.mu.Unlock()
	return false
}

// pingIfDue writes the ping asked for once the stream is between frames;
// after a close frame it drops it. The caller holds mu.
func (w *frameWriter) pingIfDue() {
	if !w.pingDue || !w.frames.between() {
		return
	}
	w.pingDue = false
	if !w.closed {
		w.put(pingFrame)
	}
}

func (w *frameWriter) deadline() {
	if w.timeout > 0 {
		w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
	}
}

// flush writes what is gathered in one system call (more when the socket
// takes part of it).
func (w *frameWriter) flush() error {
	g := w.g
	if g.n == 0 {
		return nil
	}
	w.deadline()
	g.bufs = g.iov[:g.n]
	_, err := g.bufs.WriteTo(w.vec)
	g.reset()
	return err
}

// start tells the writer that the messages of n payload bytes in all are
// about to be written; it returns whether release must follow the writes.
func (w *frameWriter) start(n int) bool {
	if w.vec == nil || n <= frameWriteBuffer-maxFrameHeader {
		return false
	}
	g := gatherings.Get().(*gathering)
	w.mu.Lock()
	w.g = g
	w.mu.Unlock()
	return true
}

// release writes what start began gathering.
func (w *frameWriter) release() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.flush()
	g := w.g
	w.g = nil
	g.reset()
	gatherings.Put(g)
	return err
}

// vectorConn returns the socket under c whose writes of net.Buffers are
// one system call, or nil (TLS, or a connection type it does not know).
func vectorConn(c net.Conn) net.Conn {
	for {
		switch x := c.(type) {
		case *net.TCPConn, *net.UnixConn:
			return x
		case *clientConn:
			c = x.Conn
		case *clientReads:
			c = x.Conn
		case *peekedConn:
			c = x.Conn
		case *proxyConn:
			c = x.Raw()
		default:
			return nil
		}
	}
}
