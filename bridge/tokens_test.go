package bridge_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/targets"
)

// rawHandshake sends an upgrade request for target (path and query, as
// written on the request line) with the extra header lines, over a plain
// TCP connection, and returns the response.
func rawHandshake(t testing.TB, bridgeURL, target string, extra ...string) *http.Response {
	t.Helper()
	addr := strings.TrimPrefix(bridgeURL, "ws://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	host := "Host: " + addr
	for _, e := range extra {
		if strings.HasPrefix(strings.ToLower(e), "host:") {
			host = ""
		}
	}
	req := "GET " + target + " HTTP/1.1\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	if host != "" {
		req += host + "\r\n"
	}
	for _, e := range extra {
		req += e + "\r\n"
	}
	if _, err := c.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %.80s: %v", target, err)
	}
	return resp
}

func TestTokenPlaces(t *testing.T) {
	live := target(t, echo)
	tokens := writeTokens(t, "good: "+live+"\ndesk1.example.com: "+live+"\n")
	tests := []struct {
		from     bridge.TokenFrom
		good     []string // target, then header lines
		bad      []string
		wantBad  int
		dupe     []string
		wantDupe int
	}{
		{bridge.TokenFrom{}, []string{"/websockify?token=good"}, []string{"/websockify?token=bad"}, 404, []string{"/?token=good&token=bad"}, 400},
		{bridge.TokenFrom{Name: "t"}, []string{"/?x=1&t=good"}, []string{"/?token=good"}, 404, []string{"/?t=good&t=good"}, 400},
		{bridge.TokenFrom{Place: "path", PathPrefix: "/t/"}, []string{"/t/good"}, []string{"/t/good/extra"}, 404, nil, 0},
		{bridge.TokenFrom{Place: "path"}, []string{"/good"}, []string{"/t/good"}, 404, nil, 0},
		{bridge.TokenFrom{Place: "cookie", Name: "wsb"}, []string{"/", "Cookie: a=1; wsb=good"}, []string{"/?token=good"}, 404,
			[]string{"/", "Cookie: wsb=good; wsb=bad"}, 400},
		{bridge.TokenFrom{Place: "host"}, []string{"/", "Host: desk1.example.com:6080"}, []string{"/", "Host: desk2.example.com"}, 404,
			[]string{"/", "Host: desk1.example.com", "Host: desk2.example.com"}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.from.Place+tt.from.Name+tt.from.PathPrefix, func(t *testing.T) {
			if err := bridge.ValidTokenFrom(tt.from); err != nil {
				t.Fatal(err)
			}
			b := startBridge(t, nil, targets.NewTokenFile(tokens, nil), &bridge.Options{Token: tt.from})
			if resp := rawHandshake(t, b.url, tt.good[0], tt.good[1:]...); resp.StatusCode != 101 {
				t.Errorf("good %q: status %d, want 101", tt.good, resp.StatusCode)
			}
			if resp := rawHandshake(t, b.url, tt.bad[0], tt.bad[1:]...); resp.StatusCode != tt.wantBad {
				t.Errorf("bad %q: status %d, want %d", tt.bad, resp.StatusCode, tt.wantBad)
			}
			if tt.from.Place == "path" && strings.Contains(b.log.logs(), "good") {
				t.Errorf("a token from the path reached the log:\n%s", b.log.logs())
			}
			if tt.dupe != nil {
				if resp := rawHandshake(t, b.url, tt.dupe[0], tt.dupe[1:]...); resp.StatusCode != tt.wantDupe {
					t.Errorf("ambiguous %q: status %d, want %d", tt.dupe, resp.StatusCode, tt.wantDupe)
				}
			}
		})
	}
	for _, bad := range []bridge.TokenFrom{{Place: "header"}, {Place: "path", PathPrefix: "t/"}, {Place: "path", PathPrefix: "/t"}} {
		if err := bridge.ValidTokenFrom(bad); err == nil {
			t.Errorf("ValidTokenFrom(%+v) accepted it", bad)
		}
	}
}

// countingResolver counts the lookups that reach it.
type countingResolver struct {
	targets.Resolver
	n atomic.Int32
}

func (c *countingResolver) Resolve(ctx context.Context, r targets.Request) (targets.Target, error) {
	c.n.Add(1)
	return c.Resolver.Resolve(ctx, r)
}

func TestFailedLookupBudget(t *testing.T) {
	live := target(t, echo)
	src := &countingResolver{Resolver: targets.NewTokenFile(writeTokens(t, "good: "+live+"\n"), nil)}
	b := startBridge(t, nil, src, nil)
	for i := range 5 {
		if resp := rawHandshake(t, b.url, fmt.Sprintf("/?token=wrong%d", i)); resp.StatusCode != 404 {
			t.Fatalf("failure %d: status %d, want 404", i+1, resp.StatusCode)
		}
	}
	asked := src.n.Load()
	for _, target := range []string{"/?token=good", "/?token=wrong9", "/?token=a:b"} {
		resp := rawHandshake(t, b.url, target)
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("%s after 5 failures: status %d, want 429", target, resp.StatusCode)
		}
		if ra := resp.Header.Get("Retry-After"); ra != "60" && ra != "59" {
			t.Errorf("Retry-After %q, want about 60", ra)
		}
	}
	if n := src.n.Load(); n != asked {
		t.Errorf("a refused address still reached the token source (%d lookups, want %d)", n, asked)
	}
	if !strings.Contains(b.log.logs(), "refusing this address") {
		t.Errorf("the ban was not logged:\n%s", b.log.logs())
	}

	// Malformed tokens count too, and path routes are not lookups.
	b2 := startBridge(t, []targets.Route{{Path: "/vnc", Target: targets.Target{Name: "v", Network: "tcp", Address: live}}}, src, nil)
	for range 10 {
		if resp := rawHandshake(t, b2.url, "/nothing"); resp.StatusCode != 404 {
			t.Fatalf("tokenless request: status %d, want 404", resp.StatusCode)
		}
	}
	for _, tok := range []string{"a:b", "..", "%00", "a%2Fb", strings.Repeat("x", 300)} {
		rawHandshake(t, b2.url, "/?token="+tok)
	}
	if resp := rawHandshake(t, b2.url, "/vnc"); resp.StatusCode != 429 {
		t.Errorf("after 5 malformed tokens: status %d, want 429", resp.StatusCode)
	}

	// Off when negative.
	b3 := startBridge(t, nil, src, &bridge.Options{FailedLookups: -1})
	for range 8 {
		rawHandshake(t, b3.url, "/?token=wrong")
	}
	if resp := rawHandshake(t, b3.url, "/?token=good"); resp.StatusCode != 101 {
		t.Errorf("with the budget off: status %d, want 101", resp.StatusCode)
	}
}

// unavailable is a token source that is down.
type unavailable struct{}

func (unavailable) Resolve(context.Context, targets.Request) (targets.Target, error) {
	return targets.Target{}, fmt.Errorf("redis: connection refused: %w", targets.ErrUnavailable)
}

func TestUnavailableSource(t *testing.T) {
	b := startBridge(t, nil, unavailable{}, nil)
	for range 7 {
		resp := rawHandshake(t, b.url, "/?token=abc")
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "5" {
			t.Fatalf("status %d, Retry-After %q; want 503 and 5", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
}

// TestOpenRelayBattery tries every way a client could name a target of its
// own. A listener nobody configured must see zero connections.
func TestOpenRelayBattery(t *testing.T) {
	var reached atomic.Int32
	forbidden := target(t, func(c net.Conn) { reached.Add(1) })
	_, fport, _ := net.SplitHostPort(forbidden)
	live := target(t, echo)
	_, lport, _ := net.SplitHostPort(live)

	// A lookup service that names the forbidden target for "evil" and the
	// live one for "good"; the allowlist admits only the live port.
	lookup := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch strings.TrimPrefix(r.URL.Path, "/t/") {
		case "good":
			fmt.Fprintf(w, `{"host": "127.0.0.1", "port": %s}`, lport)
		case "evil":
			fmt.Fprintf(w, `{"host": "127.0.0.1", "port": %s}`, fport)
		case "evilname":
			fmt.Fprintf(w, `{"host": "localhost", "port": %s}`, fport)
		default:
			http.NotFound(w, r)
		}
	}))
	defer lookup.Close()
	allow, err := targets.ParseAllowlist([]string{"127.0.0.0/8:" + lport, "[::1]:" + lport})
	if err != nil {
		t.Fatal(err)
	}
	src, err := targets.NewHTTPLookup(&targets.HTTPLookupOptions{URL: lookup.URL + "/t/%s", Allow: allow})
	if err != nil {
		t.Fatal(err)
	}
	b := startBridge(t, nil, src, &bridge.Options{FailedLookups: -1})

	if resp := rawHandshake(t, b.url, "/?token=good"); resp.StatusCode != 101 {
		t.Fatalf("the allowed token: status %d, want 101", resp.StatusCode)
	}
	attempts := []string{
		"/?host=127.0.0.1&port=" + fport,
		"/?target=127.0.0.1:" + fport,
		"/?token=127.0.0.1:" + fport,
		"/?token=" + url.QueryEscape("127.0.0.1:"+fport),
		"/127.0.0.1:" + fport,
		"/?token=evil",
		"/?token=evilname",
		"/?token=good/../evil",
		"/?token=..%2Fevil",
		"/?token=evil%00",
		"/?token=%00",
		"/?token=..",
		"/?token=good&token=evil",
		"/?token=" + strings.Repeat("e", 64<<10),
		"/?token=" + strings.Repeat("e", 12<<10),
	}
	for _, a := range attempts {
		resp := rawHandshake(t, b.url, a)
		if resp.StatusCode == 101 {
			t.Errorf("%.60s: upgraded", a)
		} else if resp.StatusCode/100 != 4 {
			t.Errorf("%.60s: status %d, want a 4xx refusal", a, resp.StatusCode)
		}
	}
	// The same through the WebSocket client with a real session.
	if _, _, err := websocket.Dial(context.Background(), b.url+"/?token=evil", nil); err == nil {
		t.Error("websocket.Dial with the evil token succeeded")
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("the listener nobody configured saw %d connections", n)
	}
	if logs := b.log.logs(); !strings.Contains(logs, "outside the allowlist") {
		t.Errorf("the refused target was not logged as outside the allowlist:\n%s", logs)
	}
}

func TestTargetSettings(t *testing.T) {
	live := target(t, echo)
	routes := []targets.Route{
		{Path: "/small", Target: targets.Target{Name: "small", Network: "tcp", Address: live, Settings: &targets.Settings{MessageLimit: 1024}}},
		{Path: "/big", Target: targets.Target{Name: "big", Network: "tcp", Address: live}},
	}
	b := startBridge(t, routes, nil, nil)
	msg := make([]byte, 2048)
	big := dial(t, b.url+"/big")
	if err := big.Write(context.Background(), websocket.MessageBinary, msg); err != nil {
		t.Fatal(err)
	}
	if _, got, err := big.Read(context.Background()); err != nil || len(got) != len(msg) {
		t.Fatalf("echo through /big: %d bytes, %v", len(got), err)
	}
	small := dial(t, b.url+"/small")
	small.Write(context.Background(), websocket.MessageBinary, msg)
	_, err := readUntilClose(small)
	wantClose(t, err, websocket.StatusMessageTooBig, "")
}
