package bridge_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/wsbridge/wsbridge/targets"
)

const integrityBytes = 64 << 20

// sendAll writes data to the client in messages of random sizes up to 64 KiB,
// as text base64 when b64 is set.
func sendAll(ctx context.Context, c *websocket.Conn, data []byte, b64 bool, rng *mrand.Rand) error {
	for len(data) > 0 {
		n := min(len(data), 1+rng.IntN(64<<10))
		var err error
		if b64 {
			err = c.Write(ctx, websocket.MessageText, []byte(base64.StdEncoding.EncodeToString(data[:n])))
		} else {
			err = c.Write(ctx, websocket.MessageBinary, data[:n])
		}
		if err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// decodeAll reads data messages until close, decoding base64 messages one by
// one when b64 is set, and returns the bytes and the close error.
func decodeAll(c *websocket.Conn, b64 bool) ([]byte, error) {
	var all []byte
	for {
		typ, b, err := c.Read(context.Background())
		if err != nil {
			return all, err
		}
		if b64 {
			if typ != websocket.MessageText {
				return all, fmt.Errorf("base64 session sent a %v message", typ)
			}
			d, err := base64.StdEncoding.DecodeString(string(b))
			if err != nil {
				return all, err
			}
			b = d
		} else if typ != websocket.MessageBinary {
			return all, fmt.Errorf("binary session sent a %v message", typ)
		}
		all = append(all, b...)
	}
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestIntegrity(t *testing.T) {
	data := randomBytes(t, integrityBytes)
	want := sha256.Sum256(data)
	for _, proto := range []string{"binary", "base64", ""} {
		b64 := proto == "base64"
		t.Run("client-to-target/"+proto, func(t *testing.T) {
			got := make(chan [32]byte, 1)
			addr := target(t, func(c net.Conn) {
				h := sha256.New()
				io.Copy(h, c)
				var sum [32]byte
				h.Sum(sum[:0])
				got <- sum
			})
			b := startBridge(t, static(addr), nil, nil)
			c := dial(t, b.url, protocols(proto)...)
			if err := sendAll(t.Context(), c, data, b64, mrand.New(mrand.NewPCG(1, 2))); err != nil {
				t.Fatal(err)
			}
			c.Close(websocket.StatusNormalClosure, "done")
			if sum := <-got; sum != want {
				t.Fatalf("target got SHA-256 %x, want %x", sum, want)
			}
		})
		t.Run("target-to-client/"+proto, func(t *testing.T) {
			addr := target(t, func(c net.Conn) { c.Write(data) })
			b := startBridge(t, static(addr), nil, nil)
			c := dial(t, b.url, protocols(proto)...)
			all, err := decodeAll(c, b64)
			wantClose(t, err, websocket.StatusNormalClosure, "Target closed")
			if sum := sha256.Sum256(all); sum != want {
				t.Fatalf("client got %d bytes with SHA-256 %x, want %d bytes %x", len(all), sum, len(data), want)
			}
		})
	}
}

func protocols(p string) []string {
	if p == "" {
		return nil
	}
	return []string{p}
}

// TestConcurrentSessions runs 200 echo sessions at once, each with its own
// random bytes in random message sizes, and checks every one.
func TestConcurrentSessions(t *testing.T) {
	addr := target(t, echo)
	b := startBridge(t, static(addr), nil, nil)
	const sessions, size = 200, 256 << 10
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	for i := range sessions {
		wg.Go(func() {
			errs <- echoSession(t.Context(), b.url, i, size)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	waitIdle(t, b)
}

func echoSession(ctx context.Context, url string, seed, size int) error {
	proto := []string{"binary", "base64", ""}[seed%3]
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: protocols(proto)})
	if err != nil {
		return fmt.Errorf("session %d: %w", seed, err)
	}
	defer c.CloseNow()
	c.SetReadLimit(-1)
	rng := mrand.New(mrand.NewPCG(uint64(seed), 7))
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	go sendAll(ctx, c, data, proto == "base64", rng)
	var got []byte
	for len(got) < size {
		_, m, err := c.Read(ctx)
		if err != nil {
			return fmt.Errorf("session %d after %d bytes: %w", seed, len(got), err)
		}
		if proto == "base64" {
			if m, err = base64.StdEncoding.DecodeString(string(m)); err != nil {
				return fmt.Errorf("session %d: %w", seed, err)
			}
		}
		got = append(got, m...)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		return fmt.Errorf("session %d (%q): echoed bytes differ", seed, proto)
	}
	return c.Close(websocket.StatusNormalClosure, "")
}

func TestSubprotocols(t *testing.T) {
	addr := target(t, echo)
	b := startBridge(t, static(addr), nil, nil)
	tests := []struct {
		name   string
		header []string // Sec-WebSocket-Protocol values; nil sends none
		status int
		answer string
	}{
		{"none", nil, 101, ""},
		{"binary", []string{"binary"}, 101, "binary"},
		{"base64", []string{"base64"}, 101, "base64"},
		{"both", []string{"binary, base64"}, 101, "binary"},
		{"both reversed spaced", []string{"base64, binary"}, 101, "binary"},
		{"both reversed tight", []string{"base64,binary"}, 101, "binary"},
		{"two headers", []string{"base64", "binary"}, 101, "binary"},
		{"padded", []string{"  base64  "}, 101, "base64"},
		{"unknown", []string{"chat"}, 400, ""},
		{"unknown and base64", []string{"chat, base64"}, 101, "base64"},
		{"wrong case", []string{"BINARY"}, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := rawUpgrade(t, b.url, func(h http.Header) {
				for _, v := range tt.header {
					h.Add("Sec-WebSocket-Protocol", v)
				}
			})
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != tt.answer {
				t.Errorf("answered subprotocol %q, want %q", got, tt.answer)
			}
			if tt.status == 400 {
				body, _ := io.ReadAll(resp.Body)
				if !strings.Contains(string(body), `"binary" and "base64"`) {
					t.Errorf("400 body %q does not name the supported subprotocols", body)
				}
			}
		})
	}
	waitIdle(t, b)
}

// rawUpgrade sends a handshake with net/http and returns the response; a
// 101 connection is closed at once.
func rawUpgrade(t testing.TB, url string, edit func(http.Header)) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", strings.Replace(url, "ws://", "http://", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	edit(req.Header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body.Close()
	}
	return resp
}

func TestRefusals(t *testing.T) {
	dead := deadAddr(t)
	live := target(t, echo)
	tokens := writeTokens(t, "good: "+live+"\ndown: "+dead+"\n")
	b := startBridge(t, []targets.Route{
		{Path: "/live", Target: targets.Target{Name: "live", Network: "tcp", Address: live}},
		{Path: "/dead", Target: targets.Target{Name: "dead", Network: "tcp", Address: dead}},
	}, targets.NewTokenFile(tokens, nil), nil)
	tests := []struct {
		name   string
		path   string
		edit   func(http.Header)
		status int
		reason string
	}{
		{"ok path", "/live", nil, 101, ""},
		{"ok token", "/websockify?token=good", nil, 101, ""},
		{"dead target", "/dead", nil, 502, "target unreachable"},
		{"unknown token", "/websockify?token=nope", nil, 404, "not found"},
		{"dead token target", "/websockify?token=down", nil, 404, "not found"},
		{"no token", "/websockify", nil, 404, "not found"},
		{"two tokens", "/websockify?token=good&token=good", nil, 400, "more than one token"},
		{"version", "/live", func(h http.Header) { h.Set("Sec-WebSocket-Version", "8") }, 400, "Sec-WebSocket-Version"},
		{"no key", "/live", func(h http.Header) { h.Del("Sec-WebSocket-Key") }, 400, "Sec-WebSocket-Key"},
		{"bad key", "/live", func(h http.Header) { h.Set("Sec-WebSocket-Key", "short") }, 400, "Sec-WebSocket-Key"},
		{"no connection upgrade", "/live", func(h http.Header) { h.Set("Connection", "keep-alive") }, 400, "Connection"},
		{"foreign origin", "/live", func(h http.Header) { h.Set("Origin", "https://evil.example") }, 403, "origin"},
		{"null origin", "/live", func(h http.Header) { h.Set("Origin", "null") }, 403, "origin"},
		{"same origin", "/live", func(h http.Header) { h.Set("Origin", "http://"+strings.TrimPrefix(b.url, "ws://")) }, 101, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			edit := tt.edit
			if edit == nil {
				edit = func(http.Header) {}
			}
			resp := rawUpgrade(t, b.url+path, edit)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.reason != "" {
				body, _ := io.ReadAll(resp.Body)
				if !strings.Contains(string(body), tt.reason) {
					t.Errorf("body %q, want it to contain %q", body, tt.reason)
				}
			}
		})
	}
	if logs := b.log.logs(); strings.Contains(logs, "token=down") || strings.Contains(logs, "nope") {
		t.Errorf("a token reached the log:\n%s", logs)
	}
	waitIdle(t, b)
}

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestPlainHTTP(t *testing.T) {
	b := startBridge(t, static(deadAddr(t)), nil, nil)
	resp, err := http.Get(strings.Replace(b.url, "ws://", "http://", 1) + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("status %d, want 426", resp.StatusCode)
	}
}

func TestMessageBoundariesAndEmpty(t *testing.T) {
	got := make(chan []byte, 1)
	addr := target(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		got <- b
	})
	b := startBridge(t, static(addr), nil, nil)
	c := dial(t, b.url, "binary")
	for _, m := range [][]byte{[]byte("a"), {}, []byte("bc"), {}, bytes.Repeat([]byte("d"), 64<<10)} {
		if err := c.Write(t.Context(), websocket.MessageBinary, m); err != nil {
			t.Fatal(err)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
	want := append([]byte("abc"), bytes.Repeat([]byte("d"), 64<<10)...)
	if g := <-got; !bytes.Equal(g, want) {
		t.Fatalf("target got %d bytes, want %d", len(g), len(want))
	}
}

func writeTokens(t testing.TB, content string) string {
	t.Helper()
	p := t.TempDir() + "/tokens"
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTargetKinds bridges to a Unix socket and to an IPv6 loopback target.
func TestTargetKinds(t *testing.T) {
	sock := targetOn(t, "unix", filepath.Join(t.TempDir(), "echo.sock"), echo)
	routes := []targets.Route{{Path: "/unix", Target: targets.Target{Name: "unix", Network: "unix", Address: sock}}}
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		ln.Close()
		v6 := targetOn(t, "tcp", "[::1]:0", echo)
		routes = append(routes, targets.Route{Path: "/v6", Target: targets.Target{Name: "v6", Network: "tcp", Address: v6}})
	} else {
		t.Logf("no IPv6 loopback: %v", err)
	}
	b := startBridge(t, routes, nil, nil)
	for _, r := range routes {
		c := dial(t, b.url+r.Path, "binary")
		c.Write(t.Context(), websocket.MessageBinary, []byte("ping "+r.Path))
		_, m, err := c.Read(t.Context())
		if err != nil || string(m) != "ping "+r.Path {
			t.Errorf("%s: echo = %q, %v", r.Path, m, err)
		}
		c.Close(websocket.StatusNormalClosure, "")
	}
	waitIdle(t, b)
}
