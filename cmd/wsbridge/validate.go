package main

import (
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/internal/recorder"
	"github.com/wsbridge/wsbridge/internal/tlsfiles"
	"github.com/wsbridge/wsbridge/targets"
)

// settings is a validated Config in the types the packages take.
type settings struct {
	listeners []listenerSpec
	web       string
	drain     time.Duration
	grace     time.Duration // reload_grace
	pidFile   string
	syslog    string
	// syslogLegacy is websockify's --legacy-syslog: RFC 3164 headers.
	syslogLegacy bool
	admin        *adminSpec
	recording    *recorder.Options
	logLevel     slog.Level
	logJSON      bool
	logFile      string
	bridge       bridge.Options // without Logger, Files, TLS and checkers, which wiring adds
	routes       []targets.Route
	sources      []*sourceSpec // the token chain, in order

	csp       string
	tls       *tlsfiles.Options // nil: plain HTTP
	tlsReload time.Duration
	auth      *authSpec // nil: no credentials accepted
	targetTLS *tlsfiles.ClientOptions
	routeTLS  map[string]*tlsfiles.ClientOptions // by target name
}

// authSpec is a validated auth block; wiring reads its files.
type authSpec struct {
	htpasswd, bearer string
	user, password   string // websockify's BasicHTTPAuth pair
	opts             bridge.Auth
}

// validator collects every problem at once, each with its position when
// the value came from a file.
type validator struct {
	src   *source
	diags hcl.Diagnostics
}

func (v *validator) errorf(rng *hcl.Range, field, format string, args ...any) {
	v.diags = append(v.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Invalid %s", field),
		Detail:   fmt.Sprintf(format, args...),
		Subject:  rng,
	})
}

// duration parses a duration attribute; "0s" and "0" mean off where the
// field allows it.
func (v *validator) duration(s string, path ...string) time.Duration {
	d, _ := v.parseDuration(s, path...)
	return d
}

// positive is duration for fields where zero makes no sense.
func (v *validator) positive(s string, path ...string) time.Duration {
	d, ok := v.parseDuration(s, path...)
	if ok && d == 0 {
		v.errorf(v.src.at(path...), strings.Join(path, "."), "must be more than zero")
	}
	return d
}

func (v *validator) parseDuration(s string, path ...string) (time.Duration, bool) {
	if s == "0" {
		return 0, true
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		v.errorf(v.src.at(path...), strings.Join(path, "."), "%q is not a duration: write it as a string such as \"30s\", \"5m\" or \"1h30m\"", s)
		return 0, false
	}
	return d, true
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1}, {"", 1},
}

// parseSize reads "64KiB", "1MB", "512B" or "512".
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	for _, u := range sizeUnits {
		num, ok := strings.CutSuffix(t, u.suffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
		if err != nil || n < 0 || n > (1<<40)/u.mult {
			break
		}
		return n * u.mult, nil
	}
	return 0, fmt.Errorf("%q is not a size: write it as a string such as \"64KiB\", \"1MiB\" or \"512B\"", s)
}

func (v *validator) size(s string, lo, hi int64, path ...string) int64 {
	n, err := parseSize(s)
	if err != nil {
		v.errorf(v.src.at(path...), strings.Join(path, "."), "%v", err)
		return 0
	}
	if n < lo || n > hi {
		v.errorf(v.src.at(path...), strings.Join(path, "."), "%s is outside %d bytes to %d bytes", s, lo, hi)
	}
	return n
}

// validate checks everything and maps the Config to settings.
func validate(cfg *Config, src *source) (*settings, hcl.Diagnostics) {
	v := &validator{src: src}
	st := &settings{web: cfg.Web}

	v.validateListeners(cfg, st)
	st.drain = v.duration(cfg.DrainTimeout, "drain_timeout")
	st.grace = v.duration(cfg.ReloadGrace, "reload_grace")
	st.pidFile = cfg.PIDFile
	v.validateAdmin(cfg, st)
	v.validateRecording(cfg, st)

	if l := cfg.Log; l != nil {
		if err := st.logLevel.UnmarshalText([]byte(l.Level)); err != nil {
			v.errorf(src.at("log", "level"), "log.level", "%q: want debug, info, warn or error", l.Level)
		}
		switch l.Format {
		case "text":
		case "json":
			st.logJSON = true
		default:
			v.errorf(src.at("log", "format"), "log.format", "%q: want text or json", l.Format)
		}
		st.logFile = l.File
		st.syslog = l.Syslog
		st.syslogLegacy = l.legacySyslog
		if l.Syslog != "" && l.File != "" {
			v.errorf(src.at("log", "syslog"), "log.syslog", "choose syslog or file, not both")
		}
		if l.Syslog != "" && !strings.HasPrefix(l.Syslog, "/") && !strings.HasPrefix(l.Syslog, "udp:") {
			v.errorf(src.at("log", "syslog"), "log.syslog", "%q: want a socket path such as \"/dev/log\", or \"udp:host:port\"", l.Syslog)
		}
	}

	b := &st.bridge
	if h := cfg.HTTP; h != nil {
		b.HeaderTimeout = v.positive(h.HeaderTimeout, "http", "header_timeout")
		b.MaxHeaderBytes = int(v.size(h.MaxHeaderSize, 4<<10, 1<<20, "http", "max_header_size"))
		b.Hosts = v.hosts(h.Hosts, cfg, st.listeners)
		for _, o := range h.Origins {
			if err := bridge.ParseOriginPattern(o); err != nil {
				v.errorf(src.at("http", "origins"), "http.origins", "%v", err)
			}
		}
		b.Origins = h.Origins
		b.RefuseNoOrigin = !h.AllowNoOrigin
		st.csp = h.CSP
		b.TrustedProxies = v.prefixes(h.TrustedProxies, "http", "trusted_proxies")
	}
	v.validateTLS(cfg, st)
	v.validateAuth(cfg, st)
	if s := cfg.Session; s != nil {
		b.DialTimeout = v.positive(s.DialTimeout, "session", "dial_timeout")
		b.WriteTimeout = offIfZero(v.duration(s.WriteTimeout, "session", "write_timeout"))
		b.PingInterval = offIfZero(v.duration(s.PingInterval, "session", "ping_interval"))
		b.PongTimeout = v.positive(s.PongTimeout, "session", "pong_timeout")
		b.IdleTimeout = v.duration(s.IdleTimeout, "session", "idle_timeout")
		b.MaxLifetime = v.duration(s.MaxLifetime, "session", "max_lifetime")
		b.Linger = v.positive(s.Linger, "session", "linger")
		b.MessageLimit = v.size(s.MessageLimit, 1, 1<<30, "session", "message_limit")
		b.ReadSize = int(v.size(s.ReadSize, 512, 16<<20, "session", "read_size"))
		b.StrictText = s.StrictText
		b.DialAfterUpgrade = s.DialAfterUpgrade
	}

	v.validateLimits(cfg.Limits, b)
	v.validateToken(cfg.Token, b)
	fallback, tokenRoutes := v.validateTargets(cfg, st)
	v.validateSources(cfg, st)
	switch {
	case len(cfg.Targets) == 0 && len(st.sources) == 0:
		v.diags = append(v.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "No target",
			Detail:   `Configure at least one target "name" { address = "host:port" } block or a token source (token_file, token_redis, token_jwt, token_http, socket_dir): wsbridge dials nothing it was not told to.`,
		})
	case fallback != "" && (len(st.sources) > 0 || tokenRoutes):
		v.errorf(src.at("target", fallback, "address"), "target "+strconv.Quote(fallback),
			"a target without path, host or token would take every request whose token is unknown: give it a path, or remove the token sources and token targets")
	}
	return st, v.diags
}

// loopbackHosts are the Host names of a bridge that listens on loopback
// without an http.hosts list.
var loopbackHosts = []string{"localhost", "127.0.0.1", "[::1]"}

// hosts checks http.hosts and applies its default.
func (v *validator) hosts(list []string, cfg *Config, listeners []listenerSpec) []string {
	at := v.src.at("http", "hosts")
	if list == nil {
		// With host tokens the Host header is the token, and cannot be
		// listed.
		if cfg.Token.From == "host" {
			return nil
		}
		for _, l := range listeners {
			if l.network != "tcp" {
				continue // a socket file or a passed socket: no host to go by
			}
			host, _, _ := net.SplitHostPort(l.address)
			if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
				return nil
			}
		}
		return loopbackHosts
	}
	if slices.Contains(list, "*") {
		if len(list) > 1 {
			v.errorf(at, "http.hosts", `"*" admits every host; list it alone`)
		}
		return nil
	}
	for _, h := range list {
		if err := bridge.ParseHostPattern(h); err != nil {
			v.errorf(at, "http.hosts", "%v", err)
		}
	}
	return list
}

// validateTLS checks the tls and target_tls blocks.
func (v *validator) validateTLS(cfg *Config, st *settings) {
	if t := cfg.TargetTLS; t != nil {
		st.targetTLS = v.targetTLS(t, "target_tls")
	}
	t := cfg.TLS
	if t == nil {
		return
	}
	o := &tlsfiles.Options{ClientCA: t.ClientCA, RequireClientCert: t.RequireClientCert}
	if t.Cert != "" {
		o.Pairs = append(o.Pairs, tlsfiles.Pair{Cert: t.Cert, Key: t.Key})
	} else if t.Key != "" {
		v.errorf(v.src.at("tls", "key"), "tls.key", "a key without tls.cert")
	}
	for _, c := range t.Certificates {
		o.Pairs = append(o.Pairs, tlsfiles.Pair{Cert: c.Cert, Key: c.Key})
	}
	if len(o.Pairs) == 0 {
		v.errorf(v.src.blockAt("tls", ""), "tls", "no certificate: set cert (and key) or add certificate blocks")
	}
	if t.MinVersion != "" {
		var err error
		if o.MinVersion, err = tlsfiles.ParseVersion(t.MinVersion); err != nil {
			v.errorf(v.src.at("tls", "min_version"), "tls.min_version", "%v", err)
		}
	}
	if t.RequireClientCert && t.ClientCA == "" {
		v.errorf(v.src.at("tls", "require_client_cert"), "tls.require_client_cert", "needs client_ca, the CA bundle that signs client certificates")
	}
	st.tls = o
	st.tlsReload = 10 * time.Second
	if t.ReloadInterval != "" {
		st.tlsReload = v.positive(t.ReloadInterval, "tls", "reload_interval")
	}
	st.bridge.AllowPlain = t.AllowPlain
	// With client certificates required, the plain side of the port
	// must not be a way around them.
	st.bridge.RequireClientCert = t.RequireClientCert
}

func (v *validator) targetTLS(t *TargetTLSConfig, path ...string) *tlsfiles.ClientOptions {
	if t.InsecureSkipVerify && (t.CAFile != "" || t.ServerName != "") {
		v.errorf(v.src.at(append(path, "insecure_skip_verify")...), strings.Join(path, ".")+".insecure_skip_verify", "checks nothing, so ca_file and server_name would have no effect: choose one")
	}
	if t.Key != "" && t.Cert == "" {
		v.errorf(v.src.at(append(path, "key")...), strings.Join(path, ".")+".key", "a key without cert")
	}
	return &tlsfiles.ClientOptions{CAFile: t.CAFile, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, Cert: t.Cert, Key: t.Key}
}

// validateAuth checks the auth block.
func (v *validator) validateAuth(cfg *Config, st *settings) {
	a := cfg.Auth
	if a == nil {
		return
	}
	spec := &authSpec{htpasswd: a.Htpasswd, bearer: a.BearerFile}
	spec.opts = bridge.Auth{Realm: a.Realm, Require: a.Require, Allow: a.Allow, Web: a.Web}
	if a.password != "" {
		spec.user, spec.password, _ = strings.Cut(a.password, ":")
	}
	for _, id := range a.Allow {
		if err := bridge.ValidIdentity(id); err != nil {
			v.errorf(v.src.at("auth", "allow"), "auth.allow", "%v", err)
		}
	}
	hasCerts := cfg.TLS != nil && cfg.TLS.ClientCA != ""
	if a.Htpasswd == "" && a.BearerFile == "" && a.password == "" && !hasCerts {
		v.errorf(v.src.blockAt("auth", ""), "auth", "no way to authenticate: set htpasswd, bearer_file, or tls.client_ca for client certificates")
	}
	if a.Web && cfg.Web == "" {
		v.errorf(v.src.at("auth", "web"), "auth.web", "there is no web root to protect (web is not set)")
	}
	st.auth = spec
}

// validateLimits checks the limits block. Its zeros mean "no cap", which
// bridge.Options spells as negative.
func (v *validator) validateLimits(l *LimitsConfig, b *bridge.Options) {
	if l == nil {
		return
	}
	for _, f := range []struct {
		name string
		n    int
	}{{"max_sessions", l.MaxSessions}, {"per_ip_sessions", l.PerIPSessions}, {"per_ip_burst", l.PerIPBurst},
		{"per_target_sessions", l.PerTargetSessions}, {"per_token_sessions", l.PerTokenSessions}} {
		if f.n < 0 {
			v.errorf(v.src.at("limits", f.name), "limits."+f.name, "%d: want 0 (no cap) or more", f.n)
		}
	}
	if l.PerIPRate < 0 {
		v.errorf(v.src.at("limits", "per_ip_rate"), "limits.per_ip_rate", "%v: want handshakes per second, 0 for no limit", l.PerIPRate)
	}
	if l.PerIPRate > 0 && l.PerIPBurst < 1 {
		v.errorf(v.src.at("limits", "per_ip_burst"), "limits.per_ip_burst", "must be 1 or more with a per_ip_rate")
	}
	b.MaxSessions = l.MaxSessions
	b.PerIPSessions = offIfZero(l.PerIPSessions)
	b.PerIPRate, b.PerIPBurst = l.PerIPRate, l.PerIPBurst
	if l.PerIPRate == 0 {
		b.PerIPRate = -1
	}
	b.PerTargetSessions = l.PerTargetSessions
	b.PerTokenSessions = l.PerTokenSessions
	b.SessionBandwidthIn = v.bandwidth(l.SessionBandwidthIn, "limits", "session_bandwidth_in")
	b.SessionBandwidthOut = v.bandwidth(l.SessionBandwidthOut, "limits", "session_bandwidth_out")
	b.TotalBandwidthIn = v.bandwidth(l.TotalBandwidthIn, "limits", "total_bandwidth_in")
	b.TotalBandwidthOut = v.bandwidth(l.TotalBandwidthOut, "limits", "total_bandwidth_out")
}

// bandwidth parses bytes per second: a size, "0" for unlimited.
func (v *validator) bandwidth(s string, path ...string) int64 {
	if s == "" {
		return 0
	}
	return v.size(s, 0, 1<<40, path...)
}

func validPort(s string) bool {
	n, err := strconv.ParseUint(s, 10, 16)
	return err == nil && n > 0
}

// offIfZero maps a configured 0 or "0s" (off) to the negative value with
// which bridge.Options says "disabled", since zero there means the default.
func offIfZero[T int | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}
