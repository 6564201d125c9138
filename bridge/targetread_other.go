//go:build !unix

package bridge

import (
	"net"
	"sync"
)

// rawReader is not used here: Windows's RawConn.Read does not wait for
// readability, so sessions hold their read buffer.
type rawReader struct{ parkState }

func newRawReader(net.Conn, func([]byte) []byte) *rawReader { return nil }

func (*rawReader) read(*sync.Pool) (*[]byte, int, error) {
	panic("bridge: no raw reads on this system")
}
