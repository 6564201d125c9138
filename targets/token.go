package targets

import (
	"errors"
	"fmt"
	"strings"
)

// MaxTokenLen is the longest token a lookup source (token files, Redis,
// the HTTP lookup) accepts. Longer tokens are refused without a lookup.
const MaxTokenLen = 256

// MaxJWTLen is the longest token the JWT source accepts: an RS256 signature
// alone takes 342 characters, so signed tokens need more room than
// MaxTokenLen.
const MaxJWTLen = 4096

// ErrBadToken is returned for a token that CheckToken refuses. It wraps
// ErrNotFound, so that the bridge gives it the same answer as an unknown
// token.
var ErrBadToken = fmt.Errorf("targets: malformed token: %w", ErrNotFound)

// CheckToken refuses tokens that no source should ever see: empty, longer
// than max bytes, or holding anything but ASCII letters, digits and
// "-._~+=@", or "..". Sources call it before they look anything up, so a
// token can never be a path, a key pattern or a URL of its own: no "/",
// "\", ":", "%", NUL, spaces or control characters reach a file name, a
// Redis key or a lookup URL.
func CheckToken(tok string, max int) error {
	switch {
	case tok == "":
		return fmt.Errorf("empty token: %w", ErrBadToken)
	case len(tok) > max:
		return fmt.Errorf("token of %d bytes, over %d: %w", len(tok), max, ErrBadToken)
	case strings.Contains(tok, ".."):
		return fmt.Errorf(`token holds "..": %w`, ErrBadToken)
	}
	for i := 0; i < len(tok); i++ {
		if !tokenByte(tok[i]) {
			return fmt.Errorf("token holds byte %#02x at %d: %w", tok[i], i, ErrBadToken)
		}
	}
	return nil
}

func tokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~+=@", c) >= 0
}

// ErrUnavailable is returned when a token source cannot answer at all (Redis
// or the lookup service is down). The bridge answers 503: the client may
// retry, and the token is not counted as a failed lookup.
var ErrUnavailable = errors.New("targets: token source unavailable")
