//go:build unix && !linux

package bridge

import (
	"errors"
	"net"
	"syscall"
)

// readFD reads from a socket's descriptor without waiting: the socket is
// non-blocking. EINTR is retried. Here it is syscall.Read; Linux's is raw
// (rawio_linux.go).
func readFD(fd uintptr, b []byte) (int, error) {
	for {
		n, err := syscall.Read(int(fd), b)
		if err != syscall.EINTR {
			return n, err
		}
	}
}

// writeFD writes to a socket's descriptor without waiting, as readFD.
func writeFD(fd uintptr, b []byte) (int, error) {
	for {
		n, err := syscall.Write(int(fd), b)
		if err != syscall.EINTR {
			return n, err
		}
	}
}

// rawIO says that the sockets' reads and writes go through the runtime's
// system calls here, as Conn.Read and net.Buffers.WriteTo make them.
const rawIO = false

type rawWriter struct{}

func newRawWriter(syscall.RawConn) *rawWriter { return nil }

func (*rawWriter) writeBuffers(*net.Buffers) (int64, error) { return 0, errors.ErrUnsupported }
