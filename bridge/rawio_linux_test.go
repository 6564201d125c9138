package bridge

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestRawWriter writes many more slices than one writev takes, of every
// size from none to tens of KiB, from a small send buffer to a peer with
// a small receive buffer that reads slowly, so that the socket fills and
// writes end inside a slice. The
// peer must get every byte in order, and the slices must be used up.
func TestRawWriter(t *testing.T) {
	c, peer := peerBuffer(t, 4096)
	rc, _ := c.SyscallConn()
	rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 8192) })
	rng := rand.New(rand.NewPCG(3, 4))
	var v net.Buffers
	var want []byte
	for i := range 300 {
		b := make([]byte, []int{0, 1, 7, 1000, 40000}[rng.IntN(5)])
		for j := range b {
			b[j] = byte(i*31 + j)
		}
		v = append(v, b)
		want = append(want, b...)
	}
	got := make(chan []byte, 1)
	go func() {
		var all []byte
		b := make([]byte, 3000)
		for {
			n, err := peer.Read(b)
			all = append(all, b[:n]...)
			if err != nil {
				got <- all
				return
			}
			if rng.IntN(50) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	w := newRawWriter(rc)
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	n, err := w.writeBuffers(&v)
	if err != nil || n != int64(len(want)) || len(v) != 0 {
		t.Fatalf("wrote %d of %d, %d slices left: %v", n, len(want), len(v), err)
	}
	c.Close()
	if all := <-got; !bytes.Equal(all, want) {
		t.Fatalf("the peer got %d bytes, not the %d written", len(all), len(want))
	}
}

// TestRawWriterDeadline has a write meet its deadline while the peer
// reads nothing: it fails with the deadline's error, having written a
// count of bytes that is what the peer then gets.
func TestRawWriterDeadline(t *testing.T) {
	c, peer := peerBuffer(t, 4096)
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	v := net.Buffers{want[:1<<20], want[1<<20:]}
	rc, _ := c.SyscallConn()
	w := newRawWriter(rc)
	c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	n, err := w.writeBuffers(&v)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n <= 0 || n >= int64(len(want)) {
		t.Fatalf("wrote %d of %d: %v, want part of it and the deadline", n, len(want), err)
	}
	c.Close()
	all, _ := io.ReadAll(peer)
	if !bytes.Equal(all, want[:n]) {
		t.Fatalf("the peer got %d bytes, the writer said %d", len(all), n)
	}
}

// TestReadFD reads an empty socket (EAGAIN), bytes, and the peer's end.
func TestReadFD(t *testing.T) {
	c, peer := peerBuffer(t, 4096)
	rc, _ := c.SyscallConn()
	read := func() (n int, err error) {
		rc.Control(func(fd uintptr) { n, err = readFD(fd, make([]byte, 10)) })
		return
	}
	if _, err := read(); err != syscall.EAGAIN {
		t.Fatalf("an empty socket: %v, want EAGAIN", err)
	}
	peer.Write([]byte("hello"))
	peer.Close()
	// Loopback delivers at once, but a loaded machine may defer it.
	n, err := read()
	for deadline := time.Now().Add(5 * time.Second); err == syscall.EAGAIN && time.Now().Before(deadline); n, err = read() {
		time.Sleep(time.Millisecond)
	}
	if n != 5 || err != nil {
		t.Fatalf("read %d: %v, want 5", n, err)
	}
	if n, err := read(); n != 0 || err != nil {
		t.Fatalf("read %d: %v at the end, want 0 and no error", n, err)
	}
}
