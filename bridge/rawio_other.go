//go:build !unix

package bridge

import (
	"errors"
	"net"
	"syscall"
)

// No descriptors are read or written directly here.
func readFD(uintptr, []byte) (int, error)  { return 0, errors.ErrUnsupported }
func writeFD(uintptr, []byte) (int, error) { return 0, errors.ErrUnsupported }

const rawIO = false

type rawWriter struct{}

func newRawWriter(syscall.RawConn) *rawWriter { return nil }

func (*rawWriter) writeBuffers(*net.Buffers) (int64, error) { return 0, errors.ErrUnsupported }
