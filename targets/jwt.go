package targets

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JWTOptions configure a JWT token source.
type JWTOptions struct {
	// KeyFile holds the verification key: a PEM public key, certificate or
	// private key (RSA, ECDSA or Ed25519), or else an HMAC secret.
	KeyFile string
	// SecretEncoding says how a non-PEM key file holds the HMAC secret:
	// "base64url" (default; websockify reads it as a JWK "k" value) or
	// "raw" (the file's bytes, without a trailing newline).
	SecretEncoding string
	// Algorithms are the accepted "alg" values, such as ["RS256"]. Required:
	// pinning the algorithm is what stops a token from choosing how it is
	// checked. They must fit the key.
	Algorithms []string
	// Audience, when set, must be one of the token's "aud" values.
	Audience string
	// RequireExpiry refuses tokens without "exp". websockify accepts them.
	RequireExpiry bool
	// Leeway is the clock skew forgiven on "exp" and "nbf". Default 0.
	Leeway time.Duration
	// Allow limits the targets a token may name. Nil allows every target,
	// which only the websockify command line does, with a warning.
	Allow *Allowlist
}

// JWT resolves tokens that are signed JSON Web Tokens, as websockify's
// JWTTokenApi does: the claims "host" and "port" name the target ("host"
// "unix_socket" with the socket path as "port" names a Unix socket), and
// "exp" and "nbf" are honoured when present. On top of websockify, the
// algorithm is pinned, "aud" can be required, and HMAC secrets shorter
// than the hash are refused (RFC 7518, 3.2). Tokens may be up to MaxJWTLen
// bytes. Encrypted tokens (JWE) are refused.
//
// The key file is read at the start and again when its size or
// modification time change, so a rotated key takes effect without a
// restart; a file that stops parsing keeps the last good key in use.
// A JWT is safe for concurrent use.
type JWT struct {
	opts   JWTOptions
	parser *jwt.Parser

	mu  sync.Mutex
	key any
	sig fileSig
}

var _ Resolver = (*JWT)(nil)

// NewJWT reads the key and checks that it fits the algorithms.
func NewJWT(opts *JWTOptions) (*JWT, error) {
	o := *opts
	o.Algorithms = slices.Clone(o.Algorithms)
	setDefault(&o.SecretEncoding, "base64url")
	if len(o.Algorithms) == 0 {
		return nil, errors.New("jwt: name the accepted algorithms, such as RS256 or HS256")
	}
	popts := []jwt.ParserOption{jwt.WithValidMethods(o.Algorithms), jwt.WithLeeway(o.Leeway)}
	if o.Audience != "" {
		popts = append(popts, jwt.WithAudience(o.Audience))
	}
	if o.RequireExpiry {
		popts = append(popts, jwt.WithExpirationRequired())
	}
	j := &JWT{opts: o, parser: jwt.NewParser(popts...)}
	if err := j.reload(); err != nil {
		return nil, err
	}
	return j, nil
}

// reload reads the key file if it changed. Callers hold j.mu, or own j.
func (j *JWT) reload() error {
	fi, err := os.Stat(j.opts.KeyFile)
	if err != nil {
		return fmt.Errorf("jwt key: %w", err)
	}
	sig := statSig(j.opts.KeyFile, fi)
	if j.key != nil && sig == j.sig {
		return nil
	}
	data, err := os.ReadFile(j.opts.KeyFile)
	if err != nil {
		return fmt.Errorf("jwt key: %w", err)
	}
	key, err := ParseJWTKey(data, j.opts.SecretEncoding, j.opts.Algorithms)
	if err != nil {
		return fmt.Errorf("jwt key %s: %w", j.opts.KeyFile, err)
	}
	j.key, j.sig = key, sig
	return nil
}

func (j *JWT) currentKey() any {
	j.mu.Lock()
	defer j.mu.Unlock()
	_ = j.reload() // a broken new file keeps the last good key
	return j.key
}

// Resolve implements Resolver with the request's token.
func (j *JWT) Resolve(_ context.Context, r Request) (Target, error) {
	if err := CheckToken(r.Token, MaxJWTLen); err != nil {
		return Target{}, err
	}
	if strings.Count(r.Token, ".") == 4 {
		return Target{}, fmt.Errorf("jwt: encrypted tokens (JWE) are not supported: %w", ErrNotFound)
	}
	key := j.currentKey()
	var c jwtClaims
	if _, err := j.parser.ParseWithClaims(r.Token, &c, func(*jwt.Token) (any, error) { return key, nil }); err != nil {
		return Target{}, fmt.Errorf("jwt: %w: %w", err, ErrNotFound)
	}
	t, err := c.target()
	if err != nil {
		return Target{}, fmt.Errorf("jwt claims: %w: %w", err, ErrNotFound)
	}
	t.Allow = j.opts.Allow
	return t, nil
}

// jwtClaims are the claims websockify reads, with the registered ones.
type jwtClaims struct {
	Host string          `json:"host"`
	Port json.RawMessage `json:"port"`
	jwt.RegisteredClaims
}

func (c *jwtClaims) target() (Target, error) { return hostPortClaims(c.Host, c.Port) }

// ParseJWTKey reads a verification key for the given algorithms: PEM (a
// public key, certificate or private key) or an HMAC secret in the given
// encoding ("base64url" or "raw").
func ParseJWTKey(data []byte, encoding string, algs []string) (any, error) {
	key, fits, err := parseKey(data, encoding)
	if err != nil {
		return nil, err
	}
	for _, a := range algs {
		if slices.Contains(fits, a) {
			continue
		}
		secret, isSecret := key.([]byte)
		need, isHMAC := hmacSizes[a]
		switch {
		case isSecret && isHMAC:
			return nil, fmt.Errorf("HMAC secret of %d bytes is too short for %s: RFC 7518 asks for at least %d", len(secret), a, need)
		case isSecret:
			return nil, fmt.Errorf("algorithm %s needs a PEM key; the key file holds an HMAC secret", a)
		}
		return nil, fmt.Errorf("algorithm %s does not fit a %T key (it takes %s)", a, key, strings.Join(fits, ", "))
	}
	return key, nil
}

// KeyAlgorithms returns every algorithm that fits the key in data (see
// ParseJWTKey): the websockify command line, which has no way to name
// algorithms, pins the key's family this way.
func KeyAlgorithms(data []byte, encoding string) ([]string, error) {
	_, fits, err := parseKey(data, encoding)
	if err == nil && len(fits) == 0 {
		_, err = ParseJWTKey(data, encoding, []string{"HS256"}) // says why
	}
	return fits, err
}

// parseKey reads a key file once and returns the key and the algorithms
// it fits.
func parseKey(data []byte, encoding string) (key any, fits []string, err error) {
	block, _ := pem.Decode(data)
	if block == nil {
		secret, err := decodeSecret(data, encoding)
		if err != nil {
			return nil, nil, err
		}
		for _, a := range []string{"HS256", "HS384", "HS512"} {
			if len(secret) >= hmacSizes[a] {
				fits = append(fits, a)
			}
		}
		return secret, fits, nil
	}
	if key, err = pemPublicKey(block); err != nil {
		return nil, nil, err
	}
	switch key.(type) {
	case *rsa.PublicKey:
		fits = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	case *ecdsa.PublicKey:
		fits = []string{"ES256", "ES384", "ES512"}
	case ed25519.PublicKey:
		fits = []string{"EdDSA"}
	default:
		return nil, nil, fmt.Errorf("unsupported key type %T", key)
	}
	return key, fits, nil
}

func pemPublicKey(b *pem.Block) (any, error) {
	switch b.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(b.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(b.Bytes)
	case "CERTIFICATE":
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		return c.PublicKey, nil
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, err
		}
		if s, ok := k.(crypto.Signer); ok {
			return s.Public(), nil
		}
		return nil, fmt.Errorf("unsupported private key %T", k)
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(b.Bytes)
		if err != nil {
			return nil, err
		}
		return &k.PublicKey, nil
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(b.Bytes)
		if err != nil {
			return nil, err
		}
		return &k.PublicKey, nil
	}
	return nil, fmt.Errorf("PEM block %q is not a key or certificate", b.Type)
}

var hmacSizes = map[string]int{"HS256": 32, "HS384": 48, "HS512": 64}

// decodeSecret reads an HMAC secret from a key file that is not PEM.
func decodeSecret(data []byte, encoding string) ([]byte, error) {
	switch encoding {
	case "", "base64url":
		s := strings.TrimRight(strings.TrimSpace(string(data)), "=")
		secret, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("not PEM, and not a base64url HMAC secret (%v); for a secret written as plain text, set the encoding to raw", err)
		}
		return secret, nil
	case "raw":
		return bytes.TrimRight(data, "\r\n"), nil
	}
	return nil, fmt.Errorf("secret encoding %q: want base64url or raw", encoding)
}
