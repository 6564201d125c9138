package bridge

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// frameWriteBuffer is the size of the library's buffered frame writer
// toward a client on a plain socket, where the library writes only
// control frames (a pong, the close: at most 127 bytes each, one Write
// each) and the session's messages go out by messages. On TLS the buffer
// stays net/http's 4 KiB: there each flush is a record.
const (
	frameWriteBuffer = 256
	tlsWriteBuffer   = 4 << 10
)

// maxFrameHeader is the longest header of an unmasked frame.
const maxFrameHeader = 10

// maxBatch is how many messages go out in one writev: a bulk read is
// eight at the default read size, and more at a smaller one.
const maxBatch = 16

// A batch is the headers and the writev of the messages of one target
// read, pointing into the session's buffer. It is pooled: a session holds
// one only while it writes.
type batch struct {
	hdr  [maxBatch * maxFrameHeader]byte
	iov  [2 * maxBatch][]byte
	bufs net.Buffers // over iov; a field, so that writing allocates nothing
}

var batches = sync.Pool{New: func() any { return new(batch) }}

// putHeader writes the header of a final, unmasked frame of opcode op and
// n payload bytes at the start of b, and returns its length.
func putHeader(b []byte, op byte, n int) int {
	b[0] = 0x80 | op
	switch {
	case n < 126:
		b[1] = byte(n)
		return 2
	case n < 1<<16:
		b[1] = 126
		binary.BigEndian.PutUint16(b[2:], uint16(n))
		return 4
	}
	b[1] = 127
	binary.BigEndian.PutUint64(b[2:], uint64(n))
	return 10
}

// frameWriter is what the library's frame writer flushes into. Every write
// gets its own deadline, so that the library's own frames (pings, pongs,
// the close) are bounded like the session's messages, and never fail on
// the deadline of a write long past.
//
// On a plain TCP or Unix socket (vec), the session's messages do not go
// through the library at all: messages frames them and writes them, all
// the messages of a target read in one writev. The library's own frames
// (a pong, the close) still come through Write, whole, under its frame
// lock; mu orders them with messages.
//
// It also follows the frames it is given (their headers and lengths), so
// that the session's own pings (ping) go out between frames, never inside
// one, and never after a close frame.
type frameWriter struct {
	conn    net.Conn   // the hijacked connection
	vec     net.Conn   // *net.TCPConn or *net.UnixConn under conn, or nil
	raw     *rawWriter // over rc, where writes are raw (Linux), or nil
	timeout time.Duration

	mu sync.Mutex

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

// pingFrame is never written to: a socket does not keep it.
var pingFrame = []byte("\x89\x08" + pingPayload)

// newFrameWriter writes to conn; rc, if not nil, is the raw connection of
// the socket under it (clientReads has it), for tryPing.
func newFrameWriter(conn net.Conn, timeout time.Duration, rc syscall.RawConn) *frameWriter {
	w := &frameWriter{conn: conn, vec: vectorConn(conn), timeout: timeout}
	if w.vec != nil && rc != nil {
		w.rc = rc
		w.raw = newRawWriter(rc)
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

// put writes p; the caller holds mu.
func (w *frameWriter) put(p []byte) error {
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
// the writer (busy), for TLS, or for a full socket. The
// caller then sends it with ping on a goroutine of its own.
func (w *frameWriter) tryPing() bool {
	if w.rc == nil || !w.mu.TryLock() {
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

// errMidFrame refuses a message when the stream to the client stopped
// inside a frame the library wrote (a write of its failed part way).
var errMidFrame = errors.New("client stream stopped inside a frame")

// messages writes p to a client on a plain socket as final frames of
// opcode op (binary or text) of at most msg bytes each, in one system call
// for up to maxBatch of them (more when the socket takes part). It returns
// net.ErrClosed after a close frame went out, as the library would.
func (w *frameWriter) messages(op byte, p []byte, msg int) error {
	b := batches.Get().(*batch)
	w.mu.Lock()
	defer func() {
		w.mu.Unlock()
		b.bufs = nil
		clear(b.iov[:])
		batches.Put(b)
	}()
	switch {
	case w.closed:
		return net.ErrClosed
	case !w.frames.between():
		return errMidFrame
	}
	for len(p) > 0 {
		n, h := 0, 0
		for ; len(p) > 0 && n < len(b.iov); n += 2 {
			k := min(len(p), msg)
			hn := putHeader(b.hdr[h:], op, k)
			b.iov[n], b.iov[n+1] = b.hdr[h:h+hn], p[:k]
			h += hn
			p = p[k:]
		}
		w.deadline()
		b.bufs = b.iov[:n]
		if _, err := w.raw.writeTo(w.vec, &b.bufs); err != nil {
			return err
		}
	}
	w.pingIfDue()
	return nil
}

// vectorConn returns the socket under c whose writes of net.Buffers are
// one system call, or nil (TLS, or a connection type it does not know).
func vectorConn(c net.Conn) net.Conn {
	for c != nil {
		switch c.(type) {
		case *net.TCPConn, *net.UnixConn:
			return c
		}
		c, _ = under(c)
	}
	return nil
}

// writeTo writes v, which it consumes, to c, the socket under w: raw
// where w is not nil, and through net.Buffers.WriteTo (one writev where c
// allows) where it is.
func (w *rawWriter) writeTo(c net.Conn, v *net.Buffers) (int64, error) {
	if w == nil {
		return v.WriteTo(c)
	}
	return w.writeBuffers(v)
}

// under returns the connection c wraps, and whether c holds bytes read
// from it that it has not returned yet; nil for a connection that wraps
// none, or one unknown here (TLS).
func under(c net.Conn) (inner net.Conn, holds bool) {
	switch x := c.(type) {
	case *clientConn:
		return x.Conn, false
	case *clientReads:
		return x.Conn, true // its held buffer, at times
	case *peekedConn:
		return x.Conn, x.has
	case *proxyConn:
		return x.Raw(), !x.drained
	}
	return nil, false
}
