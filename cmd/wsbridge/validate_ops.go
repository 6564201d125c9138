package main

import (
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/wsbridge/wsbridge/internal/recorder"
)

// listenerSpec is one validated listener.
type listenerSpec struct {
	name    string
	network string // "tcp", "unix", "systemd" or "inetd"
	address string // host:port, a path, or a systemd name ("" for all)
	mode    os.FileMode
	proxy   string // off, optional or require
	trusted []netip.Prefix
}

// validateListeners checks listen and the listener blocks.
func (v *validator) validateListeners(cfg *Config, st *settings) {
	if cfg.Listen != "" {
		// Port 0 asks the system for a free port; the log says which.
		if _, port, err := net.SplitHostPort(cfg.Listen); err != nil || (port != "0" && !validPort(port)) {
			v.errorf(v.src.at("listen"), "listen", "%q: want host:port, such as \"127.0.0.1:6080\" or \"[::]:6080\"", cfg.Listen)
		}
		st.listeners = append(st.listeners, listenerSpec{name: "listen", network: "tcp", address: cfg.Listen, proxy: "off"})
	}
	for _, l := range cfg.Listeners {
		at := func(field string) []string { return []string{"listener", l.Name, field} }
		spec := listenerSpec{name: l.Name, proxy: l.ProxyProtocol}
		switch a := l.Address; {
		case strings.HasPrefix(a, "unix:"):
			spec.network, spec.address = "unix", strings.TrimPrefix(a, "unix:")
			if !strings.HasPrefix(spec.address, "/") {
				v.errorf(v.src.at(at("address")...), "listener.address", "%q: a Unix socket needs an absolute path", a)
			}
		case a == "systemd" || strings.HasPrefix(a, "systemd:"):
			spec.network, spec.address = "systemd", strings.TrimPrefix(strings.TrimPrefix(a, "systemd"), ":")
		case a == "inetd":
			spec.network = "inetd"
		default:
			spec.network, spec.address = "tcp", a
			if _, port, err := net.SplitHostPort(a); err != nil || (port != "0" && !validPort(port)) {
				v.errorf(v.src.at(at("address")...), "listener.address", "%q: want host:port, unix:/path, systemd or systemd:NAME", a)
			}
		}
		if l.Mode != "" {
			m, err := strconv.ParseUint(l.Mode, 8, 32)
			if err != nil || m > 0o777 {
				v.errorf(v.src.at(at("mode")...), "listener.mode", "%q: want an octal file mode such as \"0660\"", l.Mode)
			}
			if spec.network != "unix" {
				v.errorf(v.src.at(at("mode")...), "listener.mode", "only Unix sockets have a file mode")
			}
			spec.mode = os.FileMode(m)
		}
		switch l.ProxyProtocol {
		case "off", "optional", "require":
		default:
			v.errorf(v.src.at(at("proxy_protocol")...), "listener.proxy_protocol", "%q: want off, optional or require", l.ProxyProtocol)
		}
		spec.trusted = v.prefixes(l.TrustedProxies, at("trusted_proxies")...)
		if l.ProxyProtocol != "off" && len(spec.trusted) == 0 {
			v.errorf(v.src.at(at("proxy_protocol")...), "listener.proxy_protocol", "PROXY headers are believed only from trusted_proxies: list the load balancers' networks")
		}
		st.listeners = append(st.listeners, spec)
	}
	if len(st.listeners) == 0 {
		v.errorf(nil, "listen", "nothing to listen on: set listen or add a listener block")
	}
}

// prefixes parses a list of networks ("10.0.0.0/8") or addresses.
func (v *validator) prefixes(list []string, path ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range list {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				v.errorf(v.src.at(path...), strings.Join(path, "."), "%q: want a network such as \"10.0.0.0/8\" or an address", s)
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out
}

// adminSpec is a validated admin block.
type adminSpec struct {
	listen       string
	readyTargets []string
	selfCheck    bool
}

func (v *validator) validateAdmin(cfg *Config, st *settings) {
	a := cfg.Admin
	if a == nil {
		return
	}
	if _, port, err := net.SplitHostPort(a.Listen); err != nil || (port != "0" && !validPort(port)) {
		v.errorf(v.src.at("admin", "listen"), "admin.listen", "%q: want host:port, such as \"127.0.0.1:9680\"", a.Listen)
	}
	for _, name := range a.ReadyTargets {
		if !slices.ContainsFunc(cfg.Targets, func(t TargetConfig) bool { return t.Name == name }) {
			v.errorf(v.src.at("admin", "ready_targets"), "admin.ready_targets", "%q is not a configured target", name)
		}
	}
	st.admin = &adminSpec{listen: a.Listen, readyTargets: a.ReadyTargets, selfCheck: a.SelfCheck}
}

func (v *validator) validateRecording(cfg *Config, st *settings) {
	r := cfg.Recording
	wants := r != nil && r.All != ""
	for _, t := range cfg.Targets {
		switch t.Record {
		case "":
		case "novnc", "raw":
			wants = true
		default:
			v.errorf(v.src.at("target", t.Name, "record"), "target.record", "%q: want novnc or raw", t.Record)
		}
	}
	if r == nil {
		if wants {
			v.errorf(nil, "recording", "targets ask to be recorded but there is no recording { dir = ... } block")
		}
		return
	}
	switch r.All {
	case "", "novnc", "raw":
	default:
		v.errorf(v.src.at("recording", "all"), "recording.all", "%q: want novnc, raw or nothing", r.All)
	}
	if !strings.HasPrefix(r.Dir, "/") {
		v.errorf(v.src.at("recording", "dir"), "recording.dir", "%q: want an absolute path", r.Dir)
	}
	st.recording = &recorder.Options{
		Dir:          r.Dir,
		Prefix:       r.prefix,
		MaxFileSize:  v.size(r.MaxFileSize, 4<<10, 1<<40, "recording", "max_file_size"),
		MaxTotalSize: v.size(r.MaxTotalSize, 4<<10, 1<<50, "recording", "max_total_size"),
	}
	st.bridge.Record = r.All
}
