package main

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// Config is the bridge.hcl schema. Durations and sizes are strings ("25s",
// "64KiB") that validate parses, so that a bad value is reported with its
// position; a bare number would decode into a time.Duration as nanoseconds.
// The websockify command line fills the same struct.
type Config struct {
	// Listen is host:port; [::]:port listens on every address.
	Listen string `hcl:"listen,optional"`
	// Web is a directory served as static files (noVNC), or "".
	Web string `hcl:"web,optional"`
	// DrainTimeout is how long a stopping wsbridge lets sessions run
	// before it closes them with 1001.
	DrainTimeout string `hcl:"drain_timeout,optional"`
	// ReloadGrace is how long the sessions of a target that a reload
	// removed may go on before they close with 1012.
	ReloadGrace string `hcl:"reload_grace,optional"`
	// PIDFile, when set, gets the process ID while wsbridge runs, for
	// `wsbridge reload` and init scripts.
	PIDFile string `hcl:"pid_file,optional"`

	Listeners []ListenerConfig `hcl:"listener,block"`
	Admin     *AdminConfig     `hcl:"admin,block"`
	Recording *RecordingConfig `hcl:"recording,block"`

	Log       *LogConfig       `hcl:"log,block"`
	HTTP      *HTTPConfig      `hcl:"http,block"`
	TLS       *TLSConfig       `hcl:"tls,block"`
	Auth      *AuthConfig      `hcl:"auth,block"`
	Session   *SessionConfig   `hcl:"session,block"`
	Limits    *LimitsConfig    `hcl:"limits,block"`
	Token     *TokenConfig     `hcl:"token,block"`
	TargetTLS *TargetTLSConfig `hcl:"target_tls,block"`

	Targets []TargetConfig `hcl:"target,block"`

	// Token sources, asked in the order the file lists them.
	TokenFiles []TokenFileConfig  `hcl:"token_file,block"`
	TokenRedis []TokenRedisConfig `hcl:"token_redis,block"`
	TokenJWT   []TokenJWTConfig   `hcl:"token_jwt,block"`
	TokenHTTP  []TokenHTTPConfig  `hcl:"token_http,block"`
	SocketDirs []SocketDirConfig  `hcl:"socket_dir,block"`
}

// LogConfig is the log block.
type LogConfig struct {
	Level  string `hcl:"level,optional"`  // debug, info, warn, error
	Format string `hcl:"format,optional"` // text or json
	File   string `hcl:"file,optional"`   // "" is standard error
	// Syslog sends the log to a syslog daemon instead: a Unix socket
	// path ("/dev/log") or "udp:host:port".
	Syslog string `hcl:"syslog,optional"`

	legacySyslog bool // websockify's --legacy-syslog
}

// ListenerConfig is a listener block: one more address to serve on.
type ListenerConfig struct {
	Name string `hcl:"name,label"`
	// Address is "host:port", "unix:/path", "systemd" (every socket
	// systemd passed) or "systemd:NAME" (the sockets of that
	// FileDescriptorName).
	Address string `hcl:"address"`
	// Mode is the file mode of a Unix socket, in octal. Default "0600".
	Mode string `hcl:"mode,optional"`
	// ProxyProtocol is off, optional or require: whether clients in
	// TrustedProxies send a PROXY protocol header.
	ProxyProtocol  string   `hcl:"proxy_protocol,optional"`
	TrustedProxies []string `hcl:"trusted_proxies,optional"`
}

// AdminConfig is the admin block: metrics and health checks on their own
// listener.
type AdminConfig struct {
	Listen string `hcl:"listen,optional"`
	// ReadyTargets are configured targets that /readyz dials.
	ReadyTargets []string `hcl:"ready_targets,optional"`
	// SelfCheck makes /readyz open a WebSocket through the first listener
	// to a built-in echo.
	SelfCheck bool `hcl:"self_check,optional"`
}

// RecordingConfig is the recording block: where targets with record set
// write their sessions, and the caps.
type RecordingConfig struct {
	Dir          string `hcl:"dir"`
	MaxFileSize  string `hcl:"max_file_size,optional"`
	MaxTotalSize string `hcl:"max_total_size,optional"`
	// All records every session in this format ("novnc" or "raw"),
	// targets from token sources included; "" records only the targets
	// with record set.
	All string `hcl:"all,optional"`
	// prefix names files websockify's way (FILE.N) for --record FILE.
	prefix string
}

// HTTPConfig is the http block: everything before the upgrade.
type HTTPConfig struct {
	HeaderTimeout string `hcl:"header_timeout,optional"`
	MaxHeaderSize string `hcl:"max_header_size,optional"`
	// Hosts are the Host names served; nil means the loopback names on a
	// loopback listener and any name otherwise; "*" is any name.
	Hosts         []string `hcl:"hosts,optional"`
	Origins       []string `hcl:"origins,optional"`
	AllowNoOrigin bool     `hcl:"allow_no_origin,optional"`
	// CSP is the web root's Content-Security-Policy; "" is the default.
	CSP string `hcl:"content_security_policy,optional"`
	// TrustedProxies are the networks of HTTP proxies whose
	// X-Forwarded-For or Forwarded header names the client.
	TrustedProxies []string `hcl:"trusted_proxies,optional"`
}

// TLSConfig is the tls block: wss:// and https:// on the listener.
type TLSConfig struct {
	Cert string `hcl:"cert,optional"`
	Key  string `hcl:"key,optional"`
	// More certificates, chosen by the client's SNI.
	Certificates      []CertConfig `hcl:"certificate,block"`
	MinVersion        string       `hcl:"min_version,optional"`
	AllowPlain        bool         `hcl:"allow_plain,optional"`
	ClientCA          string       `hcl:"client_ca,optional"`
	RequireClientCert bool         `hcl:"require_client_cert,optional"`
	ReloadInterval    string       `hcl:"reload_interval,optional"`
}

// CertConfig is a certificate block inside tls.
type CertConfig struct {
	Cert string `hcl:"cert"`
	Key  string `hcl:"key,optional"`
}

// AuthConfig is the auth block.
type AuthConfig struct {
	Htpasswd   string   `hcl:"htpasswd,optional"`
	BearerFile string   `hcl:"bearer_file,optional"`
	Realm      string   `hcl:"realm,optional"`
	Require    bool     `hcl:"require,optional"`
	Allow      []string `hcl:"allow,optional"`
	Web        bool     `hcl:"web,optional"`

	// password is websockify's BasicHTTPAuth --auth-source user:password,
	// which the file format does not offer: passwords belong in htpasswd.
	password string
}

// TargetTLSConfig is TLS toward targets: the target_tls block (every
// target) or a tls block inside a target.
type TargetTLSConfig struct {
	CAFile             string `hcl:"ca_file,optional"`
	ServerName         string `hcl:"server_name,optional"`
	InsecureSkipVerify bool   `hcl:"insecure_skip_verify,optional"`
	Cert               string `hcl:"cert,optional"`
	Key                string `hcl:"key,optional"`
}

// SessionConfig is the session block: the life of one bridged client.
type SessionConfig struct {
	DialTimeout      string `hcl:"dial_timeout,optional"`
	WriteTimeout     string `hcl:"write_timeout,optional"`
	PingInterval     string `hcl:"ping_interval,optional"`
	PongTimeout      string `hcl:"pong_timeout,optional"`
	IdleTimeout      string `hcl:"idle_timeout,optional"`
	MaxLifetime      string `hcl:"max_lifetime,optional"`
	Linger           string `hcl:"linger,optional"`
	MessageLimit     string `hcl:"message_limit,optional"`
	ReadSize         string `hcl:"read_size,optional"`
	StrictText       bool   `hcl:"strict_text,optional"`
	DialAfterUpgrade bool   `hcl:"dial_after_upgrade,optional"`
}

// LimitsConfig is the limits block: admission and bandwidth. Counts of 0
// mean no cap; bandwidths are sizes per second, "0" unlimited.
type LimitsConfig struct {
	MaxSessions         int     `hcl:"max_sessions,optional"`
	PerIPSessions       int     `hcl:"per_ip_sessions,optional"`
	PerIPRate           float64 `hcl:"per_ip_rate,optional"`
	PerIPBurst          int     `hcl:"per_ip_burst,optional"`
	PerTargetSessions   int     `hcl:"per_target_sessions,optional"`
	PerTokenSessions    int     `hcl:"per_token_sessions,optional"`
	SessionBandwidthIn  string  `hcl:"session_bandwidth_in,optional"`
	SessionBandwidthOut string  `hcl:"session_bandwidth_out,optional"`
	TotalBandwidthIn    string  `hcl:"total_bandwidth_in,optional"`
	TotalBandwidthOut   string  `hcl:"total_bandwidth_out,optional"`
}

// TokenConfig is the token block: where requests carry their token, and
// the budget of failed lookups per client address.
type TokenConfig struct {
	From          string `hcl:"from,optional"`        // query, path, cookie or host
	Name          string `hcl:"name,optional"`        // query parameter or cookie
	PathPrefix    string `hcl:"path_prefix,optional"` // for from = "path"
	MaxFailures   int    `hcl:"max_failures,optional"`
	FailureWindow string `hcl:"failure_window,optional"`
	Ban           string `hcl:"ban,optional"`
}

// TargetConfig is a target block. The overrides are "" to keep the
// session block's setting.
type TargetConfig struct {
	Name    string `hcl:"name,label"`
	Address string `hcl:"address"`
	Path    string `hcl:"path,optional"`
	Host    string `hcl:"host,optional"`
	Token   string `hcl:"token,optional"`

	DialTimeout  string `hcl:"dial_timeout,optional"`
	PingInterval string `hcl:"ping_interval,optional"`
	MessageLimit string `hcl:"message_limit,optional"`

	MaxSessions  int    `hcl:"max_sessions,optional"`
	BandwidthIn  string `hcl:"bandwidth_in,optional"`
	BandwidthOut string `hcl:"bandwidth_out,optional"`

	Identities []string         `hcl:"identities,optional"`
	TLS        *TargetTLSConfig `hcl:"tls,block"`

	// ProxyProtocol, "v1" or "v2", sends the target a PROXY header.
	ProxyProtocol string `hcl:"proxy_protocol,optional"`
	// Record, "novnc" or "raw", records the target's sessions.
	Record string `hcl:"record,optional"`
}

// TokenFileConfig is a token_file block.
type TokenFileConfig struct {
	Name  string   `hcl:"name,label"`
	Path  string   `hcl:"path"`
	Style string   `hcl:"style,optional"` // lines (TokenFile) or names (TokenFileName)
	Allow []string `hcl:"allow,optional"`
}

// TokenRedisConfig is a token_redis block.
type TokenRedisConfig struct {
	Name      string   `hcl:"name,label"`
	Address   string   `hcl:"address,optional"`
	DB        int      `hcl:"db,optional"`
	Username  string   `hcl:"username,optional"`
	Password  string   `hcl:"password,optional"`
	Namespace string   `hcl:"namespace,optional"`
	Timeout   string   `hcl:"timeout,optional"`
	CacheTTL  string   `hcl:"cache_ttl,optional"`
	Allow     []string `hcl:"allow,optional"`
}

// TokenJWTConfig is a token_jwt block.
type TokenJWTConfig struct {
	Name           string   `hcl:"name,label"`
	KeyFile        string   `hcl:"key_file"`
	Algorithms     []string `hcl:"algorithms,optional"`
	Audience       string   `hcl:"audience,optional"`
	RequireExp     *bool    `hcl:"require_exp,optional"`
	Leeway         string   `hcl:"leeway,optional"`
	SecretEncoding string   `hcl:"secret_encoding,optional"`
	Allow          []string `hcl:"allow,optional"`
}

// TokenHTTPConfig is a token_http block.
type TokenHTTPConfig struct {
	Name     string   `hcl:"name,label"`
	URL      string   `hcl:"url"`
	Timeout  string   `hcl:"timeout,optional"`
	CacheTTL string   `hcl:"cache_ttl,optional"`
	Allow    []string `hcl:"allow,optional"`
}

// SocketDirConfig is a socket_dir block (websockify's
// UnixDomainSocketDirectory).
type SocketDirConfig struct {
	Name string `hcl:"name,label"`
	Path string `hcl:"path"`
}

// defaultConfig holds every default; a file is decoded over it.
func defaultConfig() *Config {
	return &Config{
		Listen:       "127.0.0.1:6080",
		DrainTimeout: "10s",
		ReloadGrace:  "30s",
		Log:          &LogConfig{Level: "info", Format: "text"},
		HTTP: &HTTPConfig{
			HeaderTimeout:  "10s",
			MaxHeaderSize:  "16KiB",
			Origins:        []string{},
			TrustedProxies: []string{},
		},
		Session: &SessionConfig{
			DialTimeout:  "10s",
			WriteTimeout: "30s",
			PingInterval: "25s",
			PongTimeout:  "15s",
			IdleTimeout:  "0s",
			MaxLifetime:  "0s",
			Linger:       "5s",
			MessageLimit: "64KiB",
			ReadSize:     "64KiB",
		},
		Limits: &LimitsConfig{
			PerIPSessions:       16,
			PerIPRate:           10,
			PerIPBurst:          20,
			SessionBandwidthIn:  "0",
			SessionBandwidthOut: "0",
			TotalBandwidthIn:    "0",
			TotalBandwidthOut:   "0",
		},
		Token: &TokenConfig{
			From:          "query",
			Name:          "token",
			PathPrefix:    "/",
			MaxFailures:   5,
			FailureWindow: "1m",
			Ban:           "1m",
		},
	}
}

// embeddedConfig is what wsbridge runs with no arguments: the defaults and
// one target, the VNC server of display :0 on this machine.
func embeddedConfig() *Config {
	c := defaultConfig()
	c.Targets = []TargetConfig{{Name: "vnc", Address: "127.0.0.1:5900"}}
	return c
}

// source is a parsed bridge.hcl, kept for the positions of diagnostics.
type source struct {
	body *hclsyntax.Body // nil when the config came from the command line
}

// loadConfig parses and decodes the file over the defaults. A fresh parser
// each time, so a reload never sees a cached old file.
func loadConfig(path string) (*Config, *source, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read configuration",
			Detail:   err.Error(),
		}}
	}
	return parseConfig(src, path)
}

func parseConfig(src []byte, filename string) (*Config, *source, hcl.Diagnostics) {
	p := hclparse.NewParser()
	f, diags := p.ParseHCL(src, filename)
	s := &source{}
	if diags.HasErrors() {
		return nil, s, diags
	}
	s.body, _ = f.Body.(*hclsyntax.Body)
	cfg := defaultConfig()
	diags = append(diags, gohcl.DecodeBody(f.Body, evalContext(), cfg)...)
	diags = append(diags, s.duplicateBlocks()...)
	if len(cfg.Listeners) > 0 && s.at("listen") == nil {
		// listener blocks replace the default address; a listen the file
		// sets is served beside them.
		cfg.Listen = ""
	}
	blockDefaults(cfg)
	return cfg, s, diags
}

// blockDefaults fills the defaults of optional blocks that the file has,
// so that `wsbridge check` shows the values in effect.
func blockDefaults(cfg *Config) {
	if t := cfg.TLS; t != nil {
		setEmpty(&t.MinVersion, "1.2")
		setEmpty(&t.ReloadInterval, "10s")
	}
	for i := range cfg.Listeners {
		l := &cfg.Listeners[i]
		setEmpty(&l.ProxyProtocol, "off")
		if strings.HasPrefix(l.Address, "unix:") {
			setEmpty(&l.Mode, "0600")
		}
	}
	if a := cfg.Admin; a != nil {
		setEmpty(&a.Listen, "127.0.0.1:9680")
	}
	if r := cfg.Recording; r != nil {
		setEmpty(&r.MaxFileSize, "100MiB")
		setEmpty(&r.MaxTotalSize, "1GiB")
	}
	if a := cfg.Auth; a != nil {
		setEmpty(&a.Realm, "wsbridge")
		if a.Allow == nil {
			a.Allow = []string{}
		}
	}
}

func setEmpty(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

// evalContext offers env("NAME") and env("NAME", "default") in expressions.
// A variable that is not set and has no default is an error at its call.
func evalContext() *hcl.EvalContext {
	env := function.New(&function.Spec{
		Params:   []function.Parameter{{Name: "name", Type: cty.String}},
		VarParam: &function.Parameter{Name: "default", Type: cty.String},
		Type:     function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			name := args[0].AsString()
			if v, ok := os.LookupEnv(name); ok {
				return cty.StringVal(v), nil
			}
			switch len(args) {
			case 1:
				return cty.NilVal, fmt.Errorf("environment variable %s is not set", name)
			case 2:
				return args[1], nil
			}
			return cty.NilVal, fmt.Errorf("env takes a name and at most one default")
		},
	})
	return &hcl.EvalContext{Functions: map[string]function.Function{"env": env}}
}

// duplicateBlocks reports labelled blocks whose type and name repeat, which
// gohcl does not detect.
func (s *source) duplicateBlocks() hcl.Diagnostics {
	if s.body == nil {
		return nil
	}
	var diags hcl.Diagnostics
	seen := map[string]*hclsyntax.Block{}
	for _, b := range s.body.Blocks {
		if len(b.Labels) == 0 {
			continue
		}
		key := b.Type + " " + b.Labels[0]
		if prev, ok := seen[key]; ok {
			r := b.DefRange()
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("Duplicate %s %q", b.Type, b.Labels[0]),
				Detail:   fmt.Sprintf("A %s named %q is already defined at %s.", b.Type, b.Labels[0], prev.DefRange()),
				Subject:  &r,
			})
			continue
		}
		seen[key] = b
	}
	return diags
}

// at returns the source range of an attribute, found by walking the blocks
// named in path: at("session", "dial_timeout"), at("target", "vnc",
// "address"), at("listen"). It returns nil when the value did not come from
// the file (a default, or the command line).
func (s *source) at(path ...string) *hcl.Range {
	if s == nil || s.body == nil {
		return nil
	}
	body := s.body
	for len(path) > 1 {
		var next *hclsyntax.Body
		for _, b := range body.Blocks {
			if b.Type != path[0] {
				continue
			}
			if len(b.Labels) > 0 {
				if len(path) < 3 || b.Labels[0] != path[1] {
					continue
				}
				path = path[1:]
			}
			next = b.Body
			break
		}
		if next == nil {
			return nil
		}
		body, path = next, path[1:]
	}
	if a, ok := body.Attributes[path[0]]; ok {
		r := a.Expr.Range()
		return &r
	}
	return nil
}

// fromFile reports whether the config came from a file, not the command
// line.
func (s *source) fromFile() bool { return s != nil && s.body != nil }

// blockAt returns the definition range of the block labelled name, or of
// the unlabelled block kind when name is "", or nil.
func (s *source) blockAt(kind, name string) *hcl.Range {
	if s == nil || s.body == nil {
		return nil
	}
	for _, b := range s.body.Blocks {
		if b.Type == kind && (name == "" && len(b.Labels) == 0 || len(b.Labels) > 0 && b.Labels[0] == name) {
			r := b.DefRange()
			return &r
		}
	}
	return nil
}

// formatConfig prints cfg as HCL, as `wsbridge check` shows it, with
// static tokens and passwords replaced: the output may end up in a ticket.
func formatConfig(cfg *Config) []byte {
	c := *cfg
	c.Targets = slices.Clone(c.Targets)
	for i := range c.Targets {
		redact(&c.Targets[i].Token)
	}
	c.TokenRedis = slices.Clone(c.TokenRedis)
	for i := range c.TokenRedis {
		redact(&c.TokenRedis[i].Password)
	}
	f := hclwrite.NewEmptyFile()
	gohcl.EncodeIntoBody(&c, f.Body())
	// Unset optional settings of targets and sources print as nothing, not
	// as "", null or 0, which would read as values.
	for _, b := range f.Body().Blocks() {
		if len(b.Labels()) == 0 {
			continue
		}
		for name, a := range b.Body().Attributes() {
			if v := strings.TrimSpace(string(a.Expr().BuildTokens(nil).Bytes())); v == `""` || v == "null" || v == "0" {
				b.Body().RemoveAttribute(name)
			}
		}
	}
	return hclwrite.Format(f.Bytes())
}

const redacted = "(redacted)"

func redact(s *string) {
	if *s != "" {
		*s = redacted
	}
}
