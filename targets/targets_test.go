package targets_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wsbridge/wsbridge/targets"
)

func TestParseTokenLine(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		token   string
		target  targets.Target
		wantErr string
	}{
		{name: "space", line: "desk1: 127.0.0.1:5901", token: "desk1", target: targets.Target{Network: "tcp", Address: "127.0.0.1:5901"}},
		{name: "tab", line: "desk1:\t127.0.0.1:5901", token: "desk1", target: targets.Target{Network: "tcp", Address: "127.0.0.1:5901"}},
		{name: "host name", line: "a: vnc.internal:5900", token: "a", target: targets.Target{Network: "tcp", Address: "vnc.internal:5900"}},
		{name: "bare v6", line: "a: ::1:5902", token: "a", target: targets.Target{Network: "tcp", Address: "[::1]:5902"}},
		{name: "bracketed v6", line: "a: [::1]:5902", token: "a", target: targets.Target{Network: "tcp", Address: "[::1]:5902"}},
		{name: "unix", line: "a: unix_socket:/run/vnc.sock", token: "a", target: targets.Target{Network: "unix", Address: "/run/vnc.sock"}},
		{name: "spaces around", line: "  a :   h:1  \r", token: "a", target: targets.Target{Network: "tcp", Address: "h:1"}},
		{name: "colon in token", line: "a:b: h:1", token: "a:b", target: targets.Target{Network: "tcp", Address: "h:1"}},
		{name: "comment", line: "# a: h:1"},
		{name: "indented comment", line: "   # note"},
		{name: "blank", line: "   "},
		{name: "no space", line: "a:h:1", wantErr: "space or tab"},
		{name: "no port", line: "a: h", wantErr: "want host:port"},
		{name: "bad port", line: "a: h:99999", wantErr: "invalid port"},
		{name: "zero port", line: "a: h:0", wantErr: "invalid port"},
		{name: "empty host", line: "a: :5900", wantErr: "empty host"},
		{name: "empty token", line: ": h:1", wantErr: "empty token"},
		{name: "relative unix", line: "a: unix_socket:x.sock", wantErr: "must be absolute"},
		{name: "NUL", line: "a\x00: h:1", wantErr: "NUL"},
		{name: "space in host", line: "a: h x:1", wantErr: "invalid host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token, target, err := targets.ParseTokenLine([]byte(tt.line))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseTokenLine(%q) error = %v, want %q", tt.line, err, tt.wantErr)
				}
				return
			}
			if err != nil || token != tt.token || target != tt.target {
				t.Fatalf("ParseTokenLine(%q) = %q, %+v, %v; want %q, %+v", tt.line, token, target, err, tt.token, tt.target)
			}
		})
	}
}

func TestParseTokensReportsLines(t *testing.T) {
	entries := map[string]targets.Target{}
	errs := targets.ParseTokens(strings.NewReader("a: h:1\nbad\n# c\nb: h:2\na: h:3\nworse: x\n"), "tokens", entries)
	if len(errs) != 2 || !strings.HasPrefix(errs[0].Error(), "tokens:2: ") || !strings.HasPrefix(errs[1].Error(), "tokens:6: ") {
		t.Errorf("errors = %v, want lines 2 and 6", errs)
	}
	if entries["a"].Address != "h:3" || entries["b"].Address != "h:2" || len(entries) != 2 {
		t.Errorf("entries = %v; the last line for a token should win", entries)
	}
}

func resolve(t *testing.T, r targets.Resolver, req targets.Request) (targets.Target, error) {
	t.Helper()
	return r.Resolve(context.Background(), req)
}

func TestTokenFileReloads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("a: h:1\n")
	var logs bytes.Buffer
	f := targets.NewTokenFile(path, slog.New(slog.NewTextHandler(&logs, nil)))
	if got, err := resolve(t, f, targets.Request{Token: "a"}); err != nil || got.Address != "h:1" {
		t.Fatalf("Resolve(a) = %v, %v", got, err)
	}
	if _, err := resolve(t, f, targets.Request{Token: "b"}); !errors.Is(err, targets.ErrNotFound) {
		t.Fatalf("Resolve(b) error = %v, want ErrNotFound", err)
	}

	// Same size, new content: the modification time or inode tells.
	write("b: h:2\n")
	future := time.Now().Add(time.Second)
	os.Chtimes(path, future, future)
	if got, err := resolve(t, f, targets.Request{Token: "b"}); err != nil || got.Address != "h:2" {
		t.Fatalf("after edit Resolve(b) = %v, %v", got, err)
	}
	if _, err := resolve(t, f, targets.Request{Token: "a"}); !errors.Is(err, targets.ErrNotFound) {
		t.Fatalf("after edit Resolve(a) error = %v, want ErrNotFound", err)
	}

	// A bad line is logged with its position; the good lines stay usable.
	write("b: h:2\nbroken\nc: h:3\n")
	if got, err := resolve(t, f, targets.Request{Token: "c"}); err != nil || got.Address != "h:3" {
		t.Fatalf("Resolve(c) = %v, %v", got, err)
	}
	if !strings.Contains(logs.String(), path+":2:") {
		t.Errorf("bad line not logged with its position: %s", logs.String())
	}

	// A vanished file keeps the last good map.
	os.Remove(path)
	if got, err := resolve(t, f, targets.Request{Token: "c"}); err != nil || got.Address != "h:3" {
		t.Fatalf("after remove Resolve(c) = %v, %v", got, err)
	}
}

func TestTokenDirectory(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "one"), []byte("a: h:1\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "two"), []byte("b: h:2\n"), 0o600)
	os.WriteFile(filepath.Join(dir, ".two.swp"), []byte("\x00garbage c: h:9\n"), 0o600)
	os.Mkdir(filepath.Join(dir, "sub"), 0o700)
	os.WriteFile(filepath.Join(dir, "sub", "three"), []byte("d: h:4\n"), 0o600)
	f := targets.NewTokenFile(dir, nil)
	if err := f.Load(); err != nil {
		t.Fatalf("Load: %v", err)
	}
	for tok, want := range map[string]string{"a": "h:1", "b": "h:2"} {
		if got, err := resolve(t, f, targets.Request{Token: tok}); err != nil || got.Address != want {
			t.Errorf("Resolve(%s) = %v, %v", tok, got, err)
		}
	}
	for _, tok := range []string{"c", "d"} {
		if _, err := resolve(t, f, targets.Request{Token: tok}); !errors.Is(err, targets.ErrNotFound) {
			t.Errorf("Resolve(%s) error = %v, want ErrNotFound (dotfiles and subdirectories are not read)", tok, err)
		}
	}
	// A file added to the directory is seen at the next lookup.
	os.WriteFile(filepath.Join(dir, "three"), []byte("e: h:5\n"), 0o600)
	if got, err := resolve(t, f, targets.Request{Token: "e"}); err != nil || got.Address != "h:5" {
		t.Errorf("Resolve(e) after adding a file = %v, %v", got, err)
	}
}

func TestTokenFileMissing(t *testing.T) {
	f := targets.NewTokenFile(filepath.Join(t.TempDir(), "nope"), nil)
	if err := f.Load(); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
	if _, err := resolve(t, f, targets.Request{Token: "a"}); err == nil || errors.Is(err, targets.ErrNotFound) {
		t.Fatalf("Resolve on a missing file = %v, want an error that is not ErrNotFound", err)
	}
}

func TestRouter(t *testing.T) {
	vnc := targets.Target{Name: "vnc", Network: "tcp", Address: "h:1"}
	ssh := targets.Target{Name: "ssh", Network: "tcp", Address: "h:2"}
	def := targets.Target{Name: "def", Network: "tcp", Address: "h:3"}
	r, err := targets.NewRouter([]targets.Route{{Path: "/vnc1", Target: vnc}, {Path: "/ssh/", Target: ssh}, {Target: def}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"/vnc1": "vnc", "/vnc1/": "vnc", "/ssh": "ssh", "/": "def", "/vnc": "def", "/vnc1/x": "def"} {
		if got, err := resolve(t, r, targets.Request{Path: path}); err != nil || got.Name != want {
			t.Errorf("Resolve(%q) = %v, %v; want %s", path, got, err, want)
		}
	}

	tokens := tokenMap{"t1": ssh}
	r, err = targets.NewRouter([]targets.Route{{Path: "/vnc1", Target: vnc}}, tokens)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		req  targets.Request
		want string // target name, or "" for ErrNotFound
	}{
		{targets.Request{Path: "/vnc1", Token: "t1"}, "vnc"},
		{targets.Request{Path: "/websockify", Token: "t1"}, "ssh"},
		{targets.Request{Path: "/websockify", Token: "t2"}, ""},
		{targets.Request{Path: "/websockify"}, ""},
	}
	for _, tt := range tests {
		wantRoute(t, r, tt.req, tt.want)
	}
}

// wantRoute checks that r resolves req to the target named want, or to
// ErrNotFound when want is "".
func wantRoute(t *testing.T, r targets.Resolver, req targets.Request, want string) {
	t.Helper()
	got, err := resolve(t, r, req)
	switch {
	case want == "" && !errors.Is(err, targets.ErrNotFound):
		t.Errorf("Resolve(%+v) = %v, %v; want ErrNotFound", req, got, err)
	case want != "" && (err != nil || got.Name != want):
		t.Errorf("Resolve(%+v) = %v, %v; want %s", req, got, err, want)
	}
}

func TestRouterRefuses(t *testing.T) {
	a := targets.Target{Name: "a", Network: "tcp", Address: "h:1"}
	tests := []struct {
		name   string
		routes []targets.Route
		tokens targets.Resolver
		want   string
	}{
		{"two fallbacks", []targets.Route{{Target: a}, {Target: a}}, nil, "two fallback targets"},
		{"same path", []targets.Route{{Path: "/x", Target: a}, {Path: "/x/", Target: a}}, nil, "routed to both"},
		{"relative path", []targets.Route{{Path: "x", Target: a}}, nil, "must start with /"},
		{"fallback with tokens", []targets.Route{{Target: a}}, tokenMap{}, "unknown tokens"},
	}
	for _, tt := range tests {
		if _, err := targets.NewRouter(tt.routes, tt.tokens); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: NewRouter error = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestChain(t *testing.T) {
	a := targets.Target{Name: "a"}
	b := targets.Target{Name: "b"}
	down := errors.New("source down")
	c := targets.Chain{tokenMap{"x": a}, failing{down}, tokenMap{"y": b}}
	if got, err := resolve(t, c, targets.Request{Token: "x"}); err != nil || got.Name != "a" {
		t.Errorf("Resolve(x) = %v, %v", got, err)
	}
	if _, err := resolve(t, c, targets.Request{Token: "y"}); !errors.Is(err, down) {
		t.Errorf("Resolve(y) error = %v; a failing source must stop the chain", err)
	}
	if _, err := resolve(t, targets.Chain{tokenMap{}}, targets.Request{Token: "z"}); !errors.Is(err, targets.ErrNotFound) {
		t.Errorf("Resolve(z) error = %v, want ErrNotFound", err)
	}
}

func TestParseAddress(t *testing.T) {
	good := map[string]targets.Target{
		"127.0.0.1:5900":   {Network: "tcp", Address: "127.0.0.1:5900"},
		"[::1]:5900":       {Network: "tcp", Address: "[::1]:5900"},
		"vnc.local:5900":   {Network: "tcp", Address: "vnc.local:5900"},
		"unix:/run/x.sock": {Network: "unix", Address: "/run/x.sock"},
	}
	for in, want := range good {
		if got, err := targets.ParseAddress(in); err != nil || got != want {
			t.Errorf("ParseAddress(%q) = %+v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "h", "::1:5900", "h:0", "h:65536", "unix:x", ":5900", "h:port"} {
		if got, err := targets.ParseAddress(in); err == nil {
			t.Errorf("ParseAddress(%q) = %+v, want an error", in, got)
		}
	}
}

// tokenMap is a Resolver over a fixed map, for router tests.
type tokenMap map[string]targets.Target

func (m tokenMap) Resolve(_ context.Context, r targets.Request) (targets.Target, error) {
	if t, ok := m[r.Token]; ok {
		return t, nil
	}
	return targets.Target{}, targets.ErrNotFound
}

type failing struct{ err error }

func (f failing) Resolve(context.Context, targets.Request) (targets.Target, error) {
	return targets.Target{}, f.err
}

func FuzzParseTokens(f *testing.F) {
	for _, s := range []string{
		"desk1: 127.0.0.1:5901\n", "a:\t[::1]:5902\n", "a: ::1:5902\n", "a: unix_socket:/run/x\n",
		"# c\n\nbad\n", "a:b: h:1\r\n", "a: h:99999\n", ": h:1\n", "a\x00: h:1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries := map[string]targets.Target{}
		targets.ParseTokens(bytes.NewReader(data), "fuzz", entries)
		for token, tg := range entries {
			if token == "" || strings.TrimSpace(token) != token {
				t.Fatalf("token %q kept its spaces or is empty", token)
			}
			if err := targets.CheckTargetForm(tg); err != nil {
				t.Fatalf("token %q: %v", token, err)
			}
		}
	})
}

func TestRouterHostsAndTokens(t *testing.T) {
	tg := func(name string) targets.Target { return targets.Target{Name: name, Network: "tcp", Address: "h:1"} }
	r, err := targets.NewRouter([]targets.Route{
		{Host: "desk1.example.com", Path: "/vnc", Target: tg("desk1-vnc")},
		{Host: "Desk1.Example.com.", Target: tg("desk1")},
		{Path: "/vnc", Target: tg("vnc")},
		{Token: "s3cret", Target: tg("static")},
	}, tokenMap{"dyn": tg("dynamic")})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		req  targets.Request
		want string
	}{
		{targets.Request{Host: "desk1.example.com:6080", Path: "/vnc"}, "desk1-vnc"},
		{targets.Request{Host: "DESK1.example.com.", Path: "/vnc/"}, "desk1-vnc"},
		{targets.Request{Host: "desk1.example.com", Path: "/other"}, "desk1"},
		{targets.Request{Host: "desk2.example.com", Path: "/vnc"}, "vnc"},
		{targets.Request{Host: "desk2.example.com", Path: "/", Token: "s3cret"}, "static"},
		{targets.Request{Host: "desk2.example.com", Path: "/", Token: "dyn"}, "dynamic"},
		{targets.Request{Host: "desk2.example.com", Path: "/", Token: "nope"}, ""},
		{targets.Request{Host: "desk2.example.com", Path: "/", Token: "../x"}, ""},
		{targets.Request{Host: "desk2.example.com", Path: "/"}, ""},
		{targets.Request{Host: "[::1]:6080", Path: "/"}, ""},
	}
	for _, tt := range tests {
		wantRoute(t, r, tt.req, tt.want)
	}
	// A token the router refuses never reaches the source.
	src := &counting{}
	r, _ = targets.NewRouter(nil, src)
	for _, tok := range []string{"a:b", "a/b", "..", "a\x00", strings.Repeat("x", targets.MaxJWTLen+1)} {
		if _, err := resolve(t, r, targets.Request{Token: tok}); !errors.Is(err, targets.ErrBadToken) {
			t.Errorf("Resolve(token %.20q) = %v, want ErrBadToken", tok, err)
		}
	}
	if src.n != 0 {
		t.Errorf("the source was asked %d times about malformed tokens", src.n)
	}
}

type counting struct{ n int }

func (c *counting) Resolve(context.Context, targets.Request) (targets.Target, error) {
	c.n++
	return targets.Target{}, targets.ErrNotFound
}

func TestRouterRefusesOverlaps(t *testing.T) {
	a := targets.Target{Name: "a", Network: "tcp", Address: "h:1"}
	tests := []struct {
		name   string
		routes []targets.Route
		want   string
	}{
		{"same host", []targets.Route{{Host: "x.example", Target: a}, {Host: "X.example.", Target: a}}, "routed to both"},
		{"same host and path", []targets.Route{{Host: "x", Path: "/a", Target: a}, {Host: "x", Path: "/a/", Target: a}}, "routed to both"},
		{"same token", []targets.Route{{Token: "t", Target: a}, {Token: "t", Target: a}}, "routed to both"},
		{"token with path", []targets.Route{{Token: "t", Path: "/a", Target: a}}, "cannot also have"},
		{"bad token", []targets.Route{{Token: "a:b", Target: a}}, "malformed token"},
		{"fallback with token route", []targets.Route{{Token: "t", Target: a}, {Target: a}}, "unknown tokens"},
		{"host with port", []targets.Route{{Host: "x:80", Target: a}}, "without port"},
	}
	for _, tt := range tests {
		if _, err := targets.NewRouter(tt.routes, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: NewRouter error = %v, want %q", tt.name, err, tt.want)
		}
	}
}
