package bridge_test

import (
	"encoding/base64"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/internal/authfile"
	"github.com/wsbridge/wsbridge/targets"
)

// countingTarget is an echo target that counts the connections it got.
func countingTarget(t testing.TB) (string, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	addr := target(t, func(c net.Conn) { n.Add(1); echo(c) })
	return addr, &n
}

// waitDialled waits, after a 101, until a counting target has seen the
// connection: it counts on its own goroutine, and a late count would be
// blamed on the next case.
func waitDialled(t testing.TB, dials *atomic.Int32, before int32) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); dials.Load() == before; {
		if time.Now().After(deadline) {
			t.Fatal("upgraded, yet the target never saw the connection")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestOriginAndHostTable(t *testing.T) {
	addr, dials := countingTarget(t)
	b := startBridge(t, static(addr), nil, &bridge.Options{
		Hosts:          []string{"vnc.example.com", "*.lan.example"},
		Origins:        []string{"https://app.example", "https://*.corp.example:8443"},
		RefuseNoOrigin: true,
	})
	tests := []struct {
		name   string
		host   string
		origin []string
		status int
	}{
		{"listed origin", "vnc.example.com", []string{"https://app.example"}, 101},
		{"same host", "vnc.example.com", []string{"https://vnc.example.com"}, 101},
		{"same host and port", "vnc.example.com:6080", []string{"http://vnc.example.com:6080"}, 101},
		{"wildcard origin", "vnc.example.com", []string{"https://a.corp.example:8443"}, 101},
		{"wildcard host", "pc1.lan.example", []string{"https://pc1.lan.example"}, 101},

		{"evil origin", "vnc.example.com", []string{"https://evil.example"}, 403},
		{"null", "vnc.example.com", []string{"null"}, 403},
		{"wrong scheme", "vnc.example.com", []string{"http://app.example"}, 403},
		{"wrong port", "vnc.example.com", []string{"https://app.example:444"}, 403},
		{"default port spelled out", "vnc.example.com", []string{"https://app.example:443"}, 403},
		{"suffix trick", "vnc.example.com", []string{"https://app.example.evil.example"}, 403},
		{"prefix trick", "vnc.example.com", []string{"https://evilapp.example"}, 403},
		{"wildcard base", "vnc.example.com", []string{"https://corp.example:8443"}, 403},
		{"wildcard without port", "vnc.example.com", []string{"https://a.corp.example"}, 403},
		{"upper case", "vnc.example.com", []string{"HTTPS://APP.EXAMPLE"}, 403},
		{"mixed case", "vnc.example.com", []string{"https://App.example"}, 403},
		{"trailing dot", "vnc.example.com", []string{"https://app.example."}, 403},
		{"with path", "vnc.example.com", []string{"https://app.example/"}, 403},
		{"with user", "vnc.example.com", []string{"https://x@app.example"}, 403},
		{"two origins", "vnc.example.com", []string{"https://app.example", "https://evil.example"}, 403},
		{"no origin", "vnc.example.com", nil, 403},
		{"same host, other port", "vnc.example.com:6080", []string{"http://vnc.example.com:6081"}, 403},

		{"evil host", "evil.example", []string{"https://app.example"}, 403},
		{"rebinding: host and origin agree", "evil.example", []string{"http://evil.example"}, 403},
		{"host upper case", "VNC.EXAMPLE.COM", []string{"https://app.example"}, 403},
		{"host trailing dot", "vnc.example.com.", []string{"https://app.example"}, 403},
		{"host suffix trick", "vnc.example.com.evil.example", []string{"https://app.example"}, 403},
		{"host wildcard base", "lan.example", []string{"https://app.example"}, 403},
		{"host with other suffix", "xlan.example", []string{"https://app.example"}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := dials.Load()
			extra := []string{"Host: " + tt.host}
			for _, o := range tt.origin {
				extra = append(extra, "Origin: "+o)
			}
			resp := rawHandshake(t, b.url, "/", extra...)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("Host %q Origin %q: status %d, want %d", tt.host, tt.origin, resp.StatusCode, tt.status)
			}
			if tt.status == 101 {
				waitDialled(t, dials, before)
			}
			if tt.status != 101 {
				if dials.Load() != before {
					t.Errorf("refused, yet the target was dialled")
				}
				offending := tt.host
				if len(tt.origin) > 0 && strings.HasPrefix(tt.host, "vnc.") || strings.HasPrefix(tt.host, "pc1.") {
					offending = strings.Join(tt.origin, "")
					if len(tt.origin) > 1 {
						offending = tt.origin[0]
					}
				}
				if offending != "" && !strings.Contains(b.log.logs(), offending) {
					t.Errorf("the log does not name the refused value %q", offending)
				}
			}
		})
	}
	waitIdle(t, b)
}

func TestNullOriginWhenListed(t *testing.T) {
	b := startBridge(t, static(target(t, echo)), nil, &bridge.Options{Origins: []string{"null"}})
	resp := rawHandshake(t, b.url, "/", "Origin: null")
	resp.Body.Close()
	if resp.StatusCode != 101 {
		t.Fatalf("listed null origin: %d", resp.StatusCode)
	}
	// Without RefuseNoOrigin, programs without Origin pass.
	resp = rawHandshake(t, b.url, "/")
	resp.Body.Close()
	if resp.StatusCode != 101 {
		t.Fatalf("no Origin: %d", resp.StatusCode)
	}
}

// credentials writes an htpasswd file for alice and bob and a bearer file
// for ci.
func credentials(t testing.TB) (htpasswd, bearer string) {
	t.Helper()
	dir := t.TempDir()
	var lines []string
	for _, u := range []string{"alice", "bob"} {
		h, err := bcrypt.GenerateFromPassword([]byte(u+"-pw"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, u+":"+string(h))
	}
	htpasswd = filepath.Join(dir, "htpasswd")
	os.WriteFile(htpasswd, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
	bearer = filepath.Join(dir, "bearer")
	os.WriteFile(bearer, []byte("# name token\nci 0123456789abcdef0123456789abcdef-ci\n"), 0o600)
	return htpasswd, bearer
}

func basic(user, pass string) string {
	return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestAuthentication(t *testing.T) {
	hp, bp := credentials(t)
	users, err := authfile.NewHtpasswd(hp, nil)
	if err != nil {
		t.Fatal(err)
	}
	bearers, err := authfile.NewBearer(bp, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr, dials := countingTarget(t)
	tokens := &countingResolver{Resolver: mustRouter(t, []targets.Route{{Token: "desk", Target: targets.Target{Name: "d", Network: "tcp", Address: addr}}})}
	b := startBridgeResolver(t, tokens, &bridge.Options{
		Auth:          &bridge.Auth{Passwords: users, Bearer: bearers, Require: true, Allow: []string{"user:alice", "bearer:ci"}},
		FailedLookups: 3,
	})
	tests := []struct {
		name   string
		header []string
		status int
	}{
		{"none", nil, 401},
		{"alice", []string{basic("alice", "alice-pw")}, 101},
		{"alice again (remembered)", []string{basic("alice", "alice-pw")}, 101},
		{"bob, not allowed", []string{basic("bob", "bob-pw")}, 403},
		{"bearer", []string{"Authorization: Bearer 0123456789abcdef0123456789abcdef-ci"}, 101},
		{"malformed basic", []string{"Authorization: Basic %%%"}, 400},
		{"two headers", []string{basic("alice", "alice-pw"), basic("alice", "alice-pw")}, 400},
		{"other scheme", []string{"Authorization: Digest x"}, 401},
		{"wrong password", []string{basic("alice", "nope")}, 401},
		{"unknown user", []string{basic("mallory", "nope")}, 401},
		{"wrong bearer", []string{"Authorization: Bearer nope"}, 401},
		// Three wrong credentials spent the budget: even alice waits.
		{"banned", []string{basic("alice", "alice-pw")}, 429},
	}
	for _, tt := range tests {
		before, lookups := dials.Load(), tokens.n.Load()
		resp := rawHandshake(t, b.url, "/?token=desk", tt.header...)
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d", tt.name, resp.StatusCode, tt.status)
			continue
		}
		if tt.status == 101 {
			waitDialled(t, dials, before)
		}
		if resp.StatusCode == 401 && !strings.Contains(strings.Join(resp.Header.Values("WWW-Authenticate"), ","), `Basic realm="wsbridge"`) {
			t.Errorf("%s: 401 without a Basic challenge: %v", tt.name, resp.Header)
		}
		if tt.status != 101 && (dials.Load() != before || tokens.n.Load() != lookups) {
			t.Errorf("%s: refused, yet the token was looked up or the target dialled", tt.name)
		}
	}
	if strings.Contains(b.log.logs(), "alice-pw") || strings.Contains(b.log.logs(), "-ci") {
		t.Errorf("a credential reached the log:\n%s", b.log.logs())
	}
}

func mustRouter(t testing.TB, routes []targets.Route) targets.Resolver {
	t.Helper()
	r, err := targets.NewRouter(routes, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestWebRootAuthentication(t *testing.T) {
	hp, _ := credentials(t)
	users, err := authfile.NewHtpasswd(hp, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := webBridge(t, &bridge.Options{
		Auth: &bridge.Auth{Passwords: users, Realm: "desk", Web: true, Require: true},
	})
	resp, body := rawGet(t, addr, "GET", "/vnc.html")
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Basic realm="desk", charset="UTF-8"` || strings.Contains(body, "vnc") {
		t.Errorf("without credentials: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	resp, body = rawGet(t, addr, "GET", "/vnc.html", basic("bob", "bob-pw"))
	if resp.StatusCode != 200 || body != "<html>vnc</html>" {
		t.Errorf("with credentials: %d %q", resp.StatusCode, body)
	}
	// Without web = true the page is public, whatever credentials come.
	open := webBridge(t, &bridge.Options{Auth: &bridge.Auth{Passwords: users, Require: true}})
	if resp, _ := rawGet(t, open, "GET", "/vnc.html", basic("bob", "wrong")); resp.StatusCode != 200 {
		t.Errorf("public web root with stray credentials: %d", resp.StatusCode)
	}
}

// TestNoSecretInLogsOrBodies makes requests that carry a canary token,
// password and bearer token, right and wrong, and greps everything the
// bridge wrote and answered.
func TestNoSecretInLogsOrBodies(t *testing.T) {
	const canary = "CANARY7f3a9c"
	dir := t.TempDir()
	h, _ := bcrypt.GenerateFromPassword([]byte(canary+"pw"), bcrypt.MinCost)
	hp := filepath.Join(dir, "htpasswd")
	os.WriteFile(hp, []byte("user:"+string(h)+"\n"), 0o600)
	bp := filepath.Join(dir, "bearer")
	os.WriteFile(bp, []byte("bot "+canary+"0123456789abcdef0123456789\n"), 0o600)
	users, _ := authfile.NewHtpasswd(hp, nil)
	bearers, _ := authfile.NewBearer(bp, nil)
	tokens := writeTokens(t, canary+"-tok: "+target(t, echo)+"\n"+canary+"-down: "+deadAddr(t)+"\n")
	tf := targets.NewTokenFile(tokens, nil)
	if err := tf.Load(); err != nil {
		t.Fatal(err)
	}
	b := startBridge(t, nil, tf, &bridge.Options{
		Auth:           &bridge.Auth{Passwords: users, Bearer: bearers},
		FailedLookups:  -1,
		Hosts:          []string{"127.0.0.1"},
		RefuseNoOrigin: true,
	})
	addr := strings.TrimPrefix(b.url, "ws://")
	var bodies []string
	for _, req := range [][]string{
		{"/?token=" + canary + "-tok", basic("user", canary+"pw"), "Origin: http://" + addr},
		{"/?token=" + canary + "-tok", basic("user", canary+"wrong"), "Origin: http://" + addr},
		{"/?token=" + canary + "-nope", "Authorization: Bearer " + canary + "0123456789abcdef0123456789", "Origin: http://" + addr},
		{"/?token=" + canary + "-down", "Origin: http://" + addr},
		{"/?token=" + canary + "-tok", "Origin: https://" + canary + ".evil"},
		{"/?token=" + canary + "-tok"},
		{"/?token=" + canary + "-tok&token=" + canary + "2", "Origin: http://" + addr},
		{"/?token=" + canary + "%ff%00", "Origin: http://" + addr},
	} {
		// A subtest closes its connection when it ends.
		t.Run("", func(t *testing.T) {
			resp := rawHandshake(t, b.url, req[0], req[1:]...)
			if resp.StatusCode != 101 {
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				bodies = append(bodies, resp.Status+" "+string(body))
			}
			resp.Body.Close()
			for k, v := range resp.Header {
				bodies = append(bodies, k+": "+strings.Join(v, ","))
			}
		})
	}
	waitIdle(t, b)
	logs := b.log.logs()
	if !strings.Contains(logs, "token_hash=") {
		t.Fatalf("the test did not exercise token logging:\n%s", logs)
	}
	for _, l := range strings.Split(logs, "\n") {
		// The refused Origin is the one value the log must show.
		if strings.Contains(l, canary) && !strings.Contains(l, "origin=https://"+canary+".evil") {
			t.Errorf("a secret reached the log: %s", l)
		}
	}
	for _, body := range bodies {
		if strings.Contains(body, canary) {
			t.Errorf("a secret reached an answer: %s", body)
		}
	}
}

// TestForeignAuthorizationIgnored: an Authorization header in a scheme the
// listener does not take (a proxy in front used it) neither passes nor
// blocks a request.
func TestForeignAuthorizationIgnored(t *testing.T) {
	b := startBridge(t, static(target(t, echo)), nil, nil)
	for _, h := range []string{basic("someone", "x"), "Authorization: Bearer abc", "Authorization: Negotiate abc"} {
		t.Run(h, func(t *testing.T) {
			resp := rawHandshake(t, b.url, "/", h)
			resp.Body.Close()
			if resp.StatusCode != 101 {
				t.Fatalf("%s on a listener without auth: %d", h, resp.StatusCode)
			}
		})
	}
}
