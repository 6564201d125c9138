// Package authfile reads the credential files wsbridge authenticates with:
// an htpasswd file of bcrypt hashes for HTTP Basic, and a file of named
// bearer tokens. Both are re-read when they change, at most once a second,
// and a version that does not parse leaves the previous one in use.
package authfile

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// file re-reads a credential file when its contents change, checked at
// most once per second.
type file[T any] struct {
	path  string
	parse func([]byte) (T, error)
	log   *slog.Logger

	mu      sync.Mutex
	val     T
	sum     [32]byte // of the contents val came from, or of the last that failed
	checked time.Time
}

// load reads the file if its contents changed since the last load.
func (f *file[T]) load() error {
	data, err := os.ReadFile(f.path)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	if sum == f.sum {
		return nil
	}
	// A version that fails is reported once, not every second.
	f.sum = sum
	v, err := f.parse(data)
	if err != nil {
		return fmt.Errorf("%s: %w", f.path, err)
	}
	f.val = v
	return nil
}

// current returns the contents, re-read if the file changed.
func (f *file[T]) current() T {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if now.Sub(f.checked) < time.Second {
		return f.val
	}
	f.checked = now
	if err := f.load(); err != nil {
		f.log.Error("credential file changed but does not load; the previous version stays in use", "err", err)
	}
	return f.val
}

// Htpasswd checks HTTP Basic credentials against an htpasswd file of
// bcrypt hashes ("user:$2y$..." lines, as `htpasswd -B` writes them).
// Checked passwords are remembered (as a SHA-256, until the file changes)
// so that a browser reconnecting does not cost a bcrypt each time.
type Htpasswd struct {
	f *file[map[string][]byte]

	mu   sync.Mutex
	good map[[32]byte]struct{} // hashes of user, password and bcrypt hash that matched
}

// maxRemembered bounds the remembered passwords.
const maxRemembered = 4096

// NewHtpasswd reads path; an error stops the start.
func NewHtpasswd(path string, log *slog.Logger) (*Htpasswd, error) {
	if log == nil {
		log = slog.Default()
	}
	h := &Htpasswd{f: &file[map[string][]byte]{path: path, parse: ParseHtpasswd, log: log}, good: map[[32]byte]struct{}{}}
	if err := h.f.load(); err != nil {
		return nil, err
	}
	h.f.checked = time.Now()
	return h, nil
}

// ParseHtpasswd reads an htpasswd file. Only bcrypt hashes are accepted:
// the older htpasswd formats (MD5-crypt, SHA-1, crypt) are fast to guess.
func ParseHtpasswd(data []byte) (map[string][]byte, error) {
	users := map[string][]byte{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("line %d: want user:bcrypt-hash", n)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("line %d: user %q: not a bcrypt hash; create it with htpasswd -B", n, user)
		}
		if _, dup := users[user]; dup {
			return nil, fmt.Errorf("line %d: user %q is listed twice", n, user)
		}
		users[user] = []byte(hash)
	}
	return users, sc.Err()
}

// CheckPassword reports whether password is user's. It may be called
// from several goroutines.
func (h *Htpasswd) CheckPassword(user, password string) bool {
	users := h.f.current()
	hash, ok := users[user]
	if !ok {
		// Spend the same time as a wrong password, so that user names
		// cannot be probed by timing.
		bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return false
	}
	key := sha256.Sum256([]byte(user + "\x00" + password + "\x00" + string(hash)))
	h.mu.Lock()
	_, known := h.good[key]
	h.mu.Unlock()
	if known {
		return true
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil {
		return false
	}
	h.mu.Lock()
	if len(h.good) >= maxRemembered {
		clear(h.good)
	}
	h.good[key] = struct{}{}
	h.mu.Unlock()
	return true
}

// dummyHash is made on first use, not at start: every wsbridge run
// would pay a bcrypt for it otherwise.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("wsbridge"), bcrypt.DefaultCost)
	return h
})

// Password is one user name and password given on the command line
// (websockify's BasicHTTPAuth --auth-source user:password).
type Password struct {
	user string
	sum  [32]byte
}

// NewPassword keeps a hash of password, not the password.
func NewPassword(user, password string) *Password {
	return &Password{user: user, sum: sha256.Sum256([]byte(password))}
}

func (p *Password) CheckPassword(user, password string) bool {
	sum := sha256.Sum256([]byte(password))
	return subtle.ConstantTimeCompare(sum[:], p.sum[:]) == 1 && user == p.user
}

// Bearer checks bearer tokens against a file of "NAME SECRET" lines, where
// SECRET is the token or "sha256:" and the hex SHA-256 of the token, so
// the file need not hold the tokens themselves. The name is what logs and
// identity lists use.
type Bearer struct {
	f *file[map[[32]byte]string]
}

// NewBearer reads path; an error stops the start.
func NewBearer(path string, log *slog.Logger) (*Bearer, error) {
	if log == nil {
		log = slog.Default()
	}
	b := &Bearer{f: &file[map[[32]byte]string]{path: path, parse: ParseBearer, log: log}}
	if err := b.f.load(); err != nil {
		return nil, err
	}
	b.f.checked = time.Now()
	return b, nil
}

// minBearer is the shortest bearer token accepted: 128 bits in hex.
const minBearer = 32

// ParseBearer reads a bearer token file into token hashes and names.
func ParseBearer(data []byte) (map[[32]byte]string, error) {
	tokens := map[[32]byte]string{}
	names := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("line %d: want NAME TOKEN or NAME sha256:HEX", n)
		}
		name, secret := fields[0], fields[1]
		var sum [32]byte
		if h, ok := strings.CutPrefix(secret, "sha256:"); ok {
			b, err := hex.DecodeString(h)
			if err != nil || len(b) != 32 {
				return nil, fmt.Errorf("line %d: %s: sha256: wants 64 hex digits", n, name)
			}
			copy(sum[:], b)
		} else {
			if len(secret) < minBearer {
				return nil, fmt.Errorf("line %d: %s: a bearer token needs at least %d characters", n, name, minBearer)
			}
			sum = sha256.Sum256([]byte(secret))
		}
		if names[name] {
			return nil, fmt.Errorf("line %d: name %q is listed twice", n, name)
		}
		if _, dup := tokens[sum]; dup {
			return nil, fmt.Errorf("line %d: %s has the same token as another name", n, name)
		}
		names[name] = true
		tokens[sum] = name
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return tokens, nil
}

// CheckBearer returns the name of token. Tokens are compared by their
// SHA-256 in a map: the lookup time says nothing about the token.
func (b *Bearer) CheckBearer(token string) (string, bool) {
	if token == "" {
		return "", false
	}
	name, ok := b.f.current()[sha256.Sum256([]byte(token))]
	return name, ok
}
