//go:build !linux

package bridge

import (
	"errors"
	"net"
	"syscall"
)

// rawIO says that the sockets' reads and writes go through the runtime's
// system calls here, as Conn.Read and net.Buffers.WriteTo make them;
// Linux's are raw (rawio_linux.go).
const rawIO = false

// rawWriter has no raw writes here: newRawWriter gives none, and writeTo
// goes through net.Buffers.WriteTo.
type rawWriter struct{}

func newRawWriter(syscall.RawConn) *rawWriter { return nil }

func (*rawWriter) writeBuffers(*net.Buffers) (int64, error) { return 0, errors.ErrUnsupported }
