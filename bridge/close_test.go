package bridge_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsbridge/wsbridge/bridge"
)

func TestCloseCodes(t *testing.T) {
	tests := []struct {
		name   string
		opts   bridge.Options
		proto  string
		target func(c net.Conn)
		client func(t *testing.T, c *websocket.Conn)
		code   websocket.StatusCode
		reason string
	}{
		{
			name:   "target closed",
			target: func(c net.Conn) { c.Write([]byte("bye")) },
			code:   websocket.StatusNormalClosure, reason: "Target closed",
		},
		{
			name: "target reset",
			target: func(c net.Conn) {
				c.Write([]byte("partial"))
				time.Sleep(50 * time.Millisecond)
				c.(*net.TCPConn).SetLinger(0)
			},
			code: websocket.StatusInternalError, reason: "Target error",
		},
		{
			name:   "strict text",
			opts:   bridge.Options{StrictText: true},
			target: echo,
			client: func(t *testing.T, c *websocket.Conn) {
				c.Write(t.Context(), websocket.MessageText, []byte("hello"))
			},
			code: websocket.StatusUnsupportedData, reason: "Text frames are not supported",
		},
		{
			name:   "invalid base64",
			proto:  "base64",
			target: echo,
			client: func(t *testing.T, c *websocket.Conn) {
				c.Write(t.Context(), websocket.MessageText, []byte("not base64!"))
			},
			code: websocket.StatusInvalidFramePayloadData, reason: "Invalid base64",
		},
		{
			name:   "base64 data after padding",
			proto:  "base64",
			target: echo,
			client: func(t *testing.T, c *websocket.Conn) {
				c.Write(t.Context(), websocket.MessageText, []byte("QQ==QUJD"))
			},
			code: websocket.StatusInvalidFramePayloadData, reason: "Invalid base64",
		},
		{
			name:   "message too big",
			opts:   bridge.Options{MessageLimit: 1000},
			target: echo,
			client: func(t *testing.T, c *websocket.Conn) {
				c.Write(t.Context(), websocket.MessageBinary, make([]byte, 1001))
			},
			code: websocket.StatusMessageTooBig,
		},
		{
			name:   "idle timeout",
			opts:   bridge.Options{IdleTimeout: 200 * time.Millisecond},
			target: echo,
			code:   websocket.StatusPolicyViolation, reason: "Idle timeout",
		},
		{
			name:   "lifetime",
			opts:   bridge.Options{MaxLifetime: 200 * time.Millisecond},
			target: echo,
			client: func(t *testing.T, c *websocket.Conn) {
				for range 5 {
					c.Write(t.Context(), websocket.MessageBinary, []byte("keep busy"))
					time.Sleep(50 * time.Millisecond)
				}
			},
			code: websocket.StatusPolicyViolation, reason: "Session lifetime exceeded",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := target(t, tt.target)
			b := startBridge(t, static(addr), nil, &tt.opts)
			c := dial(t, b.url, protocols(tt.proto)...)
			if tt.client != nil {
				go tt.client(t, c)
			}
			_, err := readUntilClose(c)
			wantClose(t, err, tt.code, tt.reason)
			waitIdle(t, b)
			if !strings.Contains(b.log.logs(), "close_code="+strconv.Itoa(int(tt.code))) {
				t.Errorf("no session log line with close_code=%d:\n%s", tt.code, b.log.logs())
			}
		})
	}
}

// TestClientCloseEchoed checks that the client's own close code comes back.
func TestClientCloseEchoed(t *testing.T) {
	addr := target(t, echo)
	b := startBridge(t, static(addr), nil, nil)
	c := dial(t, b.url)
	if err := c.Close(4001, "bye"); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
	waitIdle(t, b)
	if !strings.Contains(b.log.logs(), "close_code=4001") {
		t.Errorf("log does not record the client's code:\n%s", b.log.logs())
	}
}

// TestTargetHalfClose: the target sends, shuts its write side and keeps
// reading. The client gets every byte, then 1000, and the target's read side
// stays open: what the client sent before the close reaches it, followed by
// a clean EOF rather than a reset.
//
// Messages a client sends after the bridge's close frame has left are not
// relayed: websocket.Conn.Close discards data until the peer's close frame
// (coder/websocket #103, #109), as RFC 6455 section 5.5.1 allows.
func TestTargetHalfClose(t *testing.T) {
	type result struct {
		b   []byte
		err error
	}
	got := make(chan result, 1)
	addr := target(t, func(c net.Conn) {
		c.Write([]byte("hello"))
		ack := make([]byte, 3)
		if _, err := io.ReadFull(c, ack); err != nil {
			got <- result{nil, err}
			return
		}
		c.(*net.TCPConn).CloseWrite()
		b, err := io.ReadAll(c)
		got <- result{append(ack, b...), err}
	})
	b := startBridge(t, static(addr), nil, nil)
	c := dial(t, b.url)
	_, m, err := c.Read(t.Context())
	if err != nil || string(m) != "hello" {
		t.Fatalf("Read = %q, %v", m, err)
	}
	if err := c.Write(t.Context(), websocket.MessageBinary, []byte("ack")); err != nil {
		t.Fatal(err)
	}
	_, err = readUntilClose(c)
	wantClose(t, err, websocket.StatusNormalClosure, "Target closed")
	r := <-got
	if r.err != nil || string(r.b) != "ack" {
		t.Fatalf("target read %q, %v after its FIN; want %q and a clean EOF", r.b, r.err, "ack")
	}
	waitIdle(t, b)
}

// TestLateMessagesDropped: binary and text messages that arrive after the
// bridge's close frame has left (the target half-closed) do not reach the
// target, which reads what came before and a clean EOF.
func TestLateMessagesDropped(t *testing.T) {
	got := make(chan string, 1)
	addr := target(t, func(c net.Conn) {
		c.Write([]byte("hello"))
		ack := make([]byte, 3)
		if _, err := io.ReadFull(c, ack); err != nil {
			got <- err.Error()
			return
		}
		c.(*net.TCPConn).CloseWrite()
		b, err := io.ReadAll(c)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(append(ack, b...))
	})
	b := startBridge(t, static(addr), nil, nil)
	fc := rawWS(t, b.url, nil)
	if m := fc.readData(t); string(m) != "hello" {
		t.Fatalf("read %q", m)
	}
	fc.send(t, frame(true, 0, opBinary, []byte("ack"), true))
	if code, _ := fc.readClose(t); code != 1000 {
		t.Fatalf("close %d, want 1000", code)
	}
	fc.send(t, frame(true, 0, opBinary, []byte("late binary"), true), frame(true, 0, opText, []byte("late text"), true),
		frame(true, 0, opClose, closePayload(1000, ""), true))
	if r := <-got; r != "ack" {
		t.Fatalf("the target read %q; want \"ack\" and a clean EOF", r)
	}
	waitIdle(t, b)
}

// TestClientHalfClose: the client sends and closes; the target reads every
// byte and then a clean EOF, not a reset, even though it had unread bytes
// on its way to the bridge.
func TestClientHalfClose(t *testing.T) {
	type result struct {
		b   []byte
		err error
	}
	got := make(chan result, 1)
	addr := target(t, func(c net.Conn) {
		// Bytes the bridge has not read yet when the client closes.
		c.Write(bytes.Repeat([]byte("x"), 1<<20))
		b, err := io.ReadAll(c)
		got <- result{b, err}
	})
	b := startBridge(t, static(addr), nil, nil)
	c := dial(t, b.url)
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	for p := want; len(p) > 0; p = p[32<<10:] {
		if err := c.Write(t.Context(), websocket.MessageBinary, p[:32<<10]); err != nil {
			t.Fatal(err)
		}
	}
	c.Close(websocket.StatusNormalClosure, "done")
	r := <-got
	if r.err != nil {
		t.Fatalf("target read error %v after %d bytes", r.err, len(r.b))
	}
	if !bytes.Equal(r.b, want) {
		t.Fatalf("target got %d bytes, want %d", len(r.b), len(want))
	}
	waitIdle(t, b)
}

// TestClientVanishes: the client's TCP connection is reset without a close
// frame. The target sees its connection end, and no goroutine outlives the
// session (goleak checks in TestMain).
func TestClientVanishes(t *testing.T) {
	ended := make(chan error, 1)
	addr := target(t, func(c net.Conn) {
		_, err := io.Copy(io.Discard, c)
		ended <- err
	})
	b := startBridge(t, static(addr), nil, nil)
	c, raw := dialRaw(t, b.url)
	c.Write(t.Context(), websocket.MessageBinary, []byte("hi"))
	raw.(*net.TCPConn).SetLinger(0)
	raw.Close()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("target connection still open 10s after the client vanished")
	}
	waitIdle(t, b)
	if !strings.Contains(b.log.logs(), "close_code=1006") {
		t.Errorf("log does not record 1006:\n%s", b.log.logs())
	}
}

func TestShutdownDrainsThenCloses(t *testing.T) {
	addr := target(t, echo)
	b := startBridge(t, static(addr), nil, &bridge.Options{Linger: time.Second})
	c := dial(t, b.url)
	c.Write(t.Context(), websocket.MessageBinary, []byte("x"))
	errc := make(chan error, 1)
	go func() {
		_, err := readUntilClose(c)
		errc <- err
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := b.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("Shutdown returned after %v, before the drain time", d)
	}
	wantClose(t, <-errc, websocket.StatusGoingAway, "Server shutting down")
	resp, err := http.Get(strings.Replace(b.url, "ws://", "http://", 1))
	if err == nil {
		resp.Body.Close()
		t.Fatal("the listener still accepts after Shutdown")
	}
}

func TestPongTimeout(t *testing.T) {
	addr := target(t, echo)
	b := startBridge(t, static(addr), nil, &bridge.Options{
		PingInterval: 50 * time.Millisecond,
		PongTimeout:  100 * time.Millisecond,
		Linger:       100 * time.Millisecond,
	})
	c := dial(t, b.url)
	// A client that does not read cannot answer pings.
	time.Sleep(500 * time.Millisecond)
	_, err := readUntilClose(c)
	wantClose(t, err, websocket.StatusGoingAway, "Pong timeout")
	waitIdle(t, b)
}

func TestPingsKeepLiveClientOpen(t *testing.T) {
	addr := target(t, echo)
	b := startBridge(t, static(addr), nil, &bridge.Options{
		PingInterval: 20 * time.Millisecond,
		PongTimeout:  200 * time.Millisecond,
	})
	c := dial(t, b.url)
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	// Reading answers pings; no data comes, so Read ends at the test's own
	// deadline (which closes the client's connection, so the error may be
	// that instead of DeadlineExceeded), never with a close from the bridge.
	_, _, err := c.Read(ctx)
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		t.Fatalf("the bridge closed a client that answers pings: %v", err)
	}
	if ctx.Err() == nil {
		t.Fatalf("Read ended before the test's deadline: %v", err)
	}
	if strings.Contains(b.log.logs(), "Pong timeout") {
		t.Fatalf("a pong timeout was logged:\n%s", b.log.logs())
	}
}

func TestDialAfterUpgrade(t *testing.T) {
	b := startBridge(t, static(deadAddr(t)), nil, &bridge.Options{DialAfterUpgrade: true})
	c := dial(t, b.url)
	_, err := readUntilClose(c)
	wantClose(t, err, websocket.StatusInternalError, "Failed to connect to downstream server")
	waitIdle(t, b)
}

// TestLingerBoundsStalledTarget: the target streams but never reads, so the
// bridge's write to it blocks; then the client vanishes, which the bridge
// learns from a failed write to it. The session must end within the linger,
// not after the (much longer) write timeout toward the target.
//
// (While the target sends nothing, a client that vanishes behind a blocked
// target write is found by the write timeout: nothing reads the client.)
func TestLingerBoundsStalledTarget(t *testing.T) {
	addr := target(t, func(c net.Conn) {
		buf := make([]byte, 4096)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	b := startBridge(t, static(addr), nil, &bridge.Options{Linger: 200 * time.Millisecond, WriteTimeout: time.Minute})
	c, raw := dialRaw(t, b.url)
	// Push until the bridge's write to the silent target blocks and the
	// client's own writes block behind it.
	go func() {
		msg := make([]byte, 64<<10)
		for c.Write(context.Background(), websocket.MessageBinary, msg) == nil {
		}
	}()
	time.Sleep(time.Second)
	raw.(*net.TCPConn).SetLinger(0)
	raw.Close()
	start := time.Now()
	waitIdle(t, b)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("session took %v to end; the linger is 200ms", d)
	}
}

// TestPingsAfterQuietWriteTimeout: the session's last write to the client
// is longer ago than the write timeout when the bridge pings. Each write
// to the client gets its own deadline, the library's pings included: a
// ping written under the deadline of a write long past would fail, and
// with it every later write to the client.
func TestPingsAfterQuietWriteTimeout(t *testing.T) {
	addr := target(t, echo)
	b := startBridge(t, static(addr), nil, &bridge.Options{
		WriteTimeout: 50 * time.Millisecond,
		PingInterval: 150 * time.Millisecond,
		PongTimeout:  300 * time.Millisecond,
	})
	c := dial(t, b.url)
	// Reading all along answers the pings.
	type result struct {
		msg []byte
		err error
	}
	got := make(chan result, 1)
	go func() {
		for {
			_, m, err := c.Read(context.Background())
			got <- result{m, err}
			if err != nil {
				return
			}
		}
	}()
	for round := range 3 {
		msg := []byte("round " + strconv.Itoa(round))
		if err := c.Write(t.Context(), websocket.MessageBinary, msg); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-got:
			if r.err != nil || !bytes.Equal(r.msg, msg) {
				t.Fatalf("round %d: echo %q, %v\n%s", round, r.msg, r.err, b.log.logs())
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: no echo\n%s", round, b.log.logs())
		}
		// Quiet past the write timeout, for two pings.
		time.Sleep(400 * time.Millisecond)
	}
	c.Close(websocket.StatusNormalClosure, "")
}
