package targets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// FileNameTokens is websockify's TokenFileName source: in a directory, the
// name of each file is a token and its content the target ("host:port",
// "[v6]:port" or "unix_socket:/path"). Files are opened through os.Root,
// so a link that leads out of the directory is not followed, and the token
// rules of CheckToken keep every token a plain file name. Dotfiles are
// skipped. A FileNameTokens is safe for concurrent use.
type FileNameTokens struct {
	dir   string
	allow *Allowlist
}

var _ Resolver = (*FileNameTokens)(nil)

// NewFileNameTokens returns the source over dir. allow, when not nil, limits
// the targets the files may name.
func NewFileNameTokens(dir string, allow *Allowlist) *FileNameTokens {
	return &FileNameTokens{dir: dir, allow: allow}
}

// Check opens the directory, for a start-time error that names it.
func (f *FileNameTokens) Check() error {
	root, err := os.OpenRoot(f.dir)
	if err != nil {
		return err
	}
	return root.Close()
}

// Resolve implements Resolver with the request's token.
func (f *FileNameTokens) Resolve(_ context.Context, r Request) (Target, error) {
	if err := CheckToken(r.Token, MaxTokenLen); err != nil {
		return Target{}, err
	}
	if strings.HasPrefix(r.Token, ".") {
		return Target{}, fmt.Errorf("token names a dotfile: %w", ErrNotFound)
	}
	root, err := os.OpenRoot(f.dir)
	if err != nil {
		return Target{}, fmt.Errorf("token directory: %w: %w", err, ErrUnavailable)
	}
	defer root.Close()
	fh, err := root.Open(r.Token)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Target{}, fmt.Errorf("no token file in %s: %w", f.dir, ErrNotFound)
		}
		// Escapes from the root and unreadable files land here: refuse,
		// and say why in the log, without the path, which is the token.
		return Target{}, fmt.Errorf("token file in %s: %w: %w", f.dir, pathErrCause(err), ErrNotFound)
	}
	defer fh.Close()
	if fi, err := fh.Stat(); err != nil || !fi.Mode().IsRegular() {
		return Target{}, fmt.Errorf("token file in %s is not a regular file: %w", f.dir, ErrNotFound)
	}
	b, err := io.ReadAll(io.LimitReader(fh, 4096))
	if err != nil {
		return Target{}, fmt.Errorf("token file in %s: %w: %w", f.dir, pathErrCause(err), ErrNotFound)
	}
	t, err := parseTokenTarget(strings.TrimSpace(string(b)))
	if err != nil {
		return Target{}, fmt.Errorf("token file in %s: %w: %w", f.dir, err, ErrNotFound)
	}
	t.Allow = f.allow
	return t, nil
}

// SocketDir is websockify's UnixDomainSocketDirectory source: the token is
// the name of a Unix socket in a directory. websockify checked containment
// with a bare string prefix, so "/run/vnc-other/x" passed for "/run/vnc";
// here the token is one plain file name (CheckToken), the socket must be a
// socket and not a symbolic link, and the dial checks the path again. A
// SocketDir is safe for concurrent use.
type SocketDir struct {
	dir   string
	allow *Allowlist
}

var _ Resolver = (*SocketDir)(nil)

// NewSocketDir returns the source over dir, which must be absolute.
func NewSocketDir(dir string) (*SocketDir, error) {
	dir = filepath.Clean(dir)
	allow, err := ParseAllowlist([]string{"unix:" + dir})
	if err != nil {
		return nil, err
	}
	return &SocketDir{dir: dir, allow: allow}, nil
}

// Check looks at the directory, for a start-time error that names it.
func (s *SocketDir) Check() error {
	fi, err := os.Stat(s.dir)
	if err == nil && !fi.IsDir() {
		err = fmt.Errorf("%s is not a directory", s.dir)
	}
	return err
}

// Resolve implements Resolver with the request's token.
func (s *SocketDir) Resolve(_ context.Context, r Request) (Target, error) {
	if err := CheckToken(r.Token, MaxTokenLen); err != nil {
		return Target{}, err
	}
	path := filepath.Join(s.dir, r.Token)
	fi, err := os.Lstat(path)
	if err != nil {
		return Target{}, fmt.Errorf("no socket in %s: %w", s.dir, ErrNotFound)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return Target{}, fmt.Errorf("token names a %s in %s, not a socket: %w", fi.Mode().Type(), s.dir, ErrNotFound)
	}
	// The socket's name is the token: logs name the directory only.
	return Target{Network: "unix", Address: path, Allow: s.allow, Label: "unix:" + filepath.Join(s.dir, "(token)")}, nil
}

// pathErrCause drops the path from a file error: in a token directory the
// path holds the token, which must not reach a log.
func pathErrCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
