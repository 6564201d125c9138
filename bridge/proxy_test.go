package bridge_test

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pires/go-proxyproto"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/internal/testenv"
	"github.com/wsbridge/wsbridge/targets"
)

// proxyTarget is a target that wants a PROXY header: it reports the
// client address the header names on seen, then echoes.
func proxyTarget(t *testing.T, seen chan<- string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pl := &proxyproto.Listener{Listener: ln, ConnPolicy: func(proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
		return proxyproto.REQUIRE, nil
	}}
	return targetOnListener(t, pl, func(c net.Conn) {
		seen <- c.RemoteAddr().String()
		io.Copy(c, c)
	})
}

// upgradeVia sends a PROXY header of version v naming client, then a
// WebSocket handshake, on one raw connection, and returns the status.
func upgradeVia(t *testing.T, addr string, v byte, client string) (int, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if v != 0 {
		src := net.TCPAddrFromAddrPort(netip.MustParseAddrPort(client))
		dst := c.RemoteAddr().(*net.TCPAddr)
		if _, err := proxyproto.HeaderProxyFromAddrs(v, src, dst).WriteTo(c); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestProxyProtocol(t *testing.T) {
	seen := make(chan string, 10)
	tgt := proxyTarget(t, seen)
	routes := []targets.Route{{Target: targets.Target{Name: "vnc", Network: "tcp", Address: tgt, Settings: &targets.Settings{ProxyProtocol: 2}}}}
	r, err := targets.NewRouter(routes, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		trusted string
		version byte
		client  string
		want    string // the address the bridge logs and the target sees; "" refused
	}{
		{name: "v1 from a trusted balancer", trusted: "127.0.0.0/8", version: 1, client: "203.0.113.7:5555", want: "203.0.113.7:5555"},
		{name: "v2 from a trusted balancer", trusted: "127.0.0.0/8", version: 2, client: "[2001:db8::9]:4444", want: "[2001:db8::9]:4444"},
		{name: "v2 from an untrusted peer", trusted: "10.0.0.0/8", version: 2, client: "203.0.113.7:5555"},
		{name: "v1 from an untrusted peer", trusted: "10.0.0.0/8", version: 1, client: "203.0.113.7:5555"},
		{name: "no header from an untrusted peer", trusted: "10.0.0.0/8", want: "127.0.0.1:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			trusted := []netip.Prefix{netip.MustParsePrefix(tt.trusted)}
			b := startBridgeWrapped(t, r, &bridge.Options{}, func(ln net.Listener, log *slog.Logger) net.Listener {
				return bridge.ProxyListener(ln, trusted, false, time.Second, log)
			})
			addr := strings.TrimPrefix(b.url, "ws://")
			status, err := upgradeVia(t, addr, tt.version, tt.client)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("a PROXY header from an untrusted peer was served: %d", status)
				}
				if !strings.Contains(b.log.logs(), "PROXY header from an address that is not trusted") {
					t.Errorf("the refusal is not logged:\n%s", b.log.logs())
				}
				return
			}
			if err != nil || status != http.StatusSwitchingProtocols {
				t.Fatalf("upgrade: %d %v", status, err)
			}
			select {
			case got := <-seen:
				if !strings.HasPrefix(got, tt.want) {
					t.Errorf("the target saw the client as %s, want %s", got, tt.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the target saw no connection")
			}
			// The session's line is written when it ends, a moment after
			// upgradeVia hung up.
			if !waitLogged(b, "remote="+tt.want) {
				t.Errorf("the log does not name the client %s:\n%s", tt.want, b.log.logs())
			}
		})
	}
}

func waitLogged(b *testBridge, s string) bool {
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if strings.Contains(b.log.logs(), s) {
			return true
		}
	}
	return false
}

func TestForwardedForFromTrustedProxies(t *testing.T) {
	tgt := target(t, echo)
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}
	b := startBridge(t, static(tgt), nil, &bridge.Options{TrustedProxies: trusted, PerIPSessions: 1})
	for _, tt := range []struct {
		name, header, value, want string
	}{
		{"X-Forwarded-For, last untrusted wins", "X-Forwarded-For", "198.51.100.1, 203.0.113.9, 10.1.1.1", "203.0.113.9:0"},
		{"Forwarded with port", "Forwarded", `for=192.0.2.60;proto=https, for="[2001:db8::1]:4711"`, "[2001:db8::1]:4711"},
		{"a spoofed left entry is ignored", "X-Forwarded-For", "1.1.1.1, 203.0.113.10", "203.0.113.10:0"},
		{"garbage falls back to the peer", "X-Forwarded-For", "unknown", "127.0.0.1:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			h.Set(tt.header, tt.value)
			ws := dialWithHeader(t, b.url, h)
			ws.CloseNow()
			if !waitLogged(b, "remote="+tt.want) {
				t.Errorf("%s: %s did not make the client %s:\n%s", tt.header, tt.value, tt.want, b.log.logs())
			}
		})
	}
}

func dialWithHeader(t *testing.T, url string, h http.Header) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(t.Context(), url, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	return c
}

// targetOnListener serves handle on ln until the test ends.
func targetOnListener(t *testing.T, ln net.Listener, handle func(net.Conn)) string {
	t.Helper()
	return testenv.Serve(t, ln, handle)
}
