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
}

var _ http.Handler = (*StaticFiles)(nil)

// NewStaticFiles opens dir. The caller closes it when done.
func NewStaticFiles(dir string) (*StaticFiles, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &StaticFiles{root: root}, nil
}

// Close releases the directory.
func (sf *StaticFiles) Close() error { return sf.root.Close() }

func (sf *StaticFiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	// noVNC pages carry tokens in their URLs.
	h.Set("Referrer-Policy", "no-referrer")
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
// backslashes, NUL and any segment that starts with a dot.
func staticName(p string) (string, bool) {
	if strings.ContainsAny(p, "\\\x00") {
		return "", false
	}
	for seg := range strings.SplitSeq(p, "/") {
		if strings.HasPrefix(seg, ".") {
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
