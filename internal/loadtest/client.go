package loadtest

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/wsbridge/wsbridge/internal/wsframe"
)

// Endpoint is what the clients connect to: a WebSocket bridge at URL, or
// plain TCP at Addr (a TCP relay, or the target itself for a baseline).
type Endpoint struct {
	// Name labels results.
	Name string
	// URL is the bridge's ws:// URL; empty for plain TCP.
	URL string
	// Base64 speaks the base64 subprotocol instead of binary.
	Base64 bool
	// Addr is the TCP address when URL is empty.
	Addr string
}

// Conn is one session through an endpoint. Send writes p as one message
// (one write on TCP); Recv reads the bytes that come back, decoded.
type Conn interface {
	Send(p []byte) error
	Recv(p []byte) (int, error)
	// SetDeadline bounds Send and Recv; a missed deadline breaks the Conn.
	SetDeadline(t time.Time) error
	// Close ends the session politely (a close handshake on WebSocket).
	Close() error
}

// Dial opens a session.
func (e *Endpoint) Dial(ctx context.Context) (Conn, error) {
	if e.URL == "" {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", e.Addr)
		if err != nil {
			return nil, err
		}
		return tcpConn{c.(*net.TCPConn)}, nil
	}
	return dialWS(ctx, e.URL, e.Base64)
}

// open is Dial with its failure marked as a dropped session.
func (e *Endpoint) open(ctx context.Context) (Conn, error) {
	c, err := e.Dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: dial: %v", ErrDropped, err)
	}
	return c, nil
}

type tcpConn struct{ *net.TCPConn }

func (c tcpConn) Send(p []byte) error {
	_, err := c.Write(p)
	return err
}

func (c tcpConn) Recv(p []byte) (int, error) { return c.Read(p) }

// transport dials for every WebSocket client and hands the raw connection
// to the dialler through the context, for deadlines.
var transport = &http.Transport{
	DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if h, ok := ctx.Value(rawKey{}).(*net.Conn); ok && err == nil {
			*h = c
		}
		return c, err
	},
	DisableKeepAlives: true,
}

var client = &http.Client{Transport: transport}

type rawKey struct{}

type wsConn struct {
	ws     *websocket.Conn
	raw    net.Conn
	b64    bool
	r      io.Reader    // the message being read, or nil
	enc    []byte       // base64 of the message being sent
	text   bytes.Buffer // base64 of the message being read
	dec    []byte       // its decoded bytes
	plain  []byte       // the part of dec not yet returned
	frame  []byte       // the frame Send writes
	hdr    [14]byte     // the header sendMasked writes
	vec    [2][]byte    // sendMasked's header and payload
	key    uint64       // the state of Send's masking keys
	broken atomic.Bool  // a Send or Recv failed: Close skips the handshake
}

func dialWS(ctx context.Context, rawURL string, b64 bool) (*wsConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	proto := "binary"
	if b64 {
		proto = "base64"
	}
	var raw net.Conn
	ctx = context.WithValue(ctx, rawKey{}, &raw)
	scheme := "http"
	if u.Scheme == "wss" {
		scheme = "https"
	}
	ws, resp, err := websocket.Dial(ctx, rawURL, &websocket.DialOptions{
		HTTPClient:   client,
		Subprotocols: []string{proto},
		// Both wsbridge's same-host check and websockify accept this.
		HTTPHeader: http.Header{"Origin": {scheme + "://" + strings.ToLower(u.Host)}},
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, fmt.Errorf("handshake refused: %s", resp.Status)
		}
		return nil, err
	}
	if ws.Subprotocol() != proto && !(proto == "binary" && ws.Subprotocol() == "") {
		ws.CloseNow()
		return nil, fmt.Errorf("bridge chose subprotocol %q, want %q", ws.Subprotocol(), proto)
	}
	ws.SetReadLimit(-1)
	return &wsConn{ws: ws, raw: raw, b64: b64, key: uint64(time.Now().UnixNano())}, nil
}

// Send writes p as one frame in one write, as browsers do. The library's
// writer masks through its 4 KiB buffer and so sends a 64 KiB message in
// sixteen writes, which would make the bridge under test read in 4 KiB
// pieces and look slower than it is with real clients. The library still
// writes the control frames it answers while reading (pongs, the close),
// each in one write too; a connection's writes do not interleave.
func (c *wsConn) Send(p []byte) error {
	msg := p
	if c.b64 {
		n := base64.StdEncoding.EncodedLen(len(p))
		if cap(c.enc) < n {
			c.enc = make([]byte, n)
		}
		base64.StdEncoding.Encode(c.enc[:n], p)
		msg = c.enc[:n]
	}
	op := byte(0x2)
	if c.b64 {
		op = 0x1
	}
	need := len(msg) + 14
	if cap(c.frame) < need {
		c.frame = make([]byte, need)
	}
	c.key = c.key*6364136223846793005 + 1442695040888963407
	f := wsframe.AppendClient(c.frame[:0], true, op, msg, uint32(c.key>>32))
	_, err := c.raw.Write(f)
	if err != nil {
		c.broken.Store(true)
	}
	return err
}

// sendMasked writes a binary message whose payload is masked with key
// already, its header and payload in one writev.
func (c *wsConn) sendMasked(masked []byte, key uint32) error {
	c.vec = [2][]byte{wsframe.AppendClientHeader(c.hdr[:0], true, 0x2, len(masked), key), masked}
	v := net.Buffers(c.vec[:])
	_, err := v.WriteTo(c.raw)
	if err != nil {
		c.broken.Store(true)
	}
	return err
}

var errBinaryInBase64 = errors.New("loadtest: binary message in a base64 session")

func (c *wsConn) Recv(p []byte) (int, error) {
	var n int
	var err error
	if c.b64 {
		n, err = c.recvBase64(p)
	} else {
		n, err = c.recvBinary(p)
	}
	if err != nil {
		c.broken.Store(true)
	}
	return n, err
}

func (c *wsConn) recvBinary(p []byte) (int, error) {
	for {
		if c.r == nil {
			_, r, err := c.ws.Reader(context.Background())
			if err != nil {
				return 0, err
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err == io.EOF {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// recvBase64 reads whole text messages (a bridge sends at most some tens
// of KiB in one) and returns their decoded bytes.
func (c *wsConn) recvBase64(p []byte) (int, error) {
	for len(c.plain) == 0 {
		typ, r, err := c.ws.Reader(context.Background())
		if err != nil {
			return 0, err
		}
		if typ != websocket.MessageText {
			return 0, errBinaryInBase64
		}
		c.text.Reset()
		if _, err := c.text.ReadFrom(r); err != nil {
			return 0, err
		}
		need := base64.StdEncoding.DecodedLen(c.text.Len())
		if len(c.dec) < need {
			c.dec = make([]byte, need)
		}
		n, err := base64.StdEncoding.Decode(c.dec, c.text.Bytes())
		if err != nil {
			return 0, fmt.Errorf("loadtest: bad base64 from the bridge: %w", err)
		}
		c.plain = c.dec[:n]
	}
	n := copy(p, c.plain)
	c.plain = c.plain[n:]
	return n, nil
}

func (c *wsConn) SetDeadline(t time.Time) error {
	if c.raw == nil {
		return errors.New("loadtest: no raw connection for deadlines")
	}
	return c.raw.SetDeadline(t)
}

func (c *wsConn) Close() error {
	if c.broken.Load() {
		return c.ws.CloseNow()
	}
	c.raw.SetDeadline(time.Now().Add(5 * time.Second))
	return c.ws.Close(websocket.StatusNormalClosure, "")
}
