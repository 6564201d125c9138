package targets_test

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wsbridge/wsbridge/internal/testenv"
	"github.com/wsbridge/wsbridge/targets"
)

func TestAllowlist(t *testing.T) {
	a, err := targets.ParseAllowlist([]string{
		"10.0.0.0/8:5900-5999", "127.0.0.1:22,2222", "[fd00::/8]:22", "192.168.1.0/24", "::1",
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		want bool
	}{
		{"10.1.2.3:5900", true},
		{"10.1.2.3:5999", true},
		{"10.1.2.3:6000", false},
		{"11.0.0.1:5900", false},
		{"127.0.0.1:22", true},
		{"127.0.0.1:2222", true},
		{"127.0.0.1:23", false},
		{"127.0.0.2:22", false},
		{"[fd12::1]:22", true},
		{"[fd12::1]:23", false},
		{"[fe80::1]:22", false},
		{"192.168.1.200:1", true},
		{"[::ffff:192.168.1.7]:80", true}, // IPv4-mapped is the IPv4 address
		{"[::1]:65535", true},
		{"169.254.169.254:80", false},
	}
	for _, tt := range tests {
		if got := a.AllowsAddr(netip.MustParseAddrPort(tt.addr)); got != tt.want {
			t.Errorf("AllowsAddr(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	for _, bad := range []string{"", "10.0.0.1/8", "10.0.0.0/8:", "10.0.0.0/8:0", "10.0.0.0/8:99999", "h:22",
		"10.0.0.0/8:5999-5900", "[::1", "[::1]22", "unix:relative", "unix:/a/../b", "10.0.0.0/33"} {
		if _, err := targets.ParseAllowlist([]string{bad}); err == nil {
			t.Errorf("ParseAllowlist(%q) accepted it", bad)
		}
	}
}

func TestDialChecksResolvedAddress(t *testing.T) {
	accepted := make(chan struct{}, 10)
	addr := testenv.Listen(t, "tcp", "127.0.0.1:0", func(net.Conn) { accepted <- struct{}{} })
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	allowOther, _ := targets.ParseAllowlist([]string{"10.0.0.0/8"})
	allowHere, _ := targets.ParseAllowlist([]string{"127.0.0.0/8:" + strconv.Itoa(port)})
	// "localhost" resolves to 127.0.0.1 (and maybe ::1): the check sees
	// the resolved address, not the name.
	tgt := targets.Target{Network: "tcp", Address: net.JoinHostPort("localhost", strconv.Itoa(port)), Allow: allowOther}
	if c, err := tgt.Dial(t.Context(), 2*time.Second); !errors.Is(err, targets.ErrNotAllowed) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("Dial to a name resolving outside the allowlist: %v, want ErrNotAllowed", err)
	}
	if !errors.Is(targets.ErrNotAllowed, targets.ErrNotFound) {
		t.Error("ErrNotAllowed must answer like an unknown token")
	}
	tgt.Address = addr
	tgt.Allow = allowHere
	c, err := tgt.Dial(t.Context(), 2*time.Second)
	if err != nil {
		t.Fatalf("Dial inside the allowlist: %v", err)
	}
	c.Close()
	<-accepted
	select {
	case <-accepted:
		t.Error("the refused dial reached the listener")
	default:
	}
}

func TestUnixContainment(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "vnc")
	evil := filepath.Join(base, "vnc-evil")
	for _, d := range []string{dir, evil, filepath.Join(dir, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	good := listenUnix(t, filepath.Join(dir, "a.sock"))
	deep := listenUnix(t, filepath.Join(dir, "sub", "b.sock"))
	outside := listenUnix(t, filepath.Join(evil, "x.sock"))
	if err := os.Symlink(outside, filepath.Join(dir, "link.sock")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(evil, filepath.Join(dir, "linkdir")); err != nil {
		t.Fatal(err)
	}
	a, err := targets.ParseAllowlist([]string{"unix:" + dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{good, deep} {
		if err := a.CheckUnix(p); err != nil {
			t.Errorf("CheckUnix(%s) = %v, want allowed", p, err)
		}
		c, err := (targets.Target{Network: "unix", Address: p, Allow: a}).Dial(t.Context(), time.Second)
		if err != nil {
			t.Errorf("Dial(%s) = %v", p, err)
		} else {
			c.Close()
		}
	}
	for _, p := range []string{
		outside,                              // prefix trick: /x/vnc-evil starts with /x/vnc
		filepath.Join(dir, "link.sock"),      // symlink out
		filepath.Join(dir, "linkdir/x.sock"), // through a symlinked directory
		dir + "/../vnc-evil/x.sock",          // .. (not clean)
		dir,                                  // the directory itself
		"relative.sock",
	} {
		if err := a.CheckUnix(p); !errors.Is(err, targets.ErrNotAllowed) {
			t.Errorf("CheckUnix(%s) = %v, want ErrNotAllowed", p, err)
		}
		if c, err := (targets.Target{Network: "unix", Address: p, Allow: a}).Dial(t.Context(), time.Second); err == nil {
			c.Close()
			t.Errorf("Dial(%s) connected", p)
		}
	}
	tcpOnly, _ := targets.ParseAllowlist([]string{"127.0.0.0/8"})
	if err := tcpOnly.CheckUnix(good); !errors.Is(err, targets.ErrNotAllowed) {
		t.Errorf("a list without unix entries allowed %s: %v", good, err)
	}
}

// listenUnix listens on a Unix socket at path for the test's life.
func listenUnix(t *testing.T, path string) string {
	t.Helper()
	return testenv.Listen(t, "unix", path, func(net.Conn) {})
}

func TestCheckToken(t *testing.T) {
	good := []string{"abc", "desk1.example.com", "a-b_c~d+e=f@g", strings.Repeat("x", targets.MaxTokenLen), "eyJhbGciOi.eyJob3N0Ij.sig"}
	for _, tok := range good {
		if err := targets.CheckToken(tok, targets.MaxTokenLen); err != nil {
			t.Errorf("CheckToken(%q) = %v", tok, err)
		}
	}
	bad := []string{"", "a:b", "a/b", `a\b`, "a\x00b", "..", "a..b", "../etc/passwd", "a b", "a%2fb", "a\nb", "é",
		"a?b", "a#b", "a;b", "a,b", "*", strings.Repeat("x", targets.MaxTokenLen+1)}
	for _, tok := range bad {
		err := targets.CheckToken(tok, targets.MaxTokenLen)
		if !errors.Is(err, targets.ErrBadToken) || !errors.Is(err, targets.ErrNotFound) {
			t.Errorf("CheckToken(%q) = %v, want ErrBadToken", tok, err)
		}
	}
}

// TestRestrictTokenFile keeps a token file's Unix sockets inside the
// directory its allowlist names.
func TestRestrictTokenFile(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "vnc")
	os.MkdirAll(dir, 0o755)
	os.MkdirAll(dir+"-evil", 0o755)
	inside := listenUnix(t, filepath.Join(dir, "a.sock"))
	outside := listenUnix(t, filepath.Join(dir+"-evil", "b.sock"))
	tokens := filepath.Join(base, "tokens")
	os.WriteFile(tokens, []byte("in: unix_socket:"+inside+"\nout: unix_socket:"+outside+"\ndots: unix_socket:"+dir+"/../vnc-evil/b.sock\n"), 0o600)
	allow, _ := targets.ParseAllowlist([]string{"unix:" + dir})
	r := targets.Restrict(targets.NewTokenFile(tokens, nil), allow)
	for tok, ok := range map[string]bool{"in": true, "out": false, "dots": false} {
		tg, err := r.Resolve(t.Context(), targets.Request{Token: tok})
		if err != nil {
			t.Fatalf("Resolve(%s): %v", tok, err)
		}
		c, err := tg.Dial(t.Context(), time.Second)
		if ok != (err == nil) {
			t.Errorf("Dial(%s -> %s) = %v, want allowed %v", tok, tg.Address, err, ok)
		}
		if c != nil {
			c.Close()
		}
	}
}
