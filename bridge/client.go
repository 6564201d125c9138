package bridge

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// DialOptions configure the client half of a bridge: Dial and Relay. The
// zero value offers the "binary" subprotocol, sends no credentials and
// trusts the system's certificate authorities.
type DialOptions struct {
	// Mode is Binary (the default) or Base64, the websockify 0.8 framing.
	Mode Mode
	// NoSubprotocol offers no subprotocol at all, as noVNC does; the
	// session is then binary. It is ignored for Base64.
	NoSubprotocol bool
	// Header is sent with the handshake: Authorization, Origin and so on.
	Header http.Header
	// TLS configures wss:// connections; nil uses the system's roots.
	TLS *tls.Config
	// EOFWait is how long Relay keeps passing the bridge's bytes on after
	// the local input ends, before it closes with 1000: a WebSocket cannot
	// half-close, and the target's answer to the last input may still be on
	// its way. Zero closes at once; negative waits for the bridge to close.
	EOFWait time.Duration
}

// clientReadLimit caps one message from the bridge. wsbridge sends at most
// 64 KiB of bytes per message (87,384 in base64) and websockify less; the
// margin is for other bridges.
const clientReadLimit = 1 << 20

// clientChunk is the most read from the local side into one message.
const clientChunk = 32 << 10

// HandshakeError is a bridge's refusal of the upgrade: its HTTP status
// and the first line of its plain-text reason.
type HandshakeError struct {
	Status int
	Reason string
}

func (e *HandshakeError) Error() string {
	msg := fmt.Sprintf("bridge refused the handshake: %d %s", e.Status, http.StatusText(e.Status))
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

// Client is one WebSocket to a bridge, made by Dial. Relay runs once;
// cancelling its context ends the session.
type Client struct {
	ws   *websocket.Conn
	mode Mode
	opts DialOptions
}

// Dial opens a WebSocket to a bridge (wsbridge, websockify or another) at
// rawURL, ws:// or wss://. ctx bounds the handshake only. Errors never carry
// the URL's query or user information, where tokens travel.
func Dial(ctx context.Context, rawURL string, opts *DialOptions) (*Client, error) {
	var o DialOptions
	if opts != nil {
		o = *opts
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("bridge URL: %w", errors.Unwrap(err))
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return nil, fmt.Errorf("bridge URL %s: the scheme must be ws or wss", Redact(u))
	}
	wo := &websocket.DialOptions{HTTPHeader: o.Header}
	switch {
	case o.Mode == Base64:
		wo.Subprotocols = []string{"base64"}
	case !o.NoSubprotocol:
		wo.Subprotocols = []string{"binary"}
	}
	if o.TLS != nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = o.TLS
		wo.HTTPClient = &http.Client{Transport: tr}
	}
	ws, resp, err := websocket.Dial(ctx, u.String(), wo)
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, &HandshakeError{Status: resp.StatusCode, Reason: refusalReason(resp)}
		}
		// The library's message quotes the whole URL; keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		} else if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("dial %s: %w", Redact(u), err)
	}
	want := "binary"
	if o.Mode == Base64 {
		want = "base64"
	} else if o.NoSubprotocol {
		want = ""
	}
	// websockify answers without a subprotocol when none was asked for, and
	// old servers ignore "binary"; a base64 session, though, must be one.
	if got := ws.Subprotocol(); got != want && (o.Mode == Base64 || got != "") {
		ws.Close(websocket.StatusProtocolError, "Unexpected subprotocol")
		return nil, fmt.Errorf("dial %s: the bridge chose subprotocol %q, not %q", Redact(u), got, want)
	}
	ws.SetReadLimit(clientReadLimit)
	return &Client{ws: ws, mode: o.Mode, opts: o}, nil
}

// refusalReason is why a bridge refused: wsbridge says it in a line of
// plain text, websockify in the status line's reason phrase (its body is
// an HTML page).
func refusalReason(resp *http.Response) string {
	phrase := strings.TrimSpace(strings.TrimPrefix(resp.Status, strconv.Itoa(resp.StatusCode)))
	if phrase == http.StatusText(resp.StatusCode) {
		phrase = ""
	}
	if resp.Body == nil || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		return phrase
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	line, _, _ := strings.Cut(string(b), "\n")
	if line = strings.TrimSpace(line); line != "" {
		return line
	}
	return phrase
}

// Redact returns u without its query, fragment and user information.
func Redact(u *url.URL) string {
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	return r.String()
}

// Subprotocol is what the bridge chose: "binary", "base64" or "".
func (c *Client) Subprotocol() string { return c.ws.Subprotocol() }

// ErrLost means the connection to the bridge ended without a close frame.
var ErrLost = errors.New("connection to the bridge lost without a close frame")

// Relay copies r's bytes to the bridge and the bridge's bytes to w until
// the session ends, and returns how it ended: nil for a close with 1000
// (from either side), a websocket.CloseError with the bridge's code and
// reason, ErrLost, ctx's error (the session then closes with 1001), or the
// local side's error. When r ends, the bridge's bytes still reach w for
// DialOptions.EOFWait.
//
// At the end Relay half-closes w when it can (a TCP or Unix connection),
// reads and drops what r still sends for up to a second, so that closing it
// does not reset the connection and lose bytes w has yet to deliver, and
// closes r if it is an io.Closer. Its reader is waited for when r has read
// deadlines; otherwise (standard input) a Read in progress is left behind.
func (c *Client) Relay(ctx context.Context, r io.Reader, w io.Writer) error {
	up := make(chan error, 1) // r's end: nil for EOF
	var reader sync.WaitGroup
	reader.Add(1)
	go func() {
		defer reader.Done()
		up <- c.send(r)
	}()
	down := make(chan error, 1)
	go func() { down <- c.receive(w) }()

	var eof <-chan time.Time
	var local error // the local side's or ctx's error, which wins
	closing := false
	closeWith := func(code websocket.StatusCode, reason string) {
		if !closing {
			closing = true
			// Close waits for the bridge's answer, which receive reads.
			go c.ws.Close(code, reason)
		}
	}
	done := ctx.Done()
	var err error
	for waiting := true; waiting; {
		select {
		case err = <-down:
			waiting = false
		case uerr := <-up:
			up = nil
			switch wait := c.opts.EOFWait; {
			case uerr != nil:
				local = uerr
				closeWith(websocket.StatusNormalClosure, "")
			case wait == 0:
				closeWith(websocket.StatusNormalClosure, "")
			case wait > 0:
				t := time.NewTimer(wait)
				defer t.Stop()
				eof = t.C
			}
		case <-eof:
			closeWith(websocket.StatusNormalClosure, "")
		case <-done:
			done = nil
			local = ctx.Err()
			closeWith(websocket.StatusGoingAway, "Client going away")
		}
	}
	if closing && errors.Is(err, ErrLost) {
		// Our close raced the bridge's answer to the reader; the session
		// ended as asked.
		err = nil
	}
	c.ws.CloseNow()
	c.closeLocal(r, w, &reader)
	if local != nil {
		return local
	}
	return err
}

// closeLocal ends the local side as Relay's comment says.
func (c *Client) closeLocal(r io.Reader, w io.Writer, reader *sync.WaitGroup) {
	if cw, ok := w.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	if d, ok := r.(interface{ SetReadDeadline(time.Time) error }); ok && d.SetReadDeadline(time.Now().Add(time.Second)) == nil {
		reader.Wait()
	}
	if cl, ok := r.(io.Closer); ok {
		cl.Close()
	}
}

// send reads local bytes into messages until local EOF (nil) or a read
// error. Once the session has ended it reads on and discards, so that r's
// peer is not reset while it still sends.
func (c *Client) send(r io.Reader) error {
	ctx := context.Background()
	buf := make([]byte, clientChunk)
	var enc []byte
	if c.mode == Base64 {
		enc = make([]byte, base64.StdEncoding.EncodedLen(clientChunk))
	}
	ended := false
	for {
		n, err := r.Read(buf)
		if n > 0 && !ended {
			var werr error
			if c.mode == Base64 {
				b64Encode(enc, buf[:n])
				werr = c.ws.Write(ctx, websocket.MessageText, enc[:base64.StdEncoding.EncodedLen(n)])
			} else {
				werr = c.ws.Write(ctx, websocket.MessageBinary, buf[:n])
			}
			// A failed write means the session has ended; receive says how.
			ended = werr != nil
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if ended {
				return nil
			}
			return fmt.Errorf("read local input: %w", err)
		}
	}
}

// receive writes the bridge's messages to w until the session ends.
func (c *Client) receive(w io.Writer) error {
	ctx := context.Background()
	buf := make([]byte, 2*clientChunk)
	var dec b64Decoder
	out := &localWriter{w}
	for {
		typ, r, err := c.ws.Reader(ctx)
		if err != nil {
			return closeOutcome(err)
		}
		// Be liberal as the server is: binary messages in a base64 session
		// and text ones in a binary session carry their bytes as they are.
		var d *b64Decoder
		if c.mode == Base64 && typ == websocket.MessageText {
			d = &dec
		}
		err = copyMessage(out, r, buf, clientChunk, d)
		var le *localError
		switch {
		case err == nil:
		case errors.Is(err, errBase64):
			// Finish the message first: Close reads the bridge's answer.
			io.Copy(io.Discard, r)
			c.ws.Close(websocket.StatusInvalidFramePayloadData, reasonBase64)
			return fmt.Errorf("message from the bridge: %w", err)
		case errors.As(err, &le):
			io.Copy(io.Discard, r)
			c.ws.Close(websocket.StatusGoingAway, "Client output closed")
			return err
		default:
			return closeOutcome(err)
		}
	}
}

// localWriter marks the local side's write errors, so that receive can
// tell them from the bridge's.
type localWriter struct{ w io.Writer }

func (l *localWriter) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	if err != nil {
		return n, &localError{err}
	}
	return n, nil
}

// localError is a failed write to the local side.
type localError struct{ err error }

func (e *localError) Error() string { return "write local output: " + e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// closeOutcome turns the library's error for the end of a session into
// Relay's: nil for 1000, the close error for other codes, ErrLost when no
// close frame came.
func closeOutcome(err error) error {
	var ce websocket.CloseError
	switch {
	case errors.As(err, &ce) && ce.Code == websocket.StatusNormalClosure:
		return nil
	case errors.As(err, &ce):
		return ce
	}
	return ErrLost
}
