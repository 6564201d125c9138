package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/targets"
)

// procOptions are websockify's process-level options, which bridge.hcl does
// not have because a service manager owns the process.
type procOptions struct {
	runOnce     bool          // exit after the first session ends
	timeout     time.Duration // exit this long after start
	idleTimeout time.Duration // exit after this long without sessions
	warnings    []string      // said once at start
	// reload delivers the service manager's reload requests (Windows);
	// nil elsewhere, where SIGHUP does it.
	reload <-chan struct{}
	// serviceLog gives the service manager's own log (the Windows event
	// log), used when bridge.hcl names no log file or syslog; nil, or a
	// nil sink, means standard error.
	serviceLog func() (func(slog.Level, string) error, error)
}

// wsOption is one websockify option: how wsbridge treats it.
type wsOption struct {
	names  []string // long name first, then short aliases
	arg    bool     // takes a value
	status string   // "" supported; "yet": a later release; "never": with why
	why    string   // for "yet" and "never"
	apply  func(c *Config, p *procOptions, v string) error
}

const (
	later = "yet"
	never = "never"
)

// websockifyOptions lists every option of websockify 0.13, so that none is
// silently ignored. The README's migration table says the same.
var websockifyOptions = []wsOption{
	{names: []string{"--verbose", "-v"}, apply: func(c *Config, _ *procOptions, _ string) error {
		c.Log.Level = "debug"
		return nil
	}},
	{names: []string{"--log-file"}, arg: true, apply: func(c *Config, _ *procOptions, v string) error {
		c.Log.File = v
		return nil
	}},
	{names: []string{"--web"}, arg: true, apply: func(c *Config, _ *procOptions, v string) error {
		c.Web = v
		return nil
	}},
	// wsbridge never lists directories, which is what --file-only asks for.
	{names: []string{"--file-only"}, apply: func(*Config, *procOptions, string) error { return nil }},
	{names: []string{"--prefer-ipv6", "-6"}},
	{names: []string{"--unix-target"}, arg: true, apply: func(c *Config, _ *procOptions, v string) error {
		abs, err := filepath.Abs(v)
		if err != nil {
			return err
		}
		c.Targets = []TargetConfig{{Name: "unix-target", Address: "unix:" + abs}}
		return nil
	}},
	{names: []string{"--token-plugin"}, arg: true},
	{names: []string{"--token-source"}, arg: true},
	{names: []string{"--target-config"}, arg: true},
	{names: []string{"--host-token"}, apply: func(c *Config, _ *procOptions, _ string) error {
		c.Token.From = "host"
		return nil
	}},
	// wsbridge's own: the targets a token plugin may name.
	{names: []string{"--allow"}, arg: true},
	{names: []string{"--heartbeat"}, arg: true, apply: func(c *Config, _ *procOptions, v string) error {
		d, err := seconds(v)
		c.Session.PingInterval = d.String()
		return err
	}},
	{names: []string{"--idle-timeout"}, arg: true, apply: func(_ *Config, p *procOptions, v string) error {
		d, err := seconds(v)
		p.idleTimeout = d
		return err
	}},
	{names: []string{"--timeout"}, arg: true, apply: func(_ *Config, p *procOptions, v string) error {
		d, err := seconds(v)
		p.timeout = d
		return err
	}},
	{names: []string{"--run-once"}, apply: func(_ *Config, p *procOptions, _ string) error {
		p.runOnce = true
		return nil
	}},
	{names: []string{"--libserver"}, apply: func(_ *Config, p *procOptions, _ string) error {
		p.warnings = append(p.warnings, "--libserver has no effect: wsbridge always serves every client in one process, with all its features")
		return nil
	}},

	// TLS and authentication are gathered by parseWebsockify, which needs
	// them all to decide.
	{names: []string{"--cert"}, arg: true},
	{names: []string{"--key"}, arg: true},
	{names: []string{"--ssl-only"}},
	{names: []string{"--ssl-target"}, apply: func(c *Config, _ *procOptions, _ string) error {
		// websockify 0.13: the system's CAs and the target's host name.
		c.TargetTLS = &TargetTLSConfig{}
		return nil
	}},
	{names: []string{"--verify-client"}},
	{names: []string{"--cafile"}, arg: true},
	{names: []string{"--ssl-version"}, arg: true},
	{names: []string{"--ssl-ciphers"}, arg: true, apply: func(_ *Config, p *procOptions, _ string) error {
		p.warnings = append(p.warnings, "--ssl-ciphers is ignored: wsbridge offers only forward-secret AEAD suites (and TLS 1.3), stricter than any OpenSSL list websockify users pass")
		return nil
	}},
	{names: []string{"--auth-plugin"}, arg: true},
	{names: []string{"--auth-source"}, arg: true},
	{names: []string{"--web-auth"}},
	{names: []string{"--key-password"}, arg: true, status: never, why: "a password on the command line is visible to every user in ps; decrypt the key (openssl pkey -in key.pem -out plain.pem) and protect it with file permissions"},
	{names: []string{"--unix-listen"}, arg: true},
	{names: []string{"--unix-listen-mode"}, arg: true},
	{names: []string{"--inetd"}},
	{names: []string{"--syslog"}, arg: true, apply: func(c *Config, _ *procOptions, v string) error {
		// websockify: a socket path, or host:port over UDP.
		if !strings.HasPrefix(v, "/") {
			v = "udp:" + v
		}
		c.Log.Syslog = v
		return nil
	}},
	{names: []string{"--legacy-syslog"}, apply: func(c *Config, _ *procOptions, _ string) error {
		c.Log.legacySyslog = true
		return nil
	}},
	{names: []string{"--record"}, arg: true, apply: func(c *Config, _ *procOptions, v string) error {
		abs, err := filepath.Abs(v)
		if err != nil {
			return err
		}
		// websockify's files: FILE.1, FILE.2, ... in websockify's format.
		c.Recording = &RecordingConfig{Dir: filepath.Dir(abs), prefix: filepath.Base(abs), All: "novnc", MaxFileSize: "100MiB", MaxTotalSize: "1GiB"}
		return nil
	}},

	{names: []string{"--daemon", "-D"}, status: never, why: "run wsbridge under systemd, launchd or the Windows service manager instead, which restart it and keep its logs"},
	{names: []string{"--wrap-mode"}, arg: true, status: never, why: "wsbridge does not launch programs with LD_PRELOAD; start the program yourself and give its address as the target"},
	{names: []string{"--traffic"}, status: never, why: "per-frame traffic symbols; -v logs every session with its byte counts instead"},
}

// websockifyDoor gathers websockify's TLS and authentication options.
type websockifyDoor struct {
	cert, key, cafile, version string
	sslOnly, verifyClient      bool
	authPlugin, authSource     string
	webAuth                    bool
}

// selfPEM is the certificate websockify uses when --cert is not given and
// the file exists in the working directory.
const selfPEM = "self.pem"

func (d *websockifyDoor) apply(cfg *Config, proc *procOptions) error {
	cert := d.cert
	if cert == "" {
		if _, err := os.Stat(selfPEM); err == nil {
			cert = selfPEM
			proc.warnings = append(proc.warnings, "TLS with ./self.pem, which websockify uses when it exists and --cert is not given")
		}
	}
	switch {
	case cert != "":
		abs := func(p string) string {
			if p == "" {
				return ""
			}
			a, err := filepath.Abs(p)
			if err != nil {
				return p
			}
			return a
		}
		cfg.TLS = &TLSConfig{Cert: abs(cert), Key: abs(d.key), AllowPlain: !d.sslOnly, ClientCA: abs(d.cafile), RequireClientCert: d.verifyClient}
		switch d.version {
		case "", "default", "tlsv1_2":
		case "tlsv1_3":
			cfg.TLS.MinVersion = "1.3"
		case "tlsv1_1":
			proc.warnings = append(proc.warnings, "--ssl-version tlsv1_1: wsbridge's floor is TLS 1.2")
		default:
			return usagef("--ssl-version %q: want default, tlsv1_1, tlsv1_2 or tlsv1_3", d.version)
		}
		if d.verifyClient && d.cafile == "" {
			return usagef("--verify-client needs --cafile: wsbridge does not trust the system's CAs for client certificates")
		}
	case d.sslOnly:
		return usagef("--ssl-only needs --cert (or ./self.pem)")
	case d.key != "" || d.verifyClient || d.cafile != "" || d.version != "":
		return usagef("--key, --verify-client, --cafile and --ssl-version need --cert (or ./self.pem)")
	}
	return d.applyAuth(cfg)
}

// applyAuth maps websockify's auth plugins.
func (d *websockifyDoor) applyAuth(cfg *Config) error {
	src := d.authSource
	switch d.authPlugin {
	case "":
		if src != "" {
			return usagef("--auth-source needs --auth-plugin")
		}
		if d.webAuth {
			return usagef("--web-auth needs --auth-plugin")
		}
		return nil
	case "BasicHTTPAuth":
		user, _, ok := strings.Cut(src, ":")
		if !ok || user == "" {
			return usagef("--auth-plugin BasicHTTPAuth needs --auth-source user:password")
		}
		cfg.Auth = &AuthConfig{Realm: "Websockify", Require: true, password: src}
	case "ExpectOrigin":
		origins := strings.Fields(src)
		if len(origins) == 0 {
			return usagef("--auth-plugin ExpectOrigin needs --auth-source with the allowed origins")
		}
		for _, o := range origins {
			if err := bridge.ParseOriginPattern(o); err != nil {
				return usagef("--auth-source: %v", err)
			}
		}
		cfg.HTTP.Origins = origins
		cfg.HTTP.AllowNoOrigin = false
		if d.webAuth {
			return usagef("--web-auth with ExpectOrigin: browsers send no Origin when loading pages, so there is nothing to check")
		}
		return nil
	case "ClientCertCNAuth":
		names := strings.Fields(src)
		if len(names) == 0 {
			return usagef("--auth-plugin ClientCertCNAuth needs --auth-source with the allowed common names")
		}
		if cfg.TLS == nil || cfg.TLS.ClientCA == "" {
			return usagef("--auth-plugin ClientCertCNAuth needs --cert, --verify-client and --cafile")
		}
		a := &AuthConfig{Require: true}
		for _, n := range names {
			a.Allow = append(a.Allow, "cn:"+n)
		}
		cfg.Auth = a
	default:
		if strings.Contains(d.authPlugin, ".") {
			return usagef("not supported: --auth-plugin %s: wsbridge cannot load Python classes; it has BasicHTTPAuth, ExpectOrigin and ClientCertCNAuth, and bridge.hcl has htpasswd files, bearer tokens and client certificates", d.authPlugin)
		}
		return usagef("unknown --auth-plugin %s: wsbridge knows BasicHTTPAuth, ExpectOrigin and ClientCertCNAuth", d.authPlugin)
	}
	cfg.Auth.Web = d.webAuth
	if d.webAuth && cfg.Web == "" {
		return usagef("--web-auth needs --web")
	}
	return nil
}

// usageError is a command-line mistake: it exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// parseWebsockify reads websockify's command line
//
//	[options] [source_addr:]source_port [target_addr:target_port]
//
// into a Config, with optparse's habits: options before or after the
// positionals, --name=value or --name value, and unique prefixes of long
// names.
func parseWebsockify(args []string) (*Config, *procOptions, error) {
	cfg := defaultConfig()
	// websockify has no Origin check, and programs send no Origin.
	cfg.HTTP.AllowNoOrigin = true
	proc := &procOptions{}
	var positional []string
	preferV6 := false
	unixListen, unixMode, inetd := "", "", false
	tokenPlugin, tokenSource := "", ""
	var allow []string
	var door websockifyDoor
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if i+1 < len(args) {
				return nil, nil, usagef("not supported: -- WRAP_COMMAND_LINE: %s", findOption("--wrap-mode").why)
			}
			positional = append(positional, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			positional = append(positional, a)
			continue
		}
		name, value, hasValue := strings.Cut(a, "=")
		if !strings.HasPrefix(name, "--") {
			hasValue = false
			name = a
		}
		opt, err := lookupOption(name)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case opt.arg && !hasValue:
			if i+1 >= len(args) {
				return nil, nil, usagef("%s needs a value", opt.names[0])
			}
			i++
			value = args[i]
		case !opt.arg && hasValue:
			return nil, nil, usagef("%s takes no value", opt.names[0])
		}
		switch opt.status {
		case later:
			return nil, nil, usagef("not supported yet: %s (%s)", opt.names[0], opt.why)
		case never:
			return nil, nil, usagef("not supported: %s: %s", opt.names[0], opt.why)
		}
		switch opt.names[0] {
		case "--prefer-ipv6":
			preferV6 = true
		case "--unix-listen":
			unixListen = value
		case "--unix-listen-mode":
			unixMode = value
		case "--inetd":
			inetd = true
		case "--token-plugin":
			tokenPlugin = value
		case "--allow":
			if _, err := targets.ParseAllowlist([]string{value}); err != nil {
				return nil, nil, usagef("--allow: %v", err)
			}
			allow = append(allow, value)
		case "--cert":
			door.cert = value
		case "--key":
			door.key = value
		case "--ssl-only":
			door.sslOnly = true
		case "--verify-client":
			door.verifyClient = true
		case "--cafile":
			door.cafile = value
		case "--ssl-version":
			door.version = value
		case "--auth-plugin":
			door.authPlugin = value
		case "--auth-source":
			door.authSource = value
		case "--web-auth":
			door.webAuth = true
		case "--token-source", "--target-config":
			tokenSource = value
			if opt.names[0] == "--target-config" {
				tokenPlugin = "TokenFile"
			}
		default:
			if err := opt.apply(cfg, proc, value); err != nil {
				return nil, nil, usagef("%s %s: %v", opt.names[0], value, err)
			}
		}
	}

	if err := door.apply(cfg, proc); err != nil {
		return nil, nil, err
	}
	switch {
	case unixListen != "" && inetd:
		return nil, nil, usagef("--unix-listen and --inetd both choose where to listen: give one")
	case unixListen != "":
		abs, err := filepath.Abs(unixListen)
		if err != nil {
			return nil, nil, err
		}
		if unixMode == "" {
			unixMode = "0600"
		}
		cfg.Listen = ""
		cfg.Listeners = []ListenerConfig{{Name: "unix-listen", Address: "unix:" + abs, Mode: unixMode, ProxyProtocol: "off"}}
		// websockify's listen argument is absent here.
		positional = append([]string{""}, positional...)
	case unixMode != "":
		return nil, nil, usagef("--unix-listen-mode needs --unix-listen")
	case inetd:
		cfg.Listen = ""
		cfg.Listeners = []ListenerConfig{{Name: "inetd", Address: "inetd", ProxyProtocol: "off"}}
		positional = append([]string{""}, positional...)
	default:
		if len(positional) == 0 {
			return nil, nil, usagef("missing [source_addr:]source_port (see wsbridge help websockify)")
		}
		listen, err := websockifyListen(positional[0], preferV6)
		if err != nil {
			return nil, nil, err
		}
		cfg.Listen = listen
	}

	hasTarget := len(cfg.Targets) > 0
	switch {
	case tokenPlugin != "":
		if hasTarget {
			return nil, nil, usagef("--token-plugin and --unix-target both choose the target: give one")
		}
		if err := websockifyTokenPlugin(cfg, tokenPlugin, tokenSource, allow); err != nil {
			return nil, nil, err
		}
	case tokenSource != "":
		return nil, nil, usagef("--token-source needs --token-plugin")
	case cfg.Token.From == "host":
		return nil, nil, usagef("--host-token needs --token-plugin")
	case len(allow) > 0:
		return nil, nil, usagef("--allow limits the targets of a --token-plugin; without one it has nothing to limit")
	}
	switch rest := positional[1:]; {
	case len(rest) > 1:
		return nil, nil, usagef("too many arguments: %q", rest[1:])
	case len(rest) == 1 && (hasTarget || tokenPlugin != ""):
		return nil, nil, usagef("target_addr:target_port %q given together with --unix-target or --token-plugin", rest[0])
	case len(rest) == 1:
		addr, err := websockifyTarget(rest[0])
		if err != nil {
			return nil, nil, err
		}
		cfg.Targets = []TargetConfig{{Name: "target", Address: addr}}
	case !hasTarget && tokenPlugin == "":
		return nil, nil, usagef("missing target_addr:target_port (or --unix-target, or --token-plugin)")
	}
	return cfg, proc, nil
}

func findOption(name string) *wsOption {
	for i := range websockifyOptions {
		if slices.Contains(websockifyOptions[i].names, name) {
			return &websockifyOptions[i]
		}
	}
	return nil
}

// lookupOption finds an option by its name or, for long names, by a unique
// prefix, as Python's optparse does.
func lookupOption(name string) (*wsOption, error) {
	if o := findOption(name); o != nil {
		return o, nil
	}
	if !strings.HasPrefix(name, "--") || len(name) < 3 {
		return nil, usagef("unknown option %s (see wsbridge help websockify)", name)
	}
	var match *wsOption
	var names []string
	for i := range websockifyOptions {
		o := &websockifyOptions[i]
		if strings.HasPrefix(o.names[0], name) {
			match = o
			names = append(names, o.names[0])
		}
	}
	switch len(names) {
	case 0:
		return nil, usagef("unknown option %s (see wsbridge help websockify)", name)
	case 1:
		return match, nil
	}
	return nil, usagef("ambiguous option %s: %s", name, strings.Join(names, ", "))
}

// websockifyListen turns [source_addr:]source_port into host:port. A bare
// port listens on every IPv4 address, or with -6 on every address, as in
// websockify.
func websockifyListen(s string, preferV6 bool) (string, error) {
	host, port := "", s
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, port = strings.Trim(s[:i], "[]"), s[i+1:]
	}
	// Port 0 asks the system for a free port; the log says which.
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", usagef("invalid source port %q", s)
	}
	if host == "" {
		host = "0.0.0.0"
		if preferV6 {
			host = "::"
		}
	}
	return net.JoinHostPort(host, port), nil
}

// websockifyTarget splits target_addr:target_port at the last colon and
// strips brackets, so [::1]:5900 and ::1:5900 both work.
func websockifyTarget(s string) (string, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", usagef("target %q must be target_addr:target_port", s)
	}
	host, port := strings.Trim(s[:i], "[]"), s[i+1:]
	if host == "" {
		return "", usagef("target %q has no address", s)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", usagef("target %q has an invalid port", s)
	}
	return net.JoinHostPort(host, port), nil
}

// websockifyTokenPlugin configures the token source a websockify
// --token-plugin names. allow (from --allow) limits its targets; without
// it, a plugin whose targets come from outside the configuration reaches
// whatever it names, as in websockify, with a warning at start.
func websockifyTokenPlugin(cfg *Config, plugin, source string, allow []string) error {
	needSource := func(what string) error {
		if source == "" {
			return usagef("--token-plugin %s needs --token-source %s", plugin, what)
		}
		return nil
	}
	abs := func() (string, error) {
		if err := needSource("FILE_OR_DIRECTORY"); err != nil {
			return "", err
		}
		return filepath.Abs(source)
	}
	const name = "websockify"
	switch plugin {
	case "TokenFile", "ReadOnlyTokenFile", "TokenFileName":
		p, err := abs()
		if err != nil {
			return err
		}
		tf := TokenFileConfig{Name: name, Path: p, Allow: allow}
		if plugin == "TokenFileName" {
			tf.Style = "names"
		}
		cfg.TokenFiles = []TokenFileConfig{tf}
	case "UnixDomainSocketDirectory":
		p, err := abs()
		if err != nil {
			return err
		}
		if len(allow) > 0 {
			return usagef("--allow does not apply to UnixDomainSocketDirectory: its directory is its allowlist")
		}
		cfg.SocketDirs = []SocketDirConfig{{Name: name, Path: p}}
	case "TokenRedis":
		if err := needSource("host[:port[:db[:password[:namespace]]]]"); err != nil {
			return err
		}
		r, err := websockifyRedisSource(source)
		if err != nil {
			return err
		}
		r.Name, r.Allow = name, allow
		cfg.TokenRedis = []TokenRedisConfig{r}
	case "JWTTokenApi":
		p, err := abs()
		if err != nil {
			return err
		}
		no := false
		cfg.TokenJWT = []TokenJWTConfig{{Name: name, KeyFile: p, RequireExp: &no, Allow: allow}}
	case "JSONTokenApi", "BaseTokenAPI":
		if err := needSource("URL_WITH_%s"); err != nil {
			return err
		}
		cfg.TokenHTTP = []TokenHTTPConfig{{Name: name, URL: source, Allow: allow}}
	default:
		if strings.Contains(plugin, ".") {
			return usagef("not supported: --token-plugin %s: wsbridge cannot load Python classes; its token sources are built in (see wsbridge help websockify)", plugin)
		}
		return usagef("unknown --token-plugin %s: wsbridge knows %s", plugin, strings.Join(tokenPlugins, ", "))
	}
	return nil
}

var tokenPlugins = []string{"TokenFile", "ReadOnlyTokenFile", "TokenFileName", "TokenRedis", "JWTTokenApi", "JSONTokenApi", "BaseTokenAPI", "UnixDomainSocketDirectory"}

// websockifyRedisSource reads TokenRedis's --token-source:
// host[:port[:db[:password[:namespace]]]], where a field in double quotes
// may hold colons and an empty field keeps its default.
func websockifyRedisSource(src string) (TokenRedisConfig, error) {
	var fields []string
	for rest := src; ; {
		var f string
		if strings.HasPrefix(rest, `"`) {
			if end := strings.IndexByte(rest[1:], '"'); end >= 0 && (len(rest) == end+2 || rest[end+2] == ':') {
				f, rest = rest[1:end+1], rest[end+2:]
				fields = append(fields, f)
				if rest == "" {
					break
				}
				rest = rest[1:]
				continue
			}
		}
		f, after, more := strings.Cut(rest, ":")
		fields = append(fields, f)
		if !more {
			break
		}
		rest = after
	}
	if len(fields) > 5 {
		return TokenRedisConfig{}, usagef("--token-source %q: want host[:port[:db[:password[:namespace]]]] (quote a field that holds a colon)", src)
	}
	fields = append(fields, make([]string, 5-len(fields))...)
	host, port := fields[0], fields[1]
	if host == "" {
		return TokenRedisConfig{}, usagef("--token-source %q: no Redis host", src)
	}
	if port == "" {
		port = "6379"
	}
	if !validPort(port) {
		return TokenRedisConfig{}, usagef("--token-source %q: invalid Redis port %q", src, port)
	}
	c := TokenRedisConfig{Address: net.JoinHostPort(strings.Trim(host, "[]"), port), Password: fields[3], Namespace: fields[4]}
	if fields[2] != "" {
		db, err := strconv.Atoi(fields[2])
		if err != nil || db < 0 {
			return TokenRedisConfig{}, usagef("--token-source %q: invalid Redis db %q", src, fields[2])
		}
		c.DB = db
	}
	return c, nil
}

// seconds parses websockify's whole or fractional seconds.
func seconds(v string) (time.Duration, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 1e9 {
		return 0, errors.New("want a number of seconds")
	}
	return time.Duration(f * float64(time.Second)), nil
}
