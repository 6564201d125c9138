//go:build !unix

package bridge

import (
	"net"
	"sync"
	"time"
)

// rawReader is not used here: Windows's RawConn.Read does not wait for
// readability, so sessions hold their read buffer.
type rawReader struct{ wake func() }

func newRawReader(net.Conn, func([]byte) []byte) *rawReader { return nil }

func (*rawReader) read(*sync.Pool) (*[]byte, int, error) {
	panic("bridge: no raw reads on this system")
}

func (*rawReader) stop(time.Time) {}

func (*rawReader) park() bool { return false }
