package bridge_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wsbridge/wsbridge/bridge"
)

func TestStaticFiles(t *testing.T) {
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "canary"), []byte("CANARY"), 0o600)
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "vnc.html"), []byte("<html>vnc</html>"), 0o600)
	os.WriteFile(filepath.Join(root, ".secret"), []byte("CANARY"), 0o600)
	os.Mkdir(filepath.Join(root, "app"), 0o700)
	os.WriteFile(filepath.Join(root, "app", "index.html"), []byte("app index"), 0o600)
	os.Mkdir(filepath.Join(root, "empty"), 0o700)
	os.Symlink(filepath.Join(outside, "canary"), filepath.Join(root, "link"))

	files, err := bridge.NewStaticFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { files.Close() })
	b := startBridge(t, static(deadAddr(t)), nil, &bridge.Options{Files: files})
	base := strings.Replace(b.url, "ws://", "http://", 1)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

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
		{"GET", "/.secret", 404, ""},
		{"GET", "/link", 404, ""},
		{"GET", "/../" + filepath.Base(outside) + "/canary", 404, ""},
		{"GET", "/%2e%2e/canary", 404, ""},
		{"GET", "/app/..%2f..%2fcanary", 404, ""},
		{"GET", "/app%5c..%5cvnc.html", 404, ""},
		{"GET", "/vnc.html%00", 404, ""},
		{"POST", "/vnc.html", 405, ""},
		{"GET", "/nope", 404, ""},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(tt.method, base+tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Errorf("%s %s: %v", tt.method, tt.path, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s %s: status %d, want %d", tt.method, tt.path, resp.StatusCode, tt.status)
		}
		if tt.body != "" && string(body) != tt.body {
			t.Errorf("%s %s: body %q, want %q", tt.method, tt.path, body, tt.body)
		}
		if strings.Contains(string(body), "CANARY") {
			t.Errorf("%s %s: the body holds a file from outside the root or a dotfile", tt.method, tt.path)
		}
		if resp.StatusCode == 301 && strings.Contains(resp.Header.Get("Location"), "//") {
			t.Errorf("%s %s: redirect to %q could leave the host", tt.method, tt.path, resp.Header.Get("Location"))
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s %s: missing nosniff or no-referrer headers", tt.method, tt.path)
		}
	}
}
