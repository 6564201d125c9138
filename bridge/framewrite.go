package bridge

import (
	"net"
	"sync"
	"time"
)

// frameWriteBuffer is the size of the library's buffered frame writer
// toward a client on a plain socket. A frame larger than the buffer leaves
// the library in two writes: the buffer, full with the header and the
// start of the payload, and then the rest. frameWriter joins the two into
// one writev, so the buffer can be small, which an idle session is glad
// of, without the extra system call per message that a small buffer cost
// before (a third of target-to-client throughput in BenchmarkShuttle).
// Control frames (at most 139 bytes) always fit and are written at once.
// On TLS the buffer stays net/http's 4 KiB: there each flush is a record.
const (
	frameWriteBuffer = 256
	tlsWriteBuffer   = 4 << 10
)

// maxFrameHeader is the longest header of an unmasked frame.
const maxFrameHeader = 10

// frameWriter is what the library's frame writer flushes into. Every write
// gets its own deadline, so that the library's own frames (pings, pongs,
// the close) are bounded like the session's messages, and never fail on
// the deadline of a write long past.
//
// On a plain TCP or Unix socket (vec), while a session writes a message
// larger than the buffer (between start and release), the first
// full-buffer flush is held and goes out in one writev with the next
// write, which the library always makes within the same frame: the rest
// of the payload, or its tail after a second buffering. All writes come
// under the library's frame lock; mu orders them with start and release.
type frameWriter struct {
	conn    net.Conn // the hijacked connection
	vec     net.Conn // *net.TCPConn or *net.UnixConn under conn, or nil
	timeout time.Duration

	mu     sync.Mutex
	gather bool
	held   int // bytes in head
	head   [frameWriteBuffer]byte
	iov    [2][]byte
	bufs   net.Buffers // over iov; a field, so that writing allocates nothing
}

func newFrameWriter(conn net.Conn, timeout time.Duration) *frameWriter {
	return &frameWriter{conn: conn, vec: vectorConn(conn), timeout: timeout}
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
	if w.held > 0 {
		return w.flushWith(p)
	}
	if w.gather && len(p) == len(w.head) {
		w.held = copy(w.head[:], p)
		return len(p), nil
	}
	w.deadline()
	return w.conn.Write(p)
}

func (w *frameWriter) deadline() {
	if w.timeout > 0 {
		w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
	}
}

// flushWith writes the held bytes and p in one system call.
func (w *frameWriter) flushWith(p []byte) (int, error) {
	w.deadline()
	w.iov[0], w.iov[1] = w.head[:w.held], p
	w.bufs = w.iov[:]
	held := w.held
	w.held = 0
	n, err := w.bufs.WriteTo(w.vec)
	w.iov[0], w.iov[1] = nil, nil
	w.bufs = nil
	if err != nil {
		return max(int(n)-held, 0), err
	}
	return len(p), nil
}

// start tells the writer that a message of n payload bytes is about to be
// written; it returns whether release must follow the write.
func (w *frameWriter) start(n int) bool {
	if w.vec == nil || n <= frameWriteBuffer-maxFrameHeader {
		return false
	}
	w.mu.Lock()
	w.gather = true
	w.mu.Unlock()
	return true
}

// release ends a message begun with start. Bytes still held (which the
// library's sequence of writes never leaves) are written now.
func (w *frameWriter) release() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gather = false
	if w.held == 0 {
		return nil
	}
	_, err := w.flushWith(nil)
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
		case *peekedConn:
			c = x.Conn
		case *proxyConn:
			c = x.Raw()
		default:
			return nil
		}
	}
}
