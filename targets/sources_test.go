package targets_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/wsbridge/wsbridge/internal/testenv"
	"github.com/wsbridge/wsbridge/targets"
)

// wantTarget checks a Resolve result against an address ("" for
// ErrNotFound).
func wantTarget(t *testing.T, what string, got targets.Target, err error, want string) {
	t.Helper()
	switch {
	case want == "" && !errors.Is(err, targets.ErrNotFound):
		t.Errorf("%s = %v, %v; want ErrNotFound", what, got, err)
	case want != "" && (err != nil || got.String() != want):
		t.Errorf("%s = %v, %v; want %s", what, got, err, want)
	}
}

func TestRedis(t *testing.T) {
	addr := testenv.Redis(t, "--requirepass", "s3cret")
	c := redis.NewClient(&redis.Options{Addr: addr, Password: "s3cret", DB: 2, Protocol: 2, DisableIdentity: true})
	defer c.Close()
	ctx := t.Context()
	for k, v := range map[string]string{
		"ns:json":  `{"host": "10.0.0.5:5901"}`,
		"ns:plain": "  10.0.0.6:5902\n",
		"ns:v6":    "[fd00::7]:5903",
		"ns:unix":  "unix_socket:/run/vnc/a.sock",
		"ns:bad":   "nonsense",
		"ns:badj":  `{"port": 1}`,
		"plain":    "10.0.0.9:1", // outside the namespace
	} {
		if err := c.Set(ctx, k, v, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	allow, _ := targets.ParseAllowlist([]string{"10.0.0.0/8"})
	src := targets.NewRedis(&targets.RedisOptions{Addr: addr, DB: 2, Password: "s3cret", Namespace: "ns", Allow: allow, CacheTTL: -1})
	defer src.Close()
	if err := src.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	for tok, want := range map[string]string{
		"json": "10.0.0.5:5901", "plain": "10.0.0.6:5902", "v6": "[fd00::7]:5903", "unix": "unix:/run/vnc/a.sock",
		"bad": "", "badj": "", "missing": "", "ns:json": "", "a/b": "", "*": "",
	} {
		got, err := src.Resolve(ctx, targets.Request{Token: tok})
		wantTarget(t, "Resolve("+tok+")", got, err, want)
		if err == nil && got.Allow != allow {
			t.Errorf("Resolve(%s) lost the allowlist", tok)
		}
	}

	// Wrong password: the source is unavailable, not "unknown token".
	wrong := targets.NewRedis(&targets.RedisOptions{Addr: addr, Password: "nope", Timeout: time.Second})
	defer wrong.Close()
	if _, err := wrong.Resolve(ctx, targets.Request{Token: "json"}); !errors.Is(err, targets.ErrUnavailable) || errors.Is(err, targets.ErrNotFound) {
		t.Errorf("wrong password: %v, want ErrUnavailable", err)
	}
}

func TestRedisCacheAndOutage(t *testing.T) {
	addr := testenv.Redis(t)
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
	defer c.Close()
	ctx := t.Context()
	if err := c.Set(ctx, "desk", "127.0.0.1:5901", 0).Err(); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	src := targets.NewRedis(&targets.RedisOptions{Addr: addr, CacheTTL: time.Hour, Timeout: 500 * time.Millisecond, Logger: newLogger(&logs)})
	defer src.Close()
	got, err := src.Resolve(ctx, targets.Request{Token: "desk"})
	wantTarget(t, "Resolve(desk)", got, err, "127.0.0.1:5901")

	// Stop Redis: the cached token still works, a new one is unavailable,
	// and the outage is one log line however many lookups fail.
	if err := c.Do(ctx, "SHUTDOWN", "NOSAVE").Err(); err == nil {
		t.Log("SHUTDOWN returned no error")
	}
	time.Sleep(100 * time.Millisecond)
	got, err = src.Resolve(ctx, targets.Request{Token: "desk"})
	wantTarget(t, "cached Resolve(desk) with redis down", got, err, "127.0.0.1:5901")
	for range 3 {
		if _, err := src.Resolve(ctx, targets.Request{Token: "other"}); !errors.Is(err, targets.ErrUnavailable) {
			t.Fatalf("Resolve(other) with redis down = %v, want ErrUnavailable", err)
		}
	}
	if n := strings.Count(logs.String(), "unavailable"); n != 1 {
		t.Errorf("outage logged %d times, want once:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "other") {
		t.Errorf("a token reached the log:\n%s", logs.String())
	}
}

func TestHTTPLookup(t *testing.T) {
	var hits atomic.Int32
	var encoded atomic.Value // the request target the a+b=c@d lookup arrived with
	mux := http.NewServeMux()
	mux.HandleFunc("/t/{token}", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.PathValue("token") == "a+b=c@d" {
			encoded.Store(r.RequestURI)
		}
		switch r.PathValue("token") {
		case "json":
			fmt.Fprint(w, `{"host": "10.0.0.5", "port": 5901}`)
		case "jsonstr":
			fmt.Fprint(w, `{"host": "fd00::8", "port": "5908"}`)
		case "unix":
			fmt.Fprint(w, `{"host": "unix_socket", "port": "/run/vnc/a.sock"}`)
		case "plain":
			fmt.Fprint(w, "10.0.0.6:5902\n")
		case "a+b=c@d":
			fmt.Fprint(w, "10.0.0.7:5903")
		case "gone":
			http.Error(w, "no", http.StatusGone)
		case "boom":
			http.Error(w, "oops", http.StatusInternalServerError)
		case "redirect":
			http.Redirect(w, r, "http://127.0.0.1:1/", http.StatusFound)
		case "huge":
			w.Write([]byte(strings.Repeat(" ", 5000) + "10.0.0.1:1"))
		case "slow":
			time.Sleep(2 * time.Second)
		case "garbage":
			fmt.Fprint(w, `{"host": 5}`)
		default:
			http.NotFound(w, r)
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	allow, _ := targets.ParseAllowlist([]string{"10.0.0.0/8", "fd00::/8"})
	src, err := targets.NewHTTPLookup(&targets.HTTPLookupOptions{URL: srv.URL + "/t/%s", Timeout: 500 * time.Millisecond, CacheTTL: time.Hour, Allow: allow})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx := t.Context()
	for tok, want := range map[string]string{
		"json": "10.0.0.5:5901", "jsonstr": "[fd00::8]:5908", "unix": "unix:/run/vnc/a.sock", "plain": "10.0.0.6:5902",
		"a+b=c@d": "10.0.0.7:5903", "gone": "", "missing": "", "huge": "", "garbage": "", "a:b": "",
	} {
		got, err := src.Resolve(ctx, targets.Request{Token: tok})
		wantTarget(t, "Resolve("+tok+")", got, err, want)
	}
	if got, want := encoded.Load(), "/t/a%2Bb%3Dc%40d"; got != want {
		t.Errorf("token a+b=c@d reached the service as %v, want %s (percent-encoded)", got, want)
	}
	for _, tok := range []string{"boom", "redirect", "slow"} {
		if _, err := src.Resolve(ctx, targets.Request{Token: tok}); !errors.Is(err, targets.ErrUnavailable) {
			t.Errorf("Resolve(%s) = %v, want ErrUnavailable", tok, err)
		}
	}
	before := hits.Load()
	got, err := src.Resolve(ctx, targets.Request{Token: "json"})
	wantTarget(t, "cached Resolve(json)", got, err, "10.0.0.5:5901")
	if hits.Load() != before {
		t.Error("a cached token was looked up again")
	}
	for _, bad := range []string{"http://x/t", "http://x/%s/%s", "ftp://x/%s", "/t/%s"} {
		if _, err := targets.NewHTTPLookup(&targets.HTTPLookupOptions{URL: bad}); err == nil {
			t.Errorf("NewHTTPLookup(%q) accepted it", bad)
		}
	}
}

// jwtKeys writes an RSA, an ECDSA and an HMAC key for the test.
type jwtKeys struct {
	rsa     *rsa.PrivateKey
	ec      *ecdsa.PrivateKey
	secret  []byte
	rsaPub  string // PEM public key file
	ecPriv  string // PEM private key file (websockify accepts it)
	hmacB64 string // base64url secret file
	hmacRaw string // raw secret file
}

func newJWTKeys(t *testing.T) *jwtKeys {
	t.Helper()
	dir := t.TempDir()
	k := &jwtKeys{secret: []byte("0123456789abcdef0123456789abcdef-hmac")}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	ecDER, _ := x509.MarshalECPrivateKey(k.ec)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	k.rsaPub = write("rsa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	k.ecPriv = write("ec.key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}))
	k.hmacB64 = write("hmac.b64", []byte(base64.RawURLEncoding.EncodeToString(k.secret)+"\n"))
	k.hmacRaw = write("hmac.raw", append(append([]byte(nil), k.secret...), '\n'))
	return k
}

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJWT(t *testing.T) {
	k := newJWTKeys(t)
	now := time.Now()
	hostPort := jwt.MapClaims{"host": "10.0.0.5", "port": 5901}
	with := func(extra jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{"host": "10.0.0.5", "port": 5901}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	allow, _ := targets.ParseAllowlist([]string{"10.0.0.0/8"})
	rs, err := targets.NewJWT(&targets.JWTOptions{KeyFile: k.rsaPub, Algorithms: []string{"RS256"}, Audience: "wsbridge", Allow: allow})
	if err != nil {
		t.Fatal(err)
	}
	aud := jwt.MapClaims{"aud": "wsbridge"}
	noneTok := func() string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodNone, with(aud)).SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	tests := []struct {
		name  string
		token string
		want  string
	}{
		{"valid", sign(t, jwt.SigningMethodRS256, k.rsa, with(jwt.MapClaims{"aud": "wsbridge", "exp": now.Add(time.Minute).Unix()})), "10.0.0.5:5901"},
		{"aud list", sign(t, jwt.SigningMethodRS256, k.rsa, with(jwt.MapClaims{"aud": []string{"x", "wsbridge"}})), "10.0.0.5:5901"},
		{"port string", sign(t, jwt.SigningMethodRS256, k.rsa, jwt.MapClaims{"host": "10.0.0.6", "port": "22", "aud": "wsbridge"}), "10.0.0.6:22"},
		{"unix", sign(t, jwt.SigningMethodRS256, k.rsa, jwt.MapClaims{"host": "unix_socket", "port": "/run/a.sock", "aud": "wsbridge"}), "unix:/run/a.sock"},
		{"expired", sign(t, jwt.SigningMethodRS256, k.rsa, with(jwt.MapClaims{"aud": "wsbridge", "exp": now.Add(-time.Minute).Unix()})), ""},
		{"not yet valid", sign(t, jwt.SigningMethodRS256, k.rsa, with(jwt.MapClaims{"aud": "wsbridge", "nbf": now.Add(time.Hour).Unix()})), ""},
		{"wrong audience", sign(t, jwt.SigningMethodRS256, k.rsa, with(jwt.MapClaims{"aud": "other"})), ""},
		{"no audience", sign(t, jwt.SigningMethodRS256, k.rsa, hostPort), ""},
		{"wrong algorithm", sign(t, jwt.SigningMethodRS512, k.rsa, with(aud)), ""},
		{"alg none", noneTok, ""},
		{"HS256 with the public key as secret", sign(t, jwt.SigningMethodHS256, mustPEM(t, k.rsaPub), with(aud)), ""},
		{"other key", sign(t, jwt.SigningMethodRS256, otherRSA, with(aud)), ""},
		{"no port", sign(t, jwt.SigningMethodRS256, k.rsa, jwt.MapClaims{"host": "10.0.0.5", "aud": "wsbridge"}), ""},
		{"bad port", sign(t, jwt.SigningMethodRS256, k.rsa, jwt.MapClaims{"host": "10.0.0.5", "port": 70000, "aud": "wsbridge"}), ""},
		{"bad host", sign(t, jwt.SigningMethodRS256, k.rsa, jwt.MapClaims{"host": "a/b", "port": 1, "aud": "wsbridge"}), ""},
		{"JWE", "a.b.c.d.e", ""},
		{"garbage", "not-a-jwt", ""},
	}
	for _, tt := range tests {
		got, err := rs.Resolve(t.Context(), targets.Request{Token: tt.token})
		wantTarget(t, tt.name, got, err, tt.want)
		if err == nil && got.Allow != allow {
			t.Errorf("%s: lost the allowlist", tt.name)
		}
	}
	// A tampered payload fails the signature.
	good := tests[0].token
	parts := strings.Split(good, ".")
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"host":"10.9.9.9","port":22,"aud":"wsbridge"}`))
	got, err := rs.Resolve(t.Context(), targets.Request{Token: strings.Join(parts, ".")})
	wantTarget(t, "tampered", got, err, "")

	// ECDSA from a private key file, and HMAC secrets in both encodings.
	es, err := targets.NewJWT(&targets.JWTOptions{KeyFile: k.ecPriv, Algorithms: []string{"ES256"}, RequireExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err = es.Resolve(t.Context(), targets.Request{Token: sign(t, jwt.SigningMethodES256, k.ec, with(jwt.MapClaims{"exp": now.Add(time.Minute).Unix()}))})
	wantTarget(t, "ES256", got, err, "10.0.0.5:5901")
	got, err = es.Resolve(t.Context(), targets.Request{Token: sign(t, jwt.SigningMethodES256, k.ec, hostPort)})
	wantTarget(t, "ES256 without exp when exp is required", got, err, "")
	for file, enc := range map[string]string{k.hmacB64: "", k.hmacRaw: "raw"} {
		hs, err := targets.NewJWT(&targets.JWTOptions{KeyFile: file, SecretEncoding: enc, Algorithms: []string{"HS256"}})
		if err != nil {
			t.Fatal(err)
		}
		got, err = hs.Resolve(t.Context(), targets.Request{Token: sign(t, jwt.SigningMethodHS256, k.secret, hostPort)})
		wantTarget(t, "HS256 "+enc, got, err, "10.0.0.5:5901")
	}
}

func mustPEM(t *testing.T, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestJWTKeyChecks(t *testing.T) {
	k := newJWTKeys(t)
	short := filepath.Join(t.TempDir(), "short")
	os.WriteFile(short, []byte(base64.RawURLEncoding.EncodeToString([]byte("tooshort"))), 0o600)
	tests := []struct {
		name string
		opts targets.JWTOptions
		want string
	}{
		{"no algorithms", targets.JWTOptions{KeyFile: k.rsaPub}, "algorithms"},
		{"RSA key, EC algorithm", targets.JWTOptions{KeyFile: k.rsaPub, Algorithms: []string{"ES256"}}, "does not fit"},
		{"RSA key, HMAC algorithm", targets.JWTOptions{KeyFile: k.rsaPub, Algorithms: []string{"HS256"}}, "does not fit"},
		{"secret, RSA algorithm", targets.JWTOptions{KeyFile: k.hmacB64, Algorithms: []string{"RS256"}}, "needs a PEM key"},
		{"short secret", targets.JWTOptions{KeyFile: short, Algorithms: []string{"HS256"}}, "too short"},
		{"missing file", targets.JWTOptions{KeyFile: "/nonexistent", Algorithms: []string{"HS256"}}, "no such file"},
	}
	for _, tt := range tests {
		if _, err := targets.NewJWT(&tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: NewJWT error = %v, want %q", tt.name, err, tt.want)
		}
	}
	// What the websockify command line pins: the key's family.
	for file, want := range map[string]string{
		k.rsaPub:  "RS256,RS384,RS512,PS256,PS384,PS512",
		k.ecPriv:  "ES256,ES384,ES512",
		k.hmacB64: "HS256", // 37 bytes: too short for HS384
		short:     "",
	} {
		algs, err := targets.KeyAlgorithms(mustPEM(t, file), "")
		if got := strings.Join(algs, ","); got != want || (want == "") != (err != nil) {
			t.Errorf("KeyAlgorithms(%s) = %q, %v; want %q", filepath.Base(file), got, err, want)
		}
	}
}

func TestJWTKeyRotation(t *testing.T) {
	k := newJWTKeys(t)
	file := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(file, mustPEM(t, k.rsaPub), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := targets.NewJWT(&targets.JWTOptions{KeyFile: file, Algorithms: []string{"RS256"}})
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{"host": "10.0.0.5", "port": 1}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	pub, _ := x509.MarshalPKIXPublicKey(&other.PublicKey)
	// A new mtime even on filesystems with coarse timestamps.
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(file, time.Now().Add(time.Minute), time.Now().Add(time.Minute))
	got, err := src.Resolve(t.Context(), targets.Request{Token: sign(t, jwt.SigningMethodRS256, other, claims)})
	wantTarget(t, "new key", got, err, "10.0.0.5:1")
	got, err = src.Resolve(t.Context(), targets.Request{Token: sign(t, jwt.SigningMethodRS256, k.rsa, claims)})
	wantTarget(t, "old key after rotation", got, err, "")
}

func TestFileNameTokens(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "tokens")
	os.Mkdir(dir, 0o755)
	os.WriteFile(filepath.Join(base, "secret"), []byte("10.0.0.66:22"), 0o600)
	for name, content := range map[string]string{
		"desk1": "10.0.0.1:5901\n", "desk2": "[::1]:5902", "sock": "unix_socket:/run/a.sock", "bad": "nope", ".hidden": "10.0.0.2:1",
	} {
		os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600)
	}
	os.Symlink(filepath.Join(base, "secret"), filepath.Join(dir, "escape"))
	os.Mkdir(filepath.Join(dir, "subdir"), 0o755)
	src := targets.NewFileNameTokens(dir, nil)
	if err := src.Check(); err != nil {
		t.Fatal(err)
	}
	for tok, want := range map[string]string{
		"desk1": "10.0.0.1:5901", "desk2": "[::1]:5902", "sock": "unix:/run/a.sock",
		"bad": "", ".hidden": "", "escape": "", "subdir": "", "missing": "", "../secret": "", "..": "",
	} {
		got, err := src.Resolve(t.Context(), targets.Request{Token: tok})
		wantTarget(t, "Resolve("+tok+")", got, err, want)
	}
}

func TestSocketDir(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "vnc")
	os.Mkdir(dir, 0o755)
	os.Mkdir(dir+"-evil", 0o755)
	listenUnix(t, filepath.Join(dir, "desk1"))
	evil := listenUnix(t, filepath.Join(dir+"-evil", "x"))
	os.Symlink(evil, filepath.Join(dir, "link"))
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o600)
	src, err := targets.NewSocketDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for tok, want := range map[string]string{
		"desk1": "unix:" + filepath.Join(dir, "desk1"),
		"link":  "", "file": "", "missing": "", "../vnc-evil/x": "", "..": "",
	} {
		got, err := src.Resolve(t.Context(), targets.Request{Token: tok})
		wantTarget(t, "Resolve("+tok+")", got, err, want)
		if err == nil {
			c, err := got.Dial(t.Context(), time.Second)
			if err != nil {
				t.Errorf("Dial(%s) = %v", tok, err)
			} else {
				c.Close()
			}
		}
	}
}

// newLogger logs into b. strings.Builder is not safe for concurrent use,
// and these sources log from the caller's goroutine only.
func newLogger(b *strings.Builder) *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }
