package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/wsbridge/wsbridge/internal/testenv"
)

// echoThrough opens a WebSocket to url, sends a message and wants it back.
func echoThrough(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", url, err, status)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageBinary, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	_, got, err := c.Read(ctx)
	if err != nil || string(got) != "hello" {
		t.Fatalf("echo through %s = %q, %v", url, got, err)
	}
	c.Close(websocket.StatusNormalClosure, "")
}

// statusOf returns the HTTP status a handshake to url gets.
func statusOf(t *testing.T, url string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, nil)
	if err == nil {
		c.CloseNow()
		return http.StatusSwitchingProtocols
	}
	if resp == nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	return resp.StatusCode
}

// countingTarget is an echo target that counts its connections.
func countingTarget(t *testing.T) (addr string, n *atomic.Int32) {
	t.Helper()
	n = new(atomic.Int32)
	addr = testenv.Listen(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		n.Add(1)
		testenv.Echo(c)
	})
	return addr, n
}

// TestRedisFleet runs two wsbridge instances on one Redis, as a fleet
// behind a load balancer would: a token set once works through both, a
// Redis entry outside the allowlist works through neither, and while
// Redis is down new tokens get 503.
func TestRedisFleet(t *testing.T) {
	raddr := testenv.Redis(t, "--requirepass", "fleet-pass")
	rc := redis.NewClient(&redis.Options{Addr: raddr, Password: "fleet-pass", DB: 1, Protocol: 2, DisableIdentity: true})
	defer rc.Close()
	allowed, _ := countingTarget(t)
	forbidden, forbiddenHits := countingTarget(t)
	_, port, _ := net.SplitHostPort(allowed)
	ctx := t.Context()
	for k, v := range map[string]string{
		"wsb:desk1": fmt.Sprintf(`{"host": "%s"}`, allowed),
		"wsb:desk2": allowed,
		"wsb:evil":  forbidden,
	} {
		if err := rc.Set(ctx, k, v, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("WSBRIDGE_TEST_REDIS_PASSWORD", "fleet-pass")
	cfg := writeConfig(t, `
listen = "127.0.0.1:0"
http {
  allow_no_origin = true
}
token_redis "fleet" {
  address   = "`+raddr+`"
  db        = 1
  password  = env("WSBRIDGE_TEST_REDIS_PASSWORD")
  namespace = "wsb"
  cache_ttl = "0s"
  allow     = ["127.0.0.1/32:`+port+`"]
}
`)
	a := startDaemon(t, "run", "-config", cfg)
	b := startDaemon(t, "run", "-config", cfg)
	for _, d := range []*process{a, b} {
		echoThrough(t, "ws://"+d.addr+"/websockify?token=desk1")
		echoThrough(t, "ws://"+d.addr+"/?token=desk2")
		if s := statusOf(t, "ws://"+d.addr+"/?token=evil"); s != 404 {
			t.Errorf("token outside the allowlist: status %d, want 404", s)
		}
		if s := statusOf(t, "ws://"+d.addr+"/?token=nope"); s != 404 {
			t.Errorf("unknown token: status %d, want 404", s)
		}
	}
	if n := forbiddenHits.Load(); n != 0 {
		t.Errorf("the target outside the allowlist saw %d connections", n)
	}
	// A token added now works at once through both (no negative cache).
	rc.Set(ctx, "wsb:late", allowed, 0)
	echoThrough(t, "ws://"+a.addr+"/?token=late")
	echoThrough(t, "ws://"+b.addr+"/?token=late")

	rc.Do(ctx, "SHUTDOWN", "NOSAVE")
	rc.Close()
	time.Sleep(200 * time.Millisecond)
	if s := statusOf(t, "ws://"+a.addr+"/?token=desk1"); s != 503 {
		t.Errorf("redis down: status %d, want 503", s)
	}
	for _, d := range []*process{a, b} {
		logs := d.log()
		if strings.Contains(logs, "fleet-pass") || strings.Contains(logs, "desk1") || strings.Contains(logs, "token=evil") {
			t.Errorf("a secret or token reached the log:\n%s", logs)
		}
	}
	if !a.waitLog(t, "redis token source unavailable") {
		t.Errorf("the outage was not logged:\n%s", a.log())
	}
}

// TestWebsockifyTokenRedis runs websockify's TokenRedis command line.
func TestWebsockifyTokenRedis(t *testing.T) {
	raddr := testenv.Redis(t, "--requirepass", "p:w")
	host, rport, _ := net.SplitHostPort(raddr)
	rc := redis.NewClient(&redis.Options{Addr: raddr, Password: "p:w", DB: 2, Protocol: 2, DisableIdentity: true})
	defer rc.Close()
	target, _ := countingTarget(t)
	forbidden, forbiddenHits := countingTarget(t)
	rc.Set(t.Context(), "ns:abc", target, 0)
	rc.Set(t.Context(), "ns:evil", forbidden, 0)
	src := host + ":" + rport + `:2:"p:w":ns`
	d := startDaemon(t, "--token-plugin", "TokenRedis", "--token-source", src, "--allow", target, "127.0.0.1:0")
	echoThrough(t, "ws://"+d.addr+"/websockify?token=abc")
	if s := statusOf(t, "ws://"+d.addr+"/?token=evil"); s != 404 || forbiddenHits.Load() != 0 {
		t.Errorf("token outside --allow: status %d, %d connections", s, forbiddenHits.Load())
	}
	if strings.Contains(d.log(), "every target this token source names is reachable") {
		t.Errorf("warned about a missing --allow that was given:\n%s", d.log())
	}
	// Without --allow: websockify's behaviour, and a warning.
	d2 := startDaemon(t, "--token-plugin", "TokenRedis", "--token-source", src, "127.0.0.1:0")
	echoThrough(t, "ws://"+d2.addr+"/?token=evil")
	if !d2.waitLog(t, "every target this token source names is reachable") {
		t.Errorf("no warning without --allow:\n%s", d2.log())
	}
}

// TestWebsockifyJWTAndJSONApi runs websockify's JWTTokenApi and
// JSONTokenApi command lines against real signed tokens and a real
// lookup service.
func TestWebsockifyJWTAndJSONApi(t *testing.T) {
	target, _ := countingTarget(t)
	host, port, _ := net.SplitHostPort(target)
	secret := []byte("a-secret-of-at-least-32-bytes-for-HS256!")
	key := filepath.Join(t.TempDir(), "jwt.key")
	os.WriteFile(key, []byte(base64.RawURLEncoding.EncodeToString(secret)+"\n"), 0o600)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"host": host, "port": port,
		"exp": time.Now().Add(time.Minute).Unix()}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	expired, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"host": host, "port": port,
		"exp": time.Now().Add(-time.Minute).Unix()}).SignedString(secret)
	forbidden, forbiddenHits := countingTarget(t)
	_, fport, _ := net.SplitHostPort(forbidden)
	evil, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"host": "localhost", "port": fport}).SignedString(secret)
	d := startDaemon(t, "--token-plugin", "JWTTokenApi", "--token-source", key, "--allow", "127.0.0.1/32:"+port, "127.0.0.1:0")
	echoThrough(t, "ws://"+d.addr+"/websockify?token="+tok)
	if s := statusOf(t, "ws://"+d.addr+"/?token="+expired); s != 404 {
		t.Errorf("expired JWT: status %d, want 404", s)
	}
	if s := statusOf(t, "ws://"+d.addr+"/?token="+evil); s != 404 || forbiddenHits.Load() != 0 {
		t.Errorf("JWT naming a target outside --allow: status %d, %d connections; want 404 and none", s, forbiddenHits.Load())
	}

	lookup := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/t/desk":
			fmt.Fprintf(w, `{"host": %q, "port": %s}`, host, port)
		case "/t/evil":
			fmt.Fprintf(w, `{"host": "127.0.0.1", "port": %s}`, fport)
		default:
			http.NotFound(w, r)
		}
	}))
	defer lookup.Close()
	d2 := startDaemon(t, "--token-plugin", "JSONTokenApi", "--token-source", lookup.URL+"/t/%s", "--allow", "127.0.0.1/32:"+port, "127.0.0.1:0")
	echoThrough(t, "ws://"+d2.addr+"/?token=desk")
	if s := statusOf(t, "ws://"+d2.addr+"/?token=other"); s != 404 {
		t.Errorf("unknown token: status %d, want 404", s)
	}
	if s := statusOf(t, "ws://"+d2.addr+"/?token=evil"); s != 404 || forbiddenHits.Load() != 0 {
		t.Errorf("lookup naming a target outside --allow: status %d, %d connections; want 404 and none", s, forbiddenHits.Load())
	}
}

// TestSourceChainFromConfig runs a bridge.hcl with a static token target,
// a TokenFileName directory, a socket directory and tokens read from a
// path segment, asked in the file's order.
func TestSourceChainFromConfig(t *testing.T) {
	target, _ := countingTarget(t)
	other, otherHits := countingTarget(t)
	dir := t.TempDir()
	names := filepath.Join(dir, "names")
	socks := filepath.Join(dir, "socks")
	os.Mkdir(names, 0o755)
	os.Mkdir(socks, 0o755)
	os.WriteFile(filepath.Join(names, "desk"), []byte(target), 0o600)
	// A socket nobody listens on any more: its token answers 404, and
	// the log must not name it (the socket's name is the token).
	ln, err := net.Listen("unix", filepath.Join(socks, "deadvm"))
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	testenv.Listen(t, "unix", filepath.Join(socks, "vm1"), testenv.Echo)
	cfg := writeConfig(t, `
listen = "127.0.0.1:0"
http {
  allow_no_origin = true
}
token {
  from        = "path"
  path_prefix = "/t/"
}
target "static" {
  address = "`+other+`"
  token   = "fixed-token"
}
token_file "names" {
  path  = "`+names+`"
  style = "names"
}
socket_dir "vms" {
  path = "`+socks+`"
}
`)
	d := startDaemon(t, "run", "-config", cfg)
	echoThrough(t, "ws://"+d.addr+"/t/desk")
	echoThrough(t, "ws://"+d.addr+"/t/vm1")
	echoThrough(t, "ws://"+d.addr+"/t/fixed-token")
	if otherHits.Load() != 1 {
		t.Errorf("the static token target saw %d connections, want 1", otherHits.Load())
	}
	for _, p := range []string{"/t/nope", "/t/..%2Fnames%2Fdesk", "/desk", "/t/desk/x", "/t/deadvm"} {
		if s := statusOf(t, "ws://"+d.addr+p); s != 404 {
			t.Errorf("%s: status %d, want 404", p, s)
		}
	}
	d.waitLog(t, "target unreachable")
	for _, tok := range []string{"fixed-token", "vm1", "deadvm"} {
		if strings.Contains(d.log(), tok) {
			t.Errorf("token %s reached the log:\n%s", tok, d.log())
		}
	}
}
