package targets

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNotAllowed is returned by Target.Dial when the address a target
// resolves to is outside its allowlist. It wraps ErrNotFound: the client
// gets the same answer as for an unknown token.
var ErrNotAllowed = fmt.Errorf("targets: target not allowed: %w", ErrNotFound)

// Allowlist says which targets a dynamic token source (Redis, JWT, HTTP) may
// name. Entries, as in bridge.hcl's allow lists and the --allow option:
//
//	10.0.0.0/8            every port of a network
//	10.1.2.3:5900-5999    one address, a range of ports
//	[fd00::/8]:22,2222    IPv6 networks in brackets when ports follow
//	unix:/run/vnc         Unix sockets directly inside /run/vnc or below it
//
// TCP targets are checked against the IP address actually dialled, after
// name resolution, so a DNS answer cannot lead a target to an address
// nobody allowed (169.254.169.254, say). Unix-socket paths must be clean
// absolute paths below an allowed directory, with no symbolic link on the
// way from the directory to the socket.
//
// An Allowlist is immutable and safe for concurrent use.
type Allowlist struct {
	nets     []allowNet
	unixDirs []string
	entries  []string
}

type allowNet struct {
	prefix netip.Prefix
	ports  []portRange // empty: every port
}

type portRange struct{ lo, hi uint16 }

// ParseAllowlist parses allowlist entries; it reports the first bad one.
func ParseAllowlist(entries []string) (*Allowlist, error) {
	a := &Allowlist{entries: append([]string(nil), entries...)}
	for _, e := range entries {
		if err := a.add(e); err != nil {
			return nil, fmt.Errorf("allow %q: %w", e, err)
		}
	}
	return a, nil
}

func (a *Allowlist) add(e string) error {
	if dir, ok := strings.CutPrefix(e, "unix:"); ok {
		if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
			return errors.New("want unix:/absolute/clean/directory")
		}
		a.unixDirs = append(a.unixDirs, dir)
		return nil
	}
	addr, ports := e, ""
	switch {
	case strings.HasPrefix(e, "["):
		end := strings.IndexByte(e, ']')
		if end < 0 {
			return errors.New("missing ]")
		}
		addr, ports = e[1:end], e[end+1:]
		if ports != "" {
			var ok bool
			if ports, ok = strings.CutPrefix(ports, ":"); !ok {
				return errors.New("want [network]:ports")
			}
		}
	case strings.Count(e, ":") == 1:
		addr, ports, _ = strings.Cut(e, ":")
	}
	var n allowNet
	var err error
	if strings.Contains(addr, "/") {
		n.prefix, err = netip.ParsePrefix(addr)
		if err == nil && n.prefix != n.prefix.Masked() {
			err = fmt.Errorf("%s has host bits set; did you mean %s?", addr, n.prefix.Masked())
		}
	} else {
		var ip netip.Addr
		if ip, err = netip.ParseAddr(addr); err == nil {
			n.prefix = netip.PrefixFrom(ip, ip.BitLen())
		}
	}
	if err != nil {
		return fmt.Errorf("want an IP network such as 10.0.0.0/8 or an address: %w", err)
	}
	if a := n.prefix.Addr(); a.Is4In6() && n.prefix.Bits() >= 96 {
		n.prefix = netip.PrefixFrom(a.Unmap(), n.prefix.Bits()-96)
	}
	if ports == "" && (strings.HasSuffix(e, ":") || strings.HasSuffix(e, "]:")) {
		return errors.New("empty port list")
	}
	if ports != "" && ports != "*" {
		for p := range strings.SplitSeq(ports, ",") {
			r, err := parsePortRange(p)
			if err != nil {
				return err
			}
			n.ports = append(n.ports, r)
		}
	}
	a.nets = append(a.nets, n)
	return nil
}

func parsePortRange(s string) (portRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	l, err1 := strconv.ParseUint(lo, 10, 16)
	h := l
	var err2 error
	if isRange {
		h, err2 = strconv.ParseUint(hi, 10, 16)
	}
	if err1 != nil || err2 != nil || l == 0 || h < l {
		return portRange{}, fmt.Errorf("bad port or range %q: want 5900, 5900-5999 or a list of them", s)
	}
	return portRange{uint16(l), uint16(h)}, nil
}

// String returns the entries the list was made from, comma-separated.
func (a *Allowlist) String() string { return strings.Join(a.entries, ",") }

// AllowsAddr reports whether a TCP target at ap is allowed.
func (a *Allowlist) AllowsAddr(ap netip.AddrPort) bool {
	ip := ap.Addr().Unmap()
	for _, n := range a.nets {
		if !n.prefix.Contains(ip) {
			continue
		}
		if len(n.ports) == 0 {
			return true
		}
		for _, r := range n.ports {
			if r.lo <= ap.Port() && ap.Port() <= r.hi {
				return true
			}
		}
	}
	return false
}

// CheckUnix returns nil when path is a Unix socket that the list allows:
// a clean absolute path below an allowed directory, reached from that
// directory without following a symbolic link. The directory itself was
// chosen by the operator and may be or hold a link. The check runs just
// before the connect and Linux has no connectat, so a process that may
// write into the directory could swap a socket for a link in between;
// such a process is trusted with the sockets anyway.
func (a *Allowlist) CheckUnix(path string) error {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return fmt.Errorf("unix socket %q is not a clean absolute path: %w", path, ErrNotAllowed)
	}
	for _, dir := range a.unixDirs {
		rel, ok := strings.CutPrefix(path, dir)
		if !ok || rel == "" || !strings.HasPrefix(rel, "/") && dir != "/" {
			continue // "/run/vnc-evil" is not inside "/run/vnc"
		}
		cur := dir
		for part := range strings.SplitSeq(strings.TrimPrefix(rel, "/"), "/") {
			cur = filepath.Join(cur, part)
			fi, err := os.Lstat(cur)
			if err != nil {
				return fmt.Errorf("unix socket below %s: %w", dir, pathErrCause(err))
			}
			if fi.Mode()&os.ModeSymlink != 0 {
				return fmt.Errorf("unix socket below %s: the path holds a symbolic link: %w", dir, ErrNotAllowed)
			}
		}
		return nil
	}
	return fmt.Errorf("unix socket %q is outside the allowed directories: %w", path, ErrNotAllowed)
}

// Dial connects to the target within timeout. A target with an allowlist
// is checked as Allowlist says: a TCP target on every address the dialer
// is about to connect to, a Unix socket on its path. When the target has
// a Label, errors name the label, not the address that holds the token.
func (t Target) Dial(ctx context.Context, timeout time.Duration) (net.Conn, error) {
	c, err := t.dial(ctx, timeout)
	var oe *net.OpError
	if err != nil && t.Label != "" && errors.As(err, &oe) {
		err = fmt.Errorf("dial %s: %w", t.Label, oe.Err)
	}
	return c, err
}

func (t Target) dial(ctx context.Context, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout, KeepAliveConfig: targetKeepAlive()}
	if a := t.Allow; a != nil {
		if t.Network == "unix" {
			if err := a.CheckUnix(t.Address); err != nil {
				return nil, err
			}
		} else {
			d.ControlContext = func(_ context.Context, _, address string, _ syscall.RawConn) error {
				ap, err := netip.ParseAddrPort(address)
				if err != nil || !a.AllowsAddr(ap) {
					return fmt.Errorf("%s is outside the allowlist: %w", address, ErrNotAllowed)
				}
				return nil
			}
		}
	}
	// TCP_NODELAY, which a relay of small interactive writes (key presses,
	// VNC updates) depends on, is Go's default for every TCP connection;
	// TestTargetSocketOptions checks that it holds.
	return d.DialContext(ctx, t.Network, t.Address)
}

// targetKeepAlive finds a target that vanished without a FIN or RST (a
// host that lost power, a dropped NAT entry): after 30 to 60 s of silence
// the kernel probes every 10 s and gives up after 3 unanswered probes, so
// a dead target ends its session within about a minute and a half.
//
// The first probe's time is spread over 30 s per connection. Sessions
// opened together (clients reconnecting after a restart) would otherwise
// probe together, and the kernel sends the probes of timers that expire in
// the same tick in one burst: on loopback, where a local VNC server is a
// common target, a burst larger than the receive backlog
// (net.core.netdev_max_backlog, 1000) is dropped. With 9,000 sessions
// opened within two seconds, 621 of them lost three probes in a row and
// ended with "read: connection timed out" a minute later.
func targetKeepAlive() net.KeepAliveConfig {
	idle := 30*time.Second + time.Duration(rand.IntN(30))*time.Second // whole seconds, as the kernel takes them
	return net.KeepAliveConfig{Enable: true, Idle: idle, Interval: 10 * time.Second, Count: 3}
}
