package targets

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// TokenFile resolves the request token through a websockify token file, or
// through every file in a directory of them. The format is websockify's:
//
//	# comment
//	desk1: 127.0.0.1:5901
//	desk2:	[::1]:5902
//	desk3: ::1:5903
//	local: unix_socket:/run/vnc/desk.sock
//
// A token is separated from its target by a colon followed by a space or a
// tab. Blank lines and lines starting with # are skipped.
//
// The files are checked on every lookup and read again when their size,
// modification time or inode changed (or, for a directory, when a file came
// or went), so edits take effect for the next connection without a restart.
// A line that does not parse is logged with its file and line number and
// skipped; the other lines still work, as in websockify. In a directory,
// files whose names start with "." are skipped (editor swap files), which
// websockify does not do.
//
// A TokenFile is safe for concurrent use.
type TokenFile struct {
	path   string
	logger *slog.Logger

	mu      sync.Mutex
	sig     []fileSig
	loaded  bool
	entries map[string]Target
}

var _ Resolver = (*TokenFile)(nil)

// NewTokenFile returns a resolver over the token file or directory at path.
// Nothing is read until Load or the first Resolve. logger receives the
// syntax errors found when a changed file is read; nil discards them.
func NewTokenFile(path string, logger *slog.Logger) *TokenFile {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &TokenFile{path: path, logger: logger}
}

// Load reads the files now. It returns every problem joined together: a
// path or file that cannot be read as an *fs.PathError, each syntax error as
// "file:line: message". The lines that parsed are in use either way.
func (f *TokenFile) Load() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, err := f.refresh()
	return err
}

// Resolve implements Resolver with the request's token.
func (f *TokenFile) Resolve(_ context.Context, r Request) (Target, error) {
	if err := CheckToken(r.Token, MaxTokenLen); err != nil {
		return Target{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	changed, err := f.refresh()
	if changed && err != nil {
		f.logger.Error("token file has errors; the lines that parsed are in use", "path", f.path, "err", err)
	}
	if !f.loaded {
		return Target{}, fmt.Errorf("token file %s: %w", f.path, err)
	}
	t, ok := f.entries[r.Token]
	if !ok {
		return Target{}, fmt.Errorf("token not in %s: %w", f.path, ErrNotFound)
	}
	return t, nil
}

// fileSig identifies one version of one file without reading it.
type fileSig struct {
	name  string
	size  int64
	mtime time.Time
	ino   uint64
}

// refresh reads the files again if they changed. It reports whether they
// changed, and the errors of the read. Callers hold f.mu.
func (f *TokenFile) refresh() (changed bool, err error) {
	sig, err := f.signature()
	if err != nil {
		if f.loaded {
			// Keep serving the last good map when the path vanishes for a
			// moment, as it does while some editors and deploy tools
			// replace a file.
			return false, err
		}
		return true, err
	}
	if f.loaded && slices.Equal(sig, f.sig) {
		return false, nil
	}
	entries, err := readTokenFiles(sig)
	f.entries, f.sig, f.loaded = entries, sig, true
	return true, err
}

func (f *TokenFile) signature() ([]fileSig, error) {
	fi, err := os.Stat(f.path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return []fileSig{statSig(f.path, fi)}, nil
	}
	des, err := os.ReadDir(f.path)
	if err != nil {
		return nil, err
	}
	sig := make([]fileSig, 0, len(des))
	for _, de := range des {
		if strings.HasPrefix(de.Name(), ".") {
			continue
		}
		name := filepath.Join(f.path, de.Name())
		fi, err := os.Stat(name) // follows symlinks, as websockify's open does
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		sig = append(sig, statSig(name, fi))
	}
	return sig, nil
}

func readTokenFiles(files []fileSig) (map[string]Target, error) {
	entries := make(map[string]Target)
	var errs []error
	for _, fs := range files {
		fh, err := os.Open(fs.name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, ParseTokens(fh, fs.name, entries)...)
		fh.Close()
	}
	return entries, errors.Join(errs...)
}

// MaxTokenLine is the longest line a token file may hold.
const MaxTokenLine = 64 << 10

// ParseTokens reads websockify token lines from r into entries (a later line
// for the same token wins, as in websockify) and returns one error per bad
// line, each prefixed with "name:line: ".
func ParseTokens(r io.Reader, name string, entries map[string]Target) []error {
	var errs []error
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxTokenLine)
	line := 0
	for sc.Scan() {
		line++
		token, t, err := ParseTokenLine(sc.Bytes())
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", name, line, err))
			continue
		}
		if token != "" {
			entries[token] = t
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s:%d: %w", name, line+1, err))
	}
	return errs
}

// ParseTokenLine parses one line of a token file. It returns an empty token
// and no error for blank lines and comments.
func ParseTokenLine(b []byte) (token string, t Target, err error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] == '#' {
		return "", Target{}, nil
	}
	if bytes.IndexByte(b, 0) >= 0 {
		return "", Target{}, errors.New("NUL byte in line")
	}
	sep := -1
	for i := 0; i+1 < len(b); i++ {
		if b[i] == ':' && (b[i+1] == ' ' || b[i+1] == '\t') {
			sep = i
			break
		}
	}
	if sep < 0 {
		return "", Target{}, errors.New(`want "token: host:port" (a space or tab after the token's colon)`)
	}
	token = string(bytes.TrimSpace(b[:sep]))
	if token == "" {
		return "", Target{}, errors.New("empty token")
	}
	t, err = parseTokenTarget(string(bytes.TrimSpace(b[sep+1:])))
	if err != nil {
		return "", Target{}, err
	}
	return token, t, nil
}

// parseTokenTarget accepts websockify's target forms: host:port, [v6]:port,
// v6:port split at the last colon, and unix_socket:/path.
func parseTokenTarget(s string) (Target, error) {
	if path, ok := strings.CutPrefix(s, "unix_socket:"); ok {
		if !strings.HasPrefix(path, "/") {
			return Target{}, fmt.Errorf("unix socket path %q must be absolute", path)
		}
		return Target{Network: "unix", Address: path}, nil
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return Target{}, fmt.Errorf("target %q: want host:port", s)
	}
	host, port := s[:i], s[i+1:]
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	t, err := hostPort(host, port)
	if err != nil {
		return Target{}, fmt.Errorf("target %q: %w", s, err)
	}
	return t, nil
}
