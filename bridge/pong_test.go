package bridge_test

import (
	"testing"
	"time"

	"github.com/wsbridge/wsbridge/bridge"
)

// TestPongsTakenOut: a pong to the bridge's ping counts whether it
// arrives whole with other frames in one write (the bridge takes it out
// before the library sees it) or split across writes (the library reads
// it), and the frames around it reach the target unchanged; a pong with
// some other payload does not count, and the session ends with 1001
// "Pong timeout".
func TestPongsTakenOut(t *testing.T) {
	fc, tc := rawSession(t, &bridge.Options{PingInterval: 100 * time.Millisecond, PongTimeout: 400 * time.Millisecond}, nil)
	readTarget := func(want string) { t.Helper(); readExactly(t, tc, want) }
	ping := func() []byte {
		t.Helper()
		_, op, p := fc.readFrame(t)
		if op != opPing {
			t.Fatalf("opcode %#x, want a ping", op)
		}
		return p
	}
	for i := range 3 {
		// Whole, between two data frames, in one write.
		p := ping()
		fc.send(t, frame(true, 0, opBinary, []byte("before "), true), frame(true, 0, opPong, p, true), frame(true, 0, opBinary, []byte("after "), true))
		readTarget("before after ")
		// Split: the library reads it.
		p = ping()
		pong := frame(true, 0, opPong, p, true)
		fc.send(t, pong[:3])
		time.Sleep(50 * time.Millisecond)
		fc.send(t, pong[3:], frame(true, 0, opBinary, []byte{'0' + byte(i)}, true))
		readTarget(string([]byte{'0' + byte(i)}))
	}
	// The wrong payload: no pong at all, as far as the bridge goes.
	fc.send(t, frame(true, 0, opPong, []byte("other"), true))
	for {
		_, op, p := fc.readFrame(t)
		if op == opPing {
			fc.send(t, frame(true, 0, opPong, append([]byte("x"), p...), true))
			continue
		}
		if op != opClose || len(p) < 2 || int(p[0])<<8|int(p[1]) != 1001 || string(p[2:]) != "Pong timeout" {
			t.Fatalf("opcode %#x %q; want close 1001 Pong timeout", op, p)
		}
		break
	}
}
