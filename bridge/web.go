package bridge

import (
	"io/fs"
	"net/http"
	"os"
	"path"
	"strings"
)

// StaticFiles serves files from a directory, for a noVNC page next to the
// bridge (websockify's --web). Every open goes through os.Root, so neither
// "..", nor a symbolic link, nor any other trick reaches a file outside the
// directory. There are no directory listings (a directory serves its
// index.html or 404), no dotfiles, and only GET and HEAD.
type StaticFiles struct {
	root *os.Root
	csp  string
}

var _ http.Handler = (*StaticFiles)(nil)

// DefaultCSP is the Content-Security-Policy of the web root: what noVNC
// needs (its scripts, styles and images from this host, WebSocket back to
// this host, canvas data: and blob: images) and nothing else; no framing.
const DefaultCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; media-src 'self' blob:; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// NewStaticFiles opens dir. csp is the Content-Security-Policy header, ""
// for DefaultCSP. The caller closes the StaticFiles when done.
func NewStaticFiles(dir, csp string) (*StaticFiles, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	if csp == "" {
		csp = DefaultCSP
	}
	return &StaticFiles{root: root, csp: csp}, nil
}

// Close releases the directory.
func (sf *StaticFiles) Close() error { return sf.root.Close() }

func (sf *StaticFiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	// noVNC pages carry tokens in their URLs.
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", sf.csp)
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, ok := staticName(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	f, err := sf.root.Open(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		http.NotFound(w, r)
		return
	}
	if fi.IsDir() {
		if !strings.HasSuffix(r.URL.Path, "/") {
			// A relative path keeps the redirect on this host, whatever the
			// request path looks like.
			http.Redirect(w, r, "./"+path.Base(r.URL.Path)+"/", http.StatusMovedPermanently)
			return
		}
		idx, err := sf.root.Open(path.Join(name, "index.html"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer idx.Close()
		if fi, err = idx.Stat(); err != nil || !fi.Mode().IsRegular() {
			http.NotFound(w, r)
			return
		}
		f = idx
	} else if !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
}

// staticName turns a URL path into a name inside the root, refusing
// backslashes, NUL and other control bytes, colons (drive letters and NTFS
// streams), Windows device names, and any segment that starts with a dot.
// The same rules hold on every system, so a web root behaves alike on all.
func staticName(p string) (string, bool) {
	for _, c := range []byte(p) {
		if c < 0x20 || c == 0x7f || c == '\\' || c == ':' {
			return "", false
		}
	}
	for seg := range strings.SplitSeq(p, "/") {
		if strings.HasPrefix(seg, ".") || windowsDevice(seg) {
			return "", false
		}
	}
	name := strings.TrimPrefix(path.Clean("/"+p), "/")
	if name == "" {
		name = "."
	}
	if !fs.ValidPath(name) {
		return "", false
	}
	return name, true
}

// windowsDevice reports whether seg names a Windows device (CON, NUL,
// COM1, ...), with or without an extension, and in any case.
func windowsDevice(seg string) bool {
	base, _, _ := strings.Cut(seg, ".")
	base = strings.ToUpper(strings.TrimRight(base, " "))
	switch base {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	rest, ok := strings.CutPrefix(base, "COM")
	if !ok {
		rest, ok = strings.CutPrefix(base, "LPT")
	}
	switch {
	case !ok:
		return false
	case len(rest) == 1:
		return rest[0] >= '0' && rest[0] <= '9'
	}
	return rest == "¹" || rest == "²" || rest == "³"
}
