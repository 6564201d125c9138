package bridge_test

import (
	"bufio"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsbridge/wsbridge/bridge"
)

const upgradeHeaders = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

func TestMalformedHandshakes(t *testing.T) {
	addr, dials := countingTarget(t)
	const deadline = 5 * time.Second
	b := startBridge(t, static(addr), nil, &bridge.Options{HeaderTimeout: deadline})
	host := strings.TrimPrefix(b.url, "ws://")
	h := "Host: " + host + "\r\n"
	many := strings.Repeat("p,", 200) + "binary"
	tests := []struct {
		name string
		req  string
		want int
	}{
		{"good, as a check", "GET / HTTP/1.1\r\n" + h + upgradeHeaders + "\r\n", 101},
		{"no Connection", "GET / HTTP/1.1\r\n" + h + "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", 400},
		{"no key", "GET / HTTP/1.1\r\n" + h + "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n", 400},
		{"two keys", "GET / HTTP/1.1\r\n" + h + upgradeHeaders + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", 400},
		{"short key", "GET / HTTP/1.1\r\n" + h + "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: c2hvcnQ=\r\n\r\n", 400},
		{"key not base64", "GET / HTTP/1.1\r\n" + h + "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!!=\r\n\r\n", 400},
		{"version 8", "GET / HTTP/1.1\r\n" + h + "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", 400},
		{"two versions", "GET / HTTP/1.1\r\n" + h + upgradeHeaders + "Sec-WebSocket-Version: 13\r\n\r\n", 400},
		{"HTTP/1.0", "GET / HTTP/1.0\r\n" + h + upgradeHeaders + "\r\n", 400},
		{"POST", "POST / HTTP/1.1\r\n" + h + upgradeHeaders + "Content-Length: 0\r\n\r\n", 405},
		{"huge subprotocol list", "GET / HTTP/1.1\r\n" + h + upgradeHeaders + "Sec-WebSocket-Protocol: " + many + "\r\n\r\n", 400},
		{"huge extension list", "GET / HTTP/1.1\r\n" + h + upgradeHeaders + "Sec-WebSocket-Extensions: " + strings.Repeat("x-ext; a=1, ", 100) + "\r\n\r\n", 400},
		{"bare LF", "GET / HTTP/1.1\n" + "Host: " + host + "\n" + strings.ReplaceAll(upgradeHeaders, "\r\n", "\n") + "\n", 400},
		{"one bare LF", "GET / HTTP/1.1\r\n" + h + "Upgrade: websocket\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", 400},
		{"no Host", "GET / HTTP/1.1\r\n" + upgradeHeaders + "\r\n", 400},
		{"two Hosts", "GET / HTTP/1.1\r\n" + h + h + upgradeHeaders + "\r\n", 400},
		{"headers too large", "GET / HTTP/1.1\r\n" + h + upgradeHeaders + "X-Big: " + strings.Repeat("a", 20<<10) + "\r\n\r\n", 431},
		{"garbage request line", "GET/HTTP/1.1\r\n" + h + upgradeHeaders + "\r\n", 400},
		{"space in header name", "GET / HTTP/1.1\r\n" + h + upgradeHeaders + "Bad Name: x\r\n\r\n", 400},
		{"no Upgrade, not a file", "GET / HTTP/1.1\r\n" + h + "Connection: Upgrade\r\n\r\n", 426},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := dials.Load()
			c, err := net.Dial("tcp", host)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// The answer must come at once, not when the header deadline
			// gives up on the request.
			c.SetDeadline(time.Now().Add(deadline - time.Second))
			if _, err := io.WriteString(c, tt.req); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want == 101 {
				waitDialled(t, dials, before)
			}
			if tt.want != 101 && dials.Load() != before {
				t.Errorf("a malformed handshake dialled the target")
			}
		})
	}
}

// TestFirstFrameWithRequest sends the handshake and the first WebSocket
// frame in one write, as some clients do, and expects the frame's bytes at
// the target: the library reads it (the take-out starts after it), and in
// base64 decodes it too.
func TestFirstFrameWithRequest(t *testing.T) {
	b := startBridge(t, static(target(t, echo)), nil, nil)
	fc := rawWS(t, b.url, frame(true, 0, opBinary, []byte("early bird\n"), true))
	if got := fc.readData(t); string(got) != "early bird\n" {
		t.Fatalf("echo of the first frame = %q", got)
	}
	// In base64, a fragmented message the library begins, whose last
	// frame comes after the take-out started.
	first := append(frame(false, 0, opText, []byte("ZWFybH"), true), frame(false, 0, opCont, []byte("kgYm"), true)...)
	fc = rawWS(t, b.url, first, "Sec-WebSocket-Protocol: base64")
	time.Sleep(50 * time.Millisecond)
	fc.send(t, frame(true, 0, opCont, []byte("lyZAo="), true))
	var echoed []byte
	for len(echoed) < len("early bird\n") {
		_, op, p := fc.readFrame(t)
		d, err := base64.StdEncoding.DecodeString(string(p))
		if op != opText || err != nil {
			t.Fatalf("echo %#x %q: %v", op, p, err)
		}
		echoed = append(echoed, d...)
	}
	if string(echoed) != "early bird\n" {
		t.Fatalf("echo of the first message = %q", echoed)
	}
}

// TestSlowHeaderClients holds 500 connections that send their headers a
// byte at a time, or nothing, and checks that each is closed at the header
// deadline while a normal client still gets through.
func TestSlowHeaderClients(t *testing.T) {
	if testing.Short() {
		t.Skip("holds 500 connections for seconds")
	}
	for _, tlsToo := range []bool{false, true} {
		name := "plain"
		opts := &bridge.Options{HeaderTimeout: 2 * time.Second}
		if tlsToo {
			name = "tls and plain"
			s := newTLS(t, nil)
			opts.TLS, opts.AllowPlain = s.store.Config(), true
		}
		t.Run(name, func(t *testing.T) {
			b := startBridge(t, static(target(t, echo)), nil, opts)
			addr := b.url[strings.Index(b.url, "://")+3:]
			const slow = 500
			var wg sync.WaitGroup
			stop := make(chan struct{})
			closed := make(chan time.Duration, slow)
			for i := range slow {
				wg.Go(func() {
					c, err := net.Dial("tcp", addr)
					if err != nil {
						t.Error(err)
						return
					}
					defer c.Close()
					start := time.Now()
					done := make(chan struct{})
					go func() {
						defer close(done)
						c.SetReadDeadline(time.Now().Add(30 * time.Second))
						io.Copy(io.Discard, c)
						closed <- time.Since(start)
					}()
					if i%2 == 0 {
						// Silent: never sends a byte.
						<-done
						return
					}
					req := "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 100)
					for j := 0; j < len(req); j++ {
						if _, err := c.Write([]byte{req[j]}); err != nil {
							break
						}
						select {
						case <-done:
							return
						case <-stop:
							return
						case <-time.After(700 * time.Millisecond):
						}
					}
					<-done
				})
			}
			// A normal client connects while the slow ones are held.
			time.Sleep(200 * time.Millisecond)
			url := strings.Replace(b.url, "wss://", "ws://", 1)
			c, _, err := websocket.Dial(t.Context(), url, nil)
			if err != nil {
				t.Fatalf("a normal client was kept out: %v", err)
			}
			c.Write(t.Context(), websocket.MessageBinary, []byte("hi"))
			if _, m, err := c.Read(t.Context()); err != nil || string(m) != "hi" {
				t.Fatalf("echo = %q, %v", m, err)
			}
			c.Close(websocket.StatusNormalClosure, "")
			wg.Wait()
			close(stop)
			close(closed)
			var longest time.Duration
			n := 0
			for d := range closed {
				n++
				longest = max(longest, d)
			}
			if n != slow {
				t.Fatalf("%d of %d slow connections were closed", n, slow)
			}
			// The deadline holds for the whole head, however it trickles
			// in; the bound leaves room for a busy machine.
			if longest > 10*time.Second {
				t.Errorf("a slow connection was held for %v, with a 2s header deadline", longest)
			}
			t.Logf("%d slow connections closed, the last after %v", n, longest.Round(time.Millisecond))
		})
	}
}
