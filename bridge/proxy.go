package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/pires/go-proxyproto"
)

// ProxyListener reads PROXY protocol headers (v1 and v2) on ln, so that a
// connection's RemoteAddr is the client the load balancer names. Only
// peers in trusted may send one: a header from anyone else closes the
// connection, logged, since it is an attempt to pose as someone else. A
// trusted peer that sends no header is served as itself unless require
// is set. timeout bounds the wait for the header.
func ProxyListener(ln net.Listener, trusted []netip.Prefix, require bool, timeout time.Duration, log *slog.Logger) net.Listener {
	onTrusted := proxyproto.USE
	if require {
		onTrusted = proxyproto.REQUIRE
	}
	return &proxyListener{Listener: &proxyproto.Listener{
		Listener:          ln,
		ReadHeaderTimeout: timeout,
		ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			if inPrefixes(addrOf(o.Upstream), trusted) {
				return onTrusted, nil
			}
			return proxyproto.REJECT, nil
		},
	}, log: log}
}

type proxyListener struct {
	net.Listener
	log *slog.Logger
}

func (l *proxyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if pc, ok := c.(*proxyproto.Conn); ok {
		return &proxyConn{Conn: pc, log: l.log}, nil
	}
	return c, nil
}

// proxyConn logs why a connection's PROXY header was refused. The header
// is read by the first Read, so only its error can be about the header.
//
// It also tells when the library's buffer (the header and what came with
// it) is empty, and reading the socket reads the connection (drained):
// once a Read returned less than it was asked for. proxyproto.Conn's Read
// returns what its buffer holds, up to len(p), and reads the socket only
// once the buffer is empty, so a short Read emptied it or found it empty.
type proxyConn struct {
	*proxyproto.Conn
	log     *slog.Logger
	read    bool
	drained bool
}

func (c *proxyConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n < len(p) {
		c.drained = true
	}
	if c.read {
		return n, err
	}
	c.read = true
	if err == nil {
		return n, nil
	}
	var why string
	var ne net.Error
	switch {
	case errors.Is(err, proxyproto.ErrSuperfluousProxyHeader):
		why = "PROXY header from an address that is not trusted"
	case errors.Is(err, proxyproto.ErrNoProxyProtocol):
		why = "no PROXY header from a trusted address that must send one"
	case errors.Is(err, io.EOF) || errors.As(err, &ne):
		return n, err // the peer left or was slow; nothing to say
	default:
		why = "malformed PROXY header"
	}
	c.log.Warn("refused", "reason", why, "peer", c.Raw().RemoteAddr().String(), "err", err)
	return n, err
}

func addrOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

func inPrefixes(a netip.Addr, list []netip.Prefix) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, p := range list {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedFor returns the client address that trusted proxies name for
// r, as "ip:port" (port 0 when the header has none), or r.RemoteAddr when
// the peer is not a trusted proxy or the headers name nobody usable.
// Forwarded (RFC 7239) is read when present, else X-Forwarded-For; either
// is walked from the right, skipping trusted proxies, since only the
// entries our own proxies appended can be believed.
func forwardedFor(r *http.Request, trusted []netip.Prefix) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !inPrefixes(peer.Addr(), trusted) {
		return r.RemoteAddr
	}
	var hops []string
	if fw := r.Header.Values("Forwarded"); len(fw) > 0 {
		for _, line := range fw {
			for elem := range strings.SplitSeq(line, ",") {
				hops = append(hops, forwardedElement(elem))
			}
		}
	} else {
		for _, line := range r.Header.Values("X-Forwarded-For") {
			for h := range strings.SplitSeq(line, ",") {
				hops = append(hops, strings.TrimSpace(h))
			}
		}
	}
	for i := len(hops) - 1; i >= 0; i-- {
		ap, ok := parseHop(hops[i])
		if !ok {
			// "unknown", an obfuscated name or garbage: no address to the
			// left of it can be trusted either.
			return r.RemoteAddr
		}
		if i == 0 || !inPrefixes(ap.Addr(), trusted) {
			return ap.String()
		}
	}
	return r.RemoteAddr
}

// forwardedElement returns the for= value of one Forwarded element.
func forwardedElement(elem string) string {
	for pair := range strings.SplitSeq(elem, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if ok && strings.EqualFold(k, "for") {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// parseHop reads "1.2.3.4", "1.2.3.4:5", "[::1]", "[::1]:5" or "::1".
func parseHop(h string) (netip.AddrPort, bool) {
	if ap, err := netip.ParseAddrPort(h); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); err == nil && a.Zone() == "" {
		return netip.AddrPortFrom(a.Unmap(), 0), true
	}
	return netip.AddrPort{}, false
}

// proxyAddrs are the addresses a PROXY header toward a target names: the
// client and the address it connected to.
type proxyAddrs struct{ src, dst net.Addr }

// proxyFrom reads the addresses of r, for targets that want a header.
func proxyFrom(r *http.Request) proxyAddrs {
	var p proxyAddrs
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		p.src = net.TCPAddrFromAddrPort(ap)
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ap, err := netip.ParseAddrPort(la.String()); err == nil {
			p.dst = net.TCPAddrFromAddrPort(ap)
		}
	}
	return p
}

// writeProxyHeader sends a PROXY header of version v on c. Without both
// TCP addresses (a client on a Unix socket) it is a LOCAL header, which
// tells the target to use the connection's own addresses.
func writeProxyHeader(ctx context.Context, c net.Conn, v int, r *http.Request) error {
	from := proxyFrom(r)
	h := proxyproto.HeaderProxyFromAddrs(byte(v), from.src, from.dst)
	if d, ok := ctx.Deadline(); ok {
		c.SetWriteDeadline(d)
		defer c.SetWriteDeadline(time.Time{})
	}
	if _, err := h.WriteTo(c); err != nil {
		return fmt.Errorf("PROXY header toward target: %w", err)
	}
	return nil
}
