package bridge

import (
	"net"
	"sync"
)

// targetReads reads the target into the server's pooled buffers. Where the
// target is a plain TCP or Unix socket (on Unix), it waits for bytes
// without a buffer, through syscall.RawConn, and takes one from the pool
// only once bytes are ready: an idle session holds no copy buffer.
// Elsewhere (TLS targets, other systems) it holds one buffer for the
// session's life.
type targetReads struct {
	conn net.Conn
	pool *sync.Pool
	raw  *rawReader // nil: conn is read into held
	held *[]byte
	// window picks the part of a buffer that reads fill.
	window func(buf []byte) []byte
}

func newTargetReads(conn net.Conn, pool *sync.Pool, window func([]byte) []byte) *targetReads {
	r := &targetReads{conn: conn, pool: pool, window: window, raw: newRawReader(conn, pool, window)}
	if r.raw == nil {
		r.held = pool.Get().(*[]byte)
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
	return r.raw.read()
}

// done gives back a buffer from read.
func (r *targetReads) done(bp *[]byte) {
	if bp != nil && bp != r.held {
		r.pool.Put(bp)
	}
}

// close gives back the held buffer.
func (r *targetReads) close() {
	if r.held != nil {
		r.pool.Put(r.held)
		r.held = nil
	}
}
