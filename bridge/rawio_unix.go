//go:build unix && !linux

package bridge

import "syscall"

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
