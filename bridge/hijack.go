package bridge

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// frameReadBuffer is the size of each session's buffered reader from the
// client. net/http's is 4 KiB and lives as long as the session, which an
// idle session otherwise mostly is. Frames of any size still arrive in
// one read when they fit, and larger payloads bypass the buffer (bufio
// reads past an empty buffer straight into the caller's). The writer
// keeps net/http's 4 KiB: with less, a message above the buffer's size
// leaves in a short write and a long one, and target-to-client throughput
// dropped by a third in BenchmarkShuttle.
const frameReadBuffer = 1 << 10

// smallReader hands websocket.Accept the hijacked connection with a
// frameReadBuffer-sized reader instead of net/http's.
type smallReader struct{ http.ResponseWriter }

func (w smallReader) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// Bytes the client sent after its request head must stay first in
	// line, and in the new reader's buffer: Accept re-seats the reader on
	// the connection, keeping only what is buffered.
	br := bufio.NewReaderSize(conn, frameReadBuffer)
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(b)), conn), max(frameReadBuffer, n))
		if _, err := br.Peek(n); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	brw.Reader = br
	return conn, brw, nil
}
