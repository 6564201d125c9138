package bridge

import (
	"net"
	"sync"
	"time"
)

// targetReads reads the target into the server's pooled buffers. Where the
// target is a plain TCP or Unix socket (on Unix), it waits for bytes
// without a buffer, through syscall.RawConn, and takes one from a pool
// only once bytes are ready: an idle session holds no copy buffer. A read
// that filled its buffer says the target is sending fast, and the next
// read gets a buffer from the large pool (bulkReadSize): fewer system
// calls per byte while bulk data flows, and small buffers for the rest. Elsewhere (TLS targets, other systems) it holds one small buffer
// for the session's life.
type targetReads struct {
	conn  net.Conn
	pools [2]*sync.Pool // small, large
	big   bool          // the last read filled its buffer
	from  *sync.Pool    // where the last read's buffer came from
	raw   *rawReader    // nil: conn is read into held
	held  *[]byte
	// window picks the part of a buffer that reads fill.
	window func(buf []byte) []byte
}

func newTargetReads(conn net.Conn, small, large *sync.Pool, window func([]byte) []byte) *targetReads {
	r := &targetReads{conn: conn, pools: [2]*sync.Pool{small, large}, window: window, raw: newRawReader(conn, window)}
	if r.raw == nil {
		r.held = small.Get().(*[]byte)
	}
	return r
}

// read returns a buffer holding n bytes from the target in its window, or
// the read's error (io.EOF at the target's FIN). The caller hands the
// buffer back with done once it has used the bytes.
func (r *targetReads) read() (bp *[]byte, n int, err error) {
	if r.held != nil {
		n, err = r.conn.Read(r.window(*r.held))
		return r.held, n, err
	}
	r.from = r.pools[0]
	if r.big {
		r.from = r.pools[1]
	}
	bp, n, err = r.raw.read(r.from)
	r.big = bp != nil && n == len(r.window(*bp))
	return bp, n, err
}

// done gives back a buffer from read.
func (r *targetReads) done(bp *[]byte) {
	if bp != nil && bp != r.held {
		r.from.Put(bp)
	}
}

// stop bounds the reads still to come by deadline, as the session ends.
// It returns true when it took a parked reader back: the caller runs the
// reader (the target pump) to make them.
func (r *targetReads) stop(deadline time.Time) bool {
	if r.raw != nil {
		return r.raw.take(deadline)
	}
	r.conn.SetReadDeadline(deadline)
	return false
}

// close gives back the held buffer.
func (r *targetReads) close() {
	if r.held != nil {
		r.pools[0].Put(r.held)
		r.held = nil
	}
}
