package bridge

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzStaticPath serves arbitrary paths from a web root with a canary
// outside it and in a dotfile: no answer may carry the canary, and every
// name staticName accepts is a plain path inside the root.
func FuzzStaticPath(f *testing.F) {
	for _, seed := range []string{
		"/vnc.html", "/../canary", "/%2e%2e/canary", "/..\\canary", "/.git/config", "/link",
		"/app/up/canary", "/CON", "/c:/x", "/a/./b/../../../canary", "/vnc.html\x00", "//x",
	} {
		f.Add(seed)
	}
	outside := f.TempDir()
	os.WriteFile(filepath.Join(outside, "canary"), []byte("CANARY"), 0o600)
	root := f.TempDir()
	os.WriteFile(filepath.Join(root, "vnc.html"), []byte("page"), 0o600)
	os.WriteFile(filepath.Join(root, ".hidden"), []byte("CANARY"), 0o600)
	os.Mkdir(filepath.Join(root, "app"), 0o700)
	os.Symlink(outside, filepath.Join(root, "app", "up"))
	os.Symlink(filepath.Join(outside, "canary"), filepath.Join(root, "link"))
	sf, err := NewStaticFiles(root, "")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { sf.Close() })

	f.Fuzz(func(t *testing.T, p string) {
		if name, ok := staticName(p); ok {
			if !fs.ValidPath(name) || strings.ContainsAny(name, "\\:\x00") {
				t.Fatalf("staticName(%q) = %q, not a plain path", p, name)
			}
			for seg := range strings.SplitSeq(name, "/") {
				if seg != "." && strings.HasPrefix(seg, ".") {
					t.Fatalf("staticName(%q) = %q, with a dot segment", p, name)
				}
			}
		}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.URL.Path = p
		w := httptest.NewRecorder()
		sf.ServeHTTP(w, r)
		if strings.Contains(w.Body.String(), "CANARY") {
			t.Fatalf("GET %q served the canary", p)
		}
		if loc := w.Header().Get("Location"); strings.HasPrefix(loc, "//") || strings.Contains(loc, "://") || strings.Contains(loc, "\\") {
			t.Fatalf("GET %q redirects to %q", p, loc)
		}
	})
}

// FuzzDoor parses arbitrary Origin values and patterns: a parsed origin
// is always in the form browsers send, and a pattern only ever matches
// origins of its own scheme and port.
func FuzzDoor(f *testing.F) {
	for _, s := range []string{"https://a.example", "http://[::1]:8080", "null", "HTTPS://A", "https://a.example.", "https://*.corp.example:8443", "ws://x:0"} {
		f.Add(s, "https://*.example")
	}
	f.Fuzz(func(t *testing.T, o, p string) {
		if got, ok := parseOrigin(o); ok {
			if o != strings.ToLower(o) || strings.HasSuffix(got.host, ".") || strings.ContainsAny(got.host, "/@?#") {
				t.Fatalf("parseOrigin(%q) accepted %+v", o, got)
			}
			if pat, err := parseOriginPattern(p); err == nil && pat.match(got) {
				if pat.o.scheme != got.scheme || pat.o.port != got.port {
					t.Fatalf("pattern %q matched %q across scheme or port", p, o)
				}
				if !pat.wild && got.host != pat.o.host {
					t.Fatalf("pattern %q matched %q", p, o)
				}
			}
		}
		if h, err := parseHostPattern(p); err == nil && h.match(o) && !h.wildcard && o != p {
			t.Fatalf("host pattern %q matched %q", p, o)
		}
	})
}
