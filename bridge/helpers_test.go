package bridge_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/internal/testenv"
	"github.com/wsbridge/wsbridge/targets"
)

func TestMain(m *testing.M) {
	// The parker's epoll loop and the pinger's are one per process, for good.
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/wsbridge/wsbridge/bridge.(*parker).loop"),
		goleak.IgnoreAnyFunction("github.com/wsbridge/wsbridge/bridge.(*pinger).loop"))
}

// tbWriter sends log lines to the test log.
type tbWriter struct {
	mu sync.Mutex
	t  testing.TB
	lg strings.Builder
	on bool
}

func (w *tbWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lg.Write(p)
	if w.on {
		w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// logs returns everything logged so far.
func (w *tbWriter) logs() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lg.String()
}

// target listens on a loopback port and runs handle for every connection.
// The listener and every connection it accepted are closed at cleanup.
func target(t testing.TB, handle func(c net.Conn)) string {
	t.Helper()
	return targetOn(t, "tcp", "127.0.0.1:0", handle)
}

// targetOn is target on any network and address.
func targetOn(t testing.TB, network, addr string, handle func(c net.Conn)) string {
	t.Helper()
	return testenv.Listen(t, network, addr, handle)
}

func echo(c net.Conn) { testenv.Echo(c) }

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// testBridge is a bridge.Server on a real loopback listener.
type testBridge struct {
	srv *bridge.Server
	url string // ws://127.0.0.1:port
	log *tbWriter
}

// startBridge serves a bridge for the given routes until cleanup.
func startBridge(t testing.TB, routes []targets.Route, tokens targets.Resolver, opts *bridge.Options) *testBridge {
	t.Helper()
	r, err := targets.NewRouter(routes, tokens)
	if err != nil {
		t.Fatal(err)
	}
	return startBridgeResolver(t, r, opts)
}

func startBridgeResolver(t testing.TB, r targets.Resolver, opts *bridge.Options) *testBridge {
	t.Helper()
	return startBridgeWrapped(t, r, opts, nil)
}

// startBridgeWrapped is startBridgeResolver with the listener wrapped, as
// a PROXY protocol reader wraps it; wrap gets the bridge's logger.
func startBridgeWrapped(t testing.TB, r targets.Resolver, opts *bridge.Options, wrap func(net.Listener, *slog.Logger) net.Listener) *testBridge {
	t.Helper()
	if opts == nil {
		opts = &bridge.Options{}
	}
	w := &tbWriter{t: t, on: testing.Verbose()}
	o := *opts
	// Tests open many sessions from 127.0.0.1 at once; the per-address
	// limits are tested where they are set.
	setDefault(&o.PerIPSessions, -1)
	setDefault(&o.PerIPRate, -1)
	o.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := bridge.New(r, &o)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := net.Listener(ln)
	if wrap != nil {
		served = wrap(ln, o.Logger)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(served) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
		// Stop logging to a finished test.
		w.mu.Lock()
		w.on = false
		w.mu.Unlock()
	})
	scheme := "ws://"
	if o.TLS != nil {
		scheme = "wss://"
	}
	return &testBridge{srv: srv, url: scheme + ln.Addr().String(), log: w}
}

// static is a fallback route to addr.
func static(addr string) []targets.Route {
	return []targets.Route{{Target: targets.Target{Name: "t", Network: "tcp", Address: addr}}}
}

// dial opens a WebSocket to the bridge and closes it at cleanup.
func dial(t testing.TB, url string, protocols ...string) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.Dial(context.Background(), url, &websocket.DialOptions{Subprotocols: protocols})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", url, err, status)
	}
	c.SetReadLimit(-1)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// dialRaw is dial that also returns the client's TCP connection, for tests
// that cut it without a close frame.
func dialRaw(t testing.TB, url string) (*websocket.Conn, net.Conn) {
	t.Helper()
	var raw net.Conn
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			raw = c
			return c, err
		},
	}}
	c, _, err := websocket.Dial(t.Context(), url, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c, raw
}

// readUntilClose reads messages until the connection closes and returns the
// bytes of all data messages and the close error.
func readUntilClose(c *websocket.Conn) ([]byte, error) {
	var all []byte
	for {
		_, b, err := c.Read(context.Background())
		if err != nil {
			return all, err
		}
		all = append(all, b...)
	}
}

// wantClose checks that err is a close frame with the given code and reason.
func wantClose(t testing.TB, err error, code websocket.StatusCode, reason string) {
	t.Helper()
	var ce websocket.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("got error %v, want close %d %q", err, code, reason)
	}
	if ce.Code != code || (reason != "" && ce.Reason != reason) {
		t.Fatalf("got close %d %q, want %d %q", ce.Code, ce.Reason, code, reason)
	}
}

// waitIdle waits until the bridge has no live session.
func waitIdle(t testing.TB, b *testBridge) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for b.srv.Active() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions still live", b.srv.Active())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readExactly fails unless c's next bytes are want.
func readExactly(t testing.TB, c net.Conn, want string) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
		t.Fatalf("target read %q, %v; want %q", got, err, want)
	}
}

// rawSession opens a session through a bridge with opts, for a raw client
// that sends first with its request, to a target that holds its end of
// the connection; it returns the client and that end, whose reads give up
// after 10 s.
func rawSession(t *testing.T, opts *bridge.Options, first []byte) (*frameConn, net.Conn) {
	t.Helper()
	addr, conns := heldTargets(t, 1)
	b := startBridge(t, static(addr), nil, opts)
	fc := rawWS(t, b.url, first)
	tc := <-conns
	tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	return fc, tc
}

// heldTargets is a target that hands each of its first n connections to
// the test, and keeps it open until the test ends.
func heldTargets(t *testing.T, n int) (string, <-chan net.Conn) {
	t.Helper()
	conns := make(chan net.Conn, n)
	addr := target(t, func(c net.Conn) {
		conns <- c
		<-t.Context().Done()
	})
	return addr, conns
}
