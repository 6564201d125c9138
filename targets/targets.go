// Package targets decides which TCP or Unix-socket target a WebSocket request
// may reach. Every target comes from configuration: a static address, a path
// route or a token source such as a websockify token file. The client never
// names a host or port itself.
//
// Start with [Resolver]: the bridge calls Resolve once per handshake with a
// [Request] and dials the [Target] it returns. [Router] combines path routes,
// a fallback target and a token source; [TokenFile] reads websockify token
// files and directories.
package targets

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// ErrNotFound is returned by a Resolver that has no target for a request. The
// bridge answers it with 404, the same answer as an unreachable target, so
// tokens cannot be probed.
var ErrNotFound = errors.New("targets: not found")

// Target is one place the bridge may dial.
type Target struct {
	// Name is the configured name of the target, or "" when the target came
	// from a token source. It is safe to log and to use as a metric label.
	Name string
	// Network is "tcp" or "unix".
	Network string
	// Address is "host:port" for tcp and a file path for unix.
	Address string
	// Allow, when set, limits what Dial may connect to. Targets from
	// dynamic token sources carry their source's allowlist; configured
	// targets have none.
	Allow *Allowlist
	// Settings overrides the bridge's session settings for this target, or
	// is nil.
	Settings *Settings
	// Label, when set, is how logs name the target instead of its address,
	// for addresses that hold the token (a socket named by its token).
	Label string
	// TLS, when set, makes the bridge speak TLS to the target with this
	// configuration; nil uses the bridge's own setting (usually plain).
	TLS *tls.Config
}

// Settings are the session settings a configured target may override. A
// zero field keeps the bridge's setting.
type Settings struct {
	// DialTimeout bounds connecting to the target.
	DialTimeout time.Duration
	// PingInterval is the time between WebSocket pings; negative is off.
	PingInterval time.Duration
	// MessageLimit is the largest message a client may send, in bytes.
	MessageLimit int64
	// MaxSessions caps the target's live sessions; zero keeps the bridge's
	// setting.
	MaxSessions int
	// BandwidthIn and BandwidthOut limit all sessions of the target
	// together, in bytes per second, client to target and back; zero is
	// unlimited.
	BandwidthIn, BandwidthOut int64
	// Identities, when not empty, are who may use the target, in the
	// forms of bridge.Identity ("user:alice", "cert:ops.example.com"); a
	// request without one of them is refused before the target is dialled.
	Identities []string
	// ProxyProtocol, 1 or 2, sends the target a PROXY protocol header of
	// that version before any byte of the client's, naming the client's
	// address, so that a VNC or SSH server that reads it logs the browser
	// and not the bridge. Zero sends none.
	ProxyProtocol int
	// Record names the format in which the bridge's Recorder records the
	// target's sessions ("novnc" or "raw"); "" records nothing.
	Record string
}

// String returns the address in the form bridge.hcl accepts: "host:port" or
// "unix:/path".
func (t Target) String() string {
	if t.Network == "unix" {
		return "unix:" + t.Address
	}
	return t.Address
}

// Request is what a Resolver sees of a handshake.
type Request struct {
	// Path is the URL path of the request, without the query.
	Path string
	// Token is the routing token the client presented, or "".
	Token string
	// Host is the Host header.
	Host string
	// Remote is the client's address.
	Remote netip.AddrPort
}

// Resolver maps a request to a target. Implementations must be safe for
// concurrent use and must return ErrNotFound (possibly wrapped) when they
// have no target for the request.
type Resolver interface {
	Resolve(ctx context.Context, r Request) (Target, error)
}

// ParseAddress parses a target address as written in bridge.hcl:
// "host:port", "[v6]:port" or "unix:/absolute/path".
func ParseAddress(s string) (Target, error) {
	if path, ok := strings.CutPrefix(s, "unix:"); ok {
		if !strings.HasPrefix(path, "/") {
			return Target{}, fmt.Errorf("unix socket path %q must be absolute", path)
		}
		return Target{Network: "unix", Address: path}, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return Target{}, fmt.Errorf("address %q: want host:port, [v6]:port or unix:/path", s)
	}
	return hostPort(host, port)
}

// hostPort validates a host and a port and joins them into a tcp target.
func hostPort(host, port string) (Target, error) {
	if host == "" {
		return Target{}, errors.New("empty host")
	}
	if strings.ContainsAny(host, " \t/[]") {
		return Target{}, fmt.Errorf("invalid host %q", host)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return Target{}, fmt.Errorf("invalid port %q", port)
	}
	return Target{Network: "tcp", Address: net.JoinHostPort(host, port)}, nil
}
