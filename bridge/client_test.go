package bridge_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/internal/testenv"
	"github.com/wsbridge/wsbridge/targets"
)

// localPair is a real loopback TCP connection: the test's end and the end
// handed to Relay.
func localPair(t testing.TB) (mine, relayed *net.TCPConn) { return testenv.TCPPair(t) }

// relay dials the bridge and runs Relay on relayed in the background; the
// returned channel gives Relay's result.
func relay(t testing.TB, ctx context.Context, url string, opts *bridge.DialOptions, relayed net.Conn) <-chan error {
	t.Helper()
	c, err := bridge.Dial(t.Context(), url, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Relay(ctx, relayed, relayed) }()
	return done
}

func result(t testing.TB, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("Relay did not return")
		return nil
	}
}

func TestClientRelayIntegrity(t *testing.T) {
	b := startBridge(t, static(target(t, echo)), nil, nil)
	for _, tt := range []struct {
		name string
		opts bridge.DialOptions
		want string
	}{
		{"binary", bridge.DialOptions{}, "binary"},
		{"base64", bridge.DialOptions{Mode: bridge.Base64}, "base64"},
		{"no subprotocol", bridge.DialOptions{NoSubprotocol: true}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mine, relayed := localPair(t)
			c, err := bridge.Dial(t.Context(), b.url, &tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Subprotocol(); got != tt.want {
				t.Errorf("Subprotocol() = %q, want %q", got, tt.want)
			}
			done := make(chan error, 1)
			go func() { done <- c.Relay(context.Background(), relayed, relayed) }()

			data := randomBytes(t, 3<<20+17)
			got := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(io.LimitReader(mine, int64(len(data))))
				got <- b
			}()
			if _, err := mine.Write(data); err != nil {
				t.Fatal(err)
			}
			if echoed := <-got; !bytes.Equal(echoed, data) {
				t.Fatalf("echoed %d bytes, want the %d sent, unchanged", len(echoed), len(data))
			}
			mine.CloseWrite()
			// Default EOFWait is zero: the input's end closes with 1000.
			if err := result(t, done); err != nil {
				t.Fatalf("Relay = %v, want nil (closed with 1000)", err)
			}
			// Relay half-closed the local connection: the test's end reads EOF.
			if n, err := mine.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Errorf("after Relay: read %d, %v; want EOF", n, err)
			}
			waitIdle(t, b)
		})
	}
}

// TestClientTargetCloses: every byte the target sends before its FIN
// reaches the local side, and the 1000 that follows is a nil from Relay,
// also while the local input has ended and EOFWait waits.
func TestClientTargetCloses(t *testing.T) {
	payload := randomBytes(t, 200<<10)
	slow := target(t, func(c net.Conn) {
		// Answer only after the client's input has ended, as a request and
		// response protocol does.
		io.Copy(io.Discard, io.LimitReader(c, 4))
		time.Sleep(100 * time.Millisecond)
		c.Write(payload)
	})
	b := startBridge(t, static(slow), nil, nil)
	for _, mode := range []bridge.Mode{bridge.Binary, bridge.Base64} {
		t.Run(mode.String(), func(t *testing.T) {
			mine, relayed := localPair(t)
			done := relay(t, context.Background(), b.url, &bridge.DialOptions{Mode: mode, EOFWait: 10 * time.Second}, relayed)
			mine.Write([]byte("QUIT"))
			mine.CloseWrite()
			got, err := io.ReadAll(mine)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("got %d bytes, want the target's %d", len(got), len(payload))
			}
			if err := result(t, done); err != nil {
				t.Fatalf("Relay = %v, want nil", err)
			}
		})
	}
}

func TestClientRefused(t *testing.T) {
	live := target(t, echo)
	b := startBridge(t, []targets.Route{
		{Path: "/live", Target: targets.Target{Name: "live", Network: "tcp", Address: live}},
		{Path: "/dead", Target: targets.Target{Name: "dead", Network: "tcp", Address: deadAddr(t)}},
	}, nil, &bridge.Options{RefuseNoOrigin: true})
	origin := http.Header{"Origin": {"http://" + b.url[len("ws://"):]}}
	for _, tt := range []struct {
		name   string
		url    string
		header http.Header
		status int
		reason string
	}{
		{"unknown path", b.url + "/nope?token=secret", origin, 404, "not found"},
		{"dead target", b.url + "/dead", origin, 502, "target unreachable"},
		{"no origin", b.url + "/live", nil, 403, "Origin"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := bridge.Dial(t.Context(), tt.url, &bridge.DialOptions{Header: tt.header})
			var he *bridge.HandshakeError
			if !errors.As(err, &he) {
				t.Fatalf("Dial = %v, want a HandshakeError", err)
			}
			if he.Status != tt.status || !bytes.Contains([]byte(he.Reason), []byte(tt.reason)) {
				t.Errorf("refused with %d %q, want %d and %q", he.Status, he.Reason, tt.status, tt.reason)
			}
			if bytes.Contains([]byte(err.Error()), []byte("secret")) {
				t.Errorf("the error shows the token: %v", err)
			}
		})
	}
	_, err := bridge.Dial(t.Context(), "ws://"+deadAddr(t)+"/?token=secret", nil)
	if err == nil || bytes.Contains([]byte(err.Error()), []byte("secret")) {
		t.Errorf("Dial to a closed port = %v, want an error without the token", err)
	}
	if _, err := bridge.Dial(t.Context(), "http://"+live, nil); err == nil {
		t.Error("Dial accepted an http:// URL")
	}
}

// TestClientEndings: how sessions end reaches the caller as the bridge
// said it.
func TestClientEndings(t *testing.T) {
	t.Run("shutdown is 1001", func(t *testing.T) {
		b := startBridge(t, static(target(t, echo)), nil, nil)
		_, relayed := localPair(t)
		done := relay(t, context.Background(), b.url, nil, relayed)
		waitActive(t, b, 1)
		// No drain: live sessions close at once.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		b.srv.Shutdown(ctx)
		wantClose(t, result(t, done), websocket.StatusGoingAway, "Server shutting down")
	})
	t.Run("target reset is 1011", func(t *testing.T) {
		reset := target(t, func(c net.Conn) {
			c.Read(make([]byte, 1))
			c.(*net.TCPConn).SetLinger(0)
		})
		b := startBridge(t, static(reset), nil, nil)
		mine, relayed := localPair(t)
		done := relay(t, context.Background(), b.url, nil, relayed)
		mine.Write([]byte("x"))
		err := result(t, done)
		if code := websocket.CloseStatus(err); code != websocket.StatusInternalError && code != websocket.StatusBadGateway {
			t.Fatalf("Relay = %v, want a close with 1011 or 1014", err)
		}
	})
	t.Run("cancel closes with 1001", func(t *testing.T) {
		b := startBridge(t, static(target(t, echo)), nil, nil)
		_, relayed := localPair(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := relay(t, ctx, b.url, nil, relayed)
		waitActive(t, b, 1)
		cancel()
		if err := result(t, done); !errors.Is(err, context.Canceled) {
			t.Fatalf("Relay = %v, want context.Canceled", err)
		}
		waitIdle(t, b)
		if logs := b.log.logs(); !bytes.Contains([]byte(logs), []byte("close_code=1001")) {
			t.Errorf("the bridge did not log a 1001 from the client:\n%s", logs)
		}
	})
	t.Run("cut connection is ErrLost", func(t *testing.T) {
		b := startBridge(t, static(target(t, echo)), nil, nil)
		cut := make(chan struct{})
		front := forwarder(t, b.url[len("ws://"):], cut)
		_, relayed := localPair(t)
		done := relay(t, context.Background(), "ws://"+front, nil, relayed)
		waitActive(t, b, 1)
		close(cut)
		if err := result(t, done); !errors.Is(err, bridge.ErrLost) {
			t.Fatalf("Relay = %v, want ErrLost", err)
		}
	})
}

// waitActive waits until the bridge has n live sessions.
func waitActive(t testing.TB, b *testBridge, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for int64(b.srv.Active()) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions live, want %d", b.srv.Active(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// forwarder relays TCP connections to addr until cut is closed, then
// cuts them all without a word, as a failed network does.
func forwarder(t testing.TB, addr string, cut <-chan struct{}) string {
	t.Helper()
	return testenv.Listen(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		up, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		var wg sync.WaitGroup
		wg.Go(func() { io.Copy(up, c) })
		wg.Go(func() { io.Copy(c, up) })
		<-cut
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
		up.Close()
		wg.Wait()
	})
}
