package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExampleConfig(t *testing.T) {
	cfg, src, diags := loadConfig("../../bridge.hcl")
	if diags.HasErrors() {
		t.Fatalf("bridge.hcl: %v", diags)
	}
	st, diags := validate(cfg, src)
	if diags.HasErrors() {
		t.Fatalf("bridge.hcl: %v", diags)
	}
	var order []string
	for _, s := range st.sources {
		order = append(order, s.label())
	}
	if len(st.listeners) != 1 || st.listeners[0].address != "127.0.0.1:6080" || len(st.routes) != 5 || strings.Join(order, ",") !=
		`token_file "desktops",token_redis "fleet",token_jwt "signed",token_http "lookup",socket_dir "vms"` {
		t.Errorf("bridge.hcl decoded to listeners %v, %d routes, sources %q", st.listeners, len(st.routes), order)
	}
	// The example states every default: decoding it must change nothing
	// but the optional blocks (targets, sources, tls, auth, target_tls)
	// and http.hosts, which spells out what a loopback listener serves.
	want := defaultConfig()
	want.Targets, want.TokenFiles, want.TokenRedis, want.TokenJWT, want.TokenHTTP, want.SocketDirs =
		cfg.Targets, cfg.TokenFiles, cfg.TokenRedis, cfg.TokenJWT, cfg.TokenHTTP, cfg.SocketDirs
	want.TLS, want.Auth, want.TargetTLS = cfg.TLS, cfg.Auth, cfg.TargetTLS
	want.HTTP.Hosts = cfg.HTTP.Hosts
	if strings.Join(st.bridge.Hosts, " ") != strings.Join(loopbackHosts, " ") {
		t.Errorf("bridge.hcl hosts = %q, want the loopback default %q", st.bridge.Hosts, loopbackHosts)
	}
	if got, w := formatConfig(cfg), formatConfig(want); !bytes.Equal(got, w) {
		t.Errorf("bridge.hcl does not show the defaults:\n%s\nwant\n%s", got, w)
	}
}

func TestDefaults(t *testing.T) {
	st, diags := validate(embeddedConfig(), nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	b := st.bridge
	if len(st.listeners) != 1 || st.listeners[0].address != "127.0.0.1:6080" || b.DialTimeout != 10*time.Second || b.PingInterval != 25*time.Second ||
		b.PongTimeout != 15*time.Second || b.WriteTimeout != 30*time.Second || b.MessageLimit != 64<<10 ||
		b.MaxHeaderBytes != 16<<10 || b.HeaderTimeout != 10*time.Second || st.drain != 10*time.Second ||
		b.IdleTimeout != 0 || b.MaxLifetime != 0 || !b.RefuseNoOrigin || len(b.Origins) != 0 ||
		strings.Join(b.Hosts, " ") != "localhost 127.0.0.1 [::1]" || st.tls != nil || st.auth != nil ||
		b.MaxSessions != 0 || b.PerIPSessions != 16 || b.PerIPRate != 10 || b.PerIPBurst != 20 {
		t.Errorf("defaults differ from DESIGN.md section 5: %+v", st)
	}
	if len(st.routes) != 1 || st.routes[0].Target.Address != "127.0.0.1:5900" {
		t.Errorf("embedded target = %+v, want 127.0.0.1:5900", st.routes)
	}
}

func TestConfigDiagnostics(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // each must appear in the output
	}{
		{"unknown key", "bogus = 1\n", []string{"bridge.hcl:1:1: Unsupported argument"}},
		{"unknown block key", "session {\n  nope = \"1s\"\n}\n", []string{"bridge.hcl:2:3: Unsupported argument"}},
		{"bare number duration", "session {\n  dial_timeout = 10\n}\ntarget \"a\" {\n  address = \"h:1\"\n}\n",
			[]string{`bridge.hcl:2:18: Invalid session.dial_timeout: "10" is not a duration`}},
		{"bad size", "session {\n  message_limit = \"64XB\"\n}\ntarget \"a\" {\n  address = \"h:1\"\n}\n",
			[]string{`bridge.hcl:2:19: Invalid session.message_limit`}},
		{"size out of range", "http {\n  max_header_size = \"1B\"\n}\ntarget \"a\" {\n  address = \"h:1\"\n}\n",
			[]string{`bridge.hcl:2:21: Invalid http.max_header_size`}},
		{"zero dial timeout", "session {\n  dial_timeout = \"0s\"\n}\ntarget \"a\" {\n  address = \"h:1\"\n}\n",
			[]string{`bridge.hcl:2:18: Invalid session.dial_timeout: must be more than zero`}},
		{"duplicate block", "session {}\nsession {}\ntarget \"a\" {\n  address = \"h:1\"\n}\n", []string{"bridge.hcl:2:1: Duplicate session block"}},
		{"duplicate target", "target \"a\" {\n  address = \"h:1\"\n  path = \"/a\"\n}\ntarget \"a\" {\n  address = \"h:2\"\n  path = \"/b\"\n}\n",
			[]string{`bridge.hcl:5:1: Duplicate target "a"`}},
		{"same path", "target \"a\" {\n  address = \"h:1\"\n  path = \"/x\"\n}\ntarget \"b\" {\n  address = \"h:2\"\n  path = \"/x/\"\n}\n",
			[]string{`bridge.hcl:7:10: Invalid target "b" path: target "a" already takes the requests with this path`}},
		{"bad address", "target \"a\" {\n  address = \"nohost\"\n}\n", []string{`bridge.hcl:2:13: Invalid target "a" address`}},
		{"relative unix", "target \"a\" {\n  address = \"unix:x.sock\"\n}\n", []string{`bridge.hcl:2:13: Invalid target "a" address: unix socket path "x.sock" must be absolute`}},
		{"fallback with tokens", "target \"a\" {\n  address = \"h:1\"\n}\ntoken_file \"t\" {\n  path = \"/x\"\n}\n",
			[]string{`bridge.hcl:2:13: Invalid target "a": a target without path, host or token would take every request whose token is unknown`}},
		{"no target", "listen = \"127.0.0.1:1\"\n", []string{"No target"}},
		{"redis without allow", "token_redis \"r\" {\n  address = \"127.0.0.1:6379\"\n}\n",
			[]string{`bridge.hcl:1:1: Invalid token_redis "r" allow: this source names targets from outside the configuration`}},
		{"jwt without allow or algorithms", "token_jwt \"j\" {\n  key_file = \"/k\"\n}\n",
			[]string{`bridge.hcl:1:1: Invalid token_jwt "j" allow`, `bridge.hcl:2:14: Invalid token_jwt "j" algorithms: name the accepted algorithms`}},
		{"http bad url and allow", "token_http \"h\" {\n  url = \"http://x/t\"\n  allow = [\"10.0.0.1/8\"]\n}\n",
			[]string{`bridge.hcl:2:9: Invalid token_http "h" url: lookup URL "http://x/t" must hold exactly one %s`,
				`bridge.hcl:3:11: Invalid token_http "h" allow: allow "10.0.0.1/8"`}},
		{"empty allow", "token_http \"h\" {\n  url = \"http://x/%s\"\n  allow = []\n}\n", []string{`bridge.hcl:1:1: Invalid token_http "h" allow`}},
		{"bad style", "token_file \"t\" {\n  path = \"/t\"\n  style = \"csv\"\n}\n", []string{`bridge.hcl:3:11: Invalid token_file "t" style: "csv"`}},
		{"same host", "target \"a\" {\n  address = \"h:1\"\n  host = \"x.example\"\n}\ntarget \"b\" {\n  address = \"h:2\"\n  host = \"X.example.\"\n}\n",
			[]string{`bridge.hcl:7:10: Invalid target "b" host: target "a" already takes the requests with this host`}},
		{"same token", "target \"a\" {\n  address = \"h:1\"\n  token = \"t1\"\n}\ntarget \"b\" {\n  address = \"h:2\"\n  token = \"t1\"\n}\n",
			[]string{`bridge.hcl:7:11: Invalid target "b" token: target "a" already takes the requests with this token`}},
		{"token and path", "target \"a\" {\n  address = \"h:1\"\n  token = \"t1\"\n  path = \"/a\"\n}\n",
			[]string{`bridge.hcl:3:11: Invalid target "a" token: a target chosen by token cannot also have a path or host`}},
		{"bad static token", "target \"a\" {\n  address = \"h:1\"\n  token = \"a/b\"\n}\n", []string{`bridge.hcl:3:11: Invalid target "a" token`}},
		{"bad override", "target \"a\" {\n  address = \"h:1\"\n  dial_timeout = \"soon\"\n  message_limit = \"1XB\"\n}\n",
			[]string{`bridge.hcl:3:18: Invalid target.a.dial_timeout`, `bridge.hcl:4:19: Invalid target.a.message_limit`}},
		{"bad token place", "token {\n  from = \"header\"\n}\ntarget \"a\" {\n  address = \"h:1\"\n}\n", []string{`bridge.hcl:2:10: Invalid token.from: token place "header"`}},
		{"bad token path prefix", "token {\n  from = \"path\"\n  path_prefix = \"t/\"\n}\ntarget \"a\" {\n  address = \"h:1\"\n}\n",
			[]string{`bridge.hcl:3:17: Invalid token.path_prefix: token path prefix "t/" must start and end with /`}},
		{"relative socket dir", "socket_dir \"s\" {\n  path = \"run/vnc\"\n}\n", []string{`bridge.hcl:2:10: Invalid socket_dir "s" path`}},
		{"bad listen", "listen = \"127.0.0.1:x\"\ntarget \"a\" {\n  address = \"h:1\"\n}\n", []string{`bridge.hcl:1:10: Invalid listen`}},
		{"bad origin", "http {\n  origins = [\"[\"]\n}\ntarget \"a\" {\n  address = \"h:1\"\n}\n", []string{`bridge.hcl:2:13: Invalid http.origins`}},
		{"origin not canonical", "http {\n  origins = [\"HTTPS://X.example/\"]\n}\ntarget \"a\" {\n  address = \"h:1\"\n}\n", []string{`bridge.hcl:2:13: Invalid http.origins: origin "HTTPS://X.example/"`}},
		{"bad host", "http {\n  hosts = [\"vnc.example.com:6080\", \"*\"]\n}\ntarget \"a\" {\n  address = \"h:1\"\n}\n", []string{`bridge.hcl:2:11: Invalid http.hosts: "*" admits every host`}},
		{"host with port", "http {\n  hosts = [\"vnc.example.com:6080\"]\n}\ntarget \"a\" {\n  address = \"h:1\"\n}\n", []string{`bridge.hcl:2:11: Invalid http.hosts: host "vnc.example.com:6080": no port here`}},
		{"tls without cert", "tls {\n  min_version = \"1.1\"\n  require_client_cert = true\n}\ntarget \"a\" {\n  address = \"h:1\"\n}\n",
			[]string{`bridge.hcl:1:1: Invalid tls: no certificate`, `bridge.hcl:2:17: Invalid tls.min_version`, `bridge.hcl:3:25: Invalid tls.require_client_cert: needs client_ca`}},
		{"auth without a way", "auth {\n  require = true\n  allow = [\"alice\"]\n  web = true\n}\ntarget \"a\" {\n  address = \"h:1\"\n}\n",
			[]string{`bridge.hcl:1:1: Invalid auth: no way to authenticate`, `bridge.hcl:3:11: Invalid auth.allow: identity "alice"`, `bridge.hcl:4:9: Invalid auth.web: there is no web root`}},
		{"identities without auth", "target \"a\" {\n  address = \"h:1\"\n  identities = [\"user:alice\", \"group:x\"]\n}\n",
			[]string{`bridge.hcl:3:16: Invalid target "a" identities: identity "group:x"`, `bridge.hcl:3:16: Invalid target "a" identities: nothing authenticates requests`}},
		{"target tls both ways", "target \"a\" {\n  address = \"h:1\"\n  tls {\n    ca_file = \"/ca.pem\"\n    insecure_skip_verify = true\n  }\n}\n",
			[]string{`bridge.hcl:5:28: Invalid target.a.tls.insecure_skip_verify`}},
		{"missing cert file", "tls {\n  cert = \"/nonexistent/c.pem\"\n}\ntarget \"a\" {\n  address = \"h:1\"\n}\n", []string{`tls: `, `/nonexistent/c.pem`}},
		{"bad limits", "limits {\n  per_ip_sessions = -1\n  per_ip_rate = 5\n  per_ip_burst = 0\n  total_bandwidth_in = \"fast\"\n}\ntarget \"a\" {\n  address = \"h:1\"\n}\n",
			[]string{`bridge.hcl:2:21: Invalid limits.per_ip_sessions`, `bridge.hcl:4:18: Invalid limits.per_ip_burst`, `bridge.hcl:5:24: Invalid limits.total_bandwidth_in`}},
		{"bad target limits", "target \"a\" {\n  address = \"h:1\"\n  max_sessions = -2\n  bandwidth_out = \"1 lot\"\n}\n",
			[]string{`bridge.hcl:3:18: Invalid target "a" max_sessions`, `bridge.hcl:4:19: Invalid target.a.bandwidth_out`}},
		{"env unset", "web = env(\"WSBRIDGE_TEST_UNSET\")\n", []string{"bridge.hcl:1:7: Error in function call", "WSBRIDGE_TEST_UNSET is not set"}},
		{"every problem at once", "bogus = 1\nlisten = \"x\"\nsession {\n  linger = \"forever\"\n}\n",
			[]string{"bridge.hcl:1:1: Unsupported argument", "bridge.hcl:2:10: Invalid listen", "bridge.hcl:4:12: Invalid session.linger", "No target"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bridge.hcl")
			os.WriteFile(path, []byte(tt.src), 0o600)
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), []string{"check", "-config", path}, &stdout, &stderr)
			if code := exitCode(err, &stderr); code != 2 {
				t.Fatalf("exit %d, want 2; stderr:\n%s", code, stderr.String())
			}
			out := strings.ReplaceAll(stderr.String(), path, "bridge.hcl")
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("diagnostics lack %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestEnvFunction(t *testing.T) {
	t.Setenv("WSBRIDGE_TEST_ADDR", "127.0.0.1:5999")
	src := `target "a" {
  address = env("WSBRIDGE_TEST_ADDR")
}
web = env("WSBRIDGE_TEST_UNSET", "/srv/novnc")
`
	cfg, _, diags := parseConfig([]byte(src), "bridge.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if cfg.Targets[0].Address != "127.0.0.1:5999" || cfg.Web != "/srv/novnc" {
		t.Errorf("env() gave address %q, web %q", cfg.Targets[0].Address, cfg.Web)
	}
}

func TestCheckPrintsEffectiveConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bridge.hcl")
	os.WriteFile(path, []byte("session {\n  idle_timeout = \"5m\"\n}\ntarget \"a\" {\n  address = \"[::1]:5901\"\n  path = \"/a\"\n}\n"), 0o600)
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"check", "-config", path}, &stdout, &stderr); err != nil {
		t.Fatalf("check: %v\n%s", err, stderr.String())
	}
	out := stdout.String()
	for _, w := range []string{`idle_timeout       = "5m"`, `ping_interval      = "25s"`, `address = "[::1]:5901"`} {
		if !strings.Contains(out, w) {
			t.Errorf("effective config lacks %q:\n%s", w, out)
		}
	}
	// What check prints is itself a valid configuration with the same meaning.
	cfg, src, diags := parseConfig(stdout.Bytes(), "printed.hcl")
	if diags.HasErrors() {
		t.Fatalf("printed config does not parse: %v", diags)
	}
	if _, diags := validate(cfg, src); diags.HasErrors() {
		t.Fatalf("printed config does not validate: %v", diags)
	}
	if !bytes.Equal(formatConfig(cfg), stdout.Bytes()) {
		t.Errorf("printing the printed config changes it")
	}
}

func TestCheckReadsTokenFiles(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	os.WriteFile(tokens, []byte("good: 127.0.0.1:5901\nbad:127.0.0.1:5902\n"), 0o600)
	path := filepath.Join(dir, "bridge.hcl")
	os.WriteFile(path, []byte("token_file \"t\" {\n  path = \""+tokens+"\"\n}\n"), 0o600)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"check", "-config", path}, &stdout, &stderr)
	if exitCode(err, &stderr) != 2 || !strings.Contains(stderr.String(), tokens+":2: ") {
		t.Fatalf("check did not report the token file's line 2: %v\n%s", err, stderr.String())
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"help", "websockify"}, {"version"}, {"run", "-h"}, {"check", "-h"}} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, &stdout, &stderr)
		if code := exitCode(err, &stderr); code != 0 {
			t.Errorf("%q: exit %d", args, code)
		}
		if stdout.Len()+stderr.Len() == 0 {
			t.Errorf("%q printed nothing", args)
		}
	}
}

func FuzzConfig(f *testing.F) {
	example, _ := os.ReadFile("../../bridge.hcl")
	f.Add(example)
	f.Add([]byte("session {\n  dial_timeout = \"1s\"\n}\ntarget \"a\" {\n  address = \"h:1\"\n}\n"))
	f.Add([]byte("web = env(\"X\", \"y\")\n"))
	f.Add([]byte("target \"a\" {\n  address = \"unix:/x\"\n  path = \"/a/\"\n}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, s, diags := parseConfig(src, "fuzz.hcl")
		if cfg == nil || diags.HasErrors() {
			return
		}
		validate(cfg, s)
	})
}
