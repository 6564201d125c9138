package main

import (
	"strings"
	"testing"
	"time"
)

func TestWebsockifyCommandLine(t *testing.T) {
	tests := []struct {
		name    string
		args    string
		listen  string
		target  string // address of the only target, or ""
		tokens  string // path of the only token file, or ""
		check   func(t *testing.T, c *Config, p *procOptions)
		wantErr string
	}{
		{name: "plain", args: "6080 localhost:5900", listen: "0.0.0.0:6080", target: "localhost:5900"},
		{name: "ipv6 listen", args: "-6 6080 localhost:5900", listen: "[::]:6080", target: "localhost:5900"},
		{name: "source addr", args: "127.0.0.1:6080 127.0.0.1:5901", listen: "127.0.0.1:6080", target: "127.0.0.1:5901"},
		{name: "bracketed", args: "[::1]:6080 [::1]:5901", listen: "[::1]:6080", target: "[::1]:5901"},
		{name: "bare v6 target", args: ":6080 ::1:5901", listen: "0.0.0.0:6080", target: "[::1]:5901"},
		{name: "options after positionals", args: "6080 localhost:5900 --web /srv --heartbeat 10", listen: "0.0.0.0:6080", target: "localhost:5900",
			check: func(t *testing.T, c *Config, _ *procOptions) {
				if c.Web != "/srv" || c.Session.PingInterval != "10s" {
					t.Errorf("web %q, ping %q", c.Web, c.Session.PingInterval)
				}
			}},
		{name: "equals and prefix", args: "--verb --heart=2.5 --idle-timeout=30 --run-once --timeout 60 6080 h:1", listen: "0.0.0.0:6080", target: "h:1",
			check: func(t *testing.T, c *Config, p *procOptions) {
				if c.Log.Level != "debug" || c.Session.PingInterval != "2.5s" || p.idleTimeout != 30*time.Second || !p.runOnce || p.timeout != time.Minute {
					t.Errorf("got %+v %+v %+v", c.Log, c.Session, p)
				}
			}},
		{name: "token file", args: "--token-plugin TokenFile --token-source /etc/tokens 6080", listen: "0.0.0.0:6080", tokens: "/etc/tokens"},
		{name: "read-only token file", args: "--token-plugin=ReadOnlyTokenFile --token-source=/etc/tokens.d 6080", listen: "0.0.0.0:6080", tokens: "/etc/tokens.d"},
		{name: "target config", args: "--target-config /etc/tokens 6080", listen: "0.0.0.0:6080", tokens: "/etc/tokens"},
		{name: "unix target", args: "--unix-target /run/vnc.sock 6080", listen: "0.0.0.0:6080", target: "unix:/run/vnc.sock"},
		{name: "file only", args: "--web /srv --file-only 6080 h:1", listen: "0.0.0.0:6080", target: "h:1"},
		{name: "libserver warns", args: "--libserver 6080 h:1", listen: "0.0.0.0:6080", target: "h:1",
			check: func(t *testing.T, _ *Config, p *procOptions) {
				if len(p.warnings) != 1 {
					t.Errorf("warnings %q", p.warnings)
				}
			}},

		{name: "tls and plain", args: "--cert /c.pem --key /k.pem 6080 h:1", listen: "0.0.0.0:6080", target: "h:1",
			check: func(t *testing.T, c *Config, _ *procOptions) {
				if c.TLS == nil || c.TLS.Cert != "/c.pem" || c.TLS.Key != "/k.pem" || !c.TLS.AllowPlain || c.TLS.RequireClientCert {
					t.Errorf("tls = %+v", c.TLS)
				}
			}},
		{name: "tls only with client certs", args: "--cert /c.pem --ssl-only --verify-client --cafile /ca.pem --ssl-version tlsv1_3 6080 h:1", listen: "0.0.0.0:6080", target: "h:1",
			check: func(t *testing.T, c *Config, _ *procOptions) {
				if c.TLS == nil || c.TLS.AllowPlain || !c.TLS.RequireClientCert || c.TLS.ClientCA != "/ca.pem" || c.TLS.MinVersion != "1.3" {
					t.Errorf("tls = %+v", c.TLS)
				}
			}},
		{name: "ssl target", args: "--ssl-target 6080 h:1", listen: "0.0.0.0:6080", target: "h:1",
			check: func(t *testing.T, c *Config, _ *procOptions) {
				if c.TargetTLS == nil || c.TargetTLS.InsecureSkipVerify {
					t.Errorf("target tls = %+v", c.TargetTLS)
				}
			}},
		{name: "ssl ciphers warn", args: "--cert /c.pem --ssl-ciphers HIGH 6080 h:1", listen: "0.0.0.0:6080", target: "h:1",
			check: func(t *testing.T, _ *Config, p *procOptions) {
				if len(p.warnings) != 1 {
					t.Errorf("warnings %q", p.warnings)
				}
			}},
		{name: "ssl-only without cert", args: "--ssl-only 6080 h:1", wantErr: "--ssl-only needs --cert"},
		{name: "verify-client without cafile", args: "--cert /c.pem --verify-client 6080 h:1", wantErr: "--verify-client needs --cafile"},
		{name: "bad ssl version", args: "--cert /c.pem --ssl-version sslv3 6080 h:1", wantErr: "--ssl-version"},
		{name: "key password", args: "--cert /c.pem --key-password x 6080 h:1", wantErr: "not supported: --key-password"},
		{name: "basic auth", args: "--auth-plugin BasicHTTPAuth --auth-source a:b:c --web /srv --web-auth 6080 h:1", listen: "0.0.0.0:6080", target: "h:1",
			check: func(t *testing.T, c *Config, _ *procOptions) {
				if a := c.Auth; a == nil || a.password != "a:b:c" || !a.Require || !a.Web || a.Realm != "Websockify" {
					t.Errorf("auth = %+v", c.Auth)
				}
			}},
		{name: "expect origin", args: "--auth-plugin ExpectOrigin --auth-source 'https://a.example http://b.example:8080' 6080 h:1", listen: "0.0.0.0:6080", target: "h:1",
			check: func(t *testing.T, c *Config, _ *procOptions) {
				if strings.Join(c.HTTP.Origins, " ") != "https://a.example http://b.example:8080" || c.HTTP.AllowNoOrigin {
					t.Errorf("http = %+v", c.HTTP)
				}
			}},
		{name: "client cn", args: "--cert /c.pem --verify-client --cafile /ca.pem --auth-plugin ClientCertCNAuth --auth-source 'ops admin' 6080 h:1", listen: "0.0.0.0:6080", target: "h:1",
			check: func(t *testing.T, c *Config, _ *procOptions) {
				if a := c.Auth; a == nil || strings.Join(a.Allow, " ") != "cn:ops cn:admin" || !a.Require {
					t.Errorf("auth = %+v", c.Auth)
				}
			}},
		{name: "client cn without certs", args: "--auth-plugin ClientCertCNAuth --auth-source ops 6080 h:1", wantErr: "needs --cert, --verify-client and --cafile"},
		{name: "python auth plugin", args: "--auth-plugin my.Plugin 6080 h:1", wantErr: "cannot load Python classes"},
		{name: "web auth alone", args: "--web-auth 6080 h:1", wantErr: "--web-auth needs --auth-plugin"},
		{name: "no origin allowed", args: "6080 h:1", listen: "0.0.0.0:6080", target: "h:1",
			check: func(t *testing.T, c *Config, _ *procOptions) {
				if !c.HTTP.AllowNoOrigin || c.TLS != nil || c.Auth != nil {
					t.Errorf("http %+v tls %+v auth %+v", c.HTTP, c.TLS, c.Auth)
				}
			}},
		{name: "redis", args: "--token-plugin TokenRedis --token-source 10.0.0.9 --allow 10.0.0.0/8:5900-5999 6080", listen: "0.0.0.0:6080",
			check: func(t *testing.T, c *Config, _ *procOptions) {
				if len(c.TokenRedis) != 1 || c.TokenRedis[0].Address != "10.0.0.9:6379" || c.TokenRedis[0].DB != 0 ||
					strings.Join(c.TokenRedis[0].Allow, ",") != "10.0.0.0/8:5900-5999" {
					t.Errorf("redis = %+v", c.TokenRedis)
				}
			}},
		{name: "redis every field", args: `--token-plugin TokenRedis --token-source h:6380:3:"pa:ss":ns 6080`, listen: "0.0.0.0:6080",
			check: func(t *testing.T, c *Config, _ *procOptions) {
				r := c.TokenRedis[0]
				if r.Address != "h:6380" || r.DB != 3 || r.Password != "pa:ss" || r.Namespace != "ns" || len(r.Allow) != 0 {
					t.Errorf("redis = %+v", r)
				}
			}},
		{name: "redis empty fields", args: "--token-plugin TokenRedis --token-source h:::secret 6080", listen: "0.0.0.0:6080",
			check: func(t *testing.T, c *Config, _ *procOptions) {
				if r := c.TokenRedis[0]; r.Address != "h:6379" || r.DB != 0 || r.Password != "secret" || r.Namespace != "" {
					t.Errorf("redis = %+v", r)
				}
			}},
		{name: "redis too many fields", args: "--token-plugin TokenRedis --token-source h:1:2:3:4:5 6080", wantErr: "want host[:port"},
		{name: "redis bad db", args: "--token-plugin TokenRedis --token-source h:1:x 6080", wantErr: "invalid Redis db"},
		{name: "jwt", args: "--token-plugin JWTTokenApi --token-source /etc/jwt.pem 6080", listen: "0.0.0.0:6080",
			check: func(t *testing.T, c *Config, _ *procOptions) {
				if len(c.TokenJWT) != 1 || c.TokenJWT[0].KeyFile != "/etc/jwt.pem" || *c.TokenJWT[0].RequireExp {
					t.Errorf("jwt = %+v", c.TokenJWT)
				}
			}},
		{name: "json api", args: "--token-plugin JSONTokenApi --token-source http://127.0.0.1:8000/t/%s 6080", listen: "0.0.0.0:6080",
			check: func(t *testing.T, c *Config, _ *procOptions) {
				if len(c.TokenHTTP) != 1 || c.TokenHTTP[0].URL != "http://127.0.0.1:8000/t/%s" {
					t.Errorf("http = %+v", c.TokenHTTP)
				}
			}},
		{name: "token file name", args: "--token-plugin TokenFileName --token-source /etc/t 6080", listen: "0.0.0.0:6080", tokens: "/etc/t",
			check: func(t *testing.T, c *Config, _ *procOptions) {
				if c.TokenFiles[0].Style != "names" {
					t.Errorf("style %q", c.TokenFiles[0].Style)
				}
			}},
		{name: "socket dir", args: "--token-plugin UnixDomainSocketDirectory --token-source /run/vnc 6080", listen: "0.0.0.0:6080",
			check: func(t *testing.T, c *Config, _ *procOptions) {
				if len(c.SocketDirs) != 1 || c.SocketDirs[0].Path != "/run/vnc" {
					t.Errorf("socket dirs = %+v", c.SocketDirs)
				}
			}},
		{name: "host token", args: "--host-token --token-plugin TokenFile --token-source /etc/t 6080", listen: "0.0.0.0:6080", tokens: "/etc/t",
			check: func(t *testing.T, c *Config, _ *procOptions) {
				if c.Token.From != "host" {
					t.Errorf("token from %q", c.Token.From)
				}
			}},
		{name: "host token without plugin", args: "--host-token 6080 h:1", wantErr: "--host-token needs --token-plugin"},
		{name: "allow without plugin", args: "--allow 10.0.0.0/8 6080 h:1", wantErr: "nothing to limit"},
		{name: "bad allow", args: "--allow 10.0.0.1/8 --token-plugin TokenRedis --token-source h 6080", wantErr: "--allow"},
		{name: "unknown plugin", args: "--token-plugin TokenSQL --token-source x 6080", wantErr: "unknown --token-plugin TokenSQL"},
		{name: "plugin without source", args: "--token-plugin TokenRedis 6080", wantErr: "needs --token-source"},
		{name: "python class", args: "--token-plugin my.Plugin --token-source x 6080", wantErr: "cannot load Python classes"},
		{name: "daemon never", args: "-D 6080 h:1", wantErr: "not supported: --daemon"},
		{name: "wrap never", args: "6080 -- vncserver :1", wantErr: "not supported: -- WRAP_COMMAND_LINE"},
		{name: "unknown", args: "--frobnicate 6080 h:1", wantErr: "unknown option --frobnicate"},
		{name: "ambiguous", args: "--ssl 6080 h:1", wantErr: "ambiguous option --ssl"},
		{name: "missing target", args: "6080", wantErr: "missing target_addr:target_port"},
		{name: "missing listen", args: "-v", wantErr: "missing [source_addr:]source_port"},
		{name: "too many", args: "6080 h:1 h:2", wantErr: "too many arguments"},
		{name: "bad port", args: "99999 h:1", wantErr: "invalid source port"},
		{name: "bad target", args: "6080 h", wantErr: "must be target_addr:target_port"},
		{name: "source without plugin", args: "--token-source /x 6080", wantErr: "--token-source needs --token-plugin"},
		{name: "missing value", args: "6080 h:1 --web", wantErr: "--web needs a value"},
		{name: "bad seconds", args: "--heartbeat soon 6080 h:1", wantErr: "--heartbeat soon"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, proc, err := parseWebsockify(splitArgs(tt.args))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseWebsockify(%q) error = %v, want %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseWebsockify(%q): %v", tt.args, err)
			}
			if cfg.Listen != tt.listen {
				t.Errorf("listen = %q, want %q", cfg.Listen, tt.listen)
			}
			switch {
			case tt.target != "" && (len(cfg.Targets) != 1 || cfg.Targets[0].Address != tt.target):
				t.Errorf("targets = %+v, want %q", cfg.Targets, tt.target)
			case tt.tokens != "" && (len(cfg.TokenFiles) != 1 || cfg.TokenFiles[0].Path != tt.tokens):
				t.Errorf("token files = %+v, want %q", cfg.TokenFiles, tt.tokens)
			}
			if _, diags := validate(cfg, nil); diags.HasErrors() {
				t.Errorf("config from %q does not validate: %v", tt.args, diags)
			}
			if tt.check != nil {
				tt.check(t, cfg, proc)
			}
		})
	}
}

// TestEveryWebsockifyOptionKnown keeps the option table complete: every
// option websockify 0.13 has (WEBSOCKIFY.md 1.2) is listed.
func TestEveryWebsockifyOptionKnown(t *testing.T) {
	all := []string{"--verbose", "-v", "--traffic", "--log-file", "--syslog", "--legacy-syslog",
		"--prefer-ipv6", "-6", "--unix-listen", "--unix-listen-mode", "--inetd", "--cert", "--key",
		"--key-password", "--ssl-only", "--verify-client", "--cafile", "--ssl-version", "--ssl-ciphers",
		"--unix-target", "--ssl-target", "--wrap-mode", "--target-config", "--token-plugin",
		"--token-source", "--host-token", "--auth-plugin", "--auth-source", "--web-auth", "--web",
		"--file-only", "--daemon", "-D", "--run-once", "--timeout", "--idle-timeout", "--heartbeat",
		"--record", "--libserver"}
	for _, name := range all {
		if findOption(name) == nil {
			t.Errorf("websockify option %s is not in the table", name)
		}
	}
}

// splitArgs splits a command line at spaces, keeping 'quoted words' whole.
func splitArgs(s string) []string {
	var args []string
	for i, part := range strings.Split(s, "'") {
		if i%2 == 1 {
			args = append(args, part)
			continue
		}
		args = append(args, strings.Fields(part)...)
	}
	return args
}
