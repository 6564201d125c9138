package targets_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/wsbridge/wsbridge/internal/testenv"
	"github.com/wsbridge/wsbridge/targets"
)

// BenchmarkResolve measures one token lookup per source, side by side, so
// their costs compare within one run.
func BenchmarkResolve(b *testing.B) {
	ctx := b.Context()
	req := targets.Request{Token: "desk1"}
	run := func(b *testing.B, r targets.Resolver, req targets.Request) {
		b.Helper()
		if _, err := r.Resolve(ctx, req); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Resolve(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	}

	b.Run("token_file", func(b *testing.B) {
		p := filepath.Join(b.TempDir(), "tokens")
		os.WriteFile(p, []byte("desk1: 127.0.0.1:5901\n"), 0o600)
		run(b, targets.NewTokenFile(p, nil), req)
	})

	addr := testenv.Redis(b)
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
	defer c.Close()
	c.Set(ctx, "desk1", "127.0.0.1:5901", 0)
	b.Run("redis_uncached", func(b *testing.B) {
		r := targets.NewRedis(&targets.RedisOptions{Addr: addr, CacheTTL: -1})
		defer r.Close()
		run(b, r, req)
	})
	b.Run("redis_cached", func(b *testing.B) {
		r := targets.NewRedis(&targets.RedisOptions{Addr: addr, CacheTTL: time.Hour})
		defer r.Close()
		run(b, r, req)
	})

	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pub := filepath.Join(b.TempDir(), "rsa.pub")
	os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"host": "127.0.0.1", "port": 5901}).SignedString(key)
	b.Run("jwt_rs256", func(b *testing.B) {
		j, err := targets.NewJWT(&targets.JWTOptions{KeyFile: pub, Algorithms: []string{"RS256"}})
		if err != nil {
			b.Fatal(err)
		}
		run(b, j, targets.Request{Token: tok})
	})
}
