package main

import (
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/internal/systemd"
)

// listener is an open listener and the spec it came from.
type listener struct {
	spec listenerSpec
	ln   net.Listener
}

// openListeners opens every configured listener, or closes what it opened
// and returns the first error. Sockets passed by systemd go to the
// listeners that name them; when no listener does, they replace the
// configured addresses, so that a .socket unit works with any bridge.hcl.
func openListeners(st *settings, log *slog.Logger) ([]listener, error) {
	passed, err := systemd.Listeners()
	if err != nil {
		return nil, err
	}
	specs := st.listeners
	claims := false
	for _, s := range specs {
		claims = claims || s.network == "systemd"
	}
	if len(passed) > 0 && !claims {
		log.Info("using the sockets systemd passed instead of the configured addresses", "sockets", len(passed))
		specs = []listenerSpec{{name: "systemd", network: "systemd", proxy: "off"}}
	}
	var out []listener
	fail := func(err error) ([]listener, error) {
		for _, l := range out {
			l.ln.Close()
		}
		for _, p := range passed {
			p.Listener.Close()
		}
		return nil, err
	}
	used := make([]bool, len(passed))
	for _, s := range specs {
		switch s.network {
		case "tcp":
			ln, err := net.Listen("tcp", s.address)
			if err != nil {
				return fail(err)
			}
			out = append(out, listener{s, ln})
		case "unix":
			ln, err := listenUnix(s.address, s.mode)
			if err != nil {
				return fail(err)
			}
			out = append(out, listener{s, ln})
		case "inetd":
			// websockify --inetd: a listening socket on standard input.
			f := os.NewFile(0, "stdin")
			ln, err := net.FileListener(f)
			if err != nil {
				return fail(fmt.Errorf("--inetd: standard input is not a listening socket: %w", err))
			}
			out = append(out, listener{s, ln})
		case "systemd":
			n := 0
			for i, p := range passed {
				if !used[i] && (s.address == "" || p.Name == s.address) {
					used[i] = true
					n++
					sub := s
					sub.address = p.Name
					out = append(out, listener{sub, p.Listener})
				}
			}
			if n == 0 {
				return fail(fmt.Errorf("listener %q: systemd passed no socket named %q (LISTEN_FDS, FileDescriptorName=)", s.name, s.address))
			}
		}
	}
	for i, p := range passed {
		if !used[i] {
			log.Warn("closing a socket systemd passed that no listener names", "name", p.Name, "addr", p.Listener.Addr().String())
			p.Listener.Close()
		}
	}
	return out, nil
}

// listenUnix listens on a Unix socket at path with mode. A socket left at
// path by an earlier run is removed first (as websockify does); any other
// kind of file is an error, not something to delete.
func listenUnix(path string, mode os.FileMode) (net.Listener, error) {
	if mode == 0 {
		mode = 0o600
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("listen unix %s: the path exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	// The socket is made with the umask's mode: make it no wider than
	// mode from the start, then set mode exactly.
	var ln net.Listener
	err := withUmask(0o777&^int(mode), func() (err error) {
		ln, err = net.Listen("unix", path)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// wrap puts the PROXY protocol reader on a listener that asks for it.
func (l listener) wrap(st *settings, log *slog.Logger) net.Listener {
	if l.spec.proxy == "off" {
		return l.ln
	}
	return bridge.ProxyListener(l.ln, l.spec.trusted, l.spec.proxy == "require", st.bridge.HeaderTimeout, log)
}

// describe is how the listening line names the listener.
func (l listener) describe() string {
	a := l.ln.Addr()
	switch {
	case a.Network() == "unix":
		return "unix:" + a.String()
	case l.spec.network == "systemd" || l.spec.network == "inetd":
		return l.spec.network + ":" + strings.TrimPrefix(a.String(), "@")
	}
	return a.String()
}
