package bridge

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/wsbridge/wsbridge/internal/testenv"
)

// TestTryPingWaits has tryPing refuse the two pings it could only wait
// for, a busy writer's and a full socket's, which ping then sends after
// what is ahead of them, whole.
func TestTryPingWaits(t *testing.T) {
	// The peer's receive buffer is small, so that few pings fill it.
	c, peer := peerBuffer(t, 4<<10)
	c.SetWriteBuffer(4 << 10)
	rc, _ := c.SyscallConn()
	w := newFrameWriter(c, 10*time.Second, rc)

	// A frame far larger than the socket holds: its write waits for the
	// peer, with the writer's lock held.
	big := make([]byte, 4<<20)
	wrote := make(chan error, 1)
	go func() {
		_, err := w.Write(append(appendHeader(nil, 0x2, len(big)), big...))
		wrote <- err
	}()
	for w.mu.TryLock() { // until the write holds the lock
		w.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	if w.tryPing() {
		t.Fatal("tryPing took a ping while the writer was busy")
	}
	go w.ping() // as the pinger does

	// The peer reads the big frame and the ping behind it.
	r := bufio.NewReader(peer)
	want := func(wantOp byte, size int) {
		t.Helper()
		op, p, err := readServerFrame(r)
		if err != nil || op != wantOp || len(p) != size {
			t.Fatalf("got opcode %#x, %d bytes, %v; want opcode %#x, %d bytes", op, len(p), err, wantOp, size)
		}
	}
	want(0x2, len(big))
	want(0x9, len(pingPayload))
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	// Now pings alone, tried until the socket, which the peer does not
	// read, is full. A ping the socket takes part of has its rest written
	// by a goroutine holding the writer, which tryPing then refuses too.
	took := 0
	for {
		if took > 1<<20 {
			t.Fatal("the socket never filled")
		}
		if w.tryPing() {
			took++
			continue
		}
		if !w.mu.TryLock() {
			continue // the rest of a ping, waiting
		}
		// Refused for the writer (the rest of a ping, just done) or for
		// the socket: what its last write did tells.
		full := w.pingN <= 0 && errors.Is(w.pingErr, syscall.EAGAIN)
		w.mu.Unlock()
		if full {
			break
		}
	}
	read := make(chan error, 1)
	go func() {
		for i := range took + 1 {
			op, p, err := readServerFrame(r)
			if err == nil && (op != 0x9 || string(p) != pingPayload) {
				err = fmt.Errorf("frame %d: opcode %#x, %q, want the ping", i, op, p)
			}
			if err != nil {
				read <- err
				return
			}
		}
		read <- nil
	}()
	w.ping() // waits for the peer
	if err := <-read; err != nil {
		t.Fatal(err)
	}
	t.Logf("the socket took %d pings before it was full", took)
}

// TestTryPingAfterDeadline: a quiet session's last write left a deadline
// long past when its ping falls due; tryPing still writes the ping itself.
func TestTryPingAfterDeadline(t *testing.T) {
	c, peer := testenv.TCPPair(t)
	rc, _ := c.SyscallConn()
	w := newFrameWriter(c, time.Millisecond, rc)
	if _, err := w.Write(appendHeader(nil, 0x2, 0)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // the write's deadline passes
	if !w.tryPing() {
		t.Fatalf("tryPing refused: wrote %d, %v", w.pingN, w.pingErr)
	}
	r := bufio.NewReader(peer)
	for _, want := range []byte{0x2, 0x9} {
		op, _, err := readServerFrame(r)
		if err != nil || op != want {
			t.Fatalf("opcode %#x, %v; want %#x", op, err, want)
		}
	}
}

// TestTryPingPartial: a socket with room for part of a ping takes that
// part, and a goroutine holding the writer sends the rest once the peer
// reads; meanwhile tryPing refuses (unless the rest went first), and
// every ping arrives whole. (A peer
// buffer of 64 KiB and a send buffer of 8 KiB mostly end in a part-taken
// ping, after a few thousand whole ones; when a socket fills without one,
// as it may when the race detector slows the writes, a new pair tries.)
func TestTryPingPartial(t *testing.T) {
	for try := 1; ; try++ {
		if try > 100 {
			t.Fatal("100 sockets filled with pings, none taking part of one")
		}
		c, peer := peerBuffer(t, 64<<10)
		c.SetWriteBuffer(8 << 10)
		rc, _ := c.SyscallConn()
		w := newFrameWriter(c, 10*time.Second, rc)
		took, partial := 0, false
		for took < 1<<20 && w.tryPing() {
			took++
			if w.pingN < len(pingFrame) {
				partial = true
				break
			}
		}
		if !partial {
			continue
		}
		// The rest's goroutine holds the writer until the socket takes
		// it: tryPing refuses meanwhile. The socket may make room first
		// (the kernel sends on as the peer's window opens); then the
		// rest is out and tryPing may take one more. Either way each
		// ping must arrive whole.
		if w.tryPing() {
			took++
			t.Logf("the rest went out before the second tryPing")
		}
		read := make(chan error, 1)
		go func() {
			r := bufio.NewReader(peer)
			for i := range took + 1 {
				op, p, err := readServerFrame(r)
				if err == nil && (op != 0x9 || string(p) != pingPayload) {
					err = fmt.Errorf("frame %d of %d: opcode %#x, %q, want the ping", i, took+1, op, p)
				}
				if err != nil {
					read <- err
					return
				}
			}
			read <- nil
		}()
		w.ping() // after the rest
		if err := <-read; err != nil {
			t.Fatal(err)
		}
		t.Logf("pair %d: %d pings, the last in part", try, took)
		return
	}
}

// peerBuffer is a loopback TCP pair whose second socket's receive buffer
// is size from its start (its listener's): shrunk after the handshake, it
// would stall TCP.
func peerBuffer(t *testing.T, size int) (c, peer *net.TCPConn) {
	return testenv.TCPPairFrom(t, &net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, size)
		})
	}})
}
