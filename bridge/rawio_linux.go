package bridge

import (
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// The session's reads and writes on a plain socket are raw system calls,
// made inside RawConn.Read and RawConn.Write, which wait in the runtime's
// poller when the socket is empty or full (and keep its deadlines). The
// sockets are non-blocking, so the calls never wait in the kernel, and
// what they skip is the runtime's system-call bookkeeping: a slow call
// hands its P off, and a call made while the process was idle wakes
// sysmon. On a machine as busy as an echo keeps it, both are context
// switches: with everything on one CPU, 20,000 64-byte echoes through the
// bridge cost 64-68 thousand switches with syscall.Read and
// net.Buffers.WriteTo, and 42 thousand with raw calls (the Go relay's
// splices: 50 thousand), and the echo's p50 fell from 77-96 to 50-52 µs
// (BENCHMARKS.md, 2026-11-22 (afternoon)). The price: a call keeps its P
// while in the kernel, as running Go code does, which for the longest (a
// bulk writev of 512 KiB, copied into the socket) is some hundreds of
// microseconds; a stop of the world waits for it.

// readFD reads from a socket's descriptor without waiting: the socket is
// non-blocking. EINTR is retried.
func readFD(fd uintptr, b []byte) (int, error) { return rawCall(syscall.SYS_READ, fd, b) }

// writeFD writes to a socket's descriptor without waiting, as readFD.
func writeFD(fd uintptr, b []byte) (int, error) { return rawCall(syscall.SYS_WRITE, fd, b) }

// rawCall makes the read or write system call trap on fd and b.
func rawCall(trap, fd uintptr, b []byte) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	for {
		n, _, e := syscall.RawSyscall(trap, fd, uintptr(p), uintptr(len(b)))
		switch e {
		case 0:
			return int(n), nil
		case syscall.EINTR:
			continue
		}
		return -1, e
	}
}

// rawIO says that the sockets' reads and writes are raw here.
const rawIO = true

// maxIov is the most slices one writev takes: a batch's headers and
// payloads.
const maxIov = 2 * maxBatch

// iovecs lends a rawWriter its writev's vector while it writes.
var iovecs = sync.Pool{New: func() any { return new([maxIov]syscall.Iovec) }}

// A rawWriter writes byte slices to a plain socket in one writev where the
// socket takes them all. It writes for one goroutine at a time; its
// fields carry a write's state in and out of the function RawConn.Write
// calls, made once, so that writing allocates nothing.
type rawWriter struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) bool
	v   *net.Buffers // what is still to write
	iov *[maxIov]syscall.Iovec
	n   int64
	err error
}

// newRawWriter returns a rawWriter for the socket of rc, or nil when rc is.
func newRawWriter(rc syscall.RawConn) *rawWriter {
	if rc == nil {
		return nil
	}
	w := &rawWriter{rc: rc}
	w.fn = w.writable
	return w
}

// writeBuffers writes v, which it consumes, under the socket's write
// deadline, and returns how many bytes went.
func (w *rawWriter) writeBuffers(v *net.Buffers) (int64, error) {
	w.v, w.iov, w.n, w.err = v, iovecs.Get().(*[maxIov]syscall.Iovec), 0, nil
	err := w.rc.Write(w.fn)
	if err == nil {
		err = w.err
	}
	n := w.n
	clear(w.iov[:])
	iovecs.Put(w.iov)
	w.v, w.iov, w.err = nil, nil, nil
	return n, err
}

// writable writes until everything went (true), the socket is full
// (false: the poller waits for room), or a write fails (true, with err).
func (w *rawWriter) writable(fd uintptr) bool {
	for {
		k := 0
		for _, b := range *w.v {
			if k == len(w.iov) {
				break
			}
			if len(b) > 0 {
				w.iov[k].Base = &b[0]
				w.iov[k].SetLen(len(b))
				k++
			}
		}
		if k == 0 {
			*w.v = (*w.v)[:0]
			return true
		}
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&w.iov[0])), uintptr(k))
		switch e {
		case 0:
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			w.err = os.NewSyscallError("writev", e)
			return true
		}
		w.n += int64(r)
		consume(w.v, int64(r))
	}
}

// consume drops the first n bytes of v.
func consume(v *net.Buffers, n int64) {
	for len(*v) > 0 {
		b := (*v)[0]
		if int64(len(b)) > n {
			(*v)[0] = b[n:]
			return
		}
		n -= int64(len(b))
		(*v)[0] = nil
		*v = (*v)[1:]
	}
}
