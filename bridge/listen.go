package bridge

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// gate is the listener Serve hands to net/http. With TLS, each accepted
// connection gets a goroutine of its own that, within the header timeout,
// tells TLS from plain HTTP by the first byte (when both share the port)
// and finishes the TLS handshake; Accept returns only connections that are
// ready for HTTP. Plain HTTP connections go straight through. A client that sends nothing holds its goroutine until
// the deadline, never the accept loop.
type gate struct {
	ln      net.Listener
	tls     *tls.Config // nil: plain HTTP only
	plain   bool        // with tls: plain HTTP on the same port too
	timeout time.Duration
	log     *slog.Logger

	ready chan net.Conn
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup

	mu      sync.Mutex
	pending map[net.Conn]struct{} // in the sniff or handshake
	err     error                 // why the accept loop stopped
}

func newGate(ln net.Listener, cfg *tls.Config, plain bool, timeout time.Duration, log *slog.Logger) *gate {
	g := &gate{
		ln: ln, tls: cfg, plain: plain, timeout: timeout, log: log,
		ready:   make(chan net.Conn),
		done:    make(chan struct{}),
		pending: make(map[net.Conn]struct{}),
	}
	g.wg.Go(g.acceptLoop)
	return g
}

func (g *gate) acceptLoop() {
	var backoff time.Duration
	for {
		c, err := g.ln.Accept()
		if err != nil {
			select {
			case <-g.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				g.mu.Lock()
				g.err = err
				g.mu.Unlock()
				g.Close()
				return
			}
			// Out of file descriptors and the like: wait, as net/http
			// does, rather than spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			g.log.Error("accept", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-g.done:
				return
			}
			continue
		}
		backoff = 0
		if g.tls == nil {
			// Plain HTTP needs no handshake: hand it over from here.
			select {
			case g.ready <- newClientConn(c, nil):
			case <-g.done:
				c.Close()
				return
			}
			continue
		}
		if !g.track(c) {
			c.Close()
			return
		}
		g.wg.Go(func() { g.admit(c) })
	}
}

func (g *gate) track(c net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.done:
		return false
	default:
	}
	g.pending[c] = struct{}{}
	return true
}

func (g *gate) untrack(c net.Conn) {
	g.mu.Lock()
	delete(g.pending, c)
	g.mu.Unlock()
}

// admit readies one connection for HTTP, or closes it.
func (g *gate) admit(raw net.Conn) {
	defer g.untrack(raw)
	raw.SetDeadline(time.Now().Add(g.timeout))
	cc, err := g.handshake(raw)
	if err != nil {
		raw.Close()
		return
	}
	// net/http sets its own header deadline from here.
	raw.SetDeadline(time.Time{})
	select {
	case g.ready <- cc:
	case <-g.done:
		raw.Close()
	}
}

// tlsFirstBytes are the first bytes of a TLS ClientHello: a handshake
// record, or an SSLv2-style hello.
func looksLikeTLS(b byte) bool { return b == 0x16 || b == 0x80 }

func (g *gate) handshake(raw net.Conn) (*clientConn, error) {
	var under net.Conn = raw
	if g.plain {
		var first [1]byte
		if _, err := io.ReadFull(raw, first[:]); err != nil {
			return nil, err
		}
		under = &peekedConn{Conn: raw, first: first[0], has: true}
		if !looksLikeTLS(first[0]) {
			return newClientConn(under, nil), nil
		}
	}
	tc := tls.Server(under, g.tls)
	if err := tc.Handshake(); err != nil {
		var rh tls.RecordHeaderError
		if errors.As(err, &rh) && rh.Conn != nil {
			// Plain HTTP on a TLS-only port: say so, as net/http does.
			io.WriteString(rh.Conn, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nthis port speaks TLS only: use https:// or wss://\n")
		}
		g.log.Debug("TLS handshake", "remote", raw.RemoteAddr().String(), "err", err)
		return nil, err
	}
	return newClientConn(tc, tc), nil
}

func (g *gate) Accept() (net.Conn, error) {
	select {
	case c := <-g.ready:
		return c, nil
	case <-g.done:
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.err != nil {
			return nil, g.err
		}
		return nil, net.ErrClosed
	}
}

// Close stops accepting and closes the connections not yet handed out.
func (g *gate) Close() error {
	var err error
	g.once.Do(func() {
		g.mu.Lock()
		close(g.done)
		for c := range g.pending {
			c.Close()
		}
		g.mu.Unlock()
		err = g.ln.Close()
	})
	return err
}

// wait collects the gate's goroutines after Close.
func (g *gate) wait() { g.wg.Wait() }

func (g *gate) Addr() net.Addr { return g.ln.Addr() }

// peekedConn gives back the byte read to tell TLS from plain HTTP.
type peekedConn struct {
	net.Conn
	first byte
	has   bool
}

func (c *peekedConn) Read(p []byte) (int, error) {
	if c.has && len(p) > 0 {
		p[0], c.has = c.first, false
		return 1, nil
	}
	return c.Conn.Read(p)
}

// clientConn is a client connection as net/http and the session see it.
// Until the upgrade it watches the request heads go by, because net/http
// takes a bare LF as a line end and RFC 9112 lets a server refuse it; after
// the upgrade its Read is the underlying Read and one flag test.
type clientConn struct {
	net.Conn
	tls *tls.Conn // nil for plain HTTP

	upgraded atomic.Bool
	// Head scanning, in the goroutine that reads before the upgrade.
	heads   int64 // request heads completed
	lineLen int   // bytes of the current line, CR excluded
	cr      bool  // the previous byte was a CR
	// badHead is the index of the first head with a bare LF, or -1.
	badHead atomic.Int64
	// served counts requests the handler has seen, in the handler's
	// goroutine.
	served int64
}

func newClientConn(c net.Conn, tc *tls.Conn) *clientConn {
	cc := &clientConn{Conn: c, tls: tc}
	cc.badHead.Store(-1)
	return cc
}

func (c *clientConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.upgraded.Load() {
		c.scan(p[:n])
	}
	return n, err
}

func (c *clientConn) scan(p []byte) {
	for _, b := range p {
		switch b {
		case '\n':
			if !c.cr && c.badHead.Load() < 0 {
				c.badHead.Store(c.heads)
			}
			if c.lineLen == 0 {
				c.heads++
			}
			c.lineLen, c.cr = 0, false
		case '\r':
			if c.cr {
				c.lineLen++
			}
			c.cr = true
		default:
			if c.cr {
				c.lineLen++
			}
			c.lineLen++
			c.cr = false
		}
	}
}

// nextHeadBad is called once per request by the handler: it reports
// whether that request's head had a bare LF.
func (c *clientConn) nextHeadBad() bool {
	i := c.served
	c.served++
	return c.badHead.Load() == i
}

// tlsState returns the connection's TLS state, or nil for plain HTTP.
func (c *clientConn) tlsState() *tls.ConnectionState {
	if c.tls == nil {
		return nil
	}
	st := c.tls.ConnectionState()
	return &st
}
