//go:build unix

package bridge

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// rawReader reads a socket when it is readable, into a buffer taken from
// the pool only then. Its fields carry one read's state in and out of
// the function RawConn.Read calls, made once so that reads allocate
// nothing.
//
// After parkAfter without bytes, read returns errParked (see parkState).
type rawReader struct {
	parkState
	pool   *sync.Pool // the current read's
	window func([]byte) []byte
	fn     func(fd uintptr) bool

	bp   *[]byte
	n    int
	rerr error
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
	r := &rawReader{parkState: parkState{conn: conn, rc: rc}, window: window}
	r.fn = r.readable
	return r
}

// readable is called by RawConn.Read at once, and again each time the
// poller says the socket is readable, until it returns true. The buffer
// is the pool's whenever it is not running.
func (r *rawReader) readable(fd uintptr) bool {
	r.bp = r.pool.Get().(*[]byte)
	r.n, r.rerr = readFD(fd, r.window(*r.bp))
	if r.rerr == syscall.EAGAIN {
		r.pool.Put(r.bp)
		r.bp = nil
		r.arm()
		return false
	}
	return true
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
		if errors.Is(err, os.ErrDeadlineExceeded) && r.mayPark() {
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
