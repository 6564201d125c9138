package bridge_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wsbridge/wsbridge/bridge"
)

// webRoot makes a web root with a canary file outside it, a dotfile
// and a .git directory holding the canary, and symbolic links out.
func webRoot(t testing.TB) string {
	t.Helper()
	outside := t.TempDir()
	write := func(p, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(outside, "canary"), "CANARY")
	root := t.TempDir()
	write(filepath.Join(root, "vnc.html"), "<html>vnc</html>")
	write(filepath.Join(root, ".secret"), "CANARY")
	write(filepath.Join(root, ".git", "config"), "CANARY")
	write(filepath.Join(root, "app", "index.html"), "app index")
	os.Mkdir(filepath.Join(root, "empty"), 0o700)
	os.Symlink(filepath.Join(outside, "canary"), filepath.Join(root, "link"))
	os.Symlink(outside, filepath.Join(root, "linkdir"))
	os.Symlink(outside, filepath.Join(root, "app", "up"))
	return root
}

// rawGet sends one request with target written as is, so that no client
// cleans the path first, and returns the answer with its body.
func rawGet(t testing.TB, addr, method, target string, header ...string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req := method + " " + target + " HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n"
	for _, h := range header {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %q: %v", method, target, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// webBridge serves webRoot with opts (nil for defaults) and returns the
// bridge's address.
func webBridge(t testing.TB, opts *bridge.Options) string {
	t.Helper()
	files, err := bridge.NewStaticFiles(webRoot(t), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { files.Close() })
	o := bridge.Options{}
	if opts != nil {
		o = *opts
	}
	o.Files = files
	b := startBridge(t, static(deadAddr(t)), nil, &o)
	return strings.TrimPrefix(b.url, "ws://")
}

func TestStaticFiles(t *testing.T) {
	addr := webBridge(t, nil)

	tests := []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/vnc.html", 200, "<html>vnc</html>"},
		{"HEAD", "/vnc.html", 200, ""},
		{"GET", "/app/", 200, "app index"},
		{"GET", "/app", 301, ""},
		{"GET", "/", 404, ""},
		{"GET", "/empty/", 404, ""},
		{"POST", "/vnc.html", 405, ""},
		{"PUT", "/vnc.html", 405, ""},
		{"OPTIONS", "/vnc.html", 405, ""},
		{"GET", "/nope", 404, ""},
	}
	for _, tt := range tests {
		resp, body := rawGet(t, addr, tt.method, tt.path)
		if resp.StatusCode != tt.status {
			t.Errorf("%s %s: status %d, want %d", tt.method, tt.path, resp.StatusCode, tt.status)
		}
		if tt.body != "" && body != tt.body {
			t.Errorf("%s %s: body %q, want %q", tt.method, tt.path, body, tt.body)
		}
		h := resp.Header
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" || h.Get("Content-Security-Policy") != bridge.DefaultCSP {
			t.Errorf("%s %s: missing nosniff, no-referrer or CSP headers: %v", tt.method, tt.path, h)
		}
		if loc := h.Get("Location"); loc != "" && (strings.Contains(loc, "//") || strings.Contains(loc, "\\")) {
			t.Errorf("%s %s: redirect to %q could leave the host", tt.method, tt.path, loc)
		}
	}
}

// traversal is the corpus of paths that try to leave the web root or reach
// what it hides.
var traversal = []string{
	"/../canary", "/..%2fcanary", "/%2e%2e/canary", "/%2e%2e%2fcanary", "/%2E%2E/canary",
	"/%252e%252e/canary", "/%252e%252e%252fcanary", "/..\\canary", "/%5c..%5ccanary",
	"/app/..%5c..%5ccanary", "/app/../../canary", "/./../canary", "/....//canary", "/..;/canary",
	"/%c0%ae%c0%ae/canary", "/%u002e%u002e/canary", "/app/up/canary", "/linkdir/canary", "/link",
	"/vnc.html%00", "/vnc.html%00.png", "/%00/canary", "/.secret", "/.git/config", "/.git/",
	"/app/.%2e/.%2e/canary", "/CON", "/con.txt", "/app/NUL", "/aux.html", "/COM1", "/lpt9.txt",
	"/vnc.html::$DATA", "/C:/canary", "/c:%5ccanary", "//etc/passwd", "/%2fetc%2fpasswd",
	"/vnc.html%0d%0aSet-Cookie:x=1", "/app%5c..%5cvnc.html",
}

func TestStaticTraversal(t *testing.T) {
	addr := webBridge(t, nil)
	for _, p := range traversal {
		for _, method := range []string{"GET", "HEAD"} {
			resp, body := rawGet(t, addr, method, p)
			if resp.StatusCode < 400 || resp.StatusCode > 499 {
				t.Errorf("%s %q: status %d, want 4xx", method, p, resp.StatusCode)
			}
			if strings.Contains(body, "CANARY") {
				t.Errorf("%s %q: the body holds a hidden file or one outside the root", method, p)
			}
			if resp.Header.Get("Set-Cookie") != "" {
				t.Errorf("%s %q: a header was injected", method, p)
			}
		}
	}
}
