package bridge

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"time"
)

// frameReadBuffer is the size of each session's buffered reader from the
// client. net/http's is 4 KiB and lives as long as the session, which an
// idle session otherwise mostly is. 512 bytes take any interactive
// message whole (a VNC key or pointer event, keystrokes over SSH) in one
// read, and larger payloads bypass the buffer (bufio reads past an empty
// buffer straight into the caller's). At 9,000 idle sessions, 1 KiB
// instead cost 1 KiB of PSS per session.
const frameReadBuffer = 512

// hijacker hands websocket.Accept the hijacked connection as clientReads
// (left in cr), which follows the client's frames and parks the reader,
// with a frameReadBuffer reader over it instead of net/http's 4 KiB one,
// and a writer over a frameWriter (left in fw), which bounds every write
// to the client by timeout.
type hijacker struct {
	http.ResponseWriter
	timeout time.Duration
	fw      *frameWriter
	cr      *clientReads
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// Bytes the client sent after its request head must stay first in
	// line, and in the new reader's buffer: Accept re-seats the reader on
	// the connection it is given (clientReads), keeping only what is
	// buffered. clientReads counts those early bytes into its frames.
	var early []byte
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		early = bytes.Clone(b)
	}
	h.cr = newClientReads(conn, early)
	br := bufio.NewReaderSize(h.cr, frameReadBuffer)
	if len(early) > 0 {
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(early), h.cr), max(frameReadBuffer, len(early)))
		if _, err := br.Peek(len(early)); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	brw.Reader = br
	// net/http flushed its writer before handing it over.
	h.fw = newFrameWriter(conn, h.timeout, h.cr.rc)
	brw.Writer = bufio.NewWriterSize(h.fw, h.fw.bufferSize())
	return h.cr, brw, nil
}
