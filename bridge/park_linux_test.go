package bridge_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsbridge/wsbridge/bridge"
)

// parkWait is well over the bridge's parkAfter (100 ms).
const parkWait = 500 * time.Millisecond

// parkedSessions opens n sessions to a target whose connections it hands
// back, and waits until both of each session's readers have parked. A
// session is three goroutines here while its readers run (the target's
// handler, the bridge's two pumps) and one once both have parked. Two more
// do not depend on n: the parker's (once per process, started by the
// first parked reader) and the bridge's accept loop, which Serve may not
// have started when the count begins.
func parkedSessions(t *testing.T, n int, opts *bridge.Options) (*testBridge, []*websocket.Conn, []net.Conn) {
	t.Helper()
	addr, conns := heldTargets(t, n)
	b := startBridge(t, static(addr), nil, opts)
	var clients []*websocket.Conn
	var targets []net.Conn
	for range n {
		clients = append(clients, dial(t, b.url))
		targets = append(targets, <-conns)
	}
	// The readers park after parkAfter of quiet. A loaded machine (the
	// race detector, a busy CI runner) may take longer to get there, but
	// get there they must: then no goroutine is in a session's code or
	// the library's. (Counting all goroutines was flaky: the pinger's and
	// the parker's loops start with the first session, and the server's
	// accept loop may start after the count before.)
	start := time.Now()
	time.Sleep(parkWait)
	for busy := sessionGoroutines(); busy != ""; busy = sessionGoroutines() {
		if time.Since(start) > 10*parkWait {
			t.Fatalf("%d sessions idle for %v still hold goroutines:\n%s", n, time.Since(start), busy)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return b, clients, targets
}

// sessionGoroutines returns the stacks of the goroutines in bridge's or
// the library's code, other than the server's and the process's own
// loops: a parked session has none.
func sessionGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var busy []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "wsbridge/bridge.") && !strings.Contains(g, "coder/websocket.") {
			continue
		}
		loop := false
		for _, l := range []string{"(*pinger).loop", "(*parker).loop", "(*gate).Accept", "(*gate).acceptLoop", "(*Server).Serve"} {
			loop = loop || strings.Contains(g, l)
		}
		if !loop {
			busy = append(busy, g)
		}
	}
	return strings.Join(busy, "\n\n")
}

// TestParkedTargetReaders: quiet sessions give up their goroutines, and
// work as before when woken: bytes from the target arrive whole and in
// order, the client's bytes reach the target, the readers park again, and
// a FIN while parked closes with 1000.
func TestParkedTargetReaders(t *testing.T) {
	const n = 10
	_, clients, targets := parkedSessions(t, n, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	big := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640,000 bytes: bulk reads too
	for i, tc := range targets {
		go tc.Write(big)
		var got []byte
		for len(got) < len(big) {
			_, m, err := clients[i].Read(ctx)
			if err != nil {
				t.Fatalf("session %d after %d bytes: %v", i, len(got), err)
			}
			got = append(got, m...)
		}
		if !bytes.Equal(got, big) {
			t.Fatalf("session %d: the target's bytes changed on the way", i)
		}
		if err := clients[i].Write(ctx, websocket.MessageBinary, []byte("up")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2)
		tc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(tc, buf); err != nil || string(buf) != "up" {
			t.Fatalf("session %d: target read %q, %v", i, buf, err)
		}
	}
	// Parked again, a FIN wakes them.
	time.Sleep(parkWait)
	for i, tc := range targets {
		tc.Close()
		_, err := readUntilClose(clients[i])
		wantClose(t, err, websocket.StatusNormalClosure, "Target closed")
	}
}

// TestParkedSessionsEnd: a client's close, Shutdown and a pong timeout
// end sessions whose target readers are parked, at once and in order:
// the target gets its FIN.
func TestParkedSessionsEnd(t *testing.T) {
	t.Run("client close", func(t *testing.T) {
		_, clients, targets := parkedSessions(t, 3, nil)
		for i, c := range clients {
			if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
				t.Fatal(err)
			}
			targets[i].SetReadDeadline(time.Now().Add(2 * time.Second))
			if n, err := targets[i].Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("target read %d, %v; want its FIN", n, err)
			}
		}
	})
	t.Run("shutdown", func(t *testing.T) {
		// The drain ends at once; the linger bounds the rest (the targets
		// never close their side).
		b, clients, targets := parkedSessions(t, 3, &bridge.Options{Linger: 500 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- b.srv.Shutdown(ctx) }()
		for _, c := range clients {
			_, err := readUntilClose(c)
			wantClose(t, err, websocket.StatusGoingAway, "Server shutting down")
		}
		for _, tc := range targets {
			tc.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := io.Copy(io.Discard, tc); err != nil {
				t.Fatalf("target: %v; want its FIN", err)
			}
		}
		if err := <-done; err != nil || time.Since(start) > 1500*time.Millisecond {
			t.Fatalf("Shutdown: %v after %v; want it within the linger", err, time.Since(start))
		}
	})
	t.Run("pong timeout", func(t *testing.T) {
		// A client that does not read never answers pings.
		_, clients, targets := parkedSessions(t, 2, &bridge.Options{PingInterval: 1200 * time.Millisecond, PongTimeout: 300 * time.Millisecond})
		for _, tc := range targets {
			tc.SetReadDeadline(time.Now().Add(3 * time.Second))
			if _, err := io.Copy(io.Discard, tc); err != nil {
				t.Fatalf("target: %v; want its FIN after the pong timeout", err)
			}
		}
		for _, c := range clients {
			_, err := readUntilClose(c)
			wantClose(t, err, websocket.StatusGoingAway, "Pong timeout")
		}
	})
}

// TestParkedClientReader: the client reader parks only between messages.
// A client that sent a frame and a half with its request, then pauses (longer than
// the bridge waits before parking) inside a frame's header, inside its
// payload and between the fragments of a message, has every byte reach
// the target in order, and its session keeps working.
func TestParkedClientReader(t *testing.T) {
	// The request comes with a frame and a half.
	more := frame(true, 0, opBinary, []byte("more "), true)
	fc, tc := rawSession(t, nil, append(frame(true, 0, opBinary, []byte("early "), true), more[:4]...))
	readTarget := func(want string) { t.Helper(); readExactly(t, tc, want) }
	readTarget("early ")
	time.Sleep(parkWait)
	fc.send(t, more[4:])
	readTarget("more ")
	time.Sleep(parkWait)

	pause := func(parts ...[]byte) {
		for i, p := range parts {
			if i > 0 {
				time.Sleep(300 * time.Millisecond)
			}
			fc.send(t, p)
		}
	}
	first := frame(false, 0, opBinary, []byte("one "), true)
	middle := frame(false, 0, opCont, bytes.Repeat([]byte("two "), 100), true)
	last := frame(true, 0, opCont, []byte("three"), true)
	// A pause after the first header byte, one inside the payload, and
	// one between fragments, with a ping from the client in between.
	pause(first[:1], first[1:], middle[:200], middle[200:], frame(true, 0, opPing, []byte("p"), true), last)
	if _, op, p := fc.readFrame(t); op != opPong || string(p) != "p" {
		t.Fatalf("got opcode %#x %q; want the pong", op, p)
	}
	readTarget("one " + strings.Repeat("two ", 100) + "three")

	// Parked again: the target's answer and another message go through.
	time.Sleep(parkWait)
	tc.Write([]byte("answer"))
	if got := fc.readData(t); string(got) != "answer" {
		t.Fatalf("client read %q", got)
	}
	fc.send(t, frame(true, 0, opBinary, []byte("again"), true))
	readTarget("again")
	fc.send(t, frame(true, 0, opClose, closePayload(1000, ""), true))
	if code, _ := fc.readClose(t); code != 1000 {
		t.Fatalf("close %d", code)
	}
}

// TestPongsWhileParked: a parked client reader's pong to the session's
// ping is taken on the parker's goroutine: the reader stays parked (no
// goroutine runs for the parkAfter it would wait before parking again),
// the pongs keep the session open well past the pong timeout, the bytes
// after them reach the target, so do those the parker read that were not
// a lone pong, and once the pongs stop the session closes with 1001.
func TestPongsWhileParked(t *testing.T) {
	fc, tc := rawSession(t, &bridge.Options{PingInterval: 300 * time.Millisecond, PongTimeout: 250 * time.Millisecond}, nil)
	time.Sleep(parkWait / 2) // parked, between pings
	base := runtime.NumGoroutine()
	for range 6 {
		_, op, p := fc.readFrame(t)
		if op != opPing {
			t.Fatalf("opcode %#x, want a ping", op)
		}
		fc.send(t, frame(true, 0, opPong, p, true))
		// A woken reader runs for parkAfter (100 ms) before it parks
		// again; a goroutine that lives through five samples over 40 ms
		// is one. (Timer callbacks live for microseconds.)
		run := 0
		for range 20 {
			time.Sleep(10 * time.Millisecond)
			if runtime.NumGoroutine() > base {
				run++
			} else {
				run = 0
			}
			if run == 5 {
				t.Fatalf("goroutines %d, over the parked session's %d, for 40 ms after a pong", runtime.NumGoroutine(), base)
			}
		}
	}
	fc.send(t, frame(true, 0, opBinary, []byte("after the pongs"), true))
	readExactly(t, tc, "after the pongs")
	// What the parker reads that is not a lone pong goes to the reader:
	// a pong with a message behind it, a pong in two pieces, a message
	// (the reader parks again 100 ms after it) and then the pong. Before
	// each, a ping answered with a lone pong lets the reader park.
	pong := func() []byte {
		t.Helper()
		_, op, p := fc.readFrame(t)
		if op != opPing {
			t.Fatalf("opcode %#x, want a ping", op)
		}
		return frame(true, 0, opPong, p, true)
	}
	for i, send := range []func(pong []byte){
		func(pong []byte) { fc.send(t, pong, frame(true, 0, opBinary, []byte("0"), true)) },
		func(pong []byte) {
			fc.send(t, pong[:5])
			time.Sleep(50 * time.Millisecond)
			fc.send(t, pong[5:], frame(true, 0, opBinary, []byte("1"), true))
		},
		func(pong []byte) {
			fc.send(t, frame(true, 0, opBinary, []byte("2"), true))
			time.Sleep(150 * time.Millisecond)
			fc.send(t, pong)
		},
	} {
		fc.send(t, pong())
		send(pong())
		readExactly(t, tc, string(rune('0'+i)))
	}
	for {
		_, op, p := fc.readFrame(t)
		if op == opPing {
			continue // unanswered
		}
		if op != opClose || len(p) < 2 || int(p[0])<<8|int(p[1]) != 1001 {
			t.Fatalf("opcode %#x %q; want close 1001", op, p)
		}
		break
	}
}
